//! Acceptance-test harness: runs real Terraform binaries against the provider.
//!
//! Compiled as part of the `acceptance` integration test of the provider
//! package (`[[test]] name = "acceptance", path = "../acceptance/main.rs"`).
//! Uses only std, `tempfile` and `serde_json`.
//!
//! Environment (all set by `scripts/test`):
//! - `TF_ACC=1`                enables the tests; otherwise each test prints SKIPPED and returns.
//! - `TF_ACC_TERRAFORM_BINS`   colon-separated terraform binaries to run every test against.
//! - `NULL_MIRROR`             filesystem mirror holding hashicorp/null 2.1.2 (`scripts/setup`).
//! - `TF_ACC_TIMEOUT_SECS`     per-command timeout (default 300).
//! - `TF_ACC_KEEP=1`           keep every work directory (they are always kept when a test panics).
//!
//! Every command gets its own CLI config (written into the work dir and named by
//! `TF_CLI_CONFIG_FILE`), so nothing from the user's `~/.terraformrc` or a global
//! `TF_CLI_CONFIG_FILE` leaks in, and nothing needs the network.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Provider source address used in configurations (`registry.terraform.io/platform/platform`).
pub const PROVIDER_SOURCE: &str = "platform/platform";
/// Fully-qualified source address.
pub const PROVIDER_FQN: &str = "registry.terraform.io/platform/platform";
/// Version under which the provider is published in `mirror` mode.
pub const PROVIDER_VERSION: &str = "0.1.0";
/// Binary name of the provider.
pub const PROVIDER_BIN_NAME: &str = "terraform-provider-platform";

/// `terraform { required_providers { platform = ... } }` for dev_overrides mode (no version).
pub const REQUIRED_PLATFORM: &str = r#"terraform {
  required_providers {
    platform = { source = "platform/platform" }
  }
}
"#;

/// Same for mirror mode (pins the mirrored version).
pub const REQUIRED_PLATFORM_MIRROR: &str = r#"terraform {
  required_providers {
    platform = { source = "platform/platform", version = "0.1.0" }
  }
}
"#;

/// The provider binary built by cargo for this integration test.
pub fn provider_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_terraform-provider-platform"))
}

/// Repository root (the provider package lives in `<repo>/provider`).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// True when acceptance tests should run (`TF_ACC=1`). Otherwise prints a loud
/// notice to stderr; the caller returns early:
///
/// ```ignore
/// if !harness::acc_enabled() { return; }
/// ```
pub fn acc_enabled() -> bool {
    if std::env::var("TF_ACC").as_deref() == Ok("1") {
        return true;
    }
    let name = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!();
    eprintln!("************************************************************");
    eprintln!("** SKIPPED: {name}");
    eprintln!("** SKIPPED: set TF_ACC=1 (scripts/test does)");
    eprintln!("************************************************************");
    false
}

/// Early-return helper: `require_acc!();` at the top of a test.
#[macro_export]
macro_rules! require_acc {
    () => {
        if !$crate::harness::acc_enabled() {
            return;
        }
    };
}

/// Terraform binaries to test against, from `TF_ACC_TERRAFORM_BINS` (colon-separated).
///
/// When the variable is unset, falls back to `terraform` on PATH plus
/// `<repo>/.tools/terraform-1.0.3/terraform` if present. Panics when the list is
/// empty or names a missing file: with `TF_ACC=1`, a missing binary is a failure,
/// never a silent skip.
pub fn terraform_bins() -> Vec<PathBuf> {
    let bins: Vec<PathBuf> = match std::env::var_os("TF_ACC_TERRAFORM_BINS") {
        Some(v) => std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => {
            let mut v = Vec::new();
            if let Some(p) = find_on_path("terraform") {
                v.push(p);
            }
            let t103 = repo_root().join(".tools/terraform-1.0.3/terraform");
            if t103.is_file() && !v.iter().any(|p| same_file(p, &t103)) {
                v.push(t103);
            }
            v
        }
    };
    assert!(
        !bins.is_empty(),
        "no terraform binaries: set TF_ACC_TERRAFORM_BINS (scripts/test does), \
         or put terraform on PATH / run scripts/setup"
    );
    for b in &bins {
        assert!(
            b.is_file(),
            "TF_ACC_TERRAFORM_BINS names {} which does not exist (run scripts/setup)",
            b.display()
        );
    }
    bins
}

/// Directory of the hashicorp/null 2.1.2 filesystem mirror (`NULL_MIRROR`, else
/// `<repo>/.tools/mirror`). Panics with a hint when it is missing.
pub fn null_mirror() -> PathBuf {
    null_mirror_opt().unwrap_or_else(|| {
        panic!(
            "hashicorp/null 2.1.2 mirror not found at {} (run scripts/setup, or set NULL_MIRROR)",
            null_mirror_candidate().display()
        )
    })
}

/// The null mirror if it is installed.
pub fn null_mirror_opt() -> Option<PathBuf> {
    let dir = null_mirror_candidate();
    dir.join("registry.terraform.io/hashicorp/null/2.1.2/linux_amd64")
        .is_dir()
        .then_some(dir)
}

fn null_mirror_candidate() -> PathBuf {
    std::env::var_os("NULL_MIRROR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/mirror"))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Short label for a terraform binary, e.g. "terraform-1.0.3/terraform".
pub fn bin_label(bin: &Path) -> String {
    let file = bin
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match bin.parent().and_then(|p| p.file_name()) {
        Some(dir) => format!("{}/{}", dir.to_string_lossy(), file),
        None => file,
    }
}

/// How Terraform finds the `platform/platform` provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CliMode {
    /// `dev_overrides { "platform/platform" = <dir of provider binary> }` plus the
    /// null filesystem mirror and `direct {}` (for nothing else). No `terraform init`
    /// is needed (and init of platform/platform fails offline in this mode).
    DevOverrides,
    /// Provider copied into `<tmp>/mirror/registry.terraform.io/platform/platform/0.1.0/linux_amd64/`,
    /// with filesystem_mirror blocks for it and for hashicorp/null. `terraform init`
    /// works offline; use [`REQUIRED_PLATFORM_MIRROR`].
    Mirror,
}

/// Result of one terraform command.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Command line, for messages.
    pub cmdline: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.cmdline)?;
        writeln!(f, "exit: {} after {:.2?}", self.status, self.elapsed)?;
        writeln!(f, "---- stdout ----\n{}", self.stdout)?;
        write!(f, "---- stderr ----\n{}", self.stderr)
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Panics (printing stdout and stderr) unless the command succeeded.
#[track_caller]
pub fn assert_success(out: &Output) {
    if !out.success() {
        panic!("terraform command failed:\n{out}");
    }
}

/// Panics (printing stdout and stderr) unless the command failed.
#[track_caller]
pub fn assert_failure(out: &Output) {
    if out.success() {
        panic!("terraform command unexpectedly succeeded:\n{out}");
    }
}

/// True when stdout or stderr contains `needle`.
pub fn contains(out: &Output, needle: &str) -> bool {
    out.stdout.contains(needle) || out.stderr.contains(needle)
}

/// Panics (printing the output) unless stdout or stderr contains `needle`.
#[track_caller]
pub fn assert_contains(out: &Output, needle: &str) {
    if !contains(out, needle) {
        panic!("expected output to contain {needle:?}:\n{out}");
    }
}

/// Parses stdout as JSON (e.g. `show -json`, `providers schema -json`), panicking with the output.
#[track_caller]
pub fn stdout_json(out: &Output) -> serde_json::Value {
    match serde_json::from_str(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("stdout is not JSON ({e}):\n{out}"),
    }
}

/// Subcommands that accept `-no-color` (checked on Terraform 1.0.3 and 1.11.4).
const NO_COLOR_CMDS: &[&str] = &[
    "init", "validate", "plan", "apply", "destroy", "refresh", "import", "show", "output", "taint",
    "untaint", "fmt", "get", "console", "version", "test",
];
/// Subcommands with a second word (`providers schema`, `state list`, ...).
const NO_COLOR_NESTED: &[&str] = &["providers", "state", "workspace"];

fn with_no_color(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    if args.contains(&"-no-color") || args.is_empty() {
        return v;
    }
    if NO_COLOR_CMDS.contains(&args[0]) {
        v.insert(1, "-no-color".into());
    } else if NO_COLOR_NESTED.contains(&args[0]) {
        let at = if args.len() >= 2 && !args[1].starts_with('-') {
            2
        } else {
            1
        };
        v.insert(at, "-no-color".into());
    }
    v
}

fn hcl_str(p: &Path) -> String {
    // HCL string literal; paths here never contain quotes but escape anyway.
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A temporary directory holding a Terraform working directory (`work/`), a CLI
/// config (`cli.tfrc`) and, in mirror mode, a provider mirror (`mirror/`).
pub struct Workdir {
    tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    mode: CliMode,
    env: Vec<(String, OsString)>,
}

impl Workdir {
    pub fn new(mode: CliMode) -> Workdir {
        // Under target/tmp: same filesystem as the provider binary (hard links work)
        // and easy to find when kept after a failure.
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let _ = fs::create_dir_all(&base);
        let tmp = tempfile::Builder::new()
            .prefix("acc-")
            .tempdir_in(&base)
            .or_else(|_| tempfile::Builder::new().prefix("acc-").tempdir())
            .expect("create temp dir");
        let root = tmp.path().to_path_buf();
        let wd = Workdir {
            tmp: Some(tmp),
            root,
            mode,
            env: Vec::new(),
        };
        fs::create_dir_all(wd.path()).expect("create work dir");
        fs::create_dir_all(wd.mirror_dir()).expect("create mirror dir");
        if mode == CliMode::Mirror {
            wd.install_provider_into_mirror();
        }
        wd.write_cli_config();
        wd
    }

    /// Provider via `dev_overrides` (no init needed).
    pub fn dev_overrides() -> Workdir {
        Workdir::new(CliMode::DevOverrides)
    }

    /// Provider (and hashicorp/null) via filesystem mirrors (`terraform init` works offline).
    pub fn mirror() -> Workdir {
        Workdir::new(CliMode::Mirror)
    }

    pub fn mode(&self) -> CliMode {
        self.mode
    }

    /// The Terraform working directory (cwd of every command; files from `write` go here).
    pub fn path(&self) -> PathBuf {
        self.root.join("work")
    }

    /// The temp dir root (parent of `work/`, `mirror/`, `cli.tfrc`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn mirror_dir(&self) -> PathBuf {
        self.root.join("mirror")
    }

    pub fn cli_config_path(&self) -> PathBuf {
        self.root.join("cli.tfrc")
    }

    /// Writes `contents` to `work/<name>` (creating parent directories); returns the path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path().join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Reads `work/<name>`.
    pub fn read(&self, name: &str) -> String {
        let p = self.path().join(name);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// Removes `work/<name>` (file) if present.
    pub fn remove(&self, name: &str) {
        let _ = fs::remove_file(self.path().join(name));
    }

    /// Adds an environment variable for every later command (e.g. `PLATFORM_CATALOG`).
    pub fn set_env(&mut self, key: &str, value: impl Into<OsString>) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Builder form of [`Workdir::set_env`].
    pub fn with_env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.set_env(key, value);
        self
    }

    /// Runs `bin args...` in `work/` (adding `-no-color` where the subcommand takes it).
    pub fn tf(&self, bin: &Path, args: &[&str]) -> Output {
        self.tf_env(bin, args, &[])
    }

    /// Like [`Workdir::tf`] with extra environment variables for this command only.
    pub fn tf_env(&self, bin: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        let args = with_no_color(args);
        let mut cmd = self.tf_command(bin, &args);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let cmdline = format!("{} {}", bin.display(), args.join(" "));
        run_with_timeout(cmd, cmdline, timeout())
    }

    /// The command [`Workdir::tf`] runs (same isolation and environment), for
    /// a test that manages the process itself (e.g. kills it).
    pub fn tf_command(&self, bin: &Path, args: &[String]) -> Command {
        let mut cmd = Command::new(bin);
        cmd.args(args).current_dir(self.path());
        // Isolation from the caller's Terraform environment.
        for k in [
            "TF_CLI_ARGS",
            "TF_DATA_DIR",
            "TF_WORKSPACE",
            "TF_PLUGIN_CACHE_DIR",
            "TF_REATTACH_PROVIDERS",
            "TF_DISABLE_PLUGIN_TLS",
            "TF_LOG_PATH",
        ] {
            cmd.env_remove(k);
        }
        for (k, _) in std::env::vars_os() {
            if let Some(k) = k.to_str()
                && (k.starts_with("TF_CLI_ARGS_") || k.starts_with("TF_VAR_"))
            {
                cmd.env_remove(k);
            }
        }
        cmd.env("TF_CLI_CONFIG_FILE", self.cli_config_path())
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_INPUT", "0")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `init` (mirror mode, or configs using only mirrored providers); asserts success.
    #[track_caller]
    pub fn init(&self, bin: &Path) -> Output {
        let out = self.tf(bin, &["init", "-input=false"]);
        assert_success(&out);
        out
    }

    fn install_provider_into_mirror(&self) {
        let src = provider_binary();
        let dir = self.mirror_dir().join(format!(
            "registry.terraform.io/platform/platform/{PROVIDER_VERSION}/linux_amd64"
        ));
        fs::create_dir_all(&dir).expect("create provider mirror dir");
        let dst = dir.join(format!("{PROVIDER_BIN_NAME}_v{PROVIDER_VERSION}"));
        // A hard link is instant; fall back to a copy across filesystems.
        if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", src.display(), dst.display()));
        }
    }

    fn write_cli_config(&self) {
        // hashicorp/null is optional: without it, configs using only platform/platform work.
        let null_block = null_mirror_opt().map(|null| {
            format!(
                "  filesystem_mirror {{\n    path    = {}\n    include = [\"registry.terraform.io/hashicorp/null\"]\n  }}\n",
                hcl_str(&null)
            )
        });
        let mut c = String::from("disable_checkpoint = true\n\nprovider_installation {\n");
        match self.mode {
            CliMode::DevOverrides => {
                let bin = provider_binary();
                let dir = bin.parent().expect("provider binary has a parent dir");
                c.push_str(&format!(
                    "  dev_overrides {{\n    \"{PROVIDER_SOURCE}\" = {}\n  }}\n",
                    hcl_str(dir)
                ));
                if let Some(b) = &null_block {
                    c.push_str(b);
                    c.push_str(
                        "  direct {\n    exclude = [\"registry.terraform.io/hashicorp/null\"]\n  }\n",
                    );
                } else {
                    c.push_str("  direct {}\n");
                }
            }
            CliMode::Mirror => {
                c.push_str(&format!(
                    "  filesystem_mirror {{\n    path    = {}\n    include = [\"{PROVIDER_FQN}\"]\n  }}\n",
                    hcl_str(&self.mirror_dir())
                ));
                if let Some(b) = &null_block {
                    c.push_str(b);
                }
            }
        }
        c.push_str("}\n");
        fs::write(self.cli_config_path(), c).expect("write CLI config");
    }

    /// Keeps the directory after the test (printed to stderr).
    pub fn keep(&mut self) -> PathBuf {
        if let Some(t) = self.tmp.take() {
            std::mem::forget(t);
            eprintln!("acceptance: kept work dir {}", self.root.display());
        }
        self.root.clone()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var("TF_ACC_KEEP").as_deref() == Ok("1") {
            self.keep();
        }
    }
}

fn timeout() -> Duration {
    let secs = std::env::var("TF_ACC_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

fn run_with_timeout(mut cmd: Command, cmdline: String, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    // Own process group, so a hung terraform and its provider plugins can be killed together.
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    let mut so = child.stdout.take().expect("stdout pipe");
    let mut se = child.stderr.take().expect("stderr pipe");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = so.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = se.read_to_end(&mut b);
        b
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => panic!("waiting for {cmdline}: {e}"),
        }
        if start.elapsed() > limit {
            timed_out = true;
            // Through the system call: procps-ng's `kill -KILL -- -PGID` of
            // some releases signals every process it may (as `kill -1`).
            if let Some(pgid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            break child.wait().expect("wait after kill");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    let out = Output {
        status,
        stdout,
        stderr,
        cmdline,
        elapsed,
    };
    if timed_out {
        panic!("timed out after {limit:?} (TF_ACC_TIMEOUT_SECS):\n{out}");
    }
    out
}
