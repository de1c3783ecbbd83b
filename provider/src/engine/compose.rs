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
use crate::drivers::{DriverError, Found, Owner, Registry, Values};

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

/// A resource instance's `id`: the resource id (the import id) and the
/// instance's generation, `orders~1f2e3d4c5b6a`. Ids written before
/// generations are the resource id alone.
pub fn instance_id(resource_id: &str, generation: &str) -> String {
    format!("{resource_id}~{generation}")
}

/// Splits an instance `id` into the resource id and the generation (12
/// lowercase hex digits after the last `~`), if it has one.
pub fn split_instance_id(id: &str) -> (&str, Option<&str>) {
    match id.rsplit_once('~') {
        Some((resource, generation))
            if !resource.is_empty()
                && generation.len() == GENERATION_HEX
                && generation
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            (resource, Some(generation))
        }
        _ => (id, None),
    }
}

/// Hex digits of a generation.
pub const GENERATION_HEX: usize = 12;

/// A new random generation.
pub fn new_generation() -> String {
    let mut bytes = [0u8; GENERATION_HEX / 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn owner(
    offering: &Offering,
    resource_id: &str,
    generation: Option<&str>,
    primitive: &Primitive,
) -> Owner {
    Owner {
        offering: offering.name.clone(),
        resource_id: resource_id.to_owned(),
        primitive: primitive.name.clone(),
        generation: generation.map(str::to_owned),
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
    /// What the run left alone and the user should know (warnings).
    pub notes: Vec<String>,
}

impl Outcome {
    fn done(primitives: BTreeMap<String, Values>) -> Outcome {
        Outcome {
            primitives,
            error: None,
            error_input: None,
            notes: Vec::new(),
        }
    }

    fn failed(
        primitives: BTreeMap<String, Values>,
        error: String,
        error_input: Option<String>,
    ) -> Outcome {
        Outcome {
            primitives,
            error: Some(error),
            error_input,
            notes: Vec::new(),
        }
    }
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

/// Marks a delete failure that is really "another instance has it now".
const SUPERSEDED: &str = "\u{0}superseded\u{0}";

pub struct Run<'a> {
    pub offering: &'a Offering,
    pub version: &'a Version,
    pub drivers: &'a Registry,
    pub resource_id: &'a str,
    /// The instance's generation (in its markers); `None` for instances made
    /// before generations.
    pub generation: Option<&'a str>,
    pub inputs: &'a Values,
    pub tier_values: &'a Values,
    /// An update that also replaces generated secrets (`secret_version`
    /// changed).
    pub rotate: bool,
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
    ///
    /// Idempotent for objects that carry this resource's marker: each
    /// driver's `create` takes over such an object (whatever its generation:
    /// a crashed apply made it and Terraform never saved its state) and
    /// converges it; a role gets a new password, the old one never reached a
    /// state. Objects without the marker, or with another resource's, are
    /// refused. Another instance of the same resource (a second state with the
    /// same names, the old half of a `create_before_destroy` replacement)
    /// loses them: its markers name the old generation, so it neither changes
    /// nor drops them any more.
    pub async fn create(&self) -> Outcome {
        let mut states: BTreeMap<String, Values> = BTreeMap::new();
        let mut created: Vec<&Primitive> = Vec::new();
        // Objects that existed and were taken over: a failed create keeps
        // them (tracked, so Terraform can destroy them) rather than dropping
        // what may still serve the instance it took them from.
        let mut taken_over: Vec<&Primitive> = Vec::new();
        for primitive in &self.version.compose {
            let mut error_input = None;
            let mut existed = false;
            let result = async {
                let driver = self.driver(primitive)?;
                let inputs = self.evaluate(primitive, &states)?;
                let owner = owner(self.offering, self.resource_id, self.generation, primitive);
                existed = matches!(
                    driver.find(&owner, &inputs).await,
                    Ok(Found::Ours(_) | Found::OtherGeneration(_) | Found::Unfinished(_))
                );
                driver
                    .create(&owner, &inputs)
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
                    if existed {
                        taken_over.push(primitive);
                    } else {
                        created.push(primitive);
                    }
                }
                Err(error) => {
                    let (remaining, undo_errors) = self.undo(&created, &mut states).await;
                    let mut message = format!("creating {}: {error}", self.offering.name);
                    if !taken_over.is_empty() {
                        message.push_str(&format!(
                            "; kept {} (they existed before and were taken over; they stay in the state so Terraform can destroy them)",
                            taken_over
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
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
                    return Outcome::failed(states, message, error_input);
                }
            }
        }
        Outcome::done(states)
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
                    .delete(
                        &owner(self.offering, self.resource_id, self.generation, primitive),
                        &state,
                    )
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
                let owner = owner(self.offering, self.resource_id, self.generation, primitive);
                let mut refused = |e: DriverError| {
                    error_input = attribute_of(primitive, &e);
                    failed(primitive, e)
                };
                let mut rotated = states.get(&primitive.name).cloned();
                let rotate = self.rotate
                    && rotated
                        .as_mut()
                        .is_some_and(|state| driver.forget_secrets(state));
                match states.get(&primitive.name) {
                    Some(state) if rotate => driver
                        .update(&owner, rotated.as_ref().unwrap_or(state), &inputs)
                        .await
                        .map_err(&mut refused),
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
                    return Outcome::failed(
                        states,
                        format!("updating {}: {error}", self.offering.name),
                        error_input,
                    );
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
        Outcome::done(states)
    }

    /// Deletes in reverse dependency order; stops at the first failure so
    /// nothing a remaining object depends on is removed.
    ///
    /// `states` are the primitives Terraform handed over. When some are
    /// missing (a tainted object: Terraform plans its replacement without the
    /// prior private data; a failed create; a state written by hand) the
    /// objects are looked up from the resource's attributes instead, and only
    /// those carrying this resource's marker are dropped.
    pub async fn delete(&self, mut states: BTreeMap<String, Values>) -> Outcome {
        let mut notes = Vec::new();
        if let Err(error) = self.discover(&mut states, &mut notes).await {
            let mut outcome = Outcome::failed(
                states,
                format!("destroying {}: {error}", self.offering.name),
                None,
            );
            outcome.notes = notes;
            return outcome;
        }
        for primitive in self.version.compose.iter().rev() {
            let Some(state) = states.get(&primitive.name).cloned() else {
                continue;
            };
            let result = match self.driver(primitive) {
                Ok(driver) => driver
                    .delete(
                        &owner(self.offering, self.resource_id, self.generation, primitive),
                        &state,
                    )
                    .await
                    .map_err(|e| {
                        if e.is_superseded() {
                            format!("{SUPERSEDED}{}", failed(primitive, e))
                        } else {
                            failed(primitive, e)
                        }
                    }),
                Err(e) => Err(e),
            };
            let result = match result {
                Err(error) if error.starts_with(SUPERSEDED) => {
                    notes.push(format!("{}; left in place", &error[SUPERSEDED.len()..]));
                    Ok(())
                }
                other => other,
            };
            match result {
                Ok(()) => {
                    states.remove(&primitive.name);
                }
                Err(error) => {
                    let mut outcome = Outcome::failed(
                        states,
                        format!("destroying {}: {error}", self.offering.name),
                        None,
                    );
                    outcome.notes = notes;
                    return outcome;
                }
            }
        }
        let mut outcome = Outcome::done(states);
        outcome.notes = notes;
        outcome
    }

    /// Adds to `states` the primitives it lacks whose objects exist and carry
    /// this resource's marker. An object by that name that is not this
    /// resource's is left alone, with a note. `Err` when a driver could not
    /// look: a delete must not forget what it could not check.
    async fn discover(
        &self,
        states: &mut BTreeMap<String, Values>,
        notes: &mut Vec<String>,
    ) -> Result<(), String> {
        for primitive in &self.version.compose {
            if states.contains_key(&primitive.name) {
                continue;
            }
            let driver = self.driver(primitive)?;
            // Inputs that need a primitive that does not exist: neither can
            // this one.
            let Ok(inputs) = self.evaluate(primitive, states) else {
                continue;
            };
            let owner = owner(self.offering, self.resource_id, self.generation, primitive);
            match driver
                .find(&owner, &inputs)
                .await
                .map_err(|e| failed(primitive, e))?
            {
                Found::Ours(state) | Found::Unfinished(state) => {
                    states.insert(primitive.name.clone(), state);
                }
                Found::Missing => {}
                Found::OtherGeneration(_) => notes.push(format!(
                    "{}; another instance of this resource manages it now; left in place",
                    failed(primitive, "its marker names another generation")
                )),
                Found::Foreign(why) => {
                    notes.push(format!("{}; left in place", failed(primitive, why)))
                }
            }
        }
        Ok(())
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
    /// primitive's object does not exist. A composition made only in part (a
    /// crash, a failed create whose undo failed) imports too: the primitives
    /// that do not exist are named in the second value, and the next apply
    /// creates them.
    pub async fn import(&self) -> Result<Option<(BTreeMap<String, Values>, Vec<String>)>, String> {
        let mut states = BTreeMap::new();
        let mut missing = Vec::new();
        for (idx, primitive) in self.version.compose.iter().enumerate() {
            let driver = self.driver(primitive)?;
            let Ok(inputs) = self.evaluate(primitive, &states) else {
                // Needs a primitive that does not exist.
                missing.push(primitive.name.clone());
                continue;
            };
            let owner = owner(self.offering, self.resource_id, self.generation, primitive);
            match driver
                .import(&owner, &inputs)
                .await
                .map_err(|e| failed(primitive, e))?
            {
                Some(state) => {
                    states.insert(primitive.name.clone(), state);
                }
                None if idx == 0 => return Ok(None),
                None => missing.push(primitive.name.clone()),
            }
        }
        Ok(Some((states, missing)))
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
/// primitive that is gone (in `recorded`, not in `observed`) nulls the inputs
/// it carried; one never made (not in `recorded`) changes nothing.
pub fn fold_observed(
    version: &Version,
    schema: &BlockSchema,
    mut attrs: BTreeMap<String, Value>,
    observed: &BTreeMap<String, Values>,
    recorded: &BTreeMap<String, Values>,
) -> BTreeMap<String, Value> {
    let mut tier_drift = false;
    let mut observed_tier_values: BTreeMap<String, hcl::Value> = BTreeMap::new();
    for primitive in &version.compose {
        let state = observed.get(&primitive.name);
        if state.is_none() && !recorded.contains_key(&primitive.name) {
            continue;
        }
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
