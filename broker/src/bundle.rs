//! Plan bundles and their identity: what `plan` leaves behind for `apply`.
//!
//! A bundle lives in `HOME/runs/<run>/` (HOME defaults to `DIR/.platform`):
//! the plan file (0600), the redacted plan JSON, the report, `identity.json`,
//! and later `approvals.json`, `status`. **Invariant:** `apply` runs a bundle
//! only while every digest of its identity still matches the world, at most
//! once: the `consumed` marker is created exclusively *before* terraform
//! starts, so two applies of one bundle cannot both pass.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: String, message: String },
    #[error("no run {0:?} under this broker home (see `platform-broker runs`)")]
    NoSuchRun(String),
    #[error("no plan bundle yet: run `platform-broker plan` first")]
    NoRuns,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `sha256:<hex>` of a file's bytes; `None` when the file does not exist.
pub fn file_digest(path: &Path) -> Result<Option<String>, BundleError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes_digest(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

pub fn bytes_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The prior state a plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorState {
    pub lineage: String,
    pub serial: u64,
}

/// Everything that must still hold when the bundle is applied: what the plan
/// was made from (digests of the plan file, configuration, lock file, var
/// files, backend, catalog, policy and price book; the prior state), what it
/// was made for (directory, workspace, environment, options) and what was
/// decided (the verdict, the budget figures it used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub run: String,
    pub plan_digest: String,
    pub lock_digest: Option<String>,
    pub catalog_digest: Option<String>,
    pub policy_digest: Option<String>,
    #[serde(default)]
    pub pricebook_digest: Option<String>,
    /// `None`: planned against an empty state.
    pub prior_state: Option<PriorState>,
    pub working_dir: String,
    pub workspace: String,
    /// The environment policies saw (`input.run.workspace.environment`).
    #[serde(default)]
    pub environment: String,
    /// Keyed digest of the root module's `*.tf`, `*.tf.json` and `*.tfvars`
    /// files (see `run::plan::config_digest`).
    #[serde(default)]
    pub config_digest: Option<String>,
    /// Keyed digest of the initialized backend (`.terraform/terraform.tfstate`'s
    /// `backend`); `None` for the default local backend.
    #[serde(default)]
    pub backend_digest: Option<String>,
    /// The `terraform plan` options of the run.
    #[serde(default)]
    pub options: PlanRecord,
    /// Digest of the budget report the verdict used (`budget.json`).
    #[serde(default)]
    pub budget_digest: Option<String>,
    pub commit: Option<String>,
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: String,
    /// Policy verdict at plan time: allowed, needs_approval, denied.
    pub verdict: String,
    /// The broker key that authenticates this identity (its id), if any.
    #[serde(default)]
    pub key_id: Option<String>,
}

/// The options a plan was made with. Variable values are never stored: each
/// is known by a keyed digest (the home's fingerprint), so an unchanged
/// value can be recognised but a guessed one cannot be confirmed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub destroy: bool,
    pub targets: Vec<String>,
    pub replace: Vec<String>,
    /// `-var NAME=VALUE`, in order.
    pub vars: Vec<Recorded>,
    /// `-var-file PATH`, in order (absolute paths).
    pub var_files: Vec<Recorded>,
}

/// A name or path and the keyed digest of its value or contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub name: String,
    pub digest: String,
}

/// `identity.json`: the identity and, with a broker key, its MAC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedIdentity {
    #[serde(flatten)]
    pub identity: Identity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The MAC domain of identities.
pub const IDENTITY_DOMAIN: &str = "platform-broker identity";
/// The MAC domain of approvals.
pub const APPROVAL_DOMAIN: &str = "platform-broker approval";

impl Identity {
    /// The canonical bytes: what the digest and the MAC are taken over.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The digest that names this identity in approvals and audit events.
    pub fn digest(&self) -> String {
        bytes_digest(self.canonical().as_bytes())
    }
}

/// One approval of a run (`approvals.json` holds a list of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub identity_digest: String,
    pub approver: String,
    pub reason: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Approval {
    /// What the MAC is taken over: every field but the MAC.
    pub fn canonical(&self) -> String {
        serde_json::to_string(&(
            &self.identity_digest,
            &self.approver,
            &self.reason,
            &self.at,
        ))
        .unwrap_or_default()
    }
}

/// The broker's home directory for one working directory.
#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    pub fn new(root: PathBuf) -> Home {
        Home { root }
    }

    /// The audit log of this home.
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.log")
    }

    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }

    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.runs().join(run)
    }

    /// A new, unique run directory (0700).
    pub fn create_run(&self) -> Result<(String, PathBuf), BundleError> {
        crate::fsx::ensure_dir(&self.runs(), 0o700).map_err(io(&self.runs()))?;
        let now = time::OffsetDateTime::now_utc();
        let mut suffix = [0u8; 3];
        fill_random(&mut suffix);
        let run = format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}-{}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let dir = self.run_dir(&run);
        fs::create_dir(&dir).map_err(io(&dir))?;
        set_mode(&dir, 0o700)?;
        Ok((run, dir))
    }

    /// The newest run, for `apply` without an argument.
    pub fn latest_run(&self) -> Result<String, BundleError> {
        let runs = self.runs();
        crate::fsx::check_no_symlink_below(&self.root, &runs).map_err(io(&runs))?;
        let mut names: Vec<String> = match fs::read_dir(&runs) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("identity.json").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&runs)(e)),
        };
        names.sort();
        names.pop().ok_or(BundleError::NoRuns)
    }

    /// Every run directory's name, oldest first.
    pub fn run_names(&self) -> Result<Vec<String>, BundleError> {
        let runs = self.runs();
        crate::fsx::check_no_symlink_below(&self.root, &runs).map_err(io(&runs))?;
        let mut names: Vec<String> = match fs::read_dir(&runs) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| valid_run_id(name))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&runs)(e)),
        };
        names.sort();
        Ok(names)
    }

    /// Reads a file of a run, never through a symlink (`None` when missing).
    pub fn read_run_file(&self, run: &str, name: &str) -> Result<Option<Vec<u8>>, BundleError> {
        if !valid_run_id(run) {
            return Err(BundleError::NoSuchRun(run.to_owned()));
        }
        let path = self.run_dir(run).join(name);
        crate::fsx::check_no_symlink_below(&self.root, &path).map_err(io(&path))?;
        match crate::fsx::read_nofollow(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The identity of `run` with its MAC (if one was written).
    pub fn load_identity(&self, run: &str) -> Result<SignedIdentity, BundleError> {
        let path = self.run_dir(run).join("identity.json");
        let text = match self.read_run_file(run, "identity.json")? {
            Some(bytes) => String::from_utf8(bytes).map_err(|_| BundleError::Corrupt {
                path: path.display().to_string(),
                message: "not UTF-8".into(),
            })?,
            None => return Err(BundleError::NoSuchRun(run.to_owned())),
        };
        serde_json::from_str(&text).map_err(|e| BundleError::Corrupt {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }
}

/// A run id as `create_run` makes them (`YYYYMMDD-HHMMSS-xxxxxx`): anything
/// else (`..`, a path) is never looked up.
pub fn valid_run_id(run: &str) -> bool {
    !run.is_empty()
        && run.len() <= 64
        && run
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Writes a cache derived from durable records (the redacted plan, the
/// report) atomically but without fsync: losing it in a crash costs a re-plan,
/// never a wrong decision (apply re-derives everything).
pub fn write_cache(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    crate::fsx::write_cache(path, bytes, 0o600).map_err(io(path))
}

/// Writes a file atomically (a uniquely named temp file, fsync, rename) with
/// `mode`, never through a symlink (see `fsx`).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), BundleError> {
    crate::fsx::write_atomic(path, bytes, mode).map_err(io(path))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BundleError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// Creates `path` exclusively; `Ok(false)` when it already exists. This is
/// the atomic "consume once" and "lock" primitive.
pub fn create_exclusive(path: &Path, contents: &str) -> Result<bool, BundleError> {
    // Never through a symlink: O_EXCL fails on any existing entry.
    match crate::fsx::create_new(path, contents.as_bytes(), 0o600) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

/// Fills `buf` from the operating system's random source.
pub fn fill_random(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    if ring::rand::SystemRandom::new().fill(buf).is_err() {
        // Only if the OS has no random source at all; read /dev/urandom as a
        // last resort rather than leave the buffer predictable.
        if let Ok(mut file) = File::open("/dev/urandom") {
            let _ = std::io::Read::read_exact(&mut file, buf);
        }
    }
}

/// A per-workspace lock: a file holding the holder's pid and run. Stale locks
/// (holder process gone) are reported, not silently broken.
pub struct WorkspaceLock {
    path: PathBuf,
}

impl WorkspaceLock {
    pub fn acquire(
        home: &Home,
        workspace: &str,
        run: &str,
    ) -> Result<Result<WorkspaceLock, String>, BundleError> {
        crate::fsx::ensure_dir(&home.root, 0o700).map_err(io(&home.root))?;
        // The workspace name comes from the environment or the identity: it
        // never becomes a path of its own.
        let safe: String = workspace
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = home.root.join(format!("apply-{safe}.lock"));
        let holder = format!("pid={} run={run}\n", std::process::id());
        // The holder line is written to a private file first and then
        // hard-linked into place: link(2) is atomic and fails when the lock
        // exists, so a competing apply never sees a lock file without its
        // holder (an empty file would look like a dead holder).
        let mut nonce = [0u8; 8];
        fill_random(&mut nonce);
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let staged = home.root.join(format!(".apply-{safe}.lock.{nonce}"));
        if !create_exclusive(&staged, &holder)? {
            return Err(io(&staged)(std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        let outcome = Self::link_or_inspect(&staged, &path, workspace);
        let _ = fs::remove_file(&staged);
        outcome
    }

    fn link_or_inspect(
        staged: &Path,
        path: &Path,
        workspace: &str,
    ) -> Result<Result<WorkspaceLock, String>, BundleError> {
        // A holder may release between our failed link and our read: then
        // the lock is free and we try again (a few times; each round means
        // another apply finished in between).
        for _ in 0..8 {
            match fs::hard_link(staged, path) {
                Ok(()) => {
                    return Ok(Ok(WorkspaceLock {
                        path: path.to_owned(),
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(path)(e)),
            }
            let current = match crate::fsx::read_to_string(path) {
                Ok(current) => current,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(path)(e)),
            };
            let pid = current
                .split_whitespace()
                .find_map(|w| w.strip_prefix("pid="))
                .and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            let what = current.trim().to_owned();
            return Ok(Err(if alive {
                format!("workspace {workspace:?} is locked by another apply ({what})")
            } else {
                format!(
                    "workspace {workspace:?} holds a stale lock ({what}): a previous apply died. Check the run's status, then remove {}",
                    path.display()
                )
            }));
        }
        Ok(Err(format!(
            "workspace {workspace:?} is locked by another apply (taken and released repeatedly while we tried)"
        )))
    }
}

impl WorkspaceLock {
    /// Removes the apply locks in `home` held for `run` by a process that is
    /// gone (the server that ran it died; its run has been reaped). A lock
    /// whose holder still lives, or held for another run, stays. Returns the
    /// files removed.
    pub fn release_stale_for(home: &Home, run: &str) -> Result<Vec<PathBuf>, BundleError> {
        let mut removed = Vec::new();
        let entries = match fs::read_dir(&home.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(io(&home.root)(e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(name.starts_with("apply-") && name.ends_with(".lock")) {
                continue;
            }
            let path = entry.path();
            let Ok(holder) = crate::fsx::read_to_string(&path) else {
                continue;
            };
            let names_run = holder
                .split_whitespace()
                .any(|w| w.strip_prefix("run=") == Some(run));
            let pid = holder
                .split_whitespace()
                .find_map(|w| w.strip_prefix("pid="))
                .and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if names_run && !alive {
                fs::remove_file(&path).map_err(io(&path))?;
                removed.push(path);
            }
        }
        Ok(removed)
    }
}

impl Drop for WorkspaceLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Plan files can hold secrets: owner-only.
pub fn set_private(path: &Path) -> Result<(), BundleError> {
    set_mode(path, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_holders_lock_for_that_run_is_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path().to_path_buf());
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write");
        };
        write("apply-a.lock", "pid=4000000000 run=R1\n");
        write("apply-b.lock", "pid=4000000000 run=R2\n");
        write(
            "apply-c.lock",
            &format!("pid={} run=R1\n", std::process::id()),
        );
        write("other.lock", "pid=4000000000 run=R1\n");
        let removed = WorkspaceLock::release_stale_for(&home, "R1").expect("release");
        assert_eq!(removed, [dir.path().join("apply-a.lock")]);
        for kept in ["apply-b.lock", "apply-c.lock", "other.lock"] {
            assert!(dir.path().join(kept).exists(), "{kept}");
        }
    }

    #[test]
    fn consume_once_and_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path().join(".platform"));
        let (run, run_dir) = home.create_run().expect("run");
        let marker = run_dir.join("consumed");
        assert!(create_exclusive(&marker, "x").expect("first"));
        assert!(!create_exclusive(&marker, "x").expect("second"));
        let lock = WorkspaceLock::acquire(&home, "default", &run)
            .expect("io")
            .expect("free");
        let second = WorkspaceLock::acquire(&home, "default", &run).expect("io");
        assert!(second.is_err_and(|why| why.contains("locked by another apply")));
        drop(lock);
        assert!(
            WorkspaceLock::acquire(&home, "default", &run)
                .expect("io")
                .is_ok()
        );
    }

    #[test]
    fn racing_lockers_never_see_a_holderless_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path().join(".platform"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let home = Home::new(home.root.clone());
                std::thread::spawn(move || {
                    let mut won = 0;
                    for i in 0..200 {
                        match WorkspaceLock::acquire(&home, "default", &format!("r{t}-{i}"))
                            .expect("io")
                        {
                            Ok(lock) => {
                                won += 1;
                                drop(lock);
                            }
                            Err(why) => assert!(
                                why.contains("locked by another apply"),
                                "a live holder was reported as: {why}"
                            ),
                        }
                    }
                    won
                })
            })
            .collect();
        let won: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert!(won > 0);
        let left: Vec<_> = fs::read_dir(&home.root)
            .expect("home")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert!(left.is_empty(), "lock files left behind: {left:?}");
    }

    #[test]
    fn identity_digest_is_stable_and_sensitive() {
        let identity = Identity {
            run: "r".into(),
            plan_digest: "sha256:1".into(),
            lock_digest: None,
            catalog_digest: None,
            policy_digest: None,
            pricebook_digest: None,
            prior_state: None,
            working_dir: "/w".into(),
            workspace: "default".into(),
            environment: "production".into(),
            config_digest: Some("keyed:1".into()),
            backend_digest: None,
            options: PlanRecord::default(),
            budget_digest: None,
            key_id: None,
            commit: None,
            created_by: "me".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-02T00:00:00Z".into(),
            verdict: "allowed".into(),
        };
        assert_eq!(identity.digest(), identity.clone().digest());
        let mut other = identity.clone();
        other.plan_digest = "sha256:2".into();
        assert_ne!(identity.digest(), other.digest());
        let mut other = identity.clone();
        other.verdict = "needs_approval".into();
        assert_ne!(identity.digest(), other.digest());
        // The MAC is not part of what it authenticates; old identities
        // (without the newer fields) still parse.
        let signed = SignedIdentity {
            identity: identity.clone(),
            mac: Some("00".into()),
        };
        let text = serde_json::to_string(&signed).expect("json");
        let back: SignedIdentity = serde_json::from_str(&text).expect("parse");
        assert_eq!(back.identity.digest(), identity.digest());
        let old = r#"{"run":"r","plan_digest":"sha256:1","lock_digest":null,"catalog_digest":null,
            "policy_digest":null,"prior_state":null,"working_dir":"/w","workspace":"default",
            "commit":null,"created_by":"me","created_at":"x","expires_at":"y","verdict":"allowed"}"#;
        let old: SignedIdentity = serde_json::from_str(old).expect("old identity");
        assert!(old.mac.is_none() && old.identity.config_digest.is_none());
    }

    #[test]
    fn latest_run_and_missing_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path().to_path_buf());
        assert!(matches!(home.latest_run(), Err(BundleError::NoRuns)));
        assert!(matches!(
            home.load_identity("nope"),
            Err(BundleError::NoSuchRun(_))
        ));
    }
}
