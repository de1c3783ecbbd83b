//! What the drivers can say before apply.
//!
//! - At catalog load, every primitive input key must be one its driver
//!   declares (`superuser = true` in a `postgres.role` is a
//!   `file:line:col: error`).
//! - At ValidateResourceConfig and PlanResourceChange, each primitive's
//!   inputs are evaluated as far as they are known and checked by the
//!   driver's static validation (types, whole numbers, names of at most 63
//!   bytes after templating, NUL). An input that depends on a value not known
//!   yet (an unknown attribute, another primitive's outputs) is left out and
//!   checked at apply.

use std::collections::BTreeMap;

use platform_catalog::{Catalog, Diagnostic, EvalScope, Offering, Primitive, Version};
use platform_value::{Path, Value};

use super::Diag;
use super::compose::direct_ref;
use super::convert::to_hcl;
use crate::drivers::{Registry, Values};

/// One error per primitive input key its driver does not declare, at the
/// key. Kinds this build lacks are left to plan, which warns about them.
pub(super) fn undeclared_inputs(catalog: &Catalog) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    for offering in &catalog.offerings {
        for version in &offering.versions {
            for primitive in &version.compose {
                let Some(declared) = Registry::inputs_of(&primitive.driver) else {
                    continue;
                };
                for (key, _) in &primitive.inputs {
                    if declared.contains(&key.as_str()) {
                        continue;
                    }
                    let Some(at) = primitive.input_locations.get(key) else {
                        continue;
                    };
                    let diag = at.error(
                        format!(
                            "primitive \"{}\": driver {} has no input \"{key}\"",
                            primitive.name, primitive.driver
                        ),
                        Some(format!(
                            "{} accepts: {}.",
                            primitive.driver,
                            declared.join(", ")
                        )),
                    );
                    // A version copying its schema from another repeats its
                    // primitives, positions and all.
                    if !out.contains(&diag) {
                        out.push(diag);
                    }
                }
            }
        }
    }
    out
}

/// The resource inputs as far as they are known: `value(name)` for each
/// input of the version, unknown ones left out.
pub(super) fn known_inputs<'a>(
    version: &Version,
    value: impl Fn(&str) -> Option<&'a Value>,
) -> Values {
    let mut inputs = Values::new();
    for input in &version.inputs {
        match value(&input.name) {
            Some(value) if !value.is_null() => {
                if let Some(known) = to_hcl(value) {
                    inputs.insert(input.name.clone(), known);
                }
            }
            _ => {
                inputs.insert(
                    input.name.clone(),
                    input.default.clone().unwrap_or(hcl::Value::Null),
                );
            }
        }
    }
    inputs
}

/// The tier's values when the tier is known and exists; else none, so that
/// inputs reading `tier.values` are left for apply.
pub(super) fn known_tier_values(version: &Version, tier: Option<&Value>) -> Values {
    match tier {
        Some(Value::String(name)) => version
            .tier(name)
            .map(|t| t.values.clone())
            .unwrap_or_default(),
        _ => Values::new(),
    }
}

/// The resource attribute that feeds `primitive`'s input `key` directly
/// (`connection_limit = input.connection_limit`).
fn attribute_feeding(primitive: &Primitive, key: &str) -> Option<String> {
    let (_, expr) = primitive.inputs.iter().find(|(name, _)| name == key)?;
    match direct_ref(expr)? {
        ("input", name) => Some(name),
        _ => None,
    }
}

/// Runs each primitive's driver validation on its known inputs. An error
/// about an input passed straight from a resource attribute points at that
/// attribute; any other at the resource.
pub(super) fn check_primitives(
    offering: &Offering,
    version: &Version,
    inputs: &Values,
    tier_values: &Values,
    diags: &mut Vec<Diag>,
) {
    let no_outputs = BTreeMap::new();
    let scope = EvalScope {
        inputs,
        tier_values,
        primitive_outputs: &no_outputs,
    };
    for primitive in &version.compose {
        let known = primitive.evaluate_known_inputs(&scope);
        for error in Registry::validate(&primitive.driver, &known) {
            let mut diag = Diag::error(
                format!(
                    "Invalid input for primitive \"{}\" ({})",
                    primitive.name, primitive.driver
                ),
                format!(
                    "{} composes primitive \"{}\" with driver {}, which refuses it: {}.",
                    offering.name, primitive.name, primitive.driver, error.0
                ),
            );
            if let Some(attribute) = error
                .1
                .as_deref()
                .and_then(|key| attribute_feeding(primitive, key))
            {
                diag = diag.at(Path::root().attr(&attribute));
            }
            diags.push(diag);
        }
    }
}
