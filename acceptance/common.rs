//! Helpers shared by the acceptance scenarios (on top of `harness`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::harness::*;

/// The provider block every scenario uses unless it tests `team` itself.
pub const PROVIDER_BLOCK: &str = r#"provider "platform" {
  default_team = "checkout"
}
"#;

/// Resource address of the quickstart's database.
pub const QUICKSTART_ADDR: &str = "platform_postgres_database.orders";

/// `examples/quickstart/main.tf`, read at run time (the test copies it into its work dir).
pub fn quickstart_main_tf() -> String {
    let p = repo_root().join("examples/quickstart/main.tf");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// A catalog directory under `acceptance/catalogs/`.
pub fn test_catalog(name: &str) -> PathBuf {
    let dir = repo_root().join("acceptance/catalogs").join(name);
    assert!(dir.is_dir(), "missing test catalog {}", dir.display());
    dir
}

/// Runs `f` once per terraform binary, with a `[label]` context string for messages,
/// and prints how long each binary took. A binary that fails (panics) does not
/// stop the others: every binary runs, then the test fails naming those that failed
/// (each one's own panic message is printed as it happens).
pub fn for_each_bin(test: &str, mut f: impl FnMut(&Path, &str)) {
    let mut failed = Vec::new();
    for bin in terraform_bins() {
        let ctx = format!("[{test} / {}]", bin_label(&bin));
        let start = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&bin, &ctx)));
        match result {
            Ok(()) => eprintln!("{ctx} passed in {:.2?}", start.elapsed()),
            Err(_) => {
                eprintln!("{ctx} FAILED after {:.2?}", start.elapsed());
                failed.push(ctx);
            }
        }
    }
    if !failed.is_empty() {
        panic!("failed on: {}", failed.join(", "));
    }
}

/// 1-based line number of the first line of `text` containing `needle`.
#[track_caller]
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not found in:\n{text}"))
}

/// stdout + stderr with Terraform's box-drawing gutter removed and all runs of
/// whitespace collapsed to one space, so wrapped diagnostic text can be matched.
pub fn normalized(out: &Output) -> String {
    let joined = format!("{}\n{}", out.stdout, out.stderr);
    joined
        .replace(['│', '╷', '╵'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Panics unless the normalized output (see [`normalized`]) contains `needle`
/// (whose own whitespace is normalized too).
#[track_caller]
pub fn assert_contains_norm(out: &Output, ctx: &str, needle: &str) {
    let needle = needle.split_whitespace().collect::<Vec<_>>().join(" ");
    if !normalized(out).contains(&needle) {
        panic!("{ctx} expected output to contain {needle:?}:\n{out}");
    }
}

/// True when some single line of stdout or stderr contains every part, in order.
pub fn has_line(out: &Output, parts: &[&str]) -> bool {
    out.stdout.lines().chain(out.stderr.lines()).any(|line| {
        let mut rest = line;
        parts.iter().all(|p| match rest.find(p) {
            Some(at) => {
                rest = &rest[at + p.len()..];
                true
            }
            None => false,
        })
    })
}

#[track_caller]
pub fn assert_line(out: &Output, ctx: &str, parts: &[&str]) {
    if !has_line(out, parts) {
        panic!("{ctx} expected a line containing {parts:?} (in order):\n{out}");
    }
}

/// Number of error diagnostics Terraform printed (`Error: ` at the start of a diagnostic).
pub fn count_errors(out: &Output) -> usize {
    out.stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| {
            let l = l.trim_start_matches(['│', '╷', '╵', ' ']);
            l.starts_with("Error: ")
        })
        .count()
}

/// The provider must never crash, whatever it is given.
#[track_caller]
pub fn assert_no_crash(out: &Output, ctx: &str) {
    for bad in [
        "panic",
        "The plugin encountered an error, and failed to respond",
        "Plugin did not respond",
        "plugin exited before",
        "Provider produced invalid",
        "Provider produced inconsistent",
    ] {
        if contains(out, bad) {
            panic!("{ctx} output contains {bad:?}:\n{out}");
        }
    }
}

/// Runs `terraform plan -out=<file>` then `terraform show -json <file>` and returns the JSON.
#[track_caller]
pub fn plan_json(
    wd: &Workdir,
    bin: &Path,
    ctx: &str,
    extra: &[&str],
) -> (Output, serde_json::Value) {
    let mut args = vec!["plan", "-input=false", "-out=tfplan"];
    args.extend_from_slice(extra);
    let plan = wd.tf(bin, &args);
    if !plan.success() {
        panic!("{ctx} plan -out failed:\n{plan}");
    }
    let show = wd.tf(bin, &["show", "-json", "tfplan"]);
    if !show.success() {
        panic!("{ctx} show -json failed:\n{show}");
    }
    let json = stdout_json(&show);
    (plan, json)
}

/// The `planned_values` entry of `address` in a `show -json` plan.
#[track_caller]
pub fn planned_resource<'a>(plan: &'a serde_json::Value, address: &str) -> &'a serde_json::Value {
    plan["planned_values"]["root_module"]["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["address"] == address))
        .unwrap_or_else(|| panic!("no planned value for {address} in:\n{plan:#}"))
}

/// The `resource_changes` entry of `address` in a `show -json` plan.
#[track_caller]
pub fn resource_change<'a>(plan: &'a serde_json::Value, address: &str) -> &'a serde_json::Value {
    plan["resource_changes"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["address"] == address))
        .unwrap_or_else(|| panic!("no resource change for {address} in:\n{plan:#}"))
}

/// A JSON number as f64 (the workspace builds serde_json with arbitrary_precision).
pub fn num(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `terraform providers schema -json`, parsed; the platform provider's entry.
#[track_caller]
pub fn platform_schema(wd: &Workdir, bin: &Path, ctx: &str) -> serde_json::Value {
    let out = wd.tf(bin, &["providers", "schema", "-json"]);
    if !out.success() {
        panic!("{ctx} providers schema -json failed:\n{out}");
    }
    let json = stdout_json(&out);
    let schema = json["provider_schemas"][PROVIDER_FQN].clone();
    assert!(
        schema.is_object(),
        "{ctx} no schema for {PROVIDER_FQN} in:\n{json:#}"
    );
    schema
}

/// Standard base64 (with padding), for the `private` field of a state file.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// One managed resource instance of a hand-made state file.
pub struct StateInstance<'a> {
    pub type_name: &'a str,
    pub name: &'a str,
    /// Every attribute of the resource schema.
    pub attributes: serde_json::Value,
    /// What the provider records in private state (`PlanPrivate`).
    pub catalog_digest: &'a str,
    pub offering_version: &'a str,
}

/// Writes `work/terraform.tfstate` (format version 4, as Terraform 1.0.3 writes it,
/// so every newer Terraform reads it too) holding `instances`.
pub fn write_state(wd: &Workdir, instances: &[StateInstance]) {
    let resources: Vec<serde_json::Value> = instances
        .iter()
        .map(|i| {
            let private = serde_json::json!({
                "catalog_digest": i.catalog_digest,
                "offering_version": i.offering_version,
            })
            .to_string();
            serde_json::json!({
                "mode": "managed",
                "type": i.type_name,
                "name": i.name,
                "provider": format!("provider[\"{PROVIDER_FQN}\"]"),
                "instances": [{
                    "schema_version": 0,
                    "attributes": i.attributes,
                    "sensitive_attributes": [],
                    "private": base64(private.as_bytes()),
                }],
            })
        })
        .collect();
    let state = serde_json::json!({
        "version": 4,
        "terraform_version": "1.0.3",
        "serial": 1,
        "lineage": "7b2c52f4-6a49-4c1e-9d0e-3f0a3e8c1d11",
        "outputs": {},
        "resources": resources,
    });
    wd.write(
        "terraform.tfstate",
        &serde_json::to_string_pretty(&state).expect("state JSON"),
    );
}

/// The catalog digest, read through the `platform_catalog` data source
/// (`plan -out` + `show -json` of a config holding only that data source).
/// Uses a scratch work dir with the same environment variables as `env`.
#[track_caller]
pub fn catalog_digest(bin: &Path, ctx: &str, env: &[(&str, &str)]) -> String {
    let mut wd = Workdir::dev_overrides();
    for (k, v) in env {
        wd.set_env(k, v);
    }
    wd.write(
        "main.tf",
        &format!(
            "{REQUIRED_PLATFORM}\ndata \"platform_catalog\" \"all\" {{}}\n\noutput \"digest\" {{\n  value = data.platform_catalog.all.digest\n}}\n"
        ),
    );
    let (_, json) = plan_json(&wd, bin, ctx, &[]);
    let digest = json["planned_values"]["outputs"]["digest"]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx} no digest output in {json:#}"))
        .to_owned();
    assert!(digest.starts_with("sha256:"), "{ctx} digest {digest:?}");
    digest
}

/// Attribute names of a resource type in `providers schema -json`, sorted.
pub fn schema_attribute_names(schema: &serde_json::Value, type_name: &str) -> Vec<String> {
    let mut names: Vec<String> = schema["resource_schemas"][type_name]["block"]["attributes"]
        .as_object()
        .map(|attrs| attrs.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}
