//! The typed catalog model that the loader produces.
//!
//! Everything here is plain data that was already validated by [`crate::load`]; the provider and
//! the broker read it without re-checking.

use std::cmp::Ordering;

/// A loaded catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Resource types are `<provider_prefix>_<offering>`; see [`Catalog::resource_type`].
    pub provider_prefix: String,
    /// Sorted by name; names are unique.
    pub offerings: Vec<Offering>,
    /// `sha256:<hex>` over the sorted (file name, content) pairs of the sources. File names are
    /// the last path component, so the digest does not depend on where the catalog directory
    /// lives nor on the order in which sources were given.
    pub digest: String,
}

impl Catalog {
    pub fn offering(&self, name: &str) -> Option<&Offering> {
        self.offerings.iter().find(|offering| offering.name == name)
    }

    /// The Terraform resource type of an offering. This is the one place the name is built.
    pub fn resource_type(&self, offering: &Offering) -> String {
        format!("{}_{}", self.provider_prefix, offering.name)
    }
}

/// One offering: a resource type.
///
/// **Invariant** (for loaded catalogs): `versions` is not empty and version strings are unique.
#[derive(Debug, Clone)]
pub struct Offering {
    pub name: String,
    pub title: String,
    pub description: String,
    pub owner: Owner,
    /// In declaration order.
    pub versions: Vec<Version>,
}

/// Returned by [`Offering::current`] for a hand-built offering without versions, so that the
/// accessor never panics.
static NO_VERSION: Version = Version {
    version: String::new(),
    status: Status::Retired,
    deprecation: None,
    inputs: Vec::new(),
    tiers: Vec::new(),
    compose: Vec::new(),
    outputs: Vec::new(),
    inherits_schema: false,
};

impl Offering {
    /// The version whose inputs form the resource schema: the highest semver with status
    /// `current`; else the highest `preview`; else the highest `deprecated`; else the highest
    /// (necessarily `retired`) version.
    ///
    /// A loaded offering always has a version; an offering built by hand without any yields an
    /// empty retired version.
    pub fn current(&self) -> &Version {
        let preference = [
            Status::Current,
            Status::Preview,
            Status::Deprecated,
            Status::Retired,
        ];
        preference
            .iter()
            .find_map(|status| {
                self.versions
                    .iter()
                    .filter(|version| version.status == *status)
                    .max_by(|a, b| compare_versions(&a.version, &b.version))
            })
            .unwrap_or(&NO_VERSION)
    }

    pub fn version(&self, v: &str) -> Option<&Version> {
        self.versions.iter().find(|version| version.version == v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub team: String,
    pub contact: Option<String>,
}

/// Lifecycle state of a version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Status {
    Preview,
    Current,
    Deprecated,
    Retired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Preview => "preview",
            Status::Current => "current",
            Status::Deprecated => "deprecated",
            Status::Retired => "retired",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "preview" => Some(Status::Preview),
            "current" => Some(Status::Current),
            "deprecated" => Some(Status::Deprecated),
            "retired" => Some(Status::Retired),
            _ => None,
        }
    }
}

/// The dated part of the deprecation state machine; the provider evaluates it at plan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    /// Creating instances of this version is refused after this day.
    pub create_until: Option<time::Date>,
    /// Updating instances of this version is refused after this day.
    pub update_until: Option<time::Date>,
    /// A version of the same offering (checked by the loader).
    pub successor: Option<String>,
}

/// One version of an offering.
///
/// A version that declares no `input`, `tier`, `compose` or `output` blocks at all (like a
/// deprecated version kept only for its dates) inherits all four from the offering's schema
/// version, [`Offering::current`]; `inherits_schema` is then true. This keeps old versions one
/// block long while still letting the provider price and compose their instances.
#[derive(Debug, Clone)]
pub struct Version {
    /// A semantic version, `MAJOR.MINOR.PATCH` with an optional `-prerelease`.
    pub version: String,
    pub status: Status,
    pub deprecation: Option<Deprecation>,
    /// In declaration order; names unique.
    pub inputs: Vec<Input>,
    /// In declaration order; names unique.
    pub tiers: Vec<Tier>,
    /// Topologically sorted: every primitive comes after the primitives it depends on;
    /// otherwise declaration order is kept.
    pub compose: Vec<Primitive>,
    /// In declaration order; names unique and distinct from input names.
    pub outputs: Vec<Output>,
    /// True when inputs/tiers/compose/outputs were copied from the schema version.
    pub inherits_schema: bool,
}

impl Version {
    pub fn input(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|input| input.name == name)
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.iter().find(|tier| tier.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&Output> {
        self.outputs.iter().find(|output| output.name == name)
    }
}

/// The type of an input, written as a bare HCL type expression (`string`, `list(number)`...).
#[derive(Clone, Debug, PartialEq)]
pub enum InputType {
    String,
    Number,
    Bool,
    List(Box<InputType>),
    Set(Box<InputType>),
    Map(Box<InputType>),
}

impl InputType {
    /// The element type of a collection, or the type itself for a primitive.
    pub fn scalar(&self) -> &InputType {
        match self {
            InputType::List(element) | InputType::Set(element) | InputType::Map(element) => {
                element.scalar()
            }
            other => other,
        }
    }

    pub fn is_collection(&self) -> bool {
        matches!(
            self,
            InputType::List(_) | InputType::Set(_) | InputType::Map(_)
        )
    }
}

impl std::fmt::Display for InputType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputType::String => f.write_str("string"),
            InputType::Number => f.write_str("number"),
            InputType::Bool => f.write_str("bool"),
            InputType::List(element) => write!(f, "list({element})"),
            InputType::Set(element) => write!(f, "set({element})"),
            InputType::Map(element) => write!(f, "map({element})"),
        }
    }
}

/// What a change of an input's value does to an existing instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnChange {
    /// Updated in place.
    #[default]
    Update,
    /// The instance is replaced (Terraform's RequiresReplace).
    Replace,
    /// Any change is a plan-time error.
    Reject,
    /// Numbers may only grow, strings may not change, collections may only gain elements.
    GrowOnly,
}

impl OnChange {
    pub fn as_str(self) -> &'static str {
        match self {
            OnChange::Update => "update",
            OnChange::Replace => "replace",
            OnChange::Reject => "reject",
            OnChange::GrowOnly => "grow_only",
        }
    }

    pub fn parse(text: &str) -> Option<OnChange> {
        match text {
            "update" => Some(OnChange::Update),
            "replace" => Some(OnChange::Replace),
            "reject" => Some(OnChange::Reject),
            "grow_only" => Some(OnChange::GrowOnly),
            _ => None,
        }
    }
}

/// One typed input with its guardrails. `enum_values`, `pattern`, `min` and `max` apply to the
/// value itself for primitive types and to each element (each map value) for collections;
/// `min_length`/`max_length` apply to a string's length in chars or to a collection's length.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub ty: InputType,
    pub description: Option<String>,
    /// Already checked against `ty` and the guardrails by the loader.
    pub default: Option<hcl::Value>,
    pub enum_values: Option<Vec<hcl::Value>>,
    /// Unanchored, like Terraform's `regex`; catalogs write `^...$` to match whole values.
    pub pattern: Option<regex::Regex>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub on_change: OnChange,
    pub sensitive: bool,
}

/// One guardrail violation found by [`Input::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Relative to the input value: empty for the value itself, `Index(i)` for the i-th
    /// list/set element, `Key(k)` for a map entry.
    pub path: Vec<PathStep>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Index(usize),
    Key(String),
}

/// A tier: a priced size of an offering.
#[derive(Debug, Clone)]
pub struct Tier {
    pub name: String,
    pub price: Price,
    /// Literal values visible to compose expressions as `tier.values.<key>`.
    pub values: hcl::Map<String, hcl::Value>,
    pub requires_approval: bool,
    /// `None`: any transition is allowed. `Some(list)`: only to the listed tiers (all of
    /// which exist in the same version).
    pub transitions_to: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Price {
    pub amount: f64,
    /// `month` or `hour`.
    pub unit: String,
    /// Defaults to `USD`.
    pub currency: String,
    /// Multiplies the amount; may reference `input.*` only.
    pub quantity: Option<hcl::Expression>,
}

/// One driver primitive of a composition.
#[derive(Debug, Clone)]
pub struct Primitive {
    pub name: String,
    /// `backend.kind`, e.g. `postgres.role`. Whether a driver exists is the provider's business.
    pub driver: String,
    /// In declaration order.
    pub inputs: Vec<(String, hcl::Expression)>,
    /// Names of the primitives whose outputs the inputs reference, in first-reference order.
    pub depends_on: Vec<String>,
    /// Where each key of `inputs` is written, by key: for checks of the keys against the
    /// driver, which the provider makes after loading.
    pub input_locations: std::collections::BTreeMap<String, crate::diag::Location>,
}

/// One output: a computed attribute of the resource.
#[derive(Debug, Clone)]
pub struct Output {
    pub name: String,
    pub description: Option<String>,
    pub value: hcl::Expression,
    pub sensitive: bool,
}

/// A parsed semantic version, compared by numbers; a pre-release sorts before its release.
/// Pre-release identifiers are compared as plain text, which is enough for catalogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SemVer {
    numbers: [u64; 3],
    pre: Option<String>,
}

impl SemVer {
    pub(crate) fn parse(text: &str) -> Option<SemVer> {
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        if let Some(pre) = &pre
            && !pre
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return None;
        }
        let mut numbers = [0u64; 3];
        let mut parts = core.split('.');
        for number in &mut numbers {
            let part = parts.next()?;
            if part.is_empty() || !part.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            *number = part.parse().ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(SemVer { numbers, pre })
    }
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        self.numbers
            .cmp(&other.numbers)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders version strings by semver; unparsable strings sort first, among themselves by text.
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    match (SemVer::parse(a), SemVer::parse(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(v: &str, status: Status) -> Version {
        Version {
            version: v.to_string(),
            status,
            ..NO_VERSION.clone()
        }
    }

    fn check(versions: &[(&str, Status)], expected: &str) {
        let offering = Offering {
            name: "x".into(),
            title: String::new(),
            description: String::new(),
            owner: Owner {
                team: "t".into(),
                contact: None,
            },
            versions: versions.iter().map(|(v, s)| version(v, *s)).collect(),
        };
        assert_eq!(offering.current().version, expected);
    }

    #[test]
    fn current_prefers_status_then_semver() {
        use Status::*;
        check(
            &[("1.10.0", Current), ("1.9.0", Current), ("2.0.0", Preview)],
            "1.10.0",
        );
        check(
            &[
                ("1.0.0", Deprecated),
                ("2.0.0", Preview),
                ("3.0.0", Preview),
            ],
            "3.0.0",
        );
        check(&[("1.0.0", Retired), ("0.9.0", Deprecated)], "0.9.0");
        check(&[("1.0.0", Retired), ("1.1.0", Retired)], "1.1.0");
        check(&[("1.0.0-rc.1", Current), ("1.0.0", Current)], "1.0.0");
        check(&[], "");
    }

    #[test]
    fn semver_parse() {
        assert!(SemVer::parse("1.2.3").is_some());
        assert!(SemVer::parse("1.2.3-beta.1").is_some());
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.x.3",
            "1.2.3-",
            "v1.2.3",
            "1.2.3-a_b",
        ] {
            assert!(SemVer::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn resource_type() {
        let catalog = Catalog {
            provider_prefix: "acme".into(),
            ..Catalog::default()
        };
        let offering = Offering {
            name: "queue".into(),
            title: String::new(),
            description: String::new(),
            owner: Owner {
                team: "t".into(),
                contact: None,
            },
            versions: Vec::new(),
        };
        assert_eq!(catalog.resource_type(&offering), "acme_queue");
    }
}
