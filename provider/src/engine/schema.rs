//! Resource and data source schemas derived from the catalog.
//!
//! **Invariant:** every resource schema is built from one catalog snapshot,
//! and the attribute list here is the only place that decides names, types and
//! flags; plan, validate and the wire encoding all read it.

use std::collections::BTreeMap;

use platform_catalog::{Catalog, InputType, Offering};
use platform_value::Type;

// The words of input descriptions live with the catalog: the JSON Schema of
// an offering version (`platform_catalog::json_schema`) uses them too.
pub use platform_catalog::describe::{code_value, guardrails, input_description};

/// The attribute that rotates generated secrets: on offerings whose
/// composition makes any (a login role's password), changing its value
/// replaces them at the next apply. Reserved in every catalog
/// (`platform_catalog::RESERVED_ATTRIBUTES`).
pub const SECRET_VERSION: &str = "secret_version";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flags {
    Required,
    Optional,
    OptionalComputed,
    Computed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttrKind {
    Input,
    Output,
    Reserved,
}

#[derive(Debug, Clone)]
pub struct AttrSchema {
    pub name: String,
    pub ty: Type,
    pub flags: Flags,
    pub sensitive: bool,
    pub description: String,
    pub kind: AttrKind,
}

impl AttrSchema {
    pub fn new(name: &str, ty: Type, flags: Flags, kind: AttrKind, description: String) -> Self {
        AttrSchema {
            name: name.to_owned(),
            ty,
            flags,
            sensitive: false,
            description,
            kind,
        }
    }
    pub fn computed(&self) -> bool {
        matches!(self.flags, Flags::Computed | Flags::OptionalComputed)
    }
}

/// A block of attributes, with optional single nested blocks (only the
/// provider block has one: `postgres { … }`).
#[derive(Debug, Clone, Default)]
pub struct BlockSchema {
    pub description: String,
    pub attributes: Vec<AttrSchema>,
    /// Nested blocks with SINGLE nesting: an object, or null when absent.
    pub blocks: Vec<(String, BlockSchema)>,
}

impl BlockSchema {
    /// The object type Terraform encodes values of this block with.
    pub fn object_type(&self) -> Type {
        Type::Object(
            self.attributes
                .iter()
                .map(|a| (a.name.clone(), a.ty.clone()))
                .chain(
                    self.blocks
                        .iter()
                        .map(|(name, block)| (name.clone(), block.object_type())),
                )
                .collect::<BTreeMap<_, _>>(),
        )
    }
    pub fn attr(&self, name: &str) -> Option<&AttrSchema> {
        self.attributes.iter().find(|a| a.name == name)
    }
}

pub fn input_type(ty: &InputType) -> Type {
    match ty {
        InputType::String => Type::String,
        InputType::Number => Type::Number,
        InputType::Bool => Type::Bool,
        InputType::List(inner) => Type::List(Box::new(input_type(inner))),
        InputType::Set(inner) => Type::Set(Box::new(input_type(inner))),
        InputType::Map(inner) => Type::Map(Box::new(input_type(inner))),
    }
}

/// The resource schema of one offering: the schema version's inputs, the
/// reserved attributes, and its outputs as computed strings.
pub fn resource_schema(offering: &Offering) -> BlockSchema {
    let version = offering.current();
    let mut attributes = Vec::new();
    for input in &version.inputs {
        let flags = if input.default.is_some() {
            Flags::OptionalComputed
        } else {
            Flags::Required
        };
        let description = input_description(input);
        let mut attr = AttrSchema::new(
            &input.name,
            input_type(&input.ty),
            flags,
            AttrKind::Input,
            description,
        );
        attr.sensitive = input.sensitive;
        attributes.push(attr);
    }
    let tiers: Vec<&str> = version.tiers.iter().map(|t| t.name.as_str()).collect();
    let reserved = [
        (
            "id",
            Type::String,
            Flags::Computed,
            "Identifier of this instance, assigned when it is created or imported: the import id and the instance's generation, `<import id>~<12 hex digits>`.".to_owned(),
        ),
        (
            "tier",
            Type::String,
            Flags::OptionalComputed,
            match tiers.first() {
                Some(first) => format!(
                    "Service tier, one of: {}. Defaults to {first}.",
                    tiers.join(", ")
                ),
                None => "Service tier (this version defines none).".to_owned(),
            },
        ),
        (
            "team",
            Type::String,
            Flags::OptionalComputed,
            platform_catalog::describe::TEAM_DESCRIPTION.to_owned(),
        ),
        (
            "labels",
            Type::Map(Box::new(Type::String)),
            Flags::Optional,
            platform_catalog::describe::LABELS_DESCRIPTION.to_owned(),
        ),
        (
            "offering_version",
            Type::String,
            Flags::OptionalComputed,
            format!(
                "Catalog version of the offering; defaults to the current version ({}).",
                version.version
            ),
        ),
        (
            "monthly_cost",
            Type::Number,
            Flags::Computed,
            "Monthly price of the chosen tier, from the catalog.".to_owned(),
        ),
        (
            "status",
            Type::String,
            Flags::Computed,
            "Lifecycle status of the offering version: preview, current, deprecated or retired."
                .to_owned(),
        ),
    ];
    for (name, ty, flags, description) in reserved {
        attributes.push(AttrSchema::new(
            name,
            ty,
            flags,
            AttrKind::Reserved,
            description,
        ));
    }
    if version
        .compose
        .iter()
        .any(|p| crate::drivers::Registry::makes_secrets(&p.driver))
    {
        attributes.push(AttrSchema::new(
            SECRET_VERSION,
            Type::Number,
            Flags::Optional,
            AttrKind::Reserved,
            "Change this value (e.g. to 1, then 2) to replace the generated passwords at the next apply: after an import, which cannot read a password back, or to rotate them. The old passwords stop working.".to_owned(),
        ));
    }
    for output in &version.outputs {
        let mut attr = AttrSchema::new(
            &output.name,
            Type::String,
            Flags::Computed,
            AttrKind::Output,
            output.description.clone().unwrap_or_default(),
        );
        attr.sensitive = output.sensitive;
        attributes.push(attr);
    }
    attributes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut description = offering.title.clone();
    if !offering.description.is_empty() {
        description = format!("{description}: {}", offering.description);
    }
    description.push_str(&format!(" Owned by {}.", offering.owner.team));
    BlockSchema {
        description,
        attributes,
        blocks: Vec::new(),
    }
}

fn tier_type() -> Type {
    Type::Object(BTreeMap::from([
        ("name".to_owned(), Type::String),
        ("amount".to_owned(), Type::Number),
        ("unit".to_owned(), Type::String),
        ("currency".to_owned(), Type::String),
        ("requires_approval".to_owned(), Type::Bool),
    ]))
}

fn version_type() -> Type {
    Type::Object(BTreeMap::from([
        ("version".to_owned(), Type::String),
        ("status".to_owned(), Type::String),
        ("create_until".to_owned(), Type::String),
        ("update_until".to_owned(), Type::String),
        ("successor".to_owned(), Type::String),
    ]))
}

fn input_summary_type() -> Type {
    Type::Object(BTreeMap::from([
        ("name".to_owned(), Type::String),
        ("type".to_owned(), Type::String),
        ("required".to_owned(), Type::Bool),
        ("description".to_owned(), Type::String),
        ("on_change".to_owned(), Type::String),
    ]))
}

/// Attributes describing one offering, shared by both data sources.
fn offering_attrs() -> Vec<(&'static str, Type, &'static str)> {
    vec![
        ("title", Type::String, "Human title."),
        ("description", Type::String, "What the offering provides."),
        ("owner_team", Type::String, "Team that owns the offering."),
        ("owner_contact", Type::String, "How to reach the owners."),
        (
            "resource_type",
            Type::String,
            "The Terraform resource type of the offering.",
        ),
        (
            "current_version",
            Type::String,
            "The version new instances get.",
        ),
        (
            "status",
            Type::String,
            "Lifecycle status of the current version.",
        ),
        (
            "versions",
            Type::List(Box::new(version_type())),
            "Every version with its lifecycle dates.",
        ),
        (
            "tiers",
            Type::List(Box::new(tier_type())),
            "Tiers of the current version with their prices.",
        ),
        (
            "inputs",
            Type::List(Box::new(input_summary_type())),
            "Inputs of the current version.",
        ),
    ]
}

pub fn offering_object_type() -> Type {
    let mut attrs: BTreeMap<String, Type> = offering_attrs()
        .into_iter()
        .map(|(name, ty, _)| (name.to_owned(), ty))
        .collect();
    attrs.insert("name".to_owned(), Type::String);
    Type::Object(attrs)
}

/// `<prefix>_catalog`: every offering with its versions, tiers, prices and owners.
pub fn catalog_data_schema() -> BlockSchema {
    let mut attributes = vec![
        AttrSchema::new(
            "id",
            Type::String,
            Flags::Computed,
            AttrKind::Reserved,
            "The catalog digest.".into(),
        ),
        AttrSchema::new(
            "digest",
            Type::String,
            Flags::Computed,
            AttrKind::Reserved,
            "sha256 digest of the catalog sources.".into(),
        ),
        AttrSchema::new(
            "offerings",
            Type::List(Box::new(offering_object_type())),
            Flags::Computed,
            AttrKind::Reserved,
            "Every offering, sorted by name.".into(),
        ),
    ];
    attributes.sort_by(|a, b| a.name.cmp(&b.name));
    BlockSchema {
        description: "The platform catalog: offerings, versions, tiers, prices and owners.".into(),
        attributes,
        blocks: Vec::new(),
    }
}

/// `<prefix>_offering`: one offering by name.
pub fn offering_data_schema() -> BlockSchema {
    let mut attributes = vec![
        AttrSchema::new(
            "name",
            Type::String,
            Flags::Required,
            AttrKind::Input,
            "Offering name, e.g. postgres_database.".into(),
        ),
        AttrSchema::new(
            "id",
            Type::String,
            Flags::Computed,
            AttrKind::Reserved,
            "The offering name.".into(),
        ),
    ];
    for (name, ty, description) in offering_attrs() {
        attributes.push(AttrSchema::new(
            name,
            ty,
            Flags::Computed,
            AttrKind::Reserved,
            description.into(),
        ));
    }
    attributes.sort_by(|a, b| a.name.cmp(&b.name));
    BlockSchema {
        description: "One offering of the platform catalog.".into(),
        attributes,
        blocks: Vec::new(),
    }
}

/// The provider block: `default_team` and one section per backend.
pub fn provider_schema() -> BlockSchema {
    BlockSchema {
        description: "Self-service platform offerings from the catalog.".into(),
        attributes: vec![AttrSchema::new(
            "default_team",
            Type::String,
            Flags::Optional,
            AttrKind::Input,
            "Team recorded on resources that set no `team`.".into(),
        )],
        blocks: crate::drivers::backends()
            .iter()
            .map(|b| (b.name().to_owned(), b.section()))
            .collect(),
    }
}

/// All schemas of one catalog snapshot, keyed by Terraform type name.
#[derive(Debug)]
pub struct Schemas {
    pub provider: BlockSchema,
    pub resources: BTreeMap<String, (String, BlockSchema)>,
    pub data_sources: BTreeMap<String, BlockSchema>,
    pub catalog_data_type: String,
    pub offering_data_type: String,
    /// Ephemeral resources (Terraform ≥ 1.10) by type name.
    pub ephemeral: BTreeMap<String, BlockSchema>,
    /// Each ephemeral type's backend and its name there.
    pub ephemeral_owner: BTreeMap<String, (&'static str, &'static str)>,
}

impl Schemas {
    pub fn build(catalog: &Catalog) -> Schemas {
        let resources = catalog
            .offerings
            .iter()
            .map(|o| {
                (
                    catalog.resource_type(o),
                    (o.name.clone(), resource_schema(o)),
                )
            })
            .collect();
        let catalog_data_type = format!("{}_catalog", catalog.provider_prefix);
        let offering_data_type = format!("{}_offering", catalog.provider_prefix);
        let data_sources = BTreeMap::from([
            (catalog_data_type.clone(), catalog_data_schema()),
            (offering_data_type.clone(), offering_data_schema()),
        ]);
        let mut ephemeral = BTreeMap::new();
        let mut ephemeral_owner = BTreeMap::new();
        for backend in crate::drivers::backends() {
            for e in backend.ephemerals() {
                let type_name = format!("{}_{}", catalog.provider_prefix, e.suffix);
                ephemeral.insert(type_name.clone(), (e.schema)());
                ephemeral_owner.insert(type_name, (backend.name(), e.suffix));
            }
        }
        Schemas {
            provider: provider_schema(),
            resources,
            data_sources,
            catalog_data_type,
            offering_data_type,
            ephemeral,
            ephemeral_owner,
        }
    }
}
