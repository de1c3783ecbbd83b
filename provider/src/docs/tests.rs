//! Rendering tests on a catalog that exercises every guardrail, price form
//! and lifecycle state; expectations are the exact rendered lines.

use std::collections::BTreeMap;
use std::path::Path;

use super::cli::Args;
use super::{Difference, Examples, Generated, Owned, compare, generate, write};
use crate::engine::schema::Flags;
use crate::engine::{CatalogSource, Loaded, load};

const CATALOG: &str = r#"
catalog {
  provider_prefix = "acme"
}

offering "queue" {
  title       = "Message queue"
  description = "A queue with partitions."
  owner {
    team = "messaging"
  }

  version "2.0.0" {
    status = "current"

    input "name" {
      type       = string
      pattern    = "^[a-z]+$"
      min_length = 3
      max_length = 20
      on_change  = "reject"
    }
    input "size" {
      type        = number
      description = "Partitions."
      default     = 4
      min         = 1
      on_change   = "grow_only"
    }
    input "features" {
      type       = set(string)
      default    = ["dlq"]
      enum       = ["dlq", "fifo"]
      max_length = 2
    }
    input "limits" {
      type    = map(number)
      default = {}
      max     = 100
    }
    input "token" {
      type      = string
      default   = "s3cr3t"
      sensitive = true
      on_change = "replace"
    }

    tier "dev" {
      price {
        amount = 0.05
        unit   = "hour"
      }
      transitions_to = []
    }
    tier "prod" {
      price {
        amount   = 10
        unit     = "month"
        currency = "EUR"
        quantity = input.size
      }
      values            = { replicas = 3, zone = "a" }
      requires_approval = true
      transitions_to    = ["dev"]
    }
  }

  version "1.1.0" {
    status = "deprecated"
    deprecation {
      create_until = "2026-03-31"
      update_until = "2026-09-30"
      successor    = "2.0.0"
    }
  }
  version "1.0.0" {
    status = "deprecated"
  }
  version "0.9.0" {
    status = "retired"
  }
  version "3.0.0-beta.1" {
    status = "preview"
  }
}
"#;

fn loaded() -> std::sync::Arc<Loaded> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("queue.hcl");
    std::fs::write(&path, CATALOG).unwrap_or_else(|e| panic!("write: {e}"));
    match load(&CatalogSource::Dir(dir.path().to_owned())) {
        Ok(loaded) => loaded,
        Err(diags) => panic!("test catalog does not load: {diags:?}"),
    }
}

fn queue_page() -> String {
    let generated = generated(&Examples::none());
    match generated.pages.get("resources/queue.md") {
        Some(page) => page.clone(),
        None => panic!("no resources/queue.md in {:?}", generated.pages.keys()),
    }
}

fn generated(examples: &Examples) -> Generated {
    generate(&loaded(), examples).unwrap_or_else(|e| panic!("generate: {e}"))
}

/// `block` (several whole lines) appears in `page` as it is.
#[track_caller]
fn assert_block(page: &str, block: &str) {
    assert!(
        page.contains(&format!("\n{block}\n")),
        "expected these lines:\n{block}\n--- in the page:\n{page}"
    );
}

#[test]
fn guardrails_defaults_and_flags() {
    let page = queue_page();
    assert_block(
        &page,
        "### Required

- `name` (String)
  - Must match `^[a-z]+$`.
  - Length 3 to 20.
  - Cannot be changed after creation (a change is a plan error).",
    );
    assert_block(
        &page,
        "### Optional

- `features` (Set of String) Defaults to `[\"dlq\"]`.
  - Each element one of: `dlq`, `fifo`.
  - At most 2 elements.
- `labels` (Map of String) Free-form labels.
- `limits` (Map of Number) Defaults to `{}`.
  - Each value at most 100.
- `offering_version` (String) Catalog version of the offering; defaults to the current version (2.0.0). See [Versions and Lifecycle](#versions-and-lifecycle).
- `size` (Number) Partitions. Defaults to `4`.
  - At least 1.
  - Can only grow: numbers may not decrease, collections may only gain elements, other values may not change (a shrinking change is a plan error).
- `team` (String) Owning team (cost and policy attribution). Defaults to the provider's default_team. A plan with neither fails.
- `tier` (String) Service tier, one of: dev, prod. Defaults to dev. See [Tiers](#tiers).
- `token` (String, Sensitive) Has a default (sensitive, not shown).
  - Changing it replaces the instance.",
    );
    assert!(
        !page.contains("s3cr3t"),
        "a sensitive default leaked:\n{page}"
    );
}

#[test]
fn tiers_table() {
    let page = queue_page();
    assert_block(
        &page,
        "| Tier | Monthly price | Approval | May change to | Values |
|------|---------------|----------|---------------|--------|
| `dev` (default) | 0.05 USD/hour = 36.50 USD per month | not required | none | — |
| `prod` | 10 EUR × `input.size` per month | required | `dev` | `replicas = 3`, `zone = \"a\"` |",
    );
}

#[test]
fn lifecycle_and_deprecation() {
    let page = queue_page();
    assert_block(
        &page,
        "| Version | Status | New instances until | Updates until | Successor |
|---------|--------|---------------------|---------------|-----------|
| `2.0.0` | current | — | — | — |
| `1.1.0` | deprecated | 2026-03-31 | 2026-09-30 | `2.0.0` |
| `1.0.0` | deprecated | — | — | — |
| `0.9.0` | retired | — | — | — |
| `3.0.0-beta.1` | preview | — | — | — |

- `2.0.0` (current): new instances get this version unless `offering_version` names another.
- `1.1.0` (deprecated): plans warn. New instances are accepted until 2026-03-31; creating one later is a plan error. Updates are accepted until 2026-09-30; after that only destroy is possible. Successor: `2.0.0`.
- `1.0.0` (deprecated): plans warn. New instances are still accepted. Updates are still accepted.
- `0.9.0` (retired): can only be destroyed: a plan that creates or changes an instance fails.
- `3.0.0-beta.1` (preview): plans that create an instance warn: a preview may change incompatibly before it becomes current.",
    );
}

#[test]
fn front_matter_owner_and_import() {
    let page = queue_page();
    assert!(
        page.starts_with(
            "---
page_title: \"acme_queue Resource - terraform-provider-platform\"
subcategory: \"messaging\"
description: |-
  Message queue: A queue with partitions.
---

# acme_queue (Resource)
"
        ),
        "{page}"
    );
    assert_block(&page, "- **Owner:** messaging");
    // No import.sh: the id format is derived from the same inputs as the
    // provider's import (the required string inputs).
    assert_block(
        &page,
        "```shell
terraform import acme_queue.example <name>
```",
    );
    assert!(!page.contains("## Example Usage"), "{page}");
}

/// The argument and attribute reference lists exactly the attributes of
/// the schema the provider serves, each once, in the right section.
#[test]
fn reference_matches_the_served_schema() {
    let loaded = loaded();
    let page = queue_page();
    let Some((_, schema)) = loaded.schemas.resources.get("acme_queue") else {
        panic!("no acme_queue schema");
    };
    let section = |start: &str, end: &str| -> String {
        let from = page.find(start).unwrap_or_else(|| panic!("no {start}"));
        let to = page[from..].find(end).map_or(page.len(), |i| from + i);
        page[from..to].to_owned()
    };
    let required = section("### Required", "### Optional");
    let optional = section("### Optional", "## Attribute Reference");
    let computed = section("## Attribute Reference", "## Tiers");
    let mut listed = 0;
    for attr in &schema.attributes {
        let bullet = format!("\n- `{}` (", attr.name);
        let expected = match attr.flags {
            Flags::Required => &required,
            Flags::Optional | Flags::OptionalComputed => &optional,
            Flags::Computed => &computed,
        };
        assert_eq!(
            expected.matches(&bullet).count(),
            1,
            "{} in the wrong section:\n{page}",
            attr.name
        );
        listed += 1;
    }
    let bullets = [&required, &optional, &computed]
        .iter()
        .map(|s| s.matches("\n- `").count())
        .sum::<usize>();
    assert_eq!(
        bullets, listed,
        "the page lists attributes the schema lacks"
    );
}

#[test]
fn json_schema_per_version() {
    let generated = generated(&Examples::none());
    let paths: Vec<&String> = generated.schemas.keys().collect();
    assert_eq!(
        paths,
        [
            "queue/0.9.0.schema.json",
            "queue/1.0.0.schema.json",
            "queue/1.1.0.schema.json",
            "queue/2.0.0.schema.json",
            "queue/3.0.0-beta.1.schema.json",
        ]
    );
    let text = &generated.schemas["queue/2.0.0.schema.json"];
    let schema: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let get = |pointer: &str| -> String {
        schema
            .pointer(pointer)
            .map(|v| v.to_string())
            .unwrap_or_else(|| panic!("no {pointer} in {text}"))
    };
    assert_eq!(
        get("/$schema"),
        "\"https://json-schema.org/draft/2020-12/schema\""
    );
    assert_eq!(get("/required"), "[\"name\"]");
    assert_eq!(get("/additionalProperties"), "false");
    assert_eq!(get("/properties/name/pattern"), "\"^[a-z]+$\"");
    assert_eq!(get("/properties/name/minLength"), "3");
    assert_eq!(get("/properties/name/maxLength"), "20");
    assert_eq!(get("/properties/name/x-on-change"), "\"reject\"");
    assert_eq!(get("/properties/size/type"), "\"number\"");
    assert_eq!(get("/properties/size/minimum"), "1");
    assert_eq!(get("/properties/size/default"), "4");
    assert_eq!(get("/properties/features/items/enum"), "[\"dlq\",\"fifo\"]");
    assert_eq!(get("/properties/features/uniqueItems"), "true");
    assert_eq!(get("/properties/features/maxItems"), "2");
    assert_eq!(
        get("/properties/limits/additionalProperties/maximum"),
        "100"
    );
    assert_eq!(get("/properties/token/writeOnly"), "true");
    assert!(schema.pointer("/properties/token/default").is_none());
    assert_eq!(get("/properties/tier/enum"), "[\"dev\",\"prod\"]");
    assert_eq!(get("/properties/tier/default"), "\"dev\"");
    assert_eq!(get("/properties/offering_version/const"), "\"2.0.0\"");
    assert!(schema.pointer("/deprecated").is_none());
    assert_eq!(get("/x-platform/tiers/1/quantity"), "\"input.size\"");
    assert_eq!(get("/x-platform/tiers/0/monthly_price"), "36.5");

    let old: serde_json::Value =
        serde_json::from_str(&generated.schemas["queue/1.1.0.schema.json"])
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        old.pointer("/deprecated"),
        Some(&serde_json::Value::Bool(true))
    );
    assert_eq!(
        old.pointer("/x-platform/deprecation/create_until"),
        Some(&serde_json::Value::String("2026-03-31".into()))
    );
}

#[test]
fn output_is_deterministic_and_embedded_equals_the_directory() {
    let first = generated(&Examples::none());
    assert_eq!(first, generated(&Examples::none()));
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let embedded = load(&CatalogSource::Embedded).unwrap_or_else(|e| panic!("{e:?}"));
    let dir =
        load(&CatalogSource::Dir(examples.join("catalogs"))).unwrap_or_else(|e| panic!("{e:?}"));
    let examples = Examples::dir(examples);
    assert_eq!(
        generate(&embedded, &examples),
        generate(&dir, &examples),
        "the compiled-in catalog and examples/catalogs give different docs"
    );
}

fn files(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn write_and_compare() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = dir.path();
    std::fs::write(root.join("policy-input.md"), "not ours").unwrap_or_else(|e| panic!("{e}"));
    let pages = files(&[("index.md", "index\n"), ("resources/a.md", "a\nb\n")]);
    assert_eq!(write(&pages, root, Owned::Pages), Ok(Vec::new()));
    assert_eq!(compare(&pages, root, Owned::Pages), Ok(Vec::new()));

    std::fs::write(root.join("resources/a.md"), "a\nB\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join("resources/old.md"), "old").unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(root.join("index.md")).unwrap_or_else(|e| panic!("{e}"));
    let differences = compare(&pages, root, Owned::Pages).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        differences,
        vec![
            Difference::Missing(root.join("index.md")),
            Difference::Changed {
                path: root.join("resources/a.md"),
                line: 2,
                generated: Some("b".into()),
                found: Some("B".into()),
            },
            Difference::Stale(root.join("resources/old.md")),
        ]
    );
    assert_eq!(
        differences[1].to_string(),
        format!(
            "{}:2: differs from the generated text\n    generated: \"b\"\n    found:     \"B\"",
            root.join("resources/a.md").display()
        )
    );

    // Writing repairs all three and leaves files it does not own alone.
    assert_eq!(
        write(&pages, root, Owned::Pages),
        Ok(vec!["resources/old.md".to_owned()])
    );
    assert_eq!(compare(&pages, root, Owned::Pages), Ok(Vec::new()));
    assert!(root.join("policy-input.md").is_file());

    // A missing final newline is a difference too.
    std::fs::write(root.join("index.md"), "index").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        compare(&pages, root, Owned::Pages),
        Ok(vec![Difference::Changed {
            path: root.join("index.md"),
            line: 2,
            generated: Some(String::new()),
            found: None,
        }])
    );
}

#[test]
fn args() {
    let parse =
        |args: &[&str]| Args::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>());
    let parsed = parse(&[
        "--catalog",
        "cat",
        "--out=docs",
        "--schemas",
        "docs/schemas",
        "--check",
    ]);
    assert_eq!(
        parsed,
        Ok(Args {
            catalog: Some("cat".into()),
            out: Some("docs".into()),
            schemas: Some("docs/schemas".into()),
            examples: None,
            check: true,
            help: false,
        })
    );
    assert_eq!(
        parsed.map(|a| a.regenerate_command()),
        Ok("cargo run -q -p terraform-provider-platform -- docs --catalog cat --out docs --schemas docs/schemas".to_owned())
    );
    assert_eq!(parse(&["--out"]), Err("--out needs a directory".to_owned()));
    assert_eq!(
        parse(&["--out", "a", "--out", "b"]),
        Err("--out given twice".to_owned())
    );
    assert_eq!(
        parse(&["--bogus"]),
        Err("unknown argument \"--bogus\"".to_owned())
    );
    assert_eq!(
        parse(&["--check=yes"]),
        Err("unknown argument \"--check=yes\"".to_owned())
    );
}

fn example_catalog_pages() -> Generated {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let embedded = load(&CatalogSource::Embedded).unwrap_or_else(|e| panic!("{e:?}"));
    generate(&embedded, &Examples::dir(examples)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn index_documents_the_provider_block() {
    let generated = example_catalog_pages();
    let index = &generated.pages["index.md"];
    // The example comes from examples/provider/provider.tf, verbatim.
    assert_block(index, "  postgres {\n    host     = \"127.0.0.1\"");
    assert_block(
        index,
        "| [platform_postgres_database](resources/postgres_database.md) | PostgreSQL database | data-platform (#data-platform) | 1.2.0 (current) | `small` 25 USD per month, `standard` 140 USD per month |",
    );
    assert_block(
        index,
        "### Optional

- `default_team` (String) Team recorded on resources that set no `team`.
- `postgres` (Block, Optional) Connection to the PostgreSQL cluster the postgres.* drivers provision on. Unset fields fall back to the PG* environment variables. (see [below for nested schema](#nestedblock--postgres))
- `redis` (Block, Optional) Connection to the Redis server the redis.* drivers provision on. Unset fields fall back to REDIS_URL. (see [below for nested schema](#nestedblock--redis))

<a id=\"nestedblock--postgres\"></a>
### Nested Schema for `postgres`

Optional:

- `database` (String) Maintenance database to connect to (else PGDATABASE, else postgres).
- `grantable_roles` (List of String) Existing roles without the platform's ownership marker that roles may join (member_of) and grants may name. Empty by default. Never widens past the hard refusals: the provider's own role, superusers, pg_* roles and roles with CREATEROLE, REPLICATION or BYPASSRLS (or members of those) are refused regardless.
- `grantable_schemas` (List of String) Existing schemas without the ownership marker, as \"database.schema\", that grants may be made on. Empty by default.
- `host` (String) Host name, IP address or unix socket directory (else PGHOST).
- `password` (String, Sensitive) Password of that role (else PGPASSWORD).",
    );
}

#[test]
fn data_source_and_ephemeral_pages() {
    let generated = example_catalog_pages();
    let offering = &generated.pages["data-sources/offering.md"];
    assert_block(
        offering,
        "- `tiers` (List of Object) Tiers of the current version with their prices. (see [below for nested schema](#nestedatt--tiers))",
    );
    assert_block(
        offering,
        "<a id=\"nestedatt--tiers\"></a>
### Nested Schema for `tiers`

Read-Only:

- `amount` (Number)
- `currency` (String)
- `name` (String)
- `requires_approval` (Boolean)
- `unit` (String)",
    );
    let catalog = &generated.pages["data-sources/catalog.md"];
    assert_block(catalog, "This has no arguments.");
    assert_block(catalog, "These attributes are exported:");
    assert_block(
        catalog,
        "<a id=\"nestedatt--offerings--versions\"></a>\n### Nested Schema for `offerings.versions`",
    );
    let credentials = &generated.pages["ephemeral-resources/postgres_credentials.md"];
    assert_block(
        credentials,
        "- `uri` (String, Sensitive) postgres:// connection URI with the password.",
    );
    assert_block(
        credentials,
        "ephemeral \"platform_postgres_credentials\" \"ci\" {",
    );
}
