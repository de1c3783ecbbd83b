//! The committed `docs/` is exactly what `terraform-provider-platform docs`
//! generates from the example catalog and `examples/`; and `docs --check`
//! catches a hand-edited page until the docs are regenerated.
//!
//! Runs the real binary, with `PLATFORM_CATALOG` removed so that it uses the
//! compiled-in catalog, as the committed docs do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use provider::docs::{Owned, compare};

/// The command that regenerates the committed docs, from the repository root.
const REGENERATE: &str =
    "cargo run -q -p terraform-provider-platform -- docs --out docs --schemas docs/schemas";

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
}

fn docs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_terraform-provider-platform"))
        .arg("docs")
        .args(args)
        .current_dir(repo_root())
        .env_remove("PLATFORM_CATALOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the provider binary: {e}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path_arg(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 temp path {}", path.display()))
}

/// The owned files under `root`, read back: what a generator run wrote.
fn read_tree(root: &Path, owned: Owned) -> BTreeMap<String, String> {
    owned
        .existing(root)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|rel| {
            let text =
                std::fs::read_to_string(root.join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
            (rel, text)
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn committed_docs_match_the_generator() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = tmp.path().join("docs");
    let schemas = out.join("schemas");
    let output = docs(&["--out", path_arg(&out), "--schemas", path_arg(&schemas)]);
    assert!(output.status.success(), "docs failed:\n{}", stderr(&output));

    let committed = repo_root().join("docs");
    let mut differences = Vec::new();
    for (root, generated_root, owned) in [
        (committed.clone(), out.clone(), Owned::Pages),
        (committed.join("schemas"), schemas.clone(), Owned::Schemas),
    ] {
        let generated = read_tree(&generated_root, owned);
        assert!(
            !generated.is_empty(),
            "nothing generated under {}",
            generated_root.display()
        );
        differences.extend(compare(&generated, &root, owned).unwrap_or_else(|e| panic!("{e}")));
    }
    if !differences.is_empty() {
        let listed: Vec<String> = differences.iter().map(|d| format!("  {d}")).collect();
        panic!(
            "The committed docs differ from what the catalog and examples generate:\n{}\n\
             Regenerate them from the repository root with:\n  {REGENERATE}",
            listed.join("\n")
        );
    }
}

#[test]
fn check_catches_a_hand_edited_page_until_regenerated() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = tmp.path().join("docs");
    copy_dir(&repo_root().join("docs"), &out);
    let schemas = out.join("schemas");
    let (out_arg, schemas_arg) = (path_arg(&out), path_arg(&schemas));
    let check = || docs(&["--out", out_arg, "--schemas", schemas_arg, "--check"]);

    let clean = check();
    assert!(
        clean.status.success(),
        "the copy of docs/ is not current:\n{}",
        stderr(&clean)
    );

    // Hand-edit one page: loosen a documented guardrail.
    let page = out.join("resources/postgres_database.md");
    let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{e}"));
    let edited_line = "  - Between 1 and 500.";
    let line = text
        .lines()
        .position(|l| l == edited_line)
        .unwrap_or_else(|| panic!("{edited_line:?} not in {}", page.display()))
        + 1;
    std::fs::write(&page, text.replace(edited_line, "  - Between 1 and 5000."))
        .unwrap_or_else(|e| panic!("{e}"));

    let dirty = check();
    let message = stderr(&dirty);
    assert_eq!(dirty.status.code(), Some(1), "{message}");
    assert!(
        message.contains(&format!(
            "{}:{line}: differs from the generated text\n    generated: \"  - Between 1 and 500.\"\n    found:     \"  - Between 1 and 5000.\"",
            page.display()
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "Regenerate with:\n  cargo run -q -p terraform-provider-platform -- docs --out {out_arg} --schemas {schemas_arg}"
        )),
        "{message}"
    );
    // Only the edited page is reported.
    assert_eq!(message.matches(": differs from").count(), 1, "{message}");

    let regenerate = docs(&["--out", out_arg, "--schemas", schemas_arg]);
    assert!(regenerate.status.success(), "{}", stderr(&regenerate));
    let again = check();
    assert!(
        again.status.success(),
        "still differs after regenerating:\n{}",
        stderr(&again)
    );
    // Files the generator does not own survive regeneration untouched.
    for kept in ["policy-input.md", "policy-input.schema.json"] {
        assert_eq!(
            std::fs::read(out.join(kept)).ok(),
            std::fs::read(repo_root().join("docs").join(kept)).ok(),
            "{kept} changed"
        );
    }
}

#[test]
fn check_reports_missing_and_stale_files() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out = tmp.path().join("docs");
    let out_arg = path_arg(&out);
    let written = docs(&["--out", out_arg]);
    assert!(written.status.success(), "{}", stderr(&written));
    std::fs::remove_file(out.join("data-sources/catalog.md")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(out.join("resources/retired_offering.md"), "old page\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let dirty = docs(&["--out", out_arg, "--check"]);
    let message = stderr(&dirty);
    assert_eq!(dirty.status.code(), Some(1), "{message}");
    assert!(
        message.contains(&format!(
            "{}: missing (it is generated)",
            out.join("data-sources/catalog.md").display()
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "{}: no longer generated",
            out.join("resources/retired_offering.md").display()
        )),
        "{message}"
    );
    // Regenerating removes the stale page.
    let regenerate = docs(&["--out", out_arg]);
    assert!(regenerate.status.success(), "{}", stderr(&regenerate));
    assert!(!out.join("resources/retired_offering.md").exists());
    assert!(docs(&["--out", out_arg, "--check"]).status.success());
}

#[test]
fn a_bad_catalog_is_reported_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let catalog = tmp.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        catalog.join("bad.hcl"),
        "offering \"x\" {\n  title = \"X\"\n  owner { team = \"t\" }\n  version \"1.0.0\" {\n    status = \"curent\"\n  }\n}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = tmp.path().join("docs");
    let output = docs(&["--catalog", path_arg(&catalog), "--out", path_arg(&out)]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    let location = format!("{}:5:14: error: ", catalog.join("bad.hcl").display());
    assert!(
        message.contains(&location),
        "expected {location:?} in:\n{message}"
    );
    assert!(message.contains("no docs were written"), "{message}");
    assert!(!out.exists(), "docs were written for a bad catalog");
}

#[test]
fn usage() {
    let help = docs(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--catalog DIR",
        "--out DIR",
        "--schemas DIR",
        "--examples DIR",
        "--check",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
    let bad = docs(&["--outt", "x"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).starts_with("terraform-provider-platform docs: unknown argument \"--outt\"")
    );

    let top = Command::new(env!("CARGO_BIN_EXE_terraform-provider-platform"))
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        String::from_utf8_lossy(&top.stdout)
            .contains("terraform-provider-platform docs [--catalog DIR]")
    );
}
