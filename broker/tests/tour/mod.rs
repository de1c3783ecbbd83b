//! What users meet first, run for real: the pipeline examples under
//! `examples/pipelines/` (valid YAML; their `platform-broker` command lines,
//! extracted from the files, run here against Terraform and PostgreSQL), the
//! README (its first block is exactly the two commands, the quickstart runs,
//! every ```console command of the tour runs and returns its documented exit
//! code) and `scripts/quickstart` itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::acc::*;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The pipeline files: (CI system, path relative to the repo).
const PIPELINES: &[(&str, &str)] = &[
    ("github", "examples/pipelines/github/platform-plan.yml"),
    ("github", "examples/pipelines/github/platform-apply.yml"),
    ("github", "examples/pipelines/github/platform-drift.yml"),
    ("gitlab", "examples/pipelines/gitlab/.gitlab-ci.yml"),
];

/// The broker command lines the pipelines may contain: exactly these, each
/// run by `pipeline_commands_run` below. A new one needs a test there first.
const PIPELINE_COMMANDS: &[&str] = &[
    r#"platform-broker plan "$TF_DIR" --markdown --sarif platform.sarif --junit platform-junit.xml > plan.md || rc=$?"#,
    r#"platform-broker apply --dir "$TF_DIR""#,
    r#"platform-broker audit verify "$TF_DIR""#,
    r#"platform-broker drift "$TF_DIR" --json > drift.json || rc=$?"#,
];

/// `PYTHONPATH` for PyYAML: `PLATFORM_PYTHONPATH` (scripts/setup), else `.tools/python`.
fn python_path() -> PathBuf {
    std::env::var_os("PLATFORM_PYTHONPATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/python"))
}

/// Parses a YAML file with PyYAML (`safe_load`) into JSON; None when python3
/// or PyYAML is missing (a failure under TF_ACC=1).
fn load_yaml(path: &Path) -> Option<Result<serde_json::Value, String>> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys\ntry:\n    import yaml\nexcept ImportError:\n    sys.exit(42)\n\
             print(json.dumps(yaml.safe_load(open(sys.argv[1])), default=str))",
        ])
        .arg(path)
        .env("PYTHONPATH", python_path())
        .output();
    match out {
        Err(_) => None,
        Ok(out) if out.status.code() == Some(42) => None,
        Ok(out) if !out.status.success() => Some(Err(format!(
            "{} is not valid YAML:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ))),
        Ok(out) => Some(
            serde_json::from_slice(&out.stdout)
                .map_err(|e| format!("{}: PyYAML gave no JSON: {e}", path.display())),
        ),
    }
}

/// Every shell string of a pipeline: GitHub steps' `run`, GitLab jobs'
/// `script`, `before_script`, `after_script` (strings or lists of strings).
fn shell_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let shell =
                    ["run", "script", "before_script", "after_script"].contains(&k.as_str());
                match (shell, v) {
                    (true, serde_json::Value::String(s)) => out.push(s.clone()),
                    (true, serde_json::Value::Array(items)) => {
                        for item in items {
                            if let Some(s) = item.as_str() {
                                out.push(s.to_owned());
                            }
                        }
                    }
                    _ => shell_strings(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| shell_strings(i, out)),
        _ => {}
    }
}

/// The `platform-broker …` lines of a parsed pipeline.
fn broker_lines(doc: &serde_json::Value) -> Vec<String> {
    let mut strings = Vec::new();
    shell_strings(doc, &mut strings);
    strings
        .iter()
        .flat_map(|s| s.lines())
        .map(str::trim)
        .filter(|l| l.starts_with("platform-broker"))
        .map(str::to_owned)
        .collect()
}

/// Loads every pipeline; checks its shape; returns (system, file, broker lines).
fn pipelines() -> Option<Vec<(&'static str, &'static str, Vec<String>)>> {
    let mut all = Vec::new();
    for (system, file) in PIPELINES {
        let path = repo_root().join(file);
        assert!(path.is_file(), "{file} missing");
        let doc = match load_yaml(&path)? {
            Ok(doc) => doc,
            Err(e) => panic!("{e}"),
        };
        let env = if *system == "github" {
            // PyYAML reads the `on:` key as the boolean true (YAML 1.1).
            assert!(
                doc.get("on").or_else(|| doc.get("true")).is_some(),
                "{file}: no `on:` trigger"
            );
            let jobs = doc["jobs"]
                .as_object()
                .unwrap_or_else(|| panic!("{file}: no jobs"));
            for (name, job) in jobs {
                assert!(
                    job["runs-on"].is_string(),
                    "{file}: job {name} has no runs-on"
                );
                assert!(job["steps"].is_array(), "{file}: job {name} has no steps");
            }
            &doc["env"]
        } else {
            let jobs: Vec<&String> = doc
                .as_object()
                .expect("top-level map")
                .iter()
                .filter(|(k, v)| !k.starts_with('.') && v.get("stage").is_some())
                .map(|(k, _)| k)
                .collect();
            assert!(jobs.len() >= 4, "{file}: jobs {jobs:?}");
            &doc["variables"]
        };
        for key in [
            "TF_DIR",
            "PLATFORM_POLICY",
            "PLATFORM_PRICEBOOK",
            "PLATFORM_MIRROR_URL",
            "PLATFORM_RELEASE_KEY",
        ] {
            assert!(
                env[key].is_string(),
                "{file}: {key} is not set for every job"
            );
        }
        assert_eq!(
            env["PLATFORM_VERSION"], PROVIDER_VERSION,
            "{file}: PLATFORM_VERSION is not the workspace's version"
        );
        assert_installs_first(system, file, &doc);
        let lines = broker_lines(&doc);
        assert!(!lines.is_empty(), "{file} runs no platform-broker command");
        all.push((*system, *file, lines));
    }
    Some(all)
}

/// Every job installs what it runs from the release
/// (`install-platform.sh`, tested in `mirror/`) before any broker command,
/// and names no container image that nothing builds.
fn assert_installs_first(system: &str, file: &str, doc: &serde_json::Value) {
    let text = std::fs::read_to_string(repo_root().join(file)).expect("pipeline");
    assert!(
        !text.contains("platform-runner"),
        "{file} names a runner image nothing builds"
    );
    let installs = |v: &serde_json::Value| {
        let mut strings = Vec::new();
        shell_strings(v, &mut strings);
        strings.iter().any(|s| s.contains("ci/install-platform.sh"))
    };
    if system == "github" {
        for (name, job) in doc["jobs"].as_object().expect("jobs") {
            let steps = job["steps"].as_array().expect("steps");
            let install = steps.iter().position(installs);
            let broker = steps.iter().position(|s| !broker_lines(s).is_empty());
            assert!(
                matches!((install, broker), (Some(i), Some(b)) if i < b),
                "{file}: job {name} runs platform-broker without installing it first"
            );
        }
    } else {
        assert!(
            installs(&doc["default"]),
            "{file}: default.before_script does not run ci/install-platform.sh"
        );
        for (name, job) in doc.as_object().expect("map") {
            if name == "default" || !job.is_object() {
                continue;
            }
            assert!(
                job.get("before_script").is_none() && job.get("image").is_none(),
                "{file}: job {name} replaces the default before_script or image"
            );
        }
    }
}

fn skip(why: &str) {
    eprintln!("** SKIPPED: {why}");
}

#[test]
fn pipelines_are_valid_yaml_and_use_tested_commands() {
    let Some(pipelines) = pipelines() else {
        assert!(
            std::env::var("TF_ACC").as_deref() != Ok("1"),
            "python3 with PyYAML is needed (scripts/setup installs it into .tools/python)"
        );
        return skip("python3 with PyYAML not found (run scripts/setup)");
    };
    let mut by_system: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
    for (system, file, lines) in &pipelines {
        for line in lines {
            assert!(
                PIPELINE_COMMANDS.contains(&line.as_str()),
                "{file}: `{line}` is not one of the commands the acceptance test runs \
                 (PIPELINE_COMMANDS in broker/tests/tour/mod.rs)"
            );
            by_system.entry(system).or_default().insert(line.clone());
        }
    }
    let expected: BTreeSet<String> = PIPELINE_COMMANDS.iter().map(|s| s.to_string()).collect();
    for (system, lines) in &by_system {
        assert_eq!(
            lines, &expected,
            "the {system} pipelines do not run every command the GitHub/GitLab pair shares"
        );
    }
}

/// Runs one pipeline command line as the CI shell would (`rc` captured the
/// same way; `bash -e` like GitHub's `shell: bash` and GitLab's script lines), in
/// `root`, with the pipeline's variables; returns its exit code.
fn run_line(w: &World, line: &str, root: &Path) -> (i32, String) {
    let script = format!("set -eo pipefail\nrc=0\n{line}\nexit \"$rc\"\n");
    let bin_dir = broker_bin().parent().expect("bin dir").to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let mut cmd = Command::new("bash");
    w.isolate(&mut cmd);
    cmd.args(["-c", &script])
        .current_dir(root)
        .env("PATH", path)
        .env("TF_DIR", "work")
        .env(
            "PLATFORM_POLICY",
            repo_root().join("examples/policies/policy.hcl"),
        )
        .env(
            "PLATFORM_PRICEBOOK",
            repo_root().join("examples/pricebooks/aws.hcl"),
        )
        .env("PLATFORM_ENVIRONMENT", "production")
        .env("PLATFORM_TERRAFORM", &w.tf)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .stdin(Stdio::null());
    let out = cmd.output().expect("run bash");
    let text = format!(
        "$ {line}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn pipeline_commands_run() {
    crate::require_acc!();
    let pipelines = pipelines().expect("python3 with PyYAML (scripts/setup installs it)");
    let lines: BTreeSet<String> = pipelines.into_iter().flat_map(|(_, _, l)| l).collect();
    let find = |prefix: &str| -> String {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in the pipelines"))
            .clone()
    };
    let (plan, apply, verify, drift) = (
        find("platform-broker plan "),
        find("platform-broker apply "),
        find("platform-broker audit verify "),
        find("platform-broker drift "),
    );
    // Every line found in the pipelines is one of the four run below.
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for tf in terraform_bins() {
        let w = World::new("pipe", &tf);
        let ctx = w.ctx.clone();
        w.write_config("small", 20);
        let root = w.root.clone();
        let expect = |line: &str, want: i32| -> String {
            let (code, text) = run_line(&w, line, &root);
            assert_eq!(code, want, "{ctx}: exit {code}, expected {want}:\n{text}");
            text
        };

        // Merge request: plan, the Markdown comment, SARIF and JUnit files.
        expect(&plan, 2);
        let md = std::fs::read_to_string(root.join("plan.md")).expect("plan.md");
        assert!(
            md.starts_with("<!-- platform-broker:plan ")
                && md.contains("**Allowed**")
                && md.contains("$25.00")
                && md.contains("```diff\n+ ")
                && md.contains("\nplatform-broker apply "),
            "{ctx}: {md}"
        );
        if std::env::var_os("PLATFORM_SHOW_MARKDOWN").is_some() {
            eprintln!("{md}");
        }
        let sarif: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("platform.sarif")).expect("sarif"),
        )
        .unwrap_or_else(|e| panic!("{ctx}: SARIF is not JSON: {e}"));
        assert_eq!(sarif["version"], "2.1.0", "{ctx}");
        crate::sarif::assert_valid(&sarif);
        // Locations are relative to the directory the pipeline ran in.
        for result in sarif["runs"][0]["results"].as_array().expect("results") {
            let artifact = &result["locations"][0]["physicalLocation"]["artifactLocation"];
            assert_eq!(artifact["uriBaseId"], "%SRCROOT%", "{ctx}: {result}");
            assert_eq!(artifact["uri"], "work/main.tf", "{ctx}: {result}");
        }
        assert!(
            root.join("platform-junit.xml").is_file(),
            "{ctx}: no JUnit file"
        );

        // Default branch: apply the reviewed bundle, verify the audit log.
        expect(&apply, 0);
        assert!(database_exists(&w.db), "{ctx}: {} not created", w.db);
        expect(&verify, 0);
        // The same bundle never applies twice.
        let (code, text) = run_line(&w, &apply, &root);
        assert_ne!(code, 0, "{ctx}: applied a bundle twice:\n{text}");

        // Nightly: no drift, then an out-of-band change is drift (exit 2).
        expect(&drift, 0);
        psql(&format!(
            "ALTER ROLE \"{}_owner\" CONNECTION LIMIT 99",
            w.db
        ))
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        expect(&drift, 2);
        let report = std::fs::read_to_string(root.join("drift.json")).expect("drift.json");
        assert!(report.contains("connection_limit"), "{ctx}: {report}");
        expect(&verify, 0);
    }
}

// ---------------------------------------------------------------------------
// README

/// Fenced blocks of a Markdown file: (info string, first line number, lines).
fn fenced_blocks(text: &str) -> Vec<(String, usize, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, usize, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("```") {
            match current.take() {
                None => current = Some((rest.trim().to_owned(), i + 1, Vec::new())),
                Some(block) => blocks.push(block),
            }
        } else if let Some((_, _, lines)) = current.as_mut() {
            lines.push(line.to_owned());
        }
    }
    assert!(current.is_none(), "README.md: unterminated code block");
    blocks
}

/// A tour command and the exit code it must return (`# exit N`, else 0).
fn tour_commands(readme: &str) -> Vec<(usize, String, i32)> {
    let mut commands = Vec::new();
    for (info, start, lines) in fenced_blocks(readme) {
        let shell = ["sh", "bash", "shell", "console", "shell-session"].contains(&info.as_str());
        if start == 3 {
            continue; // the first block: checked by readme_first_block_is_the_two_commands
        }
        assert!(
            !shell || info == "console",
            "README.md:{start}: a ```{info} block; commands go in ```console blocks (`$ ` lines), which readme_tour runs"
        );
        for (offset, line) in lines.iter().enumerate() {
            let Some(command) = line.strip_prefix("$ ") else {
                continue;
            };
            assert!(
                info == "console",
                "README.md:{}: a command outside a ```console block is never run",
                start + offset + 1
            );
            let (command, code) = match command.rsplit_once("# exit ") {
                Some((cmd, code)) => (
                    cmd.trim_end().to_owned(),
                    code.trim().parse().expect("exit code after `# exit`"),
                ),
                None => (command.to_owned(), 0),
            };
            commands.push((start + offset + 1, command, code));
        }
    }
    commands
}

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("README.md")
}

#[test]
fn readme_first_block_is_the_two_commands() {
    let text = readme();
    let blocks = fenced_blocks(&text);
    let (info, start, lines) = &blocks[0];
    assert_eq!(
        (info.as_str(), *start),
        ("sh", 3),
        "README.md: the first block moved"
    );
    let commands: Vec<&str> = lines
        .iter()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .collect();
    assert_eq!(commands, ["bash scripts/quickstart", "bash scripts/test"]);
    // `bash scripts/test` is what CI runs; the quickstart runs in readme_quickstart.
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "bash scripts/test"),
        ".ci/run: {ci}"
    );
    // The tour parses: some commands, each with a known exit code.
    let tour = tour_commands(&text);
    assert!(tour.len() >= 8, "{tour:#?}");
}

/// Copies what the tour needs (modules/ and examples/) into `to`.
fn copy_repo_subset(to: &Path) {
    for dir in ["modules", "examples", "docs"] {
        let from = repo_root().join(dir);
        for f in files_under(&from) {
            let rel = f.strip_prefix(&from).expect("prefix");
            if rel.components().any(|c| {
                let c = c.as_os_str();
                c == ".terraform" || c == ".platform"
            }) || rel.extension().is_some_and(|e| e == "tfstate")
                || rel.file_name().is_some_and(|n| n == ".terraform.lock.hcl")
            {
                continue;
            }
            let dest = to.join(dir).join(rel);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::copy(&f, &dest).expect("copy");
        }
    }
}

/// A throwaway PostgreSQL of its own (scripts/pg), stopped on drop.
struct OwnPg {
    dir: tempfile::TempDir,
}

impl OwnPg {
    fn start() -> OwnPg {
        let dir = tempfile::Builder::new()
            .prefix("tour-pg-")
            .tempdir()
            .expect("tempdir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/pg"))
            .arg("start")
            .arg(dir.path().join("pg"))
            .output()
            .expect("scripts/pg");
        assert!(
            out.status.success(),
            "scripts/pg start failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        OwnPg { dir }
    }

    fn env_file(&self) -> PathBuf {
        self.dir.path().join("pg/env")
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/pg"))
            .arg("stop")
            .arg(self.dir.path().join("pg"))
            .output();
    }
}

#[test]
fn readme_tour() {
    crate::require_acc!();
    let commands = tour_commands(&readme());
    let pg = OwnPg::start();
    for tf in terraform_bins() {
        let w = World::new("tour", &tf);
        let ctx = w.ctx.clone();
        let repo = w.root.join("repo");
        copy_repo_subset(&repo);
        // `terraform` on PATH is the binary under test; the broker and the
        // provider are this build's.
        let tf_dir = w.root.join("tfbin");
        std::fs::create_dir_all(&tf_dir).expect("mkdir");
        std::os::unix::fs::symlink(&tf, tf_dir.join("terraform")).expect("symlink");
        let bin_dir = broker_bin().parent().expect("bin dir").to_path_buf();

        let mut script = format!(
            ". {:?}\nexport PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE\n",
            pg.env_file()
        );
        for (line, command, code) in &commands {
            script.push_str(&format!(
                "echo '>>> README.md:{line}: '{quoted}\n{command}\nrc=$?\nif [ \"$rc\" -ne {code} ]; then echo \"README.md:{line}: exit $rc, expected {code}\" >&2; exit 1; fi\n",
                quoted = shell_quote(command),
            ));
        }
        let path = std::env::join_paths([tf_dir.clone(), bin_dir].into_iter().chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .expect("PATH");
        let mut cmd = Command::new("bash");
        w.isolate(&mut cmd);
        cmd.args(["-c", &script])
            .current_dir(&repo)
            .env("PATH", path)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .stdin(Stdio::null());
        let out = cmd.output().expect("bash");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "{ctx}: the README tour failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        for needle in [
            "Verdict: allowed (exit 2)",
            "26 passed, 0 failed",
            "audit log OK",
            "Destroy complete!",
            // The control-plane section: applied and destroyed by the
            // server, drift checked there, its audit chain whole.
            "platform-broker: the server applied run",
            "No open drift in workspace orders.",
            "\"ok\":true",
        ] {
            assert!(
                stdout.contains(needle),
                "{ctx}: tour output lacks {needle:?}:\n{stdout}"
            );
        }
        let md = std::fs::read_to_string(repo.join("plan.md")).expect("plan.md");
        assert!(md.contains("Monthly cost"), "{ctx}: {md}");
        // The tour cleans up after itself: nothing but the superuser is left.
        let left = Command::new("bash")
            .args([
                "-c",
                &format!(
                    ". {:?}; psql -X -A -t -q -d postgres -c \"SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> current_user\" -c \"SELECT string_agg(datname, ',') FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')\"",
                    pg.env_file()
                ),
            ])
            .output()
            .expect("psql");
        let left = String::from_utf8_lossy(&left.stdout).trim().to_owned();
        assert_eq!(left, "", "{ctx}: the tour left objects behind");
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn readme_quickstart() {
    crate::require_acc!();
    let bin_dir = broker_bin().parent().expect("bin dir").to_path_buf();
    assert!(
        bin_dir.join("terraform-provider-platform").is_file(),
        "no provider next to the broker in {}",
        bin_dir.display()
    );
    for tf in terraform_bins() {
        let ctx = format!("[quickstart terraform {}]", version(&tf));
        let start = std::time::Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("scripts/quickstart"))
            .env("QUICKSTART_BIN_DIR", &bin_dir)
            .env("QUICKSTART_TERRAFORM", &tf)
            .stdin(Stdio::null());
        for k in [
            "PLATFORM_POLICY",
            "PLATFORM_PRICEBOOK",
            "PLATFORM_CATALOG",
            "PLATFORM_ENVIRONMENT",
            "PLATFORM_BROKER_HOME",
            "PLATFORM_TERRAFORM",
            "QUICKSTART_KEEP",
        ] {
            cmd.env_remove(k);
        }
        let out = cmd.output().expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{ctx}: scripts/quickstart failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for needle in [
            "Verdict: allowed (exit 2)",
            "Cost: $0.00 -> $25.00 per month",
            "platform-broker: applied run",
            "connection_limit: 20 -> 99",
            "Verdict: needs_approval (exit 4)",
            "audit log OK",
            "roles left behind: 0",
        ] {
            assert!(
                stdout.contains(needle),
                "{ctx}: quickstart output lacks {needle:?}:\n{stdout}"
            );
        }
        // Secrets stay hidden.
        assert!(
            !stdout.contains("postgres://"),
            "{ctx}: a connection URI was printed"
        );
        eprintln!("{ctx} passed in {:.1?}", start.elapsed());
    }
}
