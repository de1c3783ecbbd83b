//! Running an offering's composition: the primitives of a version in
//! dependency order, each through its driver, with every primitive's state
//! kept in the resource's private data.
//!
//! **Invariant:** nothing is orphaned. A create that fails part-way undoes
//! what it made, in reverse; where an undo fails too, the partial state goes
//! back to Terraform (which keeps it, tainted) and the error names what is
//! left. Updates and deletes return whatever primitives still exist.

use std::collections::BTreeMap;

use platform_catalog::{EvalScope, Offering, Primitive, Version};
use platform_value::Value;

use super::convert::{from_hcl, hcl_to_string, to_hcl};
use super::schema::{AttrKind, BlockSchema};
use crate::drivers::{DriverError, Owner, Registry, Values};

/// What a resource keeps in Terraform's private data: the state of each
/// primitive and, in a planned change only, the digest of the catalog it was
/// planned against (apply refuses when the catalog changed since).
///
/// Encoded as compact JSON, `{"c": digest, "p": {primitive: values}}`, with
/// `c` left out of state: Terraform copies and rewrites every instance's
/// private data on each state update during an apply, so its size is paid
/// per resource many times over (`bench/lifecycle.py cheap`). Data written
/// by earlier versions (`catalog_digest`, `offering_version`, `primitives`)
/// still decodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourcePrivate {
    /// Empty outside planned changes.
    pub catalog_digest: String,
    pub primitives: BTreeMap<String, Values>,
}

/// The encoded form; `c` is left out when empty. `p` goes through
/// `serde_json::Value` so every object's keys come out sorted, whatever
/// order the drivers inserted them in.
#[derive(serde::Serialize)]
struct Wire<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    c: &'a str,
    p: serde_json::Value,
}

/// What decodes: the compact form (`c`, `p`) or the one earlier versions
/// wrote (`catalog_digest`, `offering_version`, `primitives`).
#[derive(serde::Deserialize)]
struct Decoded {
    #[serde(default)]
    c: String,
    p: Option<BTreeMap<String, Values>>,
    catalog_digest: Option<String>,
    offering_version: Option<String>,
    primitives: Option<BTreeMap<String, Values>>,
}

impl ResourcePrivate {
    /// What a state (apply, import, refresh) keeps: the primitives alone.
    pub fn encode_state(primitives: &BTreeMap<String, Values>) -> Vec<u8> {
        encode("", primitives)
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(&self.catalog_digest, &self.primitives)
    }

    /// `None` for empty or foreign bytes.
    pub fn decode(bytes: &[u8]) -> Option<ResourcePrivate> {
        let wire: Decoded = serde_json::from_slice(bytes).ok()?;
        if let Some(legacy) = wire.catalog_digest {
            // Written by provider versions before the compact form.
            wire.offering_version?;
            return Some(ResourcePrivate {
                catalog_digest: legacy,
                primitives: wire.primitives.unwrap_or_default(),
            });
        }
        Some(ResourcePrivate {
            catalog_digest: wire.c,
            primitives: wire.p?,
        })
    }
}

fn encode(c: &str, primitives: &BTreeMap<String, Values>) -> Vec<u8> {
    let p = serde_json::to_value(primitives).unwrap_or_default();
    serde_json::to_vec(&Wire { c, p }).unwrap_or_default()
}

/// The inputs whose values form the resource (and import) id, in order: the
/// version's required string inputs. None: the id is random and the offering
/// cannot be imported.
pub fn id_inputs(version: &Version) -> impl Iterator<Item = &platform_catalog::Input> {
    version
        .inputs
        .iter()
        .filter(|i| i.default.is_none() && i.ty == platform_catalog::InputType::String)
}

/// The resource id: the values of the version's required string inputs,
/// joined with `/` (`orders`, `shared/tenant_a`) — also what import takes.
pub fn resource_id(version: &Version, inputs: &Values) -> Option<String> {
    let parts: Vec<String> = id_inputs(version)
        .map(|i| match inputs.get(&i.name) {
            Some(hcl::Value::String(s)) => Some(s.clone()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Splits an import id back into the inputs `resource_id` joined.
pub fn inputs_from_id(version: &Version, id: &str) -> Result<Values, String> {
    let names: Vec<&str> = id_inputs(version).map(|i| i.name.as_str()).collect();
    let parts: Vec<&str> = id.split('/').collect();
    if names.is_empty() || parts.len() != names.len() || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "expected an id of the form {:?}",
            names
                .iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join("/")
        ));
    }
    let mut inputs = Values::new();
    for (name, part) in names.iter().zip(parts) {
        inputs.insert((*name).to_owned(), hcl::Value::String(part.to_owned()));
    }
    Ok(inputs)
}

/// The catalog view of a resource's input attributes.
pub fn input_values(version: &Version, state: &Value) -> Values {
    let mut inputs = Values::new();
    for input in &version.inputs {
        if let Some(value) = state.get_attr(&input.name).and_then(to_hcl) {
            inputs.insert(input.name.clone(), value);
        }
    }
    inputs
}

pub fn tier_values(version: &Version, state: &Value) -> Values {
    match state.get_attr("tier") {
        Some(Value::String(name)) => version
            .tier(name)
            .map(|t| t.values.clone())
            .unwrap_or_default(),
        _ => Values::new(),
    }
}

fn owner(offering: &Offering, resource_id: &str, primitive: &Primitive) -> Owner {
    Owner {
        offering: offering.name.clone(),
        resource_id: resource_id.to_owned(),
        primitive: primitive.name.clone(),
    }
}

fn failed(primitive: &Primitive, error: impl std::fmt::Display) -> String {
    format!(
        "primitive {:?} ({}): {error}",
        primitive.name, primitive.driver
    )
}

/// A composition run's outcome: the primitives' states as they now are, and
/// the error that stopped it, if any.
pub struct Outcome {
    pub primitives: BTreeMap<String, Values>,
    pub error: Option<String>,
    /// The resource attribute the error is about, when a driver refused one
    /// primitive input that the catalog passes straight from it.
    pub error_input: Option<String>,
}

/// The resource input feeding `primitive`'s input the driver error names:
/// `member_of = input.member_of` → `member_of`.
fn attribute_of(primitive: &Primitive, error: &DriverError) -> Option<String> {
    let key = error.1.as_deref()?;
    let (_, expr) = primitive.inputs.iter().find(|(name, _)| name == key)?;
    match direct_ref(expr)? {
        ("input", name) => Some(name),
        _ => None,
    }
}

pub struct Run<'a> {
    pub offering: &'a Offering,
    pub version: &'a Version,
    pub drivers: &'a Registry,
    pub resource_id: &'a str,
    pub inputs: &'a Values,
    pub tier_values: &'a Values,
}

impl Run<'_> {
    fn driver(
        &self,
        primitive: &Primitive,
    ) -> Result<&std::sync::Arc<dyn crate::drivers::Driver>, String> {
        self.drivers
            .get(&primitive.driver)
            .ok_or_else(|| failed(primitive, "this provider build has no such driver"))
    }

    fn evaluate(
        &self,
        primitive: &Primitive,
        states: &BTreeMap<String, Values>,
    ) -> Result<Values, String> {
        primitive
            .evaluate_inputs(&EvalScope {
                inputs: self.inputs,
                tier_values: self.tier_values,
                primitive_outputs: states,
            })
            .map_err(|e| failed(primitive, e))
    }

    /// Creates every primitive; all or nothing.
    pub async fn create(&self) -> Outcome {
        let mut states: BTreeMap<String, Values> = BTreeMap::new();
        let mut created: Vec<&Primitive> = Vec::new();
        for primitive in &self.version.compose {
            let mut error_input = None;
            let result = async {
                let driver = self.driver(primitive)?;
                let inputs = self.evaluate(primitive, &states)?;
                driver
                    .create(&owner(self.offering, self.resource_id, primitive), &inputs)
                    .await
                    .map_err(|e: DriverError| {
                        error_input = attribute_of(primitive, &e);
                        failed(primitive, e)
                    })
            }
            .await;
            match result {
                Ok(state) => {
                    states.insert(primitive.name.clone(), state);
                    created.push(primitive);
                }
                Err(error) => {
                    let (remaining, undo_errors) = self.undo(&created, &mut states).await;
                    let mut message = format!("creating {}: {error}", self.offering.name);
                    if remaining.is_empty() {
                        if !created.is_empty() {
                            message.push_str(&format!(
                                "; undone: {}",
                                created
                                    .iter()
                                    .map(|p| p.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                        }
                    } else {
                        message.push_str(&format!(
                            "; could not undo {} ({}), which remain and stay in the state so Terraform can destroy them",
                            remaining.join(", "),
                            undo_errors.join("; ")
                        ));
                    }
                    return Outcome {
                        primitives: states,
                        error: Some(message),
                        error_input,
                    };
                }
            }
        }
        Outcome {
            primitives: states,
            error: None,
            error_input: None,
        }
    }

    async fn undo(
        &self,
        created: &[&Primitive],
        states: &mut BTreeMap<String, Values>,
    ) -> (Vec<String>, Vec<String>) {
        let mut remaining = Vec::new();
        let mut errors = Vec::new();
        for primitive in created.iter().rev() {
            let Some(state) = states.get(&primitive.name).cloned() else {
                continue;
            };
            let result = match self.driver(primitive) {
                Ok(driver) => driver
                    .delete(&owner(self.offering, self.resource_id, primitive), &state)
                    .await
                    .map_err(|e| failed(primitive, e)),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    states.remove(&primitive.name);
                }
                Err(error) => {
                    remaining.push(primitive.name.clone());
                    errors.push(error);
                }
            }
        }
        (remaining, errors)
    }

    /// Brings every primitive in line with the inputs: update in place what
    /// changed, create what is missing, delete what the version no longer has.
    pub async fn update(&self, mut states: BTreeMap<String, Values>) -> Outcome {
        for primitive in &self.version.compose {
            let mut error_input = None;
            let result = async {
                let driver = self.driver(primitive)?;
                let inputs = self.evaluate(primitive, &states)?;
                let owner = owner(self.offering, self.resource_id, primitive);
                let mut refused = |e: DriverError| {
                    error_input = attribute_of(primitive, &e);
                    failed(primitive, e)
                };
                match states.get(&primitive.name) {
                    Some(state) if same_inputs(&inputs, state) => Ok(state.clone()),
                    Some(state) => driver
                        .update(&owner, state, &inputs)
                        .await
                        .map_err(&mut refused),
                    None => driver.create(&owner, &inputs).await.map_err(&mut refused),
                }
            }
            .await;
            match result {
                Ok(state) => {
                    states.insert(primitive.name.clone(), state);
                }
                Err(error) => {
                    return Outcome {
                        primitives: states,
                        error: Some(format!("updating {}: {error}", self.offering.name)),
                        error_input,
                    };
                }
            }
        }
        let retired: Vec<String> = states
            .keys()
            .filter(|name| !self.version.compose.iter().any(|p| &p.name == *name))
            .cloned()
            .collect();
        if !retired.is_empty() {
            tracing::info!(?retired, "primitives no longer in the composition are kept");
        }
        Outcome {
            primitives: states,
            error: None,
            error_input: None,
        }
    }

    /// Deletes in reverse dependency order; stops at the first failure so
    /// nothing a remaining object depends on is removed.
    pub async fn delete(&self, mut states: BTreeMap<String, Values>) -> Outcome {
        for primitive in self.version.compose.iter().rev() {
            let Some(state) = states.get(&primitive.name).cloned() else {
                continue;
            };
            let result = match self.driver(primitive) {
                Ok(driver) => driver
                    .delete(&owner(self.offering, self.resource_id, primitive), &state)
                    .await
                    .map_err(|e| failed(primitive, e)),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    states.remove(&primitive.name);
                }
                Err(error) => {
                    return Outcome {
                        primitives: states,
                        error: Some(format!("destroying {}: {error}", self.offering.name)),
                        error_input: None,
                    };
                }
            }
        }
        Outcome {
            primitives: states,
            error: None,
            error_input: None,
        }
    }

    /// Reads every primitive back. Gone primitives are dropped from the map.
    pub async fn read(
        &self,
        states: &BTreeMap<String, Values>,
    ) -> Result<BTreeMap<String, Values>, String> {
        let mut fresh = BTreeMap::new();
        for primitive in &self.version.compose {
            let Some(state) = states.get(&primitive.name) else {
                continue;
            };
            let driver = self.driver(primitive)?;
            if let Some(now) = driver.read(state).await.map_err(|e| failed(primitive, e))? {
                fresh.insert(primitive.name.clone(), now);
            }
        }
        Ok(fresh)
    }

    /// Adopts existing objects for an import; `Ok(None)` when the first
    /// primitive's object does not exist.
    pub async fn import(&self) -> Result<Option<BTreeMap<String, Values>>, String> {
        let mut states = BTreeMap::new();
        for (idx, primitive) in self.version.compose.iter().enumerate() {
            let driver = self.driver(primitive)?;
            let inputs = self.evaluate(primitive, &states)?;
            let owner = owner(self.offering, self.resource_id, primitive);
            match driver
                .import(&owner, &inputs)
                .await
                .map_err(|e| failed(primitive, e))?
            {
                Some(state) => {
                    states.insert(primitive.name.clone(), state);
                }
                None if idx == 0 => return Ok(None),
                None => {
                    return Err(failed(
                        primitive,
                        "the object does not exist; create the resource instead of importing it",
                    ));
                }
            }
        }
        Ok(Some(states))
    }
}

/// Whether a primitive's state already matches the inputs (only the keys the
/// inputs name; arrays compare as sets because PostgreSQL returns them in its
/// own order).
pub fn same_inputs(inputs: &Values, state: &Values) -> bool {
    inputs
        .iter()
        .all(|(key, want)| state.get(key).is_some_and(|have| same_value(want, have)))
}

fn same_value(a: &hcl::Value, b: &hcl::Value) -> bool {
    match (a, b) {
        (hcl::Value::Number(x), hcl::Value::Number(y)) => x.as_f64() == y.as_f64(),
        (hcl::Value::Array(x), hcl::Value::Array(y)) => {
            x.len() == y.len()
                && x.iter().all(|i| y.iter().any(|j| same_value(i, j)))
                && y.iter().all(|j| x.iter().any(|i| same_value(i, j)))
        }
        (hcl::Value::Object(x), hcl::Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// `input.X` → Some(("input", X)); `tier.values.Y` → Some(("tier", Y)).
pub(crate) fn direct_ref(expr: &hcl::Expression) -> Option<(&'static str, String)> {
    let hcl::Expression::Traversal(traversal) = expr else {
        return None;
    };
    let hcl::Expression::Variable(root) = &traversal.expr else {
        return None;
    };
    let names: Vec<&str> = traversal
        .operators
        .iter()
        .map(|op| match op {
            hcl::TraversalOperator::GetAttr(name) => Some(name.as_str()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match (root.as_str(), names.as_slice()) {
        ("input", [name]) => Some(("input", (*name).to_owned())),
        ("tier", ["values", key]) => Some(("tier", (*key).to_owned())),
        _ => None,
    }
}

/// Folds what the drivers read back into the resource's attributes, so an
/// out-of-band change shows up as drift Terraform can plan to undo: an input
/// passed straight to a primitive takes the observed value; a tier value that
/// no longer matches moves `tier` to the tier it matches (or null). A
/// primitive that is gone nulls the inputs it carried.
pub fn fold_observed(
    version: &Version,
    schema: &BlockSchema,
    mut attrs: BTreeMap<String, Value>,
    observed: &BTreeMap<String, Values>,
) -> BTreeMap<String, Value> {
    let mut tier_drift = false;
    let mut observed_tier_values: BTreeMap<String, hcl::Value> = BTreeMap::new();
    for primitive in &version.compose {
        let state = observed.get(&primitive.name);
        for (key, expr) in &primitive.inputs {
            match (direct_ref(expr), state) {
                (Some(("input", name)), Some(state)) => {
                    let (Some(seen), Some(attr)) = (state.get(key), schema.attr(&name)) else {
                        continue;
                    };
                    let current = attrs.get(&name).and_then(to_hcl);
                    if current.as_ref().is_some_and(|c| same_value(c, seen)) {
                        continue;
                    }
                    if let Ok(value) = from_hcl(seen, &attr.ty) {
                        attrs.insert(name, value);
                    }
                }
                (Some(("input", name)), None) => {
                    if attrs.contains_key(&name) {
                        attrs.insert(name, Value::Null);
                    }
                }
                (Some((_, tier_key)), Some(state)) => {
                    if let Some(seen) = state.get(key) {
                        observed_tier_values.insert(tier_key, seen.clone());
                    }
                }
                (Some(_), None) => tier_drift = true,
                (None, _) => {}
            }
        }
    }
    let current_tier = match attrs.get("tier") {
        Some(Value::String(name)) => version.tier(name),
        _ => None,
    };
    let matches = |tier: &platform_catalog::Tier| {
        observed_tier_values
            .iter()
            .all(|(k, v)| tier.values.get(k).is_some_and(|want| same_value(want, v)))
    };
    if tier_drift || current_tier.is_some_and(|t| !matches(t)) {
        let found = version.tiers.iter().find(|t| matches(t));
        attrs.insert(
            "tier".to_owned(),
            found.map_or(Value::Null, |t| Value::String(t.name.clone())),
        );
    }
    attrs
}

/// Evaluates the version's outputs into the resource's output attributes.
/// An output that cannot be evaluated (a primitive is missing) is null.
pub fn evaluate_outputs(
    version: &Version,
    schema: &BlockSchema,
    inputs: &Values,
    tier_values: &Values,
    states: &BTreeMap<String, Values>,
    attrs: &mut BTreeMap<String, Value>,
) {
    let scope = EvalScope {
        inputs,
        tier_values,
        primitive_outputs: states,
    };
    for attr in schema
        .attributes
        .iter()
        .filter(|a| a.kind == AttrKind::Output)
    {
        let value = version
            .output(&attr.name)
            .and_then(|o| o.evaluate(&scope).ok())
            .and_then(|v| hcl_to_string(&v))
            .map_or(Value::Null, Value::String);
        attrs.insert(attr.name.clone(), value);
    }
}
