//! Helpers for the broker acceptance tests: a work directory with a Terraform
//! configuration, a filesystem-mirror CLI config for `platform/platform`, the
//! broker binary, PostgreSQL through `psql`, and cleanup.
//!
//! Environment: `TF_ACC=1` enables the tests; `TF_ACC_TERRAFORM_BINS`
//! (colon-separated) names the terraform binaries (else `terraform` on PATH
//! plus `TF_103`); `PGHOST` & co. name the cluster; `TF_ACC_KEEP=1` keeps the
//! temporary directories (they are always kept when a test panics).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

pub const ADDR: &str = "platform_postgres_database.db";
pub const PROVIDER_VERSION: &str = "0.1.0";

/// True when the tests should run (TF_ACC=1 and a PostgreSQL configured);
/// otherwise a loud SKIPPED notice.
pub fn enabled() -> bool {
    let name = std::thread::current().name().unwrap_or("?").to_string();
    let why = if std::env::var("TF_ACC").as_deref() != Ok("1") {
        "set TF_ACC=1 (scripts/test does)"
    } else if std::env::var("PGHOST").map_or(true, |h| h.is_empty()) {
        "no PostgreSQL: set PGHOST & co. (scripts/test starts one)"
    } else {
        return true;
    };
    eprintln!();
    eprintln!("************************************************************");
    eprintln!("** SKIPPED: {name}");
    eprintln!("** SKIPPED: {why}");
    eprintln!("************************************************************");
    false
}

#[macro_export]
macro_rules! require_acc {
    () => {
        if !$crate::acc::enabled() {
            return;
        }
    };
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Terraform binaries to run every test against.
pub fn terraform_bins() -> Vec<PathBuf> {
    let bins: Vec<PathBuf> = match std::env::var_os("TF_ACC_TERRAFORM_BINS") {
        Some(v) => std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => {
            let mut v: Vec<PathBuf> = find_on_path("terraform").into_iter().collect();
            if let Some(t) = std::env::var_os("TF_103").filter(|t| !t.is_empty()) {
                v.push(PathBuf::from(t));
            }
            v
        }
    };
    assert!(
        !bins.is_empty(),
        "no terraform binaries: set TF_ACC_TERRAFORM_BINS (scripts/test does)"
    );
    for b in &bins {
        assert!(
            b.is_file(),
            "terraform binary {} does not exist",
            b.display()
        );
    }
    bins
}

pub fn broker_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_platform-broker"))
}

/// The provider binary: next to the broker binary (same target dir), else
/// `<workspace>/target/debug`. Panics with a clear message when missing.
pub fn provider_bin() -> PathBuf {
    let name = "terraform-provider-platform";
    let mut candidates = Vec::new();
    if let Some(dir) = broker_bin().parent() {
        candidates.push(dir.join(name));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/debug")
            .join(name),
    );
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "provider binary not found (looked at {candidates:?}): \
                 run `cargo build -p terraform-provider-platform` first"
            )
        })
}

/// "1114" for Terraform v1.11.4: makes object names unique per binary.
pub fn version_tag(bin: &Path) -> String {
    version(bin).chars().filter(char::is_ascii_digit).collect()
}

/// "v1.11.4".
pub fn version(bin: &Path) -> String {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().expect("cache").get(bin) {
        return v.clone();
    }
    let out = Command::new(bin)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} version: {e}", bin.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .find(|w| w.starts_with('v'))
        .unwrap_or_else(|| panic!("no version in {text:?}"))
        .to_string();
    cache
        .lock()
        .expect("cache")
        .insert(bin.to_path_buf(), v.clone());
    v
}

/// Runs SQL as the cluster's superuser in database `postgres`.
pub fn psql(sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
            "-c",
            sql,
        ])
        .env_remove("PGDATABASE")
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "psql {sql:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

pub fn database_exists(name: &str) -> bool {
    psql(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
        == "1"
}

pub fn role_conn_limit(role: &str) -> Option<i64> {
    let out = psql(&format!(
        "SELECT rolconnlimit FROM pg_roles WHERE rolname = '{role}'"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    (!out.is_empty()).then(|| out.parse().unwrap_or_else(|e| panic!("{out:?}: {e}")))
}

/// Drops the database `name` and its owner role (leftovers of a crashed run).
pub fn drop_objects(name: &str) {
    let _ = psql(&format!("DROP DATABASE IF EXISTS \"{name}\""));
    let _ = psql(&format!("DROP ROLE IF EXISTS \"{name}_owner\""));
}

/// One broker command's result.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub cmd: String,
}

impl Run {
    fn from_output(cmd: String, out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            cmd,
        }
    }

    /// Both streams, for assertions and messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts the exit code, showing everything on failure.
    #[track_caller]
    pub fn expect(&self, ctx: &str, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "{ctx}: `{}` exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn expect_contains(&self, ctx: &str, needle: &str) -> &Run {
        assert!(
            self.all().contains(needle),
            "{ctx}: `{}` output lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.cmd,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The run id from plan's text/markdown/JSON output or stderr
    /// ("planning DIR (run RUN)").
    #[track_caller]
    pub fn run_id(&self) -> String {
        let text = self.all();
        let pos = text
            .find("(run ")
            .unwrap_or_else(|| panic!("no run id in `{}` output:\n{text}", self.cmd));
        let rest = &text[pos + 5..];
        rest[..rest.find(')').expect("run id end")].to_string()
    }
}

/// One test's world for one terraform binary.
pub struct World {
    pub tmp: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub work: PathBuf,
    pub home: PathBuf,
    pub tf: PathBuf,
    pub ctx: String,
    /// The database name the configuration creates.
    pub db: String,
    pub env: Vec<(String, String)>,
    /// Variables removed from the broker's environment.
    pub unset: Vec<String>,
}

impl World {
    /// `test` is a short id (lowercase, digits, underscores).
    pub fn new(test: &str, tf: &Path) -> World {
        let ctx = format!("[{test} terraform {}]", version(tf));
        let db = format!("bacc_{test}_{}", version_tag(tf));
        drop_objects(&db);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("broker-acc-{test}-"))
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().to_path_buf();
        let mirror = root.join("mirror");
        let plugin_dir = mirror.join(format!(
            "registry.terraform.io/platform/platform/{PROVIDER_VERSION}/linux_amd64"
        ));
        std::fs::create_dir_all(&plugin_dir).expect("mirror dir");
        std::fs::copy(
            provider_bin(),
            plugin_dir.join(format!("terraform-provider-platform_v{PROVIDER_VERSION}")),
        )
        .expect("copy provider into mirror");
        let rc = root.join("cli.tfrc");
        std::fs::write(
            &rc,
            format!(
                "disable_checkpoint = true\nprovider_installation {{\n  filesystem_mirror {{\n    path    = {:?}\n    include = [\"registry.terraform.io/platform/*\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/platform/*\"]\n  }}\n}}\n",
                mirror.display().to_string()
            ),
        )
        .expect("cli config");
        let work = root.join("work");
        std::fs::create_dir(&work).expect("work dir");
        let home = work.join(".platform");
        World {
            tmp: Some(tmp),
            root,
            work,
            home,
            tf: tf.to_path_buf(),
            ctx,
            db,
            env: vec![
                ("TF_CLI_CONFIG_FILE".into(), rc.display().to_string()),
                ("PLATFORM_ACTOR".into(), "acc-tester".into()),
                ("TF_VAR_canary".into(), "not-a-secret".into()),
            ],
            unset: Vec::new(),
        }
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.unset.retain(|k| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Removes `key` from the broker's environment.
    pub fn unset_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
        self.unset.push(key.into());
    }

    /// Writes `main.tf`: one database `self.db` of `tier`, with the
    /// sensitive variable `canary` in a label and a sensitive output.
    pub fn write_config(&self, tier: &str, connection_limit: u32) {
        let text = format!(
            r#"terraform {{
  required_providers {{
    platform = {{ source = "platform/platform", version = "{PROVIDER_VERSION}" }}
  }}
}}

provider "platform" {{
  default_team = "checkout"
}}

variable "canary" {{
  type      = string
  sensitive = true
}}

resource "platform_postgres_database" "db" {{
  name             = "{db}"
  tier             = "{tier}"
  connection_limit = {connection_limit}
  labels = {{
    service = "broker-acceptance"
    x       = var.canary
  }}
}}

output "secret" {{
  value     = var.canary
  sensitive = true
}}

output "monthly_cost" {{
  value = platform_postgres_database.db.monthly_cost
}}
"#,
            db = self.db
        );
        std::fs::write(self.work.join("main.tf"), text).expect("main.tf");
    }

    fn command(&self, args: &[&str]) -> (Command, String) {
        let mut cmd = Command::new(broker_bin());
        cmd.arg("--terraform").arg(&self.tf);
        cmd.args(args).current_dir(&self.work);
        self.isolate(&mut cmd);
        let shown = format!("platform-broker {}", args.join(" "));
        (cmd, shown)
    }

    /// The environment every command of this world runs in: nothing the
    /// broker or Terraform would pick up from the caller's environment,
    /// then this world's own settings.
    pub fn isolate(&self, cmd: &mut Command) {
        for k in [
            "PLATFORM_POLICY",
            "PLATFORM_PRICEBOOK",
            "PLATFORM_CATALOG",
            "PLATFORM_ENVIRONMENT",
            "PLATFORM_BROKER_HOME",
            "PLATFORM_BROKER_CONFIG",
            "PLATFORM_TERRAFORM",
            "TF_WORKSPACE",
            "TF_DATA_DIR",
            "TF_REATTACH_PROVIDERS",
            "TF_PLUGIN_CACHE_DIR",
        ] {
            cmd.env_remove(k);
        }
        cmd.env("CHECKPOINT_DISABLE", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for k in &self.unset {
            cmd.env_remove(k);
        }
    }

    /// Runs the broker in the work directory.
    pub fn broker(&self, args: &[&str]) -> Run {
        let (mut cmd, shown) = self.command(args);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot run {shown}: {e}", self.ctx));
        Run::from_output(shown, out)
    }

    /// Starts the broker; collect with [`finish`].
    pub fn spawn(&self, args: &[&str]) -> (Child, String) {
        let (mut cmd, shown) = self.command(args);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot start {shown}: {e}", self.ctx));
        (child, shown)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.home.join("runs").join(run)
    }

    /// Writes a file under the temp root (creating parents).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Plans with `extra` flags; returns the result (exit code unchecked).
    pub fn plan(&self, extra: &[&str]) -> Run {
        let mut args = vec!["plan"];
        args.extend_from_slice(extra);
        self.broker(&args)
    }

    /// `terraform destroy` in the work directory (when there is a state).
    pub fn destroy(&self) {
        if !self.work.join("terraform.tfstate").exists() {
            return;
        }
        let mut cmd = Command::new(&self.tf);
        cmd.args(["destroy", "-auto-approve", "-input=false", "-no-color"])
            .current_dir(&self.work)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        match cmd.output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "{}: terraform destroy failed (dropping with psql):\n{}{}",
                self.ctx,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("{}: cannot run terraform destroy: {e}", self.ctx),
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.destroy();
        drop_objects(&self.db);
        let keep = std::thread::panicking() || std::env::var("TF_ACC_KEEP").as_deref() == Ok("1");
        if keep && let Some(tmp) = self.tmp.take() {
            let path = tmp.keep();
            eprintln!("{}: kept {}", self.ctx, path.display());
        }
    }
}

/// Waits for a spawned broker.
pub fn finish(child: Child, shown: String) -> Run {
    let out = child.wait_with_output().expect("wait");
    Run::from_output(shown, out)
}

/// A policy set for [`write_policy`]: (name, enforcement, [(file, rego)]).
pub type SetSpec<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// A policy configuration under `<root>/policy/`: returns the `policy.hcl`.
/// `sets`: (name, enforcement, [(file, rego)]).
pub fn write_policy(w: &World, dir: &str, sets: &[SetSpec<'_>]) -> PathBuf {
    let mut hcl = String::from("timeout = \"10s\"\n");
    for (name, enforcement, files) in sets {
        hcl.push_str(&format!(
            "policy_set \"{name}\" {{\n  path        = \"{name}\"\n  enforcement = \"{enforcement}\"\n  syntax      = \"v1\"\n}}\n"
        ));
        for (file, rego) in *files {
            w.write(&format!("{dir}/{name}/{file}"), rego);
        }
    }
    w.write(&format!("{dir}/policy.hcl"), &hcl)
}

/// Denies tier "standard" (hard set in the tests).
pub const DENY_STANDARD: &str = r#"package platform.tier

deny_standard_tier contains finding if {
	some rc in input.plan.resource_changes
	rc.type == "platform_postgres_database"
	rc.change.after.tier == "standard"
	finding := {
		"address": rc.address,
		"msg": sprintf("%s uses tier standard, which is forbidden here", [rc.address]),
	}
}
"#;

/// Anything the catalog marks requires_approval (soft set in the tests).
pub const NEEDS_APPROVAL: &str = r#"package platform.approval

deny_requires_approval contains finding if {
	some entry in input.catalog.resources
	entry.requires_approval == true
	finding := {
		"address": entry.address,
		"msg": sprintf("%s uses tier %s, which requires an approval", [entry.address, entry.tier]),
	}
}
"#;

/// Advisory: echoes the planned labels into its message (they must arrive
/// redacted) for every platform database.
pub const ECHO_LABELS: &str = r#"package platform.echo

warn_labels contains finding if {
	some rc in input.plan.resource_changes
	rc.type == "platform_postgres_database"
	finding := {
		"address": rc.address,
		"msg": sprintf("labels of %s: %v; after: %v", [rc.address, object.get(rc.change.after, "labels", null), rc.change.after]),
	}
}

deny_labels_echo contains finding if {
	some rc in input.plan.resource_changes
	rc.type == "platform_postgres_database"
	finding := {
		"address": rc.address,
		"msg": sprintf("advisory echo of the whole input plan: %v", [input.plan]),
	}
}
"#;

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    for f in files_under(from) {
        let rel = f.strip_prefix(from).expect("prefix");
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&f, &dest).expect("copy");
    }
}

/// A random-enough hex string.
pub fn random_hex() -> String {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// moto's server (`MOTO_ENDPOINT`, started by scripts/test), or a loud
/// SKIPPED notice.
pub fn moto_endpoint() -> Option<String> {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            let name = std::thread::current().name().unwrap_or("?").to_string();
            eprintln!();
            eprintln!("************************************************************");
            eprintln!("** SKIPPED: {name}");
            eprintln!("** SKIPPED: no moto server: set MOTO_ENDPOINT (scripts/test starts one)");
            eprintln!("************************************************************");
            None
        }
    }
}

/// POSTs JSON to `http://127.0.0.1:PORT/path` and returns the status code
/// (a minimal HTTP/1.1 client: the tests need nothing more).
pub fn http_post_json(endpoint: &str, path: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let authority = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{endpoint}: not http://"))
        .trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority)
        .unwrap_or_else(|e| panic!("cannot connect to {authority}: {e}"));
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

/// Queues one GetCostAndUsage result in moto: `team`'s spend so far this
/// month, grouped by the tag `tag_key` (moto's static results API; the next
/// request with new parameters takes it).
pub fn seed_team_spend(endpoint: &str, tag_key: &str, team: &str, amount: &str) {
    let result = serde_json::json!({
        "results": [{
            "ResultsByTime": [{
                "TimePeriod": {"Start": "2026-11-01", "End": "2026-11-11"},
                "Total": {},
                "Groups": [
                    {"Keys": [format!("{tag_key}${team}")],
                     "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}},
                    {"Keys": [format!("{tag_key}$someone-else")],
                     "Metrics": {"UnblendedCost": {"Amount": "99999", "Unit": "USD"}}},
                ],
                "Estimated": false,
            }],
            "DimensionValueAttributes": [],
        }],
    });
    let status = http_post_json(
        endpoint,
        "/moto-api/static/ce/cost-and-usage-results",
        &result.to_string(),
    );
    assert_eq!(status, 201, "moto refused the seeded cost result");
}

/// A loopback HTTP/1.1 server that records POST bodies and headers and
/// answers 200 (a webhook receiver for the tests).
/// One delivery: lowercase headers and the body.
pub type Delivery = (Vec<(String, String)>, Vec<u8>);

pub struct HookServer {
    pub port: u16,
    pub received: std::sync::Arc<Mutex<Vec<Delivery>>>,
}

impl HookServer {
    pub fn start(port: u16) -> HookServer {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().expect("addr").port();
        let received = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let Ok(clone) = stream.try_clone() else {
                    continue;
                };
                let mut reader = BufReader::new(clone);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let mut stream = stream;
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                sink.lock().expect("lock").push((headers, body));
            }
        });
        HookServer { port, received }
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
