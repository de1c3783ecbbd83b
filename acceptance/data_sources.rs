//! Scenario 6: the data sources return the catalog (prices, owners, versions),
//! through a real `terraform apply` of a configuration without resources.

use crate::common::*;
use crate::harness::*;

fn config() -> String {
    format!(
        r#"{REQUIRED_PLATFORM}
data "platform_catalog" "all" {{}}

data "platform_offering" "pg" {{
  name = "postgres_database"
}}

output "prices" {{
  value = {{
    for o in data.platform_catalog.all.offerings :
    o.name => {{ for t in o.tiers : t.name => t.amount }}
  }}
}}

output "resource_types" {{
  value = [for o in data.platform_catalog.all.offerings : o.resource_type]
}}

output "digest" {{
  value = data.platform_catalog.all.digest
}}

output "pg" {{
  value = data.platform_offering.pg
}}
"#
    )
}

#[test]
fn data_sources_return_catalog_prices() {
    if !acc_enabled() {
        return;
    }
    let tf = config();
    for_each_bin("data_sources", |bin, ctx| {
        let wd = Workdir::dev_overrides();
        wd.write("main.tf", &tf);
        let apply = wd.tf(bin, &["apply", "-input=false", "-auto-approve"]);
        assert_success(&apply);
        assert_no_crash(&apply, ctx);
        assert_contains(
            &apply,
            "Apply complete! Resources: 0 added, 0 changed, 0 destroyed.",
        );

        let out = wd.tf(bin, &["output", "-json"]);
        assert_success(&out);
        let json = stdout_json(&out);
        let prices = &json["prices"]["value"];
        assert_eq!(
            num(&prices["postgres_database"]["small"]),
            Some(25.0),
            "{ctx} {prices:#}"
        );
        assert_eq!(
            num(&prices["postgres_database"]["standard"]),
            Some(140.0),
            "{ctx} {prices:#}"
        );
        assert_eq!(
            num(&prices["postgres_schema"]["shared"]),
            Some(5.0),
            "{ctx} {prices:#}"
        );
        assert_eq!(
            json["resource_types"]["value"],
            serde_json::json!([
                "platform_postgres_access",
                "platform_postgres_database",
                "platform_postgres_schema"
            ]),
            "{ctx}"
        );
        let digest = json["digest"]["value"].as_str().unwrap_or_default();
        assert!(
            digest.starts_with("sha256:") && digest.len() == "sha256:".len() + 64,
            "{ctx} digest {digest:?}"
        );

        let pg = &json["pg"]["value"];
        assert_eq!(pg["id"], "postgres_database", "{ctx} {pg:#}");
        assert_eq!(pg["name"], "postgres_database", "{ctx}");
        assert_eq!(pg["title"], "PostgreSQL database", "{ctx}");
        assert_eq!(pg["owner_team"], "data-platform", "{ctx}");
        assert_eq!(pg["owner_contact"], "#data-platform", "{ctx}");
        assert_eq!(pg["resource_type"], "platform_postgres_database", "{ctx}");
        assert_eq!(pg["current_version"], "1.2.0", "{ctx}");
        assert_eq!(pg["status"], "current", "{ctx}");
        let tiers = pg["tiers"].as_array().cloned().unwrap_or_default();
        assert_eq!(tiers.len(), 2, "{ctx} {pg:#}");
        assert_eq!(tiers[0]["name"], "small", "{ctx}");
        assert_eq!(num(&tiers[0]["amount"]), Some(25.0), "{ctx}");
        assert_eq!(tiers[0]["unit"], "month", "{ctx}");
        assert_eq!(tiers[0]["currency"], "USD", "{ctx}");
        assert_eq!(tiers[0]["requires_approval"], false, "{ctx}");
        assert_eq!(tiers[1]["name"], "standard", "{ctx}");
        assert_eq!(num(&tiers[1]["amount"]), Some(140.0), "{ctx}");
        assert_eq!(tiers[1]["requires_approval"], true, "{ctx}");
        let versions = &pg["versions"];
        assert_eq!(
            *versions,
            serde_json::json!([
                {"version": "1.2.0", "status": "current", "create_until": null, "update_until": null, "successor": null},
                {"version": "1.1.0", "status": "deprecated", "create_until": "2027-01-31", "update_until": "2027-06-30", "successor": "1.2.0"},
            ]),
            "{ctx}"
        );
        let inputs: Vec<(String, bool, String)> = pg["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                (
                    i["name"].as_str().unwrap_or_default().to_owned(),
                    i["required"].as_bool().unwrap_or_default(),
                    i["on_change"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            inputs,
            [
                ("name".to_owned(), true, "replace".to_owned()),
                ("connection_limit".to_owned(), false, "update".to_owned()),
                ("extensions".to_owned(), false, "update".to_owned()),
            ],
            "{ctx} {pg:#}"
        );
        assert_eq!(pg["inputs"][2]["type"], "set(string)", "{ctx}");

        // An unknown offering name is an error at the attribute.
        let bad_tf = format!(
            "{REQUIRED_PLATFORM}\ndata \"platform_offering\" \"x\" {{\n  name = \"redis\"\n}}\n"
        );
        wd.write("main.tf", &bad_tf);
        let bad = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&bad);
        assert_no_crash(&bad, ctx);
        assert_contains(&bad, "Error: Unknown offering");
        assert_contains_norm(
            &bad,
            ctx,
            r#"The catalog has no offering "redis"; offerings: postgres_access, postgres_database, postgres_schema."#,
        );
        let line = line_of(&bad_tf, "name = \"redis\"");
        assert_contains_norm(
            &bad,
            ctx,
            &format!("on main.tf line {line}, in data \"platform_offering\" \"x\":"),
        );
    });
}
