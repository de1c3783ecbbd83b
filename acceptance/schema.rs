//! Scenario 5: `terraform providers schema -json` shows every offering of the
//! catalog as a resource type (inputs + reserved attributes + outputs) and both
//! data sources.

use crate::common::*;
use crate::harness::*;

/// Every offering of the example catalog composes a role, so every one has
/// `secret_version` too.
const RESERVED: [&str; 8] = [
    "id",
    "labels",
    "monthly_cost",
    "offering_version",
    "secret_version",
    "status",
    "team",
    "tier",
];

/// (attribute, required, optional, computed, sensitive)
type Flags = (&'static str, bool, bool, bool, bool);

fn check_resource(schema: &serde_json::Value, ctx: &str, type_name: &str, expected: &[Flags]) {
    let attrs = &schema["resource_schemas"][type_name]["block"]["attributes"];
    assert!(
        attrs.is_object(),
        "{ctx} no resource schema {type_name}:\n{schema:#}"
    );
    let mut want: Vec<&str> = expected.iter().map(|e| e.0).chain(RESERVED).collect();
    want.sort_unstable();
    assert_eq!(
        schema_attribute_names(schema, type_name),
        want,
        "{ctx} {type_name}"
    );
    let flag = |a: &serde_json::Value, f: &str| a[f].as_bool().unwrap_or(false);
    for (name, required, optional, computed, sensitive) in expected {
        let a = &attrs[*name];
        assert_eq!(
            (
                flag(a, "required"),
                flag(a, "optional"),
                flag(a, "computed"),
                flag(a, "sensitive")
            ),
            (*required, *optional, *computed, *sensitive),
            "{ctx} {type_name}.{name} flags (required, optional, computed, sensitive): {a:#}"
        );
    }
    // Reserved attributes.
    for (name, optional, computed, ty) in [
        ("id", false, true, serde_json::json!("string")),
        ("tier", true, true, serde_json::json!("string")),
        ("team", true, true, serde_json::json!("string")),
        ("labels", true, false, serde_json::json!(["map", "string"])),
        ("offering_version", true, true, serde_json::json!("string")),
        ("monthly_cost", false, true, serde_json::json!("number")),
        ("status", false, true, serde_json::json!("string")),
        ("secret_version", true, false, serde_json::json!("number")),
    ] {
        let a = &attrs[name];
        assert_eq!(a["type"], ty, "{ctx} {type_name}.{name}: {a:#}");
        assert_eq!(
            (
                flag(a, "required"),
                flag(a, "optional"),
                flag(a, "computed")
            ),
            (false, optional, computed),
            "{ctx} {type_name}.{name}: {a:#}"
        );
    }
}

#[test]
fn providers_schema_lists_every_offering() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("schema", |bin, ctx| {
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", REQUIRED_PLATFORM);
        let schema = platform_schema(&wd, bin, ctx);

        let mut resources: Vec<&String> = schema["resource_schemas"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        resources.sort();
        assert_eq!(
            resources,
            [
                "platform_postgres_access",
                "platform_postgres_database",
                "platform_postgres_schema"
            ],
            "{ctx}"
        );

        check_resource(
            &schema,
            ctx,
            "platform_postgres_database",
            &[
                ("name", true, false, false, false),
                ("connection_limit", false, true, true, false),
                ("extensions", false, true, true, false),
                ("connection_uri", false, false, true, true),
                ("owner_role", false, false, true, false),
            ],
        );
        let db = &schema["resource_schemas"]["platform_postgres_database"]["block"];
        assert_eq!(
            db["attributes"]["extensions"]["type"],
            serde_json::json!(["set", "string"]),
            "{ctx}"
        );
        assert_eq!(
            db["attributes"]["connection_limit"]["type"], "number",
            "{ctx}"
        );
        let tier_doc = db["attributes"]["tier"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            tier_doc.contains("small, standard"),
            "{ctx} tier description {tier_doc:?}"
        );
        check_resource(
            &schema,
            ctx,
            "platform_postgres_schema",
            &[
                ("database", true, false, false, false),
                ("name", true, false, false, false),
                ("readers", false, true, true, false),
                ("owner_role", false, false, true, false),
            ],
        );
        let sch = &schema["resource_schemas"]["platform_postgres_schema"]["block"];
        assert_eq!(
            sch["attributes"]["readers"]["type"],
            serde_json::json!(["list", "string"]),
            "{ctx}"
        );

        // Data sources.
        let mut data: Vec<&String> = schema["data_source_schemas"]
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        data.sort();
        assert_eq!(data, ["platform_catalog", "platform_offering"], "{ctx}");
        let catalog = &schema["data_source_schemas"]["platform_catalog"]["block"]["attributes"];
        for name in ["id", "digest", "offerings"] {
            assert_eq!(
                catalog[name]["computed"], true,
                "{ctx} platform_catalog.{name}: {catalog:#}"
            );
        }
        let offering_ty = &catalog["offerings"]["type"];
        assert_eq!(offering_ty[0], "list", "{ctx} {offering_ty}");
        let fields = offering_ty[1][1].as_object().map(|o| {
            let mut k: Vec<&String> = o.keys().collect();
            k.sort();
            k
        });
        assert_eq!(
            fields.unwrap_or_default(),
            [
                "current_version",
                "description",
                "inputs",
                "name",
                "owner_contact",
                "owner_team",
                "resource_type",
                "status",
                "tiers",
                "title",
                "versions",
            ],
            "{ctx} {offering_ty}"
        );
        assert_eq!(
            offering_ty[1][1]["tiers"],
            serde_json::json!(["list", ["object", {
                "amount": "number", "currency": "string", "name": "string",
                "requires_approval": "bool", "unit": "string"
            }]]),
            "{ctx}"
        );
        let offering = &schema["data_source_schemas"]["platform_offering"]["block"]["attributes"];
        assert_eq!(offering["name"]["required"], true, "{ctx} {offering:#}");
        for name in [
            "id",
            "title",
            "tiers",
            "versions",
            "inputs",
            "owner_team",
            "current_version",
        ] {
            assert_eq!(
                offering[name]["computed"], true,
                "{ctx} platform_offering.{name}: {offering:#}"
            );
        }
        // The provider block.
        let provider = &schema["provider"]["block"]["attributes"];
        assert_eq!(
            provider["default_team"]["optional"], true,
            "{ctx} {provider:#}"
        );
    });
}
