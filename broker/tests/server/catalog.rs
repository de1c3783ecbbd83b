//! The catalog as an API (`GET /v1/catalogs/{catalog}/…`): catalogs named
//! under the server's `DATA/config/`, the example catalog's offerings,
//! versions and tiers, the JSON Schema of each version exactly as the
//! provider's `docs` writes it, and what is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Server, call, curl, serve};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned()
}

/// `DATA/config/<name>/` holding the example catalog.
fn example_catalog(data: &Path, name: &str) -> PathBuf {
    let dir = data.join("config").join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(
        repo().join("examples/catalogs/postgres.hcl"),
        dir.join("postgres.hcl"),
    )
    .expect("copy the example catalog");
    dir
}

/// (status, content type, body) of a GET as `user`.
fn get_typed(server: &Server, path: &str, user: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code} %{content_type}"])
        .args(["-H", &format!("x-platform-dev-user: {user}")])
        .arg(format!("{}{path}", server.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status");
    let (code, content_type) = status.split_once(' ').unwrap_or((status, ""));
    (
        code.parse().expect("code"),
        content_type.to_owned(),
        body.to_owned(),
    )
}

#[test]
fn catalog_offerings_versions_tiers_and_schemas() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let dir = example_catalog(&data, "main");
    let server = serve(&data, &["--insecure-dev-auth", "--workers", "0"]);
    let who = Some("portal");

    let (code, list) = call(&server, "GET", "v1/catalogs/main/offerings", who, None);
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["catalog"], "main");
    assert_eq!(list["provider_prefix"], "platform");
    assert!(
        list["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{list}"
    );
    let names: Vec<&str> = list["offerings"]
        .as_array()
        .expect("offerings")
        .iter()
        .map(|o| o["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["postgres_access", "postgres_database", "postgres_schema"]
    );
    let database = &list["offerings"][1];
    assert_eq!(database["resource_type"], "platform_postgres_database");
    assert_eq!(database["title"], "PostgreSQL database");
    assert_eq!(
        database["owner"],
        serde_json::json!({"team": "data-platform", "contact": "#data-platform"})
    );
    assert_eq!(database["default_version"], "1.2.0");
    let current = &database["versions"][0];
    assert_eq!(
        (
            &current["version"],
            &current["status"],
            &current["deprecation"]
        ),
        (
            &serde_json::json!("1.2.0"),
            &serde_json::json!("current"),
            &serde_json::Value::Null
        )
    );
    assert_eq!(
        current["json_schema"],
        "/v1/catalogs/main/offerings/postgres_database/versions/1.2.0/schema"
    );
    assert_eq!(
        current["tiers"][1],
        serde_json::json!({
            "name": "standard",
            "price": {"amount": 140.0, "unit": "month", "currency": "USD", "quantity": null},
            "monthly_price": 140.0,
            "price_text": "140 USD per month",
            "requires_approval": true,
            "transitions_to": ["small"],
        }),
        "{current}"
    );
    assert_eq!(
        current["tiers"][0]["transitions_to"],
        serde_json::Value::Null
    );
    let deprecated = &database["versions"][1];
    assert_eq!(deprecated["status"], "deprecated");
    assert_eq!(
        deprecated["deprecation"],
        serde_json::json!({
            "create_until": "2027-01-31",
            "update_until": "2027-06-30",
            "successor": "1.2.0",
        })
    );
    // A version kept for its dates inherits the schema version's tiers.
    assert_eq!(deprecated["tiers"], current["tiers"]);

    // One offering: the same as in the list.
    let (code, one) = call(
        &server,
        "GET",
        "v1/catalogs/main/offerings/postgres_database",
        who,
        None,
    );
    assert_eq!((code, &one), (200, database));

    // Every version's JSON Schema: byte for byte what the provider's docs
    // generator writes (committed under docs/schemas), and what the catalog
    // crate generates for it.
    let (catalog, diags) = platform_catalog::load_dir(&dir);
    assert!(!platform_catalog::has_errors(&diags), "{diags:?}");
    let mut compared_with_docs = 0;
    for offering in &catalog.offerings {
        for version in &offering.versions {
            let path = format!(
                "v1/catalogs/main/offerings/{}/versions/{}/schema",
                offering.name, version.version
            );
            let (code, content_type, body) = get_typed(&server, &path, "portal");
            assert_eq!(code, 200, "{path}: {body}");
            assert_eq!(content_type, "application/schema+json", "{path}");
            let generated =
                platform_catalog::json_schema::version_schema(&catalog, offering, version).pretty();
            assert_eq!(body, generated, "{path}");
            let committed = repo().join(format!(
                "docs/schemas/{}/{}.schema.json",
                offering.name, version.version
            ));
            if let Ok(text) = std::fs::read_to_string(&committed) {
                assert_eq!(body, text, "{path} differs from {}", committed.display());
                compared_with_docs += 1;
            }
            let schema: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(
                schema["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
            assert_eq!(
                schema["properties"]["offering_version"]["const"],
                version.version.as_str()
            );
        }
    }
    assert_eq!(compared_with_docs, 4, "docs/schemas has every version");

    // An edited catalog is served fresh, at once.
    let file = dir.join("postgres.hcl");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replacen("amount = 140", "amount = 150", 1)).expect("write");
    let (code, one) = call(
        &server,
        "GET",
        "v1/catalogs/main/offerings/postgres_database",
        who,
        None,
    );
    assert_eq!(code, 200, "{one}");
    assert_eq!(one["versions"][0]["tiers"][1]["price"]["amount"], 150.0);
    let (_, _, schema) = get_typed(
        &server,
        "v1/catalogs/main/offerings/postgres_database/versions/1.2.0/schema",
        "portal",
    );
    assert!(schema.contains("\"amount\": 150"), "{schema}");
    // A new offering in a new file shows up too.
    std::fs::write(
        dir.join("queue.hcl"),
        r#"offering "queue" {
  title       = "Queue"
  description = "A queue."
  owner {
    team = "messaging"
  }
  version "0.1.0" {
    status = "preview"
    tier "dev" {
      price {
        amount = 0.05
        unit   = "hour"
      }
    }
  }
}
"#,
    )
    .expect("write");
    let (code, queue) = call(
        &server,
        "GET",
        "v1/catalogs/main/offerings/queue",
        who,
        None,
    );
    assert_eq!(code, 200, "{queue}");
    assert_eq!(queue["owner"]["contact"], serde_json::Value::Null);
    assert_eq!(queue["versions"][0]["status"], "preview");
    assert_eq!(queue["versions"][0]["tiers"][0]["price"]["unit"], "hour");
    assert_eq!(
        queue["versions"][0]["tiers"][0]["price_text"],
        "0.05 USD/hour = 36.50 USD per month"
    );
    let (_, again) = call(&server, "GET", "v1/catalogs/main/offerings", who, None);
    assert_ne!(again["digest"], list["digest"]);
    assert_eq!(again["offerings"].as_array().map(Vec::len), Some(4));

    // Once the files have been still for a while the parsed catalog is
    // served from the server's cache; a change (the same length) still
    // shows at once.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let (_, cached) = call(&server, "GET", "v1/catalogs/main/offerings", who, None);
    assert_eq!(cached["digest"], again["digest"]);
    let text = std::fs::read_to_string(&file).expect("read");
    let edited = text.replacen("amount = 150", "amount = 160", 1);
    assert_eq!(edited.len(), text.len());
    std::fs::write(&file, edited).expect("write");
    let (_, fresh) = call(&server, "GET", "v1/catalogs/main/offerings", who, None);
    assert_ne!(fresh["digest"], cached["digest"]);
    assert_eq!(
        fresh["offerings"][1]["versions"][0]["tiers"][1]["price"]["amount"],
        160.0
    );
}

#[test]
fn catalog_names_stay_in_the_config_directory_and_errors_point_at_lines() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    example_catalog(&data, "main");
    // A catalog outside DATA/config, and a symbolic link to it inside.
    let outside = tmp.path().join("outside");
    example_catalog(&outside, "elsewhere");
    std::os::unix::fs::symlink(outside.join("config/elsewhere"), data.join("config/escape"))
        .expect("symlink");
    // A broken catalog: an unknown status on line 3.
    let broken = data.join("config/broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(
        broken.join("bad.hcl"),
        "offering \"x\" {\n  version \"1.0.0\" {\n    status = \"shiny\"\n  }\n}\n",
    )
    .expect("write");
    std::fs::write(data.join("config/policy.hcl"), "# not a catalog\n").expect("write");
    let server = serve(&data, &["--insecure-dev-auth", "--workers", "0"]);
    let who = Some("portal");

    // No credentials: 401, before anything is looked up.
    for path in [
        "v1/catalogs/main/offerings",
        "v1/catalogs/main/offerings/postgres_database",
        "v1/catalogs/main/offerings/postgres_database/versions/1.2.0/schema",
        "v1/catalogs/nope/offerings",
    ] {
        let (code, body) = call(&server, "GET", path, None, None);
        assert_eq!(code, 401, "{path}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{path}");
    }

    // Unknown catalog, offering, version; names leading outside, to a file
    // or to the config directory itself: 404 in the API's error shape.
    for (path, needle) in [
        (
            "v1/catalogs/nope/offerings",
            "\"nope\" is not in the server's config directory",
        ),
        (
            "v1/catalogs/escape/offerings",
            "\"escape\" is not in the server's config directory",
        ),
        (
            "v1/catalogs/escape/offerings/postgres_database/versions/1.2.0/schema",
            "\"escape\" is not in the server's config directory",
        ),
        (
            "v1/catalogs/..%2F..%2Foutside%2Fconfig%2Felsewhere/offerings",
            "is not in the server's config directory",
        ),
        (
            "v1/catalogs/%2Fetc/offerings",
            "\"/etc\" is not in the server's config directory",
        ),
        ("v1/catalogs/policy.hcl/offerings", "is not a directory"),
        ("v1/catalogs/%2E/offerings", "is not a directory"),
        ("v1/catalogs/main%2F../offerings", "is not a directory"),
        (
            "v1/catalogs/main/offerings/nope",
            "catalog \"main\" has no offering \"nope\"",
        ),
        (
            "v1/catalogs/main/offerings/nope/versions/1.0.0/schema",
            "has no offering \"nope\"",
        ),
        (
            "v1/catalogs/main/offerings/postgres_database/versions/9.9.9/schema",
            "offering \"postgres_database\" has no version \"9.9.9\"",
        ),
    ] {
        let (code, body) = call(&server, "GET", path, who, None);
        assert_eq!(code, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{path}: {message}");
        assert!(
            !message.contains(&*tmp.path().to_string_lossy()),
            "{path}: a server path leaked: {message}"
        );
        assert!(body["error"]["request_id"].is_string(), "{path}");
    }

    // A broken catalog: 422 with file:line:col, relative to its name.
    for path in [
        "v1/catalogs/broken/offerings",
        "v1/catalogs/broken/offerings/x",
        "v1/catalogs/broken/offerings/x/versions/1.0.0/schema",
    ] {
        let (code, body) = call(&server, "GET", path, who, None);
        assert_eq!(code, 422, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_catalog", "{path}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("catalog \"broken\" is invalid:\n"),
            "{message}"
        );
        assert!(
            message.contains("\nbroken/bad.hcl:3:"),
            "no file:line:col: {message}"
        );
        assert!(message.contains(": error: "), "{message}");
        assert!(
            !message.contains(&*tmp.path().to_string_lossy()),
            "a server path leaked: {message}"
        );
    }
    // Fixed: served at once.
    std::fs::copy(
        repo().join("examples/catalogs/postgres.hcl"),
        broken.join("bad.hcl"),
    )
    .expect("copy");
    let (code, body) = call(&server, "GET", "v1/catalogs/broken/offerings", who, None);
    assert_eq!(code, 200, "{body}");

    // The catalog endpoints take GET only.
    let (code, body) = curl(
        &server,
        "POST",
        "v1/catalogs/main/offerings",
        who,
        Some("{}"),
    );
    assert_eq!(code, 405, "{body}");

    // Nothing above was a server error.
    let log = std::fs::read_to_string(&server.log).expect("log");
    assert!(
        !log.lines().any(|l| l
            .split_whitespace()
            .nth(2)
            .is_some_and(|s| s.starts_with('5'))),
        "{log}"
    );
}
