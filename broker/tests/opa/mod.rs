//! Differential test against real OPA: the broker must give OPA's answer.
//!
//! For every policy set of the corpus (`broker/tests/opa/corpus/<set>/`) and
//! every input plan (the `terraform show -json` fixtures plus generated
//! plans), `platform-broker policy eval --plan P --input-out I --json` is run
//! with the compiled evaluator (`PLATFORM_POLICY_ENGINE=compiled`, the
//! default) and with regorus's interpreter alone (`=interpreter`). The input
//! document it wrote is evaluated by real OPA (`oracle.py`, OPA's Go library
//! from `$OPA_PYTHONPATH`, installed by `scripts/setup --test`) rule by
//! rule, and OPA's rule values are turned into findings the way the broker
//! does (`collect_findings` in `src/policy/engine.rs`). Findings (rule,
//! address, message) must be equal per rule; where OPA errors on a rule the
//! broker must fail closed (a policy error), and the broker must not error
//! where OPA does not.
//!
//! Every disagreement is reported. The ones known today are listed in
//! [`KNOWN_DIFFERENCES`] (set, rule, reason) so the suite stays green; an
//! entry that starts agreeing fails the test, so the list only shrinks.
//!
//! Runs without TF_ACC (no Terraform, no database), but needs OPA: without
//! `OPA_PYTHONPATH` it prints a SKIPPED notice that `scripts/test` counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Value as Json, json};

/// (set, rule, reason): disagreements with OPA known today. An entry that
/// agrees again (on every input and both engines) is a test failure: delete it.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[(
    "plain_v1",
    "warn_costs",
    "a number as the message: OPA keeps the input's number text (25.0), the broker prints 25",
)];

/// The broker's two evaluators; both must give OPA's answer.
const ENGINES: &[&str] = &["compiled", "interpreter"];

/// A policy set of the corpus.
#[derive(Debug, Clone)]
struct Set {
    name: String,
    dir: PathBuf,
    /// `v0` for sets named `*_v0*` (older conftest syntax), else `v1`.
    dialect: &'static str,
    /// (full path `data.platform.….deny_x`, rule id `deny_x`), sorted.
    rules: Vec<(String, String)>,
}

/// One finding: (rule id, address, message).
type Finding = (String, Option<String>, String);

/// What the broker said about one set on one input.
#[derive(Debug, Clone)]
enum Outcome {
    Findings(BTreeMap<String, BTreeSet<Finding>>),
    /// A policy error (evaluation, load or timeout): the run failed closed.
    Error(String),
}

/// What OPA said about one rule on one input.
#[derive(Debug, Clone)]
enum Oracle {
    Findings(BTreeSet<Finding>),
    Error(String),
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/opa/corpus")
}

fn opa_pythonpath() -> Option<PathBuf> {
    let why = match std::env::var_os("OPA_PYTHONPATH") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            if p.join("opa_bindings/engine.py").is_file() {
                return Some(p);
            }
            format!(
                "set OPA_PYTHONPATH to an installed OPA: {} holds no opa_bindings (scripts/setup --test installs it)",
                p.display()
            )
        }
        _ => "set OPA_PYTHONPATH (scripts/setup --test installs OPA, scripts/test sets it)"
            .to_string(),
    };
    let name = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!();
    eprintln!("************************************************************");
    eprintln!("** SKIPPED: {name}");
    eprintln!("** SKIPPED: {why}");
    eprintln!("************************************************************");
    None
}

/// Every set of the corpus with its `deny_*`/`warn_*` rules (heads at column
/// 0 of files under `package platform.…`).
fn corpus_sets() -> Vec<Set> {
    let mut sets = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let mut files = Vec::new();
        rego_files(&dir, &mut files);
        let mut rules = BTreeSet::new();
        for file in &files {
            let text = std::fs::read_to_string(file).expect("read rego");
            let Some(package) = text
                .lines()
                .find_map(|l| l.strip_prefix("package "))
                .map(str::trim)
            else {
                continue;
            };
            if !package.starts_with("platform.") {
                continue;
            }
            for line in text.lines() {
                let id: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if id.starts_with("deny_") || id.starts_with("warn_") {
                    rules.insert((format!("data.{package}.{id}"), id));
                }
            }
        }
        assert!(!rules.is_empty(), "corpus set {name} declares no rules");
        let dialect = if name.contains("_v0") { "v0" } else { "v1" };
        sets.push(Set {
            name,
            dir,
            dialect,
            rules: rules.into_iter().collect(),
        });
    }
    sets
}

fn rego_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read set dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rego_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rego") {
            out.push(path);
        }
    }
    out.sort();
}

// ---------------------------------------------------------------------------
// Generated plans

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const TEAMS: &[&str] = &[
    "team-checkout",
    "team-data",
    "Platform",
    "team-search",
    "ops",
];
const ENVS: &[&str] = &["production", "staging", "development", "default"];

fn tags(rng: &mut Rng, env: &str) -> Json {
    let mut t = serde_json::Map::new();
    if rng.chance(80) {
        t.insert("owner".into(), json!(rng.pick(TEAMS)));
    }
    if rng.chance(70) {
        let cc = if rng.chance(85) {
            format!("CC-{:04}", rng.below(10_000))
        } else {
            format!("cc{}", rng.below(100))
        };
        t.insert("cost-center".into(), json!(cc));
    }
    if rng.chance(75) {
        let e = if rng.chance(85) { env } else { rng.pick(ENVS) };
        t.insert("environment".into(), json!(e));
    }
    if rng.chance(10) {
        t.insert("protected".into(), json!("true"));
    }
    if rng.chance(8) {
        t.insert(
            "expires".into(),
            json!(format!("2025-0{}-1{}", 1 + rng.below(9), rng.below(10))),
        );
    }
    for i in 0..rng.below(4) {
        t.insert(format!("extra{i}"), json!(format!("v{}", rng.below(50))));
    }
    Json::Object(t)
}

/// `after` of one resource of `ty`, its `after_unknown` and `after_sensitive`.
fn attributes(rng: &mut Rng, ty: &str, name: &str, env: &str) -> (Json, Json, Json) {
    match ty {
        "aws_s3_bucket" => {
            let bucket = match rng.below(5) {
                0 => format!("acme-{env}-{name}"),
                1 => format!("acme-{env}-{name}-logs-archive-eu-west-1"),
                2 => format!("{name}-legacy"),
                3 => format!("Acme_{name}"),
                _ => format!("acme-{}-{name}", rng.pick(ENVS)),
            };
            let sse = if rng.chance(70) {
                let mut d = json!({"sse_algorithm": *rng.pick(&["aws:kms", "AES256", "none"])});
                if rng.chance(50) {
                    d["kms_master_key_id"] = json!(format!("key-{}", rng.below(4)));
                }
                json!([{"rule": [{"apply_server_side_encryption_by_default": [d], "bucket_key_enabled": rng.chance(50)}]}])
            } else {
                json!([])
            };
            (
                json!({
                    "bucket": bucket,
                    "acl": rng.pick(&["private", "private", "public-read", "authenticated-read", "log-delivery-write"]),
                    "force_destroy": rng.chance(20),
                    "tags": tags(rng, env),
                    "server_side_encryption_configuration": sse,
                    "versioning": [{"enabled": rng.chance(60), "mfa_delete": false}],
                }),
                json!({"id": true, "arn": true, "bucket_domain_name": true, "tags": {}, "versioning": [{}]}),
                json!({"tags": {}, "versioning": [{}]}),
            )
        }
        "aws_s3_bucket_public_access_block" => (
            json!({
                "bucket": format!("acme-{name}"),
                "block_public_acls": rng.chance(80),
                "block_public_policy": rng.chance(80),
                "ignore_public_acls": rng.chance(90),
                "restrict_public_buckets": rng.chance(90),
            }),
            json!({"id": true}),
            json!({}),
        ),
        "aws_instance" => {
            let itype = *rng.pick(&[
                "t3.micro", "t3.small", "t3.medium", "m5.large", "m5.xlarge", "c5.large", "x1e.32xlarge",
                "t2.nano",
            ]);
            let mut after = json!({
                "ami": format!("ami-{:08x}", rng.next() as u32),
                "instance_type": itype,
                "tags": tags(rng, env),
                "root_block_device": [{
                    "volume_size": *rng.pick(&[8, 20, 50, 120, 500]),
                    "encrypted": rng.chance(70),
                    "volume_type": "gp3",
                }],
                "metadata_options": if rng.chance(60) {
                    json!([{"http_tokens": rng.pick(&["required", "optional"]), "http_endpoint": "enabled"}])
                } else {
                    json!([])
                },
            });
            let mut unknown = json!({"id": true, "arn": true, "private_ip": true, "public_ip": true, "tags": {}, "root_block_device": [{"volume_id": true}]});
            if rng.chance(10) {
                after.as_object_mut().expect("object").remove("instance_type");
                unknown["instance_type"] = json!(true);
            }
            let sensitive = if rng.chance(15) {
                after["user_data"] = json!("#!/bin/sh\necho secret");
                json!({"user_data": true, "tags": {}})
            } else {
                json!({"tags": {}})
            };
            (after, unknown, sensitive)
        }
        "aws_security_group" => {
            let mut ingress = Vec::new();
            for i in 0..1 + rng.below(4) {
                let from = *rng.pick(&[22, 80, 443, 3389, 5432, 0, 8000]);
                let to = if from == 0 { 65535 } else if rng.chance(20) { from + 2000 } else { from };
                let cidrs: Vec<&str> = (0..rng.below(3) + 1)
                    .map(|_| *rng.pick(&["0.0.0.0/0", "10.0.0.0/16", "10.1.2.0/24", "192.168.1.0/24", "172.16.0.0/12", "203.0.113.0/24"]))
                    .collect();
                let mut rule = json!({
                    "from_port": from,
                    "to_port": to,
                    "protocol": if from == 0 && rng.chance(50) { "-1" } else { "tcp" },
                    "cidr_blocks": cidrs,
                    "ipv6_cidr_blocks": if rng.chance(15) { json!(["::/0"]) } else { json!([]) },
                    "self": false,
                });
                if rng.chance(60) {
                    rule["description"] = json!(format!("rule {i} for \"{name}\""));
                }
                ingress.push(rule);
            }
            (
                json!({
                    "name": name,
                    "description": "Managed by Terraform",
                    "ingress": ingress,
                    "egress": [{"from_port": 0, "to_port": 0, "protocol": "-1", "cidr_blocks": ["0.0.0.0/0"]}],
                    "tags": tags(rng, env),
                }),
                json!({"id": true, "arn": true, "owner_id": true, "vpc_id": true}),
                json!({}),
            )
        }
        "aws_db_instance" => (
            json!({
                "identifier": name,
                "engine": "postgres",
                "engine_version": *rng.pick(&["14.9", "15.4", "16.1"]),
                "instance_class": *rng.pick(&["db.t3.micro", "db.m5.large", "db.r5.2xlarge"]),
                "allocated_storage": *rng.pick(&[20, 100, 250, 1000]),
                "storage_encrypted": rng.chance(75),
                "publicly_accessible": rng.chance(15),
                "deletion_protection": rng.chance(50),
                "username": "admin",
                "password": format!("hunter{}", rng.below(100)),
                "tags": tags(rng, env),
            }),
            json!({"id": true, "endpoint": true, "address": true}),
            json!({"password": true, "tags": {}}),
        ),
        "aws_ebs_volume" => (
            json!({
                "availability_zone": "eu-west-1a",
                "size": *rng.pick(&[10, 50, 100, 200, 750, 1024]),
                "type": *rng.pick(&["gp2", "gp3", "io2"]),
                "encrypted": rng.chance(70),
                "tags": tags(rng, env),
            }),
            json!({"id": true, "arn": true, "iops": true}),
            json!({"tags": {}}),
        ),
        "google_compute_instance" => {
            let mut labels = serde_json::Map::new();
            labels.insert("team".into(), json!(rng.pick(TEAMS).to_lowercase()));
            if rng.chance(20) {
                labels.insert("CostCenter".into(), json!("x"));
            }
            (
                json!({
                    "name": name,
                    "machine_type": *rng.pick(&["e2-medium", "n2-standard-4", "c2-standard-8", "n2d-highmem-2", "m1-ultramem-40"]),
                    "zone": *rng.pick(&["europe-west1-b", "us-central1-a", "europe-north1-a"]),
                    "labels": labels,
                    "boot_disk": [{"initialize_params": [{"image": "debian-12", "size": 20}]}],
                    "network_interface": [{"network": "default", "access_config": [{"nat_ip": null}]}],
                }),
                json!({"id": true, "instance_id": true, "network_interface": [{"network_ip": true}]}),
                json!({}),
            )
        }
        "google_storage_bucket" => (
            json!({
                "name": format!("acme-{name}"),
                "location": *rng.pick(&["EU", "US", "europe-west1"]),
                "uniform_bucket_level_access": rng.chance(70),
                "labels": {"env": env},
                "versioning": [{"enabled": true}],
            }),
            json!({"id": true, "self_link": true, "url": true}),
            json!({}),
        ),
        "azurerm_storage_account" => (
            json!({
                "name": name.replace('_', ""),
                "resource_group_name": "rg-main",
                "location": "westeurope",
                "account_tier": "Standard",
                "account_replication_type": *rng.pick(&["LRS", "ZRS", "GRS", "RAGRS", "GZRS"]),
                "min_tls_version": *rng.pick(&["TLS1_2", "TLS1_2", "TLS1_0"]),
                "https_traffic_only_enabled": rng.chance(85),
                "tags": tags(rng, env),
            }),
            json!({"id": true, "primary_access_key": true, "primary_blob_endpoint": true}),
            json!({"primary_access_key": true, "tags": {}}),
        ),
        "azurerm_linux_virtual_machine" => (
            json!({
                "name": name,
                "size": *rng.pick(&["Standard_B2s", "Standard_D4s_v5", "Standard_E8s_v5", "Standard_F2"]),
                "admin_username": "azureuser",
                "admin_ssh_key": [{"username": "azureuser", "public_key": "ssh-ed25519 AAAA"}],
                "os_disk": [{"caching": "ReadWrite", "storage_account_type": "Premium_LRS", "disk_size_gb": 64}],
                "tags": tags(rng, env),
            }),
            json!({"id": true, "private_ip_address": true}),
            json!({"tags": {}}),
        ),
        "platform_postgres_database" => {
            let mut labels = serde_json::Map::new();
            labels.insert("service".into(), json!(format!("{name}-api")));
            (
                json!({
                    "name": if rng.chance(15) { "shared".to_string() } else { name.to_string() },
                    "tier": *rng.pick(&["small", "small", "standard", "large", "premium"]),
                    "team": if rng.chance(90) { rng.pick(TEAMS).to_string() } else { String::new() },
                    "connection_limit": *rng.pick(&[20, 50, 100, 200]),
                    "extensions": if rng.chance(30) { json!(["pgcrypto", "postgis"]) } else { json!([]) },
                    "labels": labels,
                    "monthly_cost": *rng.pick(&[25, 140, 600]),
                    "offering_version": *rng.pick(&["1.2.0", "1.1.0", "1.0.0"]),
                    "status": "current",
                }),
                json!({"id": true, "connection_uri": true, "owner_role": true, "extensions": [], "labels": {}}),
                json!({"connection_uri": true, "extensions": [], "labels": {}}),
            )
        }
        _ /* platform_cache */ => (
            json!({
                "name": name,
                "team": rng.pick(TEAMS),
                "memory": *rng.pick(&["512M", "4G", "16G", "2Gi"]),
                "tags": tags(rng, env),
            }),
            json!({"id": true, "endpoint": true}),
            json!({"tags": {}}),
        ),
    }
}

const TYPES: &[&str] = &[
    "aws_s3_bucket",
    "aws_s3_bucket",
    "aws_s3_bucket_public_access_block",
    "aws_instance",
    "aws_instance",
    "aws_security_group",
    "aws_security_group",
    "aws_db_instance",
    "aws_ebs_volume",
    "aws_ebs_volume",
    "google_compute_instance",
    "google_storage_bucket",
    "azurerm_storage_account",
    "azurerm_linux_virtual_machine",
    "platform_postgres_database",
    "platform_postgres_database",
    "platform_cache",
];

const NAMES: &[&str] = &[
    "main",
    "logs",
    "orders",
    "Billing",
    "search",
    "assets",
    "legacy_store",
    "web",
];

/// A `terraform show -json` document of `n` resource changes, deterministic for `seed`.
fn generated_plan(seed: u64, n: usize, env: &str) -> Json {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut changes = Vec::with_capacity(n);
    let mut drift = Vec::new();
    for i in 0..n {
        let ty = *rng.pick(TYPES);
        let name = format!("{}_{i}", rng.pick(NAMES));
        let module = match rng.below(4) {
            0 => Some(format!("module.{}", rng.pick(&["network", "data", "app"]))),
            1 => Some(format!(
                "module.app.module.{}[\"{}\"]",
                rng.pick(&["db", "cache"]),
                rng.pick(&["eu", "us"])
            )),
            _ => None,
        };
        let local = format!("{ty}.{name}");
        let address = match &module {
            Some(m) => format!("{m}.{local}"),
            None => local,
        };
        let actions: &[&str] = match rng.below(20) {
            0..=9 => &["create"],
            10..=13 => &["update"],
            14..=15 => &["delete"],
            16 => &["delete", "create"],
            17 => &["create", "delete"],
            18 => &["no-op"],
            _ => &["read"],
        };
        let (after, after_unknown, mut after_sensitive) = attributes(&mut rng, ty, &name, env);
        // Now and then a sensitive tag (the broker redacts its value).
        if after["tags"].get("cost-center").is_some() && rng.chance(15) {
            after_sensitive["tags"] = json!({"cost-center": true});
        }
        let (before, _, before_sensitive) = attributes(&mut rng, ty, &name, env);
        let mut before = before;
        // An update changes a few attributes of the same resource.
        if actions == ["update"] || actions == ["no-op"] {
            before = after.clone();
            if let Some(obj) = before.as_object_mut() {
                for key in [
                    "tier",
                    "instance_class",
                    "engine_version",
                    "size",
                    "acl",
                    "min_tls_version",
                ] {
                    if obj.contains_key(key) && rng.chance(60) {
                        let (other, _, _) = attributes(&mut rng, ty, &name, env);
                        if let Some(v) = other.get(key) {
                            obj.insert(key.into(), v.clone());
                        }
                    }
                }
            }
        }
        let creates = actions.contains(&"create");
        let mut change = json!({
            "actions": actions,
            "before": if creates && actions.len() == 1 { Json::Null } else { before.clone() },
            "after": if actions == ["delete"] { Json::Null } else { after },
            "after_unknown": if actions == ["delete"] { json!({}) } else { after_unknown },
            "before_sensitive": if creates && actions.len() == 1 { json!(false) } else { before_sensitive },
            "after_sensitive": if actions == ["delete"] { json!(false) } else { after_sensitive },
        });
        if actions.len() == 2 {
            change["replace_paths"] = json!([["name"]]);
        }
        let mode = if actions == ["read"] {
            "data"
        } else {
            "managed"
        };
        let mut rc = json!({
            "address": if mode == "data" { address.replacen(ty, &format!("data.{ty}"), 1) } else { address.clone() },
            "mode": mode,
            "type": ty,
            "name": name,
            "provider_name": format!("registry.terraform.io/hashicorp/{}", ty.split('_').next().unwrap_or("aws")),
            "change": change,
        });
        if let Some(m) = &module {
            rc["module_address"] = json!(m);
        }
        if actions.len() == 2 {
            rc["action_reason"] = json!("replace_because_cannot_update");
        }
        if actions == ["update"] && rng.chance(25) {
            let mut d = rc.clone();
            d["change"]["after"] = d["change"]["before"].clone();
            if let Some(obj) = d["change"]["before"].as_object_mut() {
                obj.insert("tags".into(), json!({"drifted": "yes"}));
            }
            d["change"]["actions"] = json!(["update"]);
            drift.push(d);
        }
        changes.push(rc);
    }
    json!({
        "format_version": "1.2",
        "terraform_version": "1.11.0",
        "resource_drift": drift,
        "resource_changes": changes,
        "output_changes": {},
        "configuration": {},
        "errored": false,
    })
}

// ---------------------------------------------------------------------------
// Running the broker and OPA

/// The `terraform show -json` documents to evaluate: (name, path, environment).
fn inputs(work: &Path) -> Vec<(String, PathBuf, String)> {
    let mut out = Vec::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .expect("read fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
        out.push((name, p, "default".to_string()));
    }
    for (seed, n, env) in [
        (1u64, 120usize, "production"),
        (2, 250, "staging"),
        (3, 300, "development"),
        (4, 400, "default"),
    ] {
        let path = work.join(format!("generated-{seed}.json"));
        let plan = generated_plan(seed, n, env);
        std::fs::write(&path, serde_json::to_vec_pretty(&plan).expect("json")).expect("write plan");
        out.push((
            format!("generated-{seed} ({n} resources, {env})"),
            path,
            env.to_string(),
        ));
    }
    out
}

fn write_config(path: &Path, sets: &[&Set]) {
    let mut hcl = String::from("timeout = \"120s\"\n");
    for s in sets {
        hcl.push_str(&format!(
            "policy_set \"{}\" {{\n  path        = \"{}\"\n  enforcement = \"advisory\"\n  syntax      = \"{}\"\n}}\n",
            s.name,
            s.dir.display(),
            s.dialect
        ));
    }
    std::fs::write(path, hcl).expect("write policy config");
}

/// Runs `policy eval` and returns each set's outcome plus the input it wrote.
fn broker_eval(
    work: &Path,
    tag: &str,
    sets: &[&Set],
    plan: &Path,
    env: &str,
    engine: &str,
) -> (BTreeMap<String, Outcome>, Option<PathBuf>) {
    let config = work.join(format!("{tag}.hcl"));
    write_config(&config, sets);
    let input_out = work.join(format!("{tag}.input.json"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_platform-broker"));
    for k in [
        "PLATFORM_POLICY",
        "PLATFORM_PRICEBOOK",
        "PLATFORM_CATALOG",
        "PLATFORM_ENVIRONMENT",
        "PLATFORM_BROKER_HOME",
        "PLATFORM_BROKER_CONFIG",
        "PLATFORM_TERRAFORM",
        "RUST_LOG",
    ] {
        cmd.env_remove(k);
    }
    let out = cmd
        .args(["policy", "eval", "--plan"])
        .arg(plan)
        .arg("--policy")
        .arg(&config)
        .args(["--environment", env, "--json", "--input-out"])
        .arg(&input_out)
        .env("PLATFORM_POLICY_ENGINE", engine)
        // A fixed key: sensitive values are redacted to the same markers in
        // every run, so runs of one plan write the same input document.
        .env(
            "PLATFORM_BROKER_KEY",
            "opa-conformance-test-key-0123456789abcdef",
        )
        .current_dir(work)
        .stdin(Stdio::null())
        .output()
        .expect("run platform-broker");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let written = input_out.is_file().then_some(input_out);
    let mut outcomes = BTreeMap::new();
    match out.status.code() {
        Some(0 | 3 | 4) => {
            let report: Json = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("{tag}: broker output is not JSON ({e}):\n{stdout}"));
            if let Some(err) = report["policy_error"].as_str() {
                for s in sets {
                    outcomes.insert(s.name.clone(), Outcome::Error(err.to_string()));
                }
                return (outcomes, written);
            }
            for s in sets {
                let mut by_rule: BTreeMap<String, BTreeSet<Finding>> = BTreeMap::new();
                for f in report["findings"].as_array().expect("findings") {
                    if f["set"] != json!(s.name) {
                        continue;
                    }
                    let rule = f["rule"].as_str().expect("rule").to_string();
                    by_rule.entry(rule.clone()).or_default().insert((
                        rule,
                        f["address"].as_str().map(str::to_string),
                        f["message"].as_str().expect("message").to_string(),
                    ));
                }
                outcomes.insert(s.name.clone(), Outcome::Findings(by_rule));
            }
        }
        _ => {
            let err = format!("exit {:?}: {}", out.status.code(), stderr.trim());
            for s in sets {
                outcomes.insert(s.name.clone(), Outcome::Error(err.clone()));
            }
        }
    }
    (outcomes, written)
}

/// OPA's answer per input file, then per rule id.
type OracleValues = BTreeMap<PathBuf, BTreeMap<String, Oracle>>;

/// OPA's findings for every rule of `set` on every input file.
fn oracle_eval(opa_path: &Path, set: &Set, inputs: &[PathBuf]) -> OracleValues {
    let python = std::env::var("OPA_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/opa/oracle.py");
    let mut cmd = Command::new(&python);
    cmd.arg("-s")
        .arg(&script)
        .arg("--dir")
        .arg(&set.dir)
        .arg("--dialect")
        .arg(set.dialect);
    for (path, _) in &set.rules {
        cmd.arg("--rule").arg(path);
    }
    cmd.args(inputs)
        .env("PYTHONPATH", opa_path)
        .stdin(Stdio::null());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "oracle.py failed on set {}: {}",
        set.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Json = serde_json::from_slice(&out.stdout).expect("oracle output is JSON");
    let mut result = BTreeMap::new();
    for input in inputs {
        let values = &doc[input.to_string_lossy().as_ref()];
        let mut rules = BTreeMap::new();
        for (path, id) in &set.rules {
            let v = &values[path.as_str()];
            let oracle = if let Some(err) = v.get("error") {
                Oracle::Error(err.as_str().unwrap_or_default().to_string())
            } else if let Some(value) = v.get("value") {
                Oracle::Findings(findings_of(value, id))
            } else {
                Oracle::Findings(BTreeSet::new()) // undefined
            };
            rules.insert(id.clone(), oracle);
        }
        result.insert(input.clone(), rules);
    }
    result
}

/// A rule value as findings, exactly as the broker's `collect_findings`: a
/// set or array gives one finding per element (a string is the message, an
/// object supplies `msg`/`message` and `address`); `true` gives one finding
/// named after the rule; `false`, `null` and empty collections give none.
fn findings_of(value: &Json, rule: &str) -> BTreeSet<Finding> {
    let element = |e: &Json| -> (Option<String>, String) {
        match e {
            Json::String(s) => (None, s.clone()),
            Json::Object(o) => {
                let msg = o
                    .get("msg")
                    .or_else(|| o.get("message"))
                    .map(|m| match m {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| e.to_string());
                let address = o.get("address").and_then(Json::as_str).map(str::to_string);
                (address, msg)
            }
            other => (None, other.to_string()),
        }
    };
    let mut out = BTreeSet::new();
    let mut push = |(a, m): (Option<String>, String)| {
        out.insert((rule.to_string(), a, m));
    };
    match value {
        Json::Null | Json::Bool(false) => {}
        Json::Bool(true) => push((None, rule.to_string())),
        Json::Array(items) => items.iter().for_each(|i| push(element(i))),
        other => push(element(other)),
    }
    out
}

fn show(findings: &BTreeSet<Finding>) -> String {
    if findings.is_empty() {
        return "      (none)\n".into();
    }
    findings
        .iter()
        .map(|(_, a, m)| format!("      {} {m:?}\n", a.as_deref().unwrap_or("-")))
        .collect()
}

/// A copy of `set` under `dest` where the rules `disabled` are renamed
/// (`disabled_deny_x`), so the broker no longer evaluates them.
fn without_rules(set: &Set, disabled: &BTreeSet<String>, dest: &Path) -> Set {
    let mut files = Vec::new();
    rego_files(&set.dir, &mut files);
    for file in files {
        let rel = file.strip_prefix(&set.dir).expect("under set dir");
        let text = std::fs::read_to_string(&file).expect("read rego");
        let renamed: Vec<String> = text
            .lines()
            .map(|line| {
                let id: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if disabled.contains(&id) {
                    format!("disabled_{line}")
                } else {
                    line.to_string()
                }
            })
            .collect();
        let target = dest.join(rel);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(&target, renamed.join("\n") + "\n").expect("write rego");
    }
    Set {
        dir: dest.to_path_buf(),
        rules: set
            .rules
            .iter()
            .filter(|(_, id)| !disabled.contains(id))
            .cloned()
            .collect(),
        ..set.clone()
    }
}

/// The rule of `set` a broker error names (`evaluating deny_x failed`,
/// `in set/deny_x`), if any.
fn blamed_rule<'a>(set: &'a Set, error: &str) -> Option<&'a str> {
    set.rules.iter().map(|(_, id)| id.as_str()).find(|id| {
        error.contains(&format!("evaluating {id} failed"))
            || error.contains(&format!("{}/{id}", set.name))
    })
}

/// What the broker said about one rule on one input: findings, or an error.
/// Keyed by (input index, engine, set, rule); with the input file it wrote.
type RuleResults = BTreeMap<(usize, String, String, String), (Outcome, PathBuf)>;

/// Runs one set alone; when a rule fails, records the error for it and runs
/// the set again without it, so one failing rule does not hide the others.
#[allow(clippy::too_many_arguments)]
fn run_set_isolating(
    work: &Path,
    set: &Set,
    i: usize,
    engine: &str,
    plan: &Path,
    env: &str,
    fallback_input: &Path,
    out: &mut RuleResults,
) {
    let mut disabled = BTreeSet::new();
    loop {
        let tag = format!("in{i}-{engine}-{}-{}", set.name, disabled.len());
        let run_set = if disabled.is_empty() {
            set.clone()
        } else {
            without_rules(set, &disabled, &work.join(format!("{tag}-rego")))
        };
        let (mut o, written) = broker_eval(work, &tag, &[&run_set], plan, env, engine);
        let file = written.unwrap_or_else(|| fallback_input.to_path_buf());
        let outcome = o.remove(&set.name).expect("outcome");
        let key = |rule: &str| (i, engine.to_string(), set.name.clone(), rule.to_string());
        match &outcome {
            Outcome::Findings(_) => {
                for (_, rule) in &run_set.rules {
                    out.insert(key(rule), (outcome.clone(), file.clone()));
                }
                return;
            }
            Outcome::Error(e) => match blamed_rule(&run_set, e) {
                Some(rule) => {
                    out.insert(key(rule), (outcome.clone(), file.clone()));
                    disabled.insert(rule.to_string());
                    if disabled.len() == set.rules.len() {
                        return;
                    }
                }
                None => {
                    for (_, rule) in &run_set.rules {
                        out.insert(key(rule), (outcome.clone(), file.clone()));
                    }
                    return;
                }
            },
        }
    }
}

/// One disagreement: (set, rule) and a readable description.
type Difference = ((String, String), String);

#[test]
fn broker_agrees_with_opa() {
    let Some(opa_path) = opa_pythonpath() else {
        return;
    };
    let started = Instant::now();
    let work =
        std::env::temp_dir().join(format!("platform-opa-conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("mkdir work");
    let sets = corpus_sets();
    let inputs = inputs(&work);

    // A set the broker cannot load (a parse or safety error, an unknown
    // builtin) fails every run the same way: found once, on the first input,
    // and kept out of the runs of the other sets.
    let load_errors: BTreeMap<String, String> = sets
        .iter()
        .filter_map(|s| {
            let (_, plan, env) = &inputs[0];
            let tag = format!("load-{}", s.name);
            let (mut o, written) = broker_eval(&work, &tag, &[s], plan, env, ENGINES[0]);
            match (o.remove(&s.name), written) {
                (Some(Outcome::Error(e)), None) => Some((s.name.clone(), e)),
                _ => None,
            }
        })
        .collect();
    let loadable: Vec<&Set> = sets
        .iter()
        .filter(|s| !load_errors.contains_key(&s.name))
        .collect();

    // Broker runs: the loadable sets at once per (input, engine); when that
    // run fails (an evaluation error hides every other finding) each set is
    // run alone, without its failing rules one by one. Two runs at a time.
    let jobs: Vec<(usize, &str)> = (0..inputs.len())
        .flat_map(|i| ENGINES.iter().map(move |e| (i, *e)))
        .collect();
    let results: Mutex<RuleResults> = Mutex::default();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(&(i, engine)) =
                    jobs.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    let (_, plan, env) = &inputs[i];
                    let tag = format!("in{i}-{engine}-all");
                    let (outcomes, written) =
                        broker_eval(&work, &tag, &loadable, plan, env, engine);
                    let written = written.unwrap_or_else(|| {
                        panic!("{tag}: --input-out wrote no file: {outcomes:?}")
                    });
                    let mut mine = RuleResults::new();
                    let all_ok = outcomes.values().all(|o| matches!(o, Outcome::Findings(_)));
                    for s in &loadable {
                        if all_ok {
                            for (_, rule) in &s.rules {
                                let key = (i, engine.to_string(), s.name.clone(), rule.clone());
                                mine.insert(key, (outcomes[&s.name].clone(), written.clone()));
                            }
                        } else {
                            run_set_isolating(&work, s, i, engine, plan, env, &written, &mut mine);
                        }
                    }
                    for (set, e) in &load_errors {
                        let s = sets.iter().find(|s| &s.name == set).expect("set");
                        for (_, rule) in &s.rules {
                            let key = (i, engine.to_string(), set.clone(), rule.clone());
                            mine.insert(key, (Outcome::Error(e.clone()), written.clone()));
                        }
                    }
                    results.lock().expect("lock").extend(mine);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("lock");
    let broker_secs = started.elapsed().as_secs_f64();
    // Runs of one plan write the same document: OPA evaluates each once.
    let mut by_content: BTreeMap<Vec<u8>, PathBuf> = BTreeMap::new();
    for (_, file) in results.values_mut() {
        let bytes = std::fs::read(&*file).expect("read input");
        *file = by_content
            .entry(bytes)
            .or_insert_with(|| file.clone())
            .clone();
    }

    // OPA: once per set, over every input file a broker run of it wrote.
    let oracle: Mutex<BTreeMap<String, OracleValues>> = Mutex::default();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some(set) =
                    sets.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    let files: BTreeSet<PathBuf> = results
                        .iter()
                        .filter(|((_, _, s, _), _)| *s == set.name)
                        .map(|(_, (_, f))| f.clone())
                        .collect();
                    let files: Vec<PathBuf> = files.into_iter().collect();
                    let values = oracle_eval(&opa_path, set, &files);
                    oracle
                        .lock()
                        .expect("lock")
                        .insert(set.name.clone(), values);
                }
            });
        }
    });
    let oracle = oracle.into_inner().expect("lock");

    // Compare, rule by rule.
    let mut differences: Vec<Difference> = Vec::new();
    let (mut agreed, mut findings_seen, mut both_failed) = (0usize, 0usize, BTreeSet::new());
    for ((i, engine, set_name, rule), (outcome, file)) in &results {
        let input_name = &inputs[*i].0;
        let key = (set_name.clone(), rule.clone());
        let place = format!(
            "set {set_name}, rule {rule}, input {input_name}, PLATFORM_POLICY_ENGINE={engine}"
        );
        match (outcome, &oracle[set_name][file][rule]) {
            (Outcome::Findings(by_rule), Oracle::Findings(want)) => {
                let got = by_rule.get(rule).cloned().unwrap_or_default();
                findings_seen += want.len();
                if &got == want {
                    agreed += 1;
                } else {
                    let only_broker: BTreeSet<Finding> = got.difference(want).cloned().collect();
                    let only_opa: BTreeSet<Finding> = want.difference(&got).cloned().collect();
                    differences.push((
                        key,
                        format!(
                            "{place}:\n    broker only:\n{}    OPA only:\n{}",
                            show(&only_broker),
                            show(&only_opa)
                        ),
                    ));
                }
            }
            (Outcome::Findings(by_rule), Oracle::Error(e)) => differences.push((
                key,
                format!(
                    "{place}:\n    OPA fails ({}) but the broker did not fail closed; its findings:\n{}",
                    one_line(e),
                    show(&by_rule.get(rule).cloned().unwrap_or_default())
                ),
            )),
            (Outcome::Error(_), Oracle::Error(_)) => {
                agreed += 1;
                both_failed.insert(format!("{set_name}/{rule}"));
            }
            (Outcome::Error(e), Oracle::Findings(want)) => differences.push((
                key,
                format!(
                    "{place}:\n    the broker fails ({}) where OPA finds:\n{}",
                    one_line(e),
                    show(want)
                ),
            )),
        }
    }

    // Report every difference, grouped by (set, rule).
    let mut by_rule: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (key, text) in differences {
        by_rule.entry(key).or_default().push(text);
    }
    let known: BTreeMap<(String, String), &str> = KNOWN_DIFFERENCES
        .iter()
        .map(|(s, r, why)| ((s.to_string(), r.to_string()), *why))
        .collect();
    let mut failures = Vec::new();
    let mut report = String::new();
    for (key, texts) in &by_rule {
        let mark = match known.get(key) {
            Some(why) => format!("KNOWN: {why}"),
            None => "NEW".to_string(),
        };
        report.push_str(&format!(
            "\n== {} / {} [{mark}]: {} of {} results disagree; first {}:\n",
            key.0,
            key.1,
            texts.len(),
            inputs.len() * ENGINES.len(),
            texts.len().min(2)
        ));
        for t in texts.iter().take(2) {
            report.push_str(&format!("  {t}\n"));
        }
        if !known.contains_key(key) {
            failures.push(format!("{} / {}", key.0, key.1));
        }
    }
    for key in known.keys() {
        assert!(
            sets.iter()
                .any(|s| s.name == key.0 && s.rules.iter().any(|(_, r)| *r == key.1)),
            "KNOWN_DIFFERENCES names {} / {}, which the corpus does not have",
            key.0,
            key.1
        );
        if !by_rule.contains_key(key) {
            failures.push(format!(
                "{} / {} agrees with OPA now: remove it from KNOWN_DIFFERENCES",
                key.0, key.1
            ));
        }
    }
    let rule_count: usize = sets.iter().map(|s| s.rules.len()).sum();
    // Rules OPA never finds anything with prove little: name them.
    let mut fired: BTreeSet<(String, String)> = BTreeSet::new();
    for ((_, _, set, rule), (_, file)) in &results {
        match &oracle[set][file][rule] {
            Oracle::Findings(f) if f.is_empty() => {}
            _ => {
                fired.insert((set.clone(), rule.clone()));
            }
        }
    }
    let silent: Vec<String> = sets
        .iter()
        .flat_map(|s| {
            s.rules
                .iter()
                .map(move |(_, r)| (s.name.clone(), r.clone()))
        })
        .filter(|k| !fired.contains(k))
        .map(|(s, r)| format!("{s}/{r}"))
        .collect();
    eprintln!("{report}");
    eprintln!(
        "opa conformance: rules both OPA and the broker fail on (on some input): {}",
        both_failed.into_iter().collect::<Vec<_>>().join(", ")
    );
    if !silent.is_empty() {
        eprintln!(
            "opa conformance: rules with no OPA finding or error on any input: {}",
            silent.join(", ")
        );
    }
    eprintln!(
        "opa conformance: {} sets, {rule_count} rules, {} inputs x {} engines: {agreed} of {} rule results \
         agree ({findings_seen} OPA findings); {} (set, rule) disagree, {} of them known; \
         broker runs {broker_secs:.1}s, total {:.1}s",
        sets.len(),
        inputs.len(),
        ENGINES.len(),
        results.len(),
        by_rule.len(),
        by_rule.keys().filter(|k| known.contains_key(*k)).count(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "the broker disagrees with OPA (details above):\n  {}",
        failures.join("\n  ")
    );
    let _ = std::fs::remove_dir_all(&work);
}

/// An error message on one line, shortened.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = joined.chars().take(400).collect();
    if out.len() < joined.len() {
        out.push_str(" …");
    }
    out
}
