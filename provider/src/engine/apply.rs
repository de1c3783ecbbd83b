//! ApplyResourceChange, ReadResource and ImportResourceState: the parts that
//! touch real infrastructure, through the composition runner.

use std::collections::BTreeMap;

use platform_catalog::{Offering, Version};
use platform_value::{Path, Value};

use super::compose::{self, ResourcePrivate, Run};
use super::convert::from_hcl;
use super::plan::resolve;
use super::schema::{AttrKind, SECRET_VERSION};
use super::{Diag, Engine};

pub struct ApplyRequest {
    pub type_name: String,
    pub prior: Value,
    pub planned: Value,
    pub planned_private: Vec<u8>,
}

#[derive(Debug)]
pub struct ApplyResponse {
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diags: Vec<Diag>,
}

/// An imported resource: its state and private data.
pub struct Imported {
    pub state: Value,
    pub private: Vec<u8>,
    /// Warnings: parts not made yet, secrets that cannot be read back.
    pub diags: Vec<Diag>,
}

fn version_of<'a>(offering: &'a Offering, state: &Value) -> &'a Version {
    match state.get_attr("offering_version") {
        Some(Value::String(v)) => offering.version(v),
        _ => None,
    }
    .unwrap_or_else(|| offering.current())
}

fn attrs_of(value: &Value) -> BTreeMap<String, Value> {
    match value {
        Value::Object(attrs) => attrs.clone(),
        _ => BTreeMap::new(),
    }
}

/// Replaces any unknown left in a state (a value only apply could know that
/// the composition did not produce) with null: Terraform rejects unknowns
/// after apply.
fn settle(attrs: &mut BTreeMap<String, Value>) {
    for value in attrs.values_mut() {
        if !value.is_wholly_known() {
            *value = Value::Null;
        }
    }
}

impl Engine {
    pub async fn apply_resource(&self, req: &ApplyRequest) -> ApplyResponse {
        // On failure Terraform keeps what we return: the prior object (for an
        // update or delete) or nothing (for a create) unless we say otherwise.
        let mut response = ApplyResponse {
            new_state: req.prior.clone(),
            private: req.planned_private.clone(),
            diags: Vec::new(),
        };
        let loaded = match self.loaded() {
            Ok(loaded) => loaded,
            Err(diags) => {
                response.diags = diags;
                return response;
            }
        };
        let (offering, schema) = match resolve(&loaded, &req.type_name) {
            Ok(found) => found,
            Err(diag) => {
                response.diags.push(diag);
                return response;
            }
        };
        let deleting = req.planned.is_null();
        let creating = req.prior.is_null();
        let plan = ResourcePrivate::decode(&req.planned_private);
        if !deleting {
            match &plan {
                Some(plan) if plan.catalog_digest != loaded.catalog.digest => {
                    response.diags.push(Diag::error(
                        "The catalog changed between plan and apply",
                        format!(
                            "This change was planned against catalog {} but the provider now has {}. Plan again so the change is reviewed against the catalog that will apply it.",
                            plan.catalog_digest, loaded.catalog.digest
                        ),
                    ));
                    return response;
                }
                Some(_) => {}
                None => {
                    response.diags.push(Diag::error(
                        "Missing plan record",
                        "The planned change carries no catalog record; plan again with this provider.",
                    ));
                    return response;
                }
            }
        }
        // Deletes and updates work on the primitives recorded in state; a
        // create starts from nothing (on replace Terraform hands the create
        // the old object's private data).
        let recorded = if creating {
            BTreeMap::new()
        } else {
            plan.map(|p| p.primitives).unwrap_or_default()
        };
        let state = if deleting { &req.prior } else { &req.planned };
        let version = version_of(offering, state);
        let missing: Vec<String> = version
            .compose
            .iter()
            .filter(|p| !crate::drivers::Registry::knows(&p.driver))
            .map(|p| format!("primitive {:?} needs driver {:?}", p.name, p.driver))
            .collect();
        let action = if deleting {
            "destroy"
        } else if creating {
            "create"
        } else {
            "update"
        };
        if !missing.is_empty() || version.compose.is_empty() {
            let detail = if missing.is_empty() {
                format!(
                    "Version {} of {} composes no primitives.",
                    version.version, offering.name
                )
            } else {
                format!(
                    "This provider build has no driver for it: {}. Nothing was changed.",
                    missing.join("; ")
                )
            };
            response.diags.push(Diag::error(
                format!("Cannot {action} {}: no driver", offering.name),
                detail,
            ));
            return response;
        }

        let registry = self.registry();
        let inputs = compose::input_values(version, state);
        let tier_values = compose::tier_values(version, state);
        // An existing instance's id carries its generation; a create starts
        // a new one (so another instance of the same resource — the one a
        // crash left, a second state — loses the objects this one takes).
        let instance = match state.get_attr("id") {
            Some(Value::String(id)) => id.clone(),
            _ => compose::instance_id(
                &compose::resource_id(version, &inputs)
                    .unwrap_or_else(|| derived_id(&offering.name, &inputs)),
                &compose::new_generation(),
            ),
        };
        let (resource_id, generation) = compose::split_instance_id(&instance);
        let run = Run {
            offering,
            version,
            drivers: &registry,
            resource_id,
            generation,
            inputs: &inputs,
            tier_values: &tier_values,
            rotate: !creating
                && !deleting
                && req.prior.get_attr(SECRET_VERSION) != req.planned.get_attr(SECRET_VERSION),
        };
        let outcome = if deleting {
            run.delete(recorded).await
        } else if creating {
            run.create().await
        } else {
            run.update(recorded).await
        };
        response.private = ResourcePrivate::encode_state(&outcome.primitives);
        for note in &outcome.notes {
            response.diags.push(Diag::warning(
                format!("Left in place by {action} of {}", offering.name),
                note.clone(),
            ));
        }
        if let Some(error) = outcome.error {
            let diag = Diag::error(format!("Cannot {action} {}", offering.name), error);
            response.diags.push(match &outcome.error_input {
                Some(input) => diag.at(Path::root().attr(input)),
                None => diag,
            });
            if deleting || !creating {
                // The prior object still exists (in part): keep it tracked.
                if deleting && outcome.primitives.is_empty() {
                    response.new_state = Value::Null;
                }
                return response;
            }
            // A create that could not be undone entirely: hand Terraform
            // the partial object so it is tracked (tainted) and destroyable.
            if outcome.primitives.is_empty() {
                response.new_state = Value::Null;
            } else {
                let mut attrs = attrs_of(&req.planned);
                attrs.insert("id".into(), Value::String(instance.clone()));
                compose::evaluate_outputs(
                    version,
                    schema,
                    &inputs,
                    &tier_values,
                    &outcome.primitives,
                    &mut attrs,
                );
                settle(&mut attrs);
                response.new_state = Value::Object(attrs);
            }
            return response;
        }
        if deleting {
            response.new_state = Value::Null;
            return response;
        }
        let mut attrs = attrs_of(&req.planned);
        attrs.insert("id".into(), Value::String(instance.clone()));
        compose::evaluate_outputs(
            version,
            schema,
            &inputs,
            &tier_values,
            &outcome.primitives,
            &mut attrs,
        );
        settle(&mut attrs);
        response.new_state = Value::Object(attrs);
        response
    }

    /// Refresh: reads every primitive back and folds what changed out of band
    /// into the attributes. Null when every primitive is gone.
    pub async fn read_resource(
        &self,
        type_name: &str,
        current: &Value,
        private: &[u8],
    ) -> Result<(Value, Vec<u8>), Vec<Diag>> {
        let loaded = self.loaded()?;
        let (offering, schema) = resolve(&loaded, type_name).map_err(|d| vec![d])?;
        if current.is_null() {
            return Ok((Value::Null, private.to_vec()));
        }
        let Some(recorded) = ResourcePrivate::decode(private) else {
            // Nothing recorded: nothing we created (e.g. a hand-written
            // state); leave it as it is.
            return Ok((current.clone(), private.to_vec()));
        };
        if recorded.primitives.is_empty() {
            return Ok((current.clone(), private.to_vec()));
        }
        let version = version_of(offering, current);
        let registry = self.registry();
        let inputs = compose::input_values(version, current);
        let tier_values = compose::tier_values(version, current);
        let id = match current.get_attr("id") {
            Some(Value::String(id)) => id.clone(),
            _ => String::new(),
        };
        let (resource_id, generation) = compose::split_instance_id(&id);
        let run = Run {
            offering,
            version,
            drivers: &registry,
            resource_id,
            generation,
            inputs: &inputs,
            tier_values: &tier_values,
            rotate: false,
        };
        let fresh = run
            .read(&recorded.primitives)
            .await
            .map_err(|e| vec![Diag::error(format!("Cannot read {}", offering.name), e)])?;
        if fresh.is_empty() {
            return Ok((Value::Null, private.to_vec()));
        }
        let mut attrs = compose::fold_observed(
            version,
            schema,
            attrs_of(current),
            &fresh,
            &recorded.primitives,
        );
        compose::evaluate_outputs(
            version,
            schema,
            &compose::input_values(version, &Value::Object(attrs.clone())),
            &tier_values,
            &fresh,
            &mut attrs,
        );
        // Keep outputs that could not be re-evaluated (e.g. a password
        // unknown after import) as they were.
        for attr in schema
            .attributes
            .iter()
            .filter(|a| a.kind == AttrKind::Output)
        {
            if attrs.get(&attr.name).is_some_and(Value::is_null)
                && let Some(before) = current.get_attr(&attr.name)
            {
                attrs.insert(attr.name.clone(), before.clone());
            }
        }
        settle(&mut attrs);
        Ok((Value::Object(attrs), ResourcePrivate::encode_state(&fresh)))
    }

    /// Import by id (the required string inputs joined with `/`): adopts the
    /// existing objects and reads them back, so the next plan shows no
    /// changes when the configuration matches reality.
    pub async fn import_resource(&self, type_name: &str, id: &str) -> Result<Imported, Vec<Diag>> {
        let loaded = self.loaded()?;
        let (offering, schema) = resolve(&loaded, type_name).map_err(|d| vec![d])?;
        let version = offering.current();
        let fail = |detail: String| {
            vec![
                Diag::error(format!("Cannot import {id:?} as {}", offering.name), detail)
                    .at(Path::root()),
            ]
        };
        let missing: Vec<&str> = version
            .compose
            .iter()
            .filter(|p| !crate::drivers::Registry::knows(&p.driver))
            .map(|p| p.driver.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(fail(format!(
                "Import reads the object through its drivers, and this build lacks: {}.",
                missing.join(", ")
            )));
        }
        // An instance id (`orders~1f2e3d4c5b6a`, from another state) imports
        // as its resource id: the import is a new instance, a new generation.
        let (id, _) = compose::split_instance_id(id);
        let generation = compose::new_generation();
        let mut inputs = compose::inputs_from_id(version, id).map_err(fail)?;
        let mut attrs: BTreeMap<String, Value> = BTreeMap::new();
        for attr in &schema.attributes {
            attrs.insert(attr.name.clone(), Value::Null);
        }
        for input in &version.inputs {
            let value = inputs.get(&input.name).or(input.default.as_ref()).cloned();
            if let Some(value) = value {
                inputs.insert(input.name.clone(), value.clone());
                if let Some(attr) = schema.attr(&input.name) {
                    attrs.insert(
                        input.name.clone(),
                        from_hcl(&value, &attr.ty).unwrap_or(Value::Null),
                    );
                }
            }
        }
        let first_tier = version.tiers.first();
        let tier_values = first_tier.map(|t| t.values.clone()).unwrap_or_default();
        if let Some(tier) = first_tier {
            attrs.insert("tier".into(), Value::String(tier.name.clone()));
        }
        let registry = self.registry();
        let run = Run {
            offering,
            version,
            drivers: &registry,
            resource_id: id,
            generation: Some(&generation),
            inputs: &inputs,
            tier_values: &tier_values,
            rotate: false,
        };
        let (states, missing) = match run.import().await.map_err(fail)? {
            Some(found) => found,
            None => return Err(fail("No such object exists.".to_owned())),
        };
        let mut diags = Vec::new();
        if !missing.is_empty() {
            diags.push(Diag::warning(
                format!("{id:?} is only partly made"),
                format!(
                    "These parts of {} do not exist yet: {}. The next apply creates them.",
                    offering.name,
                    missing.join(", ")
                ),
            ));
        }
        for (primitive, state) in &states {
            let lost = matches!(state.get("login"), Some(hcl::Value::Bool(true)))
                && matches!(state.get("password"), None | Some(hcl::Value::Null));
            if lost {
                let how = if schema.attr(SECRET_VERSION).is_some() {
                    format!(
                        "To give it a new one (its current password stops working), set `{SECRET_VERSION}` on the resource to a new value, e.g. {SECRET_VERSION} = 1, and apply."
                    )
                } else {
                    "This offering has no way to rotate it.".to_owned()
                };
                diags.push(Diag::warning(
                    format!("The password of {primitive:?} cannot be imported"),
                    format!(
                        "PostgreSQL keeps only a hash of a password, so the imported connection details have none. {how}"
                    ),
                ));
            }
        }
        let mut attrs = compose::fold_observed(version, schema, attrs, &states, &BTreeMap::new());
        attrs.insert(
            "id".into(),
            Value::String(compose::instance_id(id, &generation)),
        );
        attrs.insert(
            "offering_version".into(),
            Value::String(version.version.clone()),
        );
        attrs.insert(
            "status".into(),
            Value::String(version.status.as_str().to_owned()),
        );
        if let Some(team) = self.provider_config().default_team {
            attrs.insert("team".into(), Value::String(team));
        }
        let tier_values = compose::tier_values(version, &Value::Object(attrs.clone()));
        let inputs = compose::input_values(version, &Value::Object(attrs.clone()));
        if let Some(Value::String(tier)) = attrs.get("tier")
            && let Some(tier) = version.tier(tier.as_str())
            && let Ok(price) = tier.monthly_price(&inputs)
            && let Some(n) = platform_value::Number::from_f64(price)
        {
            attrs.insert("monthly_cost".into(), Value::Number(n));
        }
        compose::evaluate_outputs(version, schema, &inputs, &tier_values, &states, &mut attrs);
        settle(&mut attrs);
        Ok(Imported {
            state: Value::Object(attrs),
            private: ResourcePrivate::encode_state(&states),
            diags,
        })
    }
}

/// The id of an instance of an offering without a required string input:
/// a digest of the offering and its inputs, so that an apply re-run after a
/// crash names the same resource in its ownership markers as the run it
/// repeats (a random id would make its half-made objects foreign).
fn derived_id(offering: &str, inputs: &crate::drivers::Values) -> String {
    let canonical =
        serde_json::to_vec(&(offering, serde_json::to_value(inputs).unwrap_or_default()))
            .unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
