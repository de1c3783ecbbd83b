//! ApplyResourceChange, ReadResource and ImportResourceState: the parts that
//! touch real infrastructure through drivers.

use platform_value::{Path, Value};

use super::plan::{PlanPrivate, resolve};
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

impl Engine {
    pub async fn apply_resource(&self, req: &ApplyRequest) -> ApplyResponse {
        // On any failure Terraform keeps what we return: the prior object for
        // an update or delete, nothing for a create.
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
        let (offering, _) = match resolve(&loaded, &req.type_name) {
            Ok(found) => found,
            Err(diag) => {
                response.diags.push(diag);
                return response;
            }
        };
        let deleting = req.planned.is_null();
        if !deleting {
            match PlanPrivate::decode(&req.planned_private) {
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
        let state = if deleting { &req.prior } else { &req.planned };
        let version = match state.get_attr("offering_version") {
            Some(Value::String(v)) => offering.version(v),
            _ => None,
        }
        .unwrap_or_else(|| offering.current());
        let missing: Vec<String> = version
            .compose
            .iter()
            .filter(|p| self.drivers.get(&p.driver).is_none())
            .map(|p| format!("primitive {:?} needs driver {:?}", p.name, p.driver))
            .collect();
        let action = if deleting {
            "destroy"
        } else if req.prior.is_null() {
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
        // Every driver is present only in builds with backends; their
        // composition runner lands with the first backend (PostgreSQL).
        response.diags.push(Diag::error(
            format!("Cannot {action} {}", offering.name),
            "This build has drivers registered but no composition runner.",
        ));
        response
    }

    /// Refresh. Without drivers nothing can have been created, so the state
    /// stands as it is.
    pub fn read_resource(&self, type_name: &str, current: &Value) -> Result<Value, Vec<Diag>> {
        let loaded = self.loaded()?;
        resolve(&loaded, type_name).map_err(|d| vec![d])?;
        Ok(current.clone())
    }

    pub fn import_resource(&self, type_name: &str, id: &str) -> Vec<Diag> {
        let loaded = match self.loaded() {
            Ok(loaded) => loaded,
            Err(diags) => return diags,
        };
        let offering = match resolve(&loaded, type_name) {
            Ok((offering, _)) => offering,
            Err(diag) => return vec![diag],
        };
        let drivers: Vec<&str> = offering
            .current()
            .compose
            .iter()
            .filter(|p| self.drivers.get(&p.driver).is_none())
            .map(|p| p.driver.as_str())
            .collect();
        vec![
            Diag::error(
                format!("Cannot import {id:?} as {}", offering.name),
                format!(
                    "Import reads the object through its drivers, and this build lacks: {}.",
                    drivers.join(", ")
                ),
            )
            .at(Path::root()),
        ]
    }
}
