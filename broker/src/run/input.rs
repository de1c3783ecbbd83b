//! The policy input (`docs/policy-input.md`, `docs/policy-input.schema.json`)
//! as types. `plan` and `apply` build it the same way, so a verdict
//! re-derived at apply time sees exactly what the reviewed plan's policy saw.

use serde::Serialize;
use serde_json::Value as Json;

use crate::budget::BudgetReport;
use crate::cost::CostReport;
use crate::plan::{Mode, PlanSummary};

/// `input`: what every policy rule is evaluated against.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyInput {
    pub input_version: &'static str,
    /// The redacted `terraform show -json` document.
    pub plan: Json,
    pub run: RunInput,
    pub cost: CostInput,
    pub catalog: CatalogInput,
    pub drift: DriftInput,
}

/// `input.run` (field names follow HCP Terraform's OPA input).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInput {
    pub id: String,
    pub created_by: String,
    pub commit_sha: Option<String>,
    pub is_destroy: bool,
    pub refresh_only: bool,
    pub target_addrs: Vec<String>,
    pub replace_addrs: Vec<String>,
    pub workspace: WorkspaceInput,
}

/// `input.run.workspace`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkspaceInput {
    pub name: String,
    pub environment: String,
    pub tags: Vec<String>,
    pub directory: String,
}

/// `input.cost`: the estimate, and the budgets when configured.
#[derive(Debug, Clone, Serialize)]
pub struct CostInput {
    #[serde(flatten)]
    pub estimate: CostReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budgets: Option<BudgetReport>,
}

/// `input.catalog`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogInput {
    pub digest: String,
    pub resources: Vec<CatalogResource>,
}

/// What the catalog says about one platform resource of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogResource {
    pub address: String,
    pub offering: String,
    pub version: String,
    pub version_status: String,
    /// The instance's owning team; the offering's owners are the platform
    /// team behind it (`offering_owner`).
    pub owner_team: String,
    pub offering_owner: String,
    pub tier: Option<String>,
    pub requires_approval: bool,
    pub action: String,
}

/// `input.drift`: drift the plan's refresh found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftInput {
    pub resources: Vec<DriftResource>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftResource {
    pub address: String,
    pub attributes: Vec<String>,
}

impl PolicyInput {
    /// The input as one JSON value, moving the (large) plan in without a
    /// copy; [`PolicyInput::take_plan`] moves it back out.
    pub fn into_json(self) -> Result<Json, serde_json::Error> {
        let PolicyInput {
            input_version,
            plan,
            run,
            cost,
            catalog,
            drift,
        } = self;
        let mut object = serde_json::Map::new();
        object.insert("input_version".into(), Json::String(input_version.into()));
        object.insert("plan".into(), plan);
        object.insert("run".into(), serde_json::to_value(run)?);
        object.insert("cost".into(), serde_json::to_value(cost)?);
        object.insert("catalog".into(), serde_json::to_value(catalog)?);
        object.insert("drift".into(), serde_json::to_value(drift)?);
        Ok(Json::Object(object))
    }

    /// The plan moved back out of an input built by [`PolicyInput::into_json`].
    pub fn take_plan(input: &mut Json) -> Json {
        input.get_mut("plan").map(Json::take).unwrap_or(Json::Null)
    }
}

/// `input.catalog`: what the catalog says about each platform resource.
pub fn catalog_input(plan: &PlanSummary, catalog: &platform_catalog::Catalog) -> CatalogInput {
    let mut resources = Vec::new();
    for change in plan.resources.iter().filter(|r| r.mode == Mode::Managed) {
        let Some(offering) = catalog
            .offerings
            .iter()
            .find(|o| catalog.resource_type(o) == change.type_)
        else {
            continue;
        };
        let values = if change.after.is_null() {
            &change.before
        } else {
            &change.after
        };
        let version = values
            .get("offering_version")
            .and_then(Json::as_str)
            .and_then(|v| offering.version(v))
            .unwrap_or_else(|| offering.current());
        let tier_name = values.get("tier").and_then(Json::as_str);
        let tier = tier_name.and_then(|t| version.tier(t));
        resources.push(CatalogResource {
            address: change.address.clone(),
            offering: offering.name.clone(),
            version: version.version.clone(),
            version_status: version.status.as_str().to_owned(),
            owner_team: values
                .get("team")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned(),
            offering_owner: offering.owner.team.clone(),
            tier: tier_name.map(str::to_owned),
            requires_approval: tier.is_some_and(|t| t.requires_approval),
            action: change.action.as_str().to_owned(),
        });
    }
    CatalogInput {
        digest: catalog.digest.clone(),
        resources,
    }
}

/// `input.drift`: the plan's `resource_drift`, attribute names only.
pub fn drift_input(plan: &PlanSummary) -> DriftInput {
    DriftInput {
        resources: plan
            .drift
            .iter()
            .map(|d| DriftResource {
                address: d.address.clone(),
                attributes: d.changed_attributes.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checker for the part of JSON Schema 2020-12 that
    /// `docs/policy-input.schema.json` uses. Any keyword it does not know is
    /// a test failure, so the schema cannot grow past what is checked.
    fn check(schema: &Json, root: &Json, value: &Json, path: &str, errors: &mut Vec<String>) {
        let Some(object) = schema.as_object() else {
            errors.push(format!("{path}: schema is not an object"));
            return;
        };
        if let Some(reference) = object.get("$ref").and_then(Json::as_str) {
            let name = reference
                .strip_prefix("#/$defs/")
                .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
            let target = &root["$defs"][name];
            assert!(!target.is_null(), "dangling $ref {reference}");
            check(target, root, value, path, errors);
        }
        for (keyword, rule) in object {
            match keyword.as_str() {
                "$ref" | "$schema" | "$id" | "$defs" | "title" | "description" | "format" => {}
                "type" => {
                    let types: Vec<&str> = match rule {
                        Json::String(t) => vec![t.as_str()],
                        Json::Array(ts) => ts.iter().filter_map(Json::as_str).collect(),
                        _ => panic!("bad type keyword at {path}"),
                    };
                    let matches = |t: &str| match t {
                        "object" => value.is_object(),
                        "array" => value.is_array(),
                        "string" => value.is_string(),
                        "boolean" => value.is_boolean(),
                        "null" => value.is_null(),
                        "number" => value.is_number(),
                        "integer" => value.as_f64().is_some_and(|n| n.fract() == 0.0),
                        other => panic!("unknown type {other}"),
                    };
                    if !types.iter().any(|t| matches(t)) {
                        errors.push(format!("{path}: expected {types:?}, got {value}"));
                    }
                }
                "enum" => {
                    let options = rule.as_array().expect("enum array");
                    if !options.contains(value) {
                        errors.push(format!("{path}: {value} not in {rule}"));
                    }
                }
                "const" => {
                    if rule != value {
                        errors.push(format!("{path}: {value} != const {rule}"));
                    }
                }
                "required" => {
                    if let Some(map) = value.as_object() {
                        for key in rule.as_array().expect("required array") {
                            let key = key.as_str().expect("required key");
                            if !map.contains_key(key) {
                                errors.push(format!("{path}: missing required {key}"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(map) = value.as_object() {
                        for (key, sub) in rule.as_object().expect("properties object") {
                            if let Some(v) = map.get(key) {
                                check(sub, root, v, &format!("{path}.{key}"), errors);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let (Some(map), Some(false)) = (value.as_object(), rule.as_bool()) {
                        let known = object.get("properties").and_then(Json::as_object);
                        for key in map.keys() {
                            if !known.is_some_and(|k| k.contains_key(key)) {
                                errors.push(format!("{path}: unexpected key {key}"));
                            }
                        }
                    } else if let (Some(map), true) = (value.as_object(), rule.is_object()) {
                        let known = object.get("properties").and_then(Json::as_object);
                        for (key, v) in map {
                            if !known.is_some_and(|k| k.contains_key(key)) {
                                check(rule, root, v, &format!("{path}.{key}"), errors);
                            }
                        }
                    }
                }
                "items" => {
                    if let Some(items) = value.as_array() {
                        for (i, item) in items.iter().enumerate() {
                            check(rule, root, item, &format!("{path}[{i}]"), errors);
                        }
                    }
                }
                other => panic!("the schema uses `{other}` at {path}: teach this checker"),
            }
        }
    }

    fn schema() -> Json {
        let text = include_str!("../../../docs/policy-input.schema.json");
        serde_json::from_str(text).expect("schema parses")
    }

    fn validate(value: &Json) -> Vec<String> {
        let schema = schema();
        let mut errors = Vec::new();
        check(&schema, &schema, value, "input", &mut errors);
        errors
    }

    /// A plan with a platform resource (catalog, cost) and drift.
    fn sample() -> PolicyInput {
        let shown = serde_json::json!({
            "format_version": "1.2",
            "terraform_version": "1.11.4",
            "resource_drift": [{
                "address": "platform_postgres_database.old", "mode": "managed",
                "type": "platform_postgres_database", "name": "old",
                "provider_name": "registry.terraform.io/platform/platform",
                "change": {"actions": ["update"],
                    "before": {"connection_limit": 5}, "after": {"connection_limit": 9},
                    "after_unknown": {}, "before_sensitive": {}, "after_sensitive": {}}
            }],
            "resource_changes": [{
                "address": "platform_postgres_database.big", "mode": "managed",
                "type": "platform_postgres_database", "name": "big",
                "provider_name": "registry.terraform.io/platform/platform",
                "change": {"actions": ["create"], "before": null,
                    "after": {"name": "big", "tier": "standard", "team": "checkout",
                              "password": "hunter2"},
                    "after_unknown": {"id": true}, "before_sensitive": false,
                    "after_sensitive": {"password": true}}
            }]
        });
        let fingerprint = crate::key::Fingerprint::from_salt(b"test salt");
        let summary =
            crate::plan::parse_with(shown.to_string().as_bytes(), &fingerprint).expect("parse");
        let catalog = crate::run::load_catalog(None).expect("catalog");
        let costs =
            crate::cost::estimate(&summary, Some(&catalog), &crate::cost::PriceBook::default());
        PolicyInput {
            input_version: crate::policy::INPUT_VERSION,
            catalog: catalog_input(&summary, &catalog),
            drift: drift_input(&summary),
            run: RunInput {
                id: "20261207-000000-abcdef".into(),
                created_by: "alice".into(),
                commit_sha: None,
                is_destroy: false,
                refresh_only: false,
                target_addrs: vec!["platform_postgres_database.big".into()],
                replace_addrs: vec![],
                workspace: WorkspaceInput {
                    name: "default".into(),
                    environment: "production".into(),
                    tags: vec![],
                    directory: "/work/orders".into(),
                },
            },
            cost: CostInput {
                estimate: costs,
                budgets: None,
            },
            plan: summary.redacted,
        }
    }

    #[test]
    fn the_input_matches_the_documented_schema() {
        let input = sample();
        let typed = serde_json::to_value(&input).expect("serialize");
        let errors = validate(&typed);
        assert!(errors.is_empty(), "{errors:#?}");
        // The moved form used for evaluation is the same document.
        assert_eq!(input.into_json().expect("json"), typed);
        assert_eq!(
            typed["drift"]["resources"][0]["attributes"][0],
            "connection_limit"
        );
        assert_eq!(typed["catalog"]["resources"][0]["requires_approval"], true);
        assert!(!typed.to_string().contains("hunter2"));
    }

    #[test]
    fn the_checker_rejects_what_the_schema_forbids() {
        // The checker is not vacuous: wrong shapes are reported.
        let mut typed = serde_json::to_value(sample()).expect("serialize");
        typed["drift"] = serde_json::json!([{"address": "a", "attributes": []}]);
        typed["run"]["is_destroy"] = serde_json::json!("no");
        typed
            .as_object_mut()
            .expect("object")
            .remove("input_version");
        let errors = validate(&typed);
        assert!(
            errors.iter().any(|e| e.starts_with("input.drift:")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("input.run.is_destroy:")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("missing required input_version")),
            "{errors:?}"
        );
    }
}
