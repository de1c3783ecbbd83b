//! Whole-catalog tests: the DESIGN example, the shipped examples, digest, directory loading
//! and robustness. Per-problem diagnostics are tested in `load.rs`.

use super::*;

const DESIGN_EXAMPLE: &str = include_str!("testdata/design_example.hcl");
const EXAMPLE_CATALOG: &str = include_str!("../../examples/catalogs/postgres.hcl");

fn source(name: &str, text: &str) -> Source {
    Source {
        name: name.to_string(),
        text: text.to_string(),
    }
}

fn rendered(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn design_example_loads_with_expected_model() {
    let (catalog, diags) = load_sources(vec![source("design.hcl", DESIGN_EXAMPLE)]);
    assert_eq!(rendered(&diags), "");
    assert_eq!(catalog.provider_prefix, "platform");
    assert!(catalog.digest.starts_with("sha256:") && catalog.digest.len() == 7 + 64);

    let Some(offering) = catalog.offering("postgres_database") else {
        panic!("no offering")
    };
    assert_eq!(
        catalog.resource_type(offering),
        "platform_postgres_database"
    );
    assert_eq!(offering.title, "PostgreSQL database");
    assert_eq!(
        offering.owner,
        Owner {
            team: "data-platform".into(),
            contact: Some("#data-platform".into())
        }
    );
    let versions: Vec<(&str, Status)> = offering
        .versions
        .iter()
        .map(|v| (v.version.as_str(), v.status))
        .collect();
    assert_eq!(
        versions,
        [("1.2.0", Status::Current), ("1.1.0", Status::Deprecated)]
    );

    let current = offering.current();
    assert_eq!(current.version, "1.2.0");
    assert!(!current.inherits_schema);
    let inputs: Vec<(&str, String)> = current
        .inputs
        .iter()
        .map(|i| (i.name.as_str(), i.ty.to_string()))
        .collect();
    assert_eq!(
        inputs,
        [
            ("name", "string".to_string()),
            ("connection_limit", "number".to_string()),
            ("extensions", "set(string)".to_string())
        ]
    );
    let Some(name) = current.input("name") else {
        panic!("no name input")
    };
    assert_eq!(name.on_change, OnChange::Replace);
    assert_eq!(
        name.pattern.as_ref().map(|p| p.as_str()),
        Some("^[a-z][a-z0-9_]{2,40}$")
    );
    assert_eq!(name.default, None);
    let Some(limit) = current.input("connection_limit") else {
        panic!("no limit input")
    };
    assert_eq!(
        (limit.min, limit.max, limit.default.clone()),
        (Some(1.0), Some(500.0), Some(hcl::Value::from(20)))
    );
    let Some(extensions) = current.input("extensions") else {
        panic!("no extensions input")
    };
    assert_eq!(extensions.default, Some(hcl::Value::Array(Vec::new())));
    assert_eq!(extensions.enum_values.as_ref().map(Vec::len), Some(3));

    let Some(standard) = current.tier("standard") else {
        panic!("no standard tier")
    };
    assert!(standard.requires_approval);
    assert_eq!(standard.transitions_to, Some(vec!["small".to_string()]));
    assert!(standard.allows_transition_to("small"));
    assert_eq!(
        standard.values.get("max_connections"),
        Some(&hcl::Value::from(200))
    );
    assert_eq!(standard.monthly_price(&hcl::Map::new()), Ok(140.0));
    assert_eq!(standard.price.currency, "USD");
    let Some(small) = current.tier("small") else {
        panic!("no small tier")
    };
    assert_eq!(small.transitions_to, None);
    assert!(small.allows_transition_to("standard"));

    let compose: Vec<(&str, &str, Vec<String>)> = current
        .compose
        .iter()
        .map(|p| (p.name.as_str(), p.driver.as_str(), p.depends_on.clone()))
        .collect();
    assert_eq!(
        compose,
        [
            ("owner", "postgres.role", vec![]),
            ("db", "postgres.database", vec!["owner".to_string()])
        ]
    );
    // Where each primitive input key is written, for the provider's driver checks.
    let owner_inputs = &current.compose[0].input_locations;
    let at = |key: &str| owner_inputs.get(key).map(ToString::to_string);
    assert_eq!(at("name").as_deref(), Some("design.hcl:56:11"));
    assert_eq!(at("connection_limit").as_deref(), Some("design.hcl:58:11"));
    assert_eq!(owner_inputs.len(), current.compose[0].inputs.len());
    assert_eq!(current.outputs.len(), 1);
    assert!(current.outputs[0].sensitive);

    let Some(old) = offering.version("1.1.0") else {
        panic!("no 1.1.0")
    };
    assert!(old.inherits_schema);
    assert_eq!(old.inputs.len(), 3);
    assert_eq!(old.tiers.len(), 2);
    assert_eq!(old.compose.len(), 2);
    let Some(deprecation) = &old.deprecation else {
        panic!("no deprecation")
    };
    assert_eq!(
        deprecation.create_until,
        Some(time::macros::date!(2027 - 01 - 31))
    );
    assert_eq!(
        deprecation.update_until,
        Some(time::macros::date!(2027 - 06 - 30))
    );
    assert_eq!(deprecation.successor.as_deref(), Some("1.2.0"));
}

#[test]
fn example_catalog_dir_loads_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalogs");
    let (catalog, diags) = load_dir(&dir);
    assert_eq!(rendered(&diags), "");
    let names: Vec<&str> = catalog.offerings.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        ["postgres_access", "postgres_database", "postgres_schema"]
    );
    let Some(schema) = catalog.offering("postgres_schema") else {
        panic!("no schema offering")
    };
    let current = schema.current();
    assert_eq!(schema.owner.team, "data-platform");
    let order: Vec<&str> = current.compose.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(order, ["owner", "schema", "readers"]);
    assert_eq!(
        current.input("database").map(|i| i.on_change),
        Some(OnChange::Reject)
    );
    let Some(shared) = current.tier("shared") else {
        panic!("no shared tier")
    };
    assert_eq!(shared.monthly_price(&hcl::Map::new()), Ok(5.0));
}

#[test]
fn digest_is_stable_and_content_sensitive() {
    let a = source("a.hcl", "offering \"a\" {}\n");
    let b = source("b.hcl", "offering \"b\" {}\n");
    let (first, _) = load_sources(vec![a.clone(), b.clone()]);
    let (swapped, _) = load_sources(vec![b.clone(), a.clone()]);
    assert_eq!(first.digest, swapped.digest);
    // Only the file name counts, not the directory it was read from.
    let (moved, _) = load_sources(vec![
        source("/x/a.hcl", &a.text),
        source("y/b.hcl", &b.text),
    ]);
    assert_eq!(first.digest, moved.digest);
    let (changed, _) = load_sources(vec![a.clone(), source("b.hcl", "offering \"c\" {}\n")]);
    assert_ne!(first.digest, changed.digest);
    let (renamed, _) = load_sources(vec![a, source("c.hcl", &b.text)]);
    assert_ne!(first.digest, renamed.digest);
    // Length prefixes keep name/content boundaries apart.
    let (x, _) = load_sources(vec![source("ab", "c")]);
    let (y, _) = load_sources(vec![source("a", "bc")]);
    assert_ne!(x.digest, y.digest);
}

#[test]
fn diagnostics_do_not_depend_on_source_order() {
    let a = source("a.hcl", "offering \"x\" {\n}\n");
    let b = source("b.hcl", "offering \"x\" {\n}\n");
    let (_, forward) = load_sources(vec![a.clone(), b.clone()]);
    let (_, backward) = load_sources(vec![b, a]);
    assert_eq!(forward, backward);
}

#[test]
fn duplicate_offering_across_files() {
    let text = "offering \"x\" {\n  title = \"X\"\n  owner { team = \"t\" }\n  version \"1.0.0\" {\n    status = \"current\"\n    tier \"t\" {\n      price {\n        amount = 0\n        unit   = \"month\"\n      }\n    }\n  }\n}\n";
    let (catalog, diags) = load_sources(vec![source("b.hcl", text), source("a.hcl", text)]);
    assert_eq!(
        rendered(&diags),
        "b.hcl:1:10: error: duplicate offering \"x\"\n  first declared at a.hcl:1:10"
    );
    assert_eq!(catalog.offerings.len(), 1);
}

#[test]
fn duplicate_catalog_block_across_files() {
    let (catalog, diags) = load_sources(vec![
        source("a.hcl", "catalog { provider_prefix = \"acme\" }\n"),
        source("b.hcl", "\ncatalog {}\n"),
    ]);
    assert_eq!(
        rendered(&diags),
        "b.hcl:2:1: error: duplicate catalog block\n  first declared at a.hcl:1:1"
    );
    assert_eq!(catalog.provider_prefix, "acme");
}

#[test]
fn load_dir_reads_only_hcl_files_sorted() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no tempdir")
    };
    let write = |name: &str, text: &str| {
        if let Err(err) = std::fs::write(dir.path().join(name), text) {
            panic!("write {name}: {err}");
        }
    };
    write("b.hcl", "bogus {}\n");
    write("a.hcl", "also_bogus {}\n");
    write("notes.txt", "not a catalog {{{\n");
    let (_, diags) = load_dir(dir.path());
    let files: Vec<String> = diags
        .iter()
        .map(|d| {
            Path::new(&d.file)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(files, ["a.hcl", "b.hcl"]);
}

#[test]
fn load_dir_problems_are_diagnostics() {
    let Ok(dir) = tempfile::tempdir() else {
        panic!("no tempdir")
    };
    let (catalog, diags) = load_dir(dir.path());
    let name = dir.path().display().to_string();
    assert_eq!(
        rendered(&diags),
        format!("{name}:1:1: error: catalog directory contains no *.hcl files")
    );
    assert!(catalog.offerings.is_empty());
    assert_eq!(catalog.provider_prefix, "platform");

    let missing = dir.path().join("missing");
    let (_, diags) = load_dir(&missing);
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0]
            .summary
            .starts_with("cannot read catalog directory: "),
        "{}",
        diags[0]
    );
    assert!(has_errors(&diags));
}

/// A malformed file must never panic: every prefix of the example catalogs is loaded.
#[test]
fn truncated_catalogs_never_panic() {
    for text in [DESIGN_EXAMPLE, EXAMPLE_CATALOG] {
        for len in 0..=text.len() {
            if !text.is_char_boundary(len) {
                continue;
            }
            let (catalog, diags) = load_sources(vec![source("t.hcl", &text[..len])]);
            for diag in &diags {
                assert!(diag.line >= 1 && diag.col >= 1, "{diag}");
            }
            for offering in &catalog.offerings {
                let _ = offering.current();
            }
        }
    }
}

/// Same, removing one line at a time: exercises semantic errors rather than syntax errors.
#[test]
fn catalogs_missing_a_line_never_panic() {
    for text in [DESIGN_EXAMPLE, EXAMPLE_CATALOG] {
        let lines: Vec<&str> = text.lines().collect();
        for skip in 0..lines.len() {
            let mutated: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(idx, _)| *idx != skip)
                .map(|(_, line)| *line)
                .collect();
            let (_, diags) = load_sources(vec![source("t.hcl", &mutated.join("\n"))]);
            for diag in &diags {
                assert!(diag.line >= 1 && diag.col >= 1, "{diag}");
            }
        }
    }
}

/// Loading must stay linear in the catalog size (issue 13: positions were computed by scanning
/// from the start of the file, once per declared name, so 4,000 offerings took minutes).
/// Instead of timing, this counts the source bytes read for positions: a bounded number of
/// passes over each file, however many names and diagnostics it has.
#[test]
fn positions_read_each_file_a_bounded_number_of_times() {
    let example = include_str!("../../examples/catalogs/postgres.hcl");
    let body = &example[example.find("offering \"").unwrap_or(0)..];
    let mut text = String::new();
    for i in 0..300 {
        // Renamed copies, each with a non-ASCII line and problems to report (unknown
        // attributes) so that both position paths and diagnostics are exercised.
        let copy = body
            .replace("offering \"postgres_", &format!("offering \"p{i}_"))
            .replace("  title       =", "  bogus = \"é\"\n  title       =");
        text.push_str(&copy);
    }
    let _ = crate::diag::scanned::take();
    let (catalog, diags) = load_sources(vec![source("big.hcl", &text)]);
    let scanned = crate::diag::scanned::take();
    assert_eq!(catalog.offerings.len(), 900);
    assert_eq!(diags.len(), 900, "{}", rendered(&diags[..3]));
    assert!(
        scanned >= text.len(),
        "the line index was not built: {scanned}"
    );
    assert!(
        scanned <= 2 * text.len(),
        "positions read {scanned} bytes of a {}-byte catalog",
        text.len()
    );
}
