//! Scenario 7: malformed catalogs. Every problem is reported as a
//! `file:line:col: error: …` diagnostic by `terraform plan`, all at once, and
//! the provider never crashes.

use std::path::Path;

use crate::common::*;
use crate::harness::*;

/// A valid offering; each case breaks it in one way (`{NAME}` is replaced so
/// offering names stay unique across files).
const BASE: &str = r#"offering "{NAME}" {
  title = "Broken on purpose"
  owner {
    team = "qa"
  }

  version "1.0.0" {
    status = "current"

    input "size" {
      type    = number
      default = 1
      min     = 1
    }
    input "label" {
      type = string
    }

    tier "small" {
      price {
        amount = 1
        unit   = "month"
      }
    }

    compose {
      primitive "first" {
        driver = "thing.first"
        inputs = {
          size = input.size
        }
      }
      primitive "second" {
        driver = "thing.second"
        inputs = {
          parent = primitive.first.outputs.id
        }
      }
    }
  }
}
"#;

struct Case {
    file: &'static str,
    /// (from, to) replacements applied to BASE.
    edits: &'static [(&'static str, &'static str)],
    /// Where the diagnostic must point: the first occurrence of this text in the
    /// broken file (`None`: only the line of `line_needle` is checked).
    at: &'static str,
    exact_col: bool,
    summary: &'static str,
}

const CASES: &[Case] = &[
    Case {
        file: "a_syntax.hcl",
        edits: &[(
            "  title = \"Broken on purpose\"",
            "  title = \"Broken on purpose\" \"again\"",
        )],
        at: "\"again\"",
        exact_col: true,
        summary: "syntax error",
    },
    Case {
        file: "b_unknown_block.hcl",
        edits: &[(
            "    tier \"small\" {",
            "    widget \"w\" {\n    }\n\n    tier \"small\" {",
        )],
        at: "widget \"w\" {",
        exact_col: true,
        summary: "unknown block type \"widget\" in version \"1.0.0\"",
    },
    Case {
        file: "c_unknown_attribute.hcl",
        edits: &[(
            "      type = string\n",
            "      type   = string\n      colour = \"red\"\n",
        )],
        at: "colour = \"red\"",
        exact_col: true,
        summary: "unknown attribute \"colour\" in input \"label\"",
    },
    Case {
        file: "d_wrong_type.hcl",
        edits: &[("      min     = 1\n", "      min     = \"one\"\n")],
        at: "\"one\"",
        exact_col: true,
        summary: "attribute \"min\" must be a number, got \"one\"",
    },
    Case {
        file: "e_bad_reference.hcl",
        edits: &[("          size = input.size", "          size = input.nope")],
        at: "input.nope",
        exact_col: true,
        summary: "unknown input \"nope\"",
    },
    Case {
        file: "f_cycle.hcl",
        edits: &[(
            "          size = input.size",
            "          size = primitive.second.outputs.size",
        )],
        at: "primitive \"first\" {",
        exact_col: true,
        summary: "cycle between primitives: first -> second -> first",
    },
    Case {
        file: "g_duplicate.hcl",
        edits: &[(
            "    input \"label\" {",
            "    input \"size\" {\n      type = number\n    }\n    input \"label\" {",
        )],
        at: "\"size\" {\n      type = number",
        exact_col: true,
        summary: "duplicate input \"size\"",
    },
    Case {
        file: "h_default_guardrail.hcl",
        edits: &[("      default = 1\n", "      default = 0\n")],
        at: "0\n      min",
        exact_col: true,
        summary: "default violates the input's own guardrails: 0 is less than the minimum of 1",
    },
];

fn broken(case: &Case) -> String {
    let name = case.file.trim_end_matches(".hcl");
    let mut text = BASE.replace("{NAME}", &name[2..]);
    for (from, to) in case.edits {
        assert!(
            text.contains(from),
            "case {}: {from:?} not in BASE",
            case.file
        );
        text = text.replacen(from, to, 1);
    }
    text
}

/// 1-based (line, col) of the first occurrence of `needle` in `text`.
fn pos_of(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, col)
}

fn write_catalog(dir: &Path, cases: &[&Case]) {
    std::fs::create_dir_all(dir).expect("catalog dir");
    for case in cases {
        std::fs::write(dir.join(case.file), broken(case)).expect("write catalog file");
    }
}

#[track_caller]
fn assert_case(out: &Output, ctx: &str, dir: &Path, case: &Case) {
    let text = broken(case);
    let (line, col) = pos_of(&text, case.at);
    let file = dir.join(case.file);
    let location = if case.exact_col {
        format!("{}:{line}:{col}: error: {}", file.display(), case.summary)
    } else {
        format!("{}:{line}:", file.display())
    };
    assert_contains_norm(out, &format!("{ctx} {}", case.file), &location);
    assert_contains_norm(
        out,
        &format!("{ctx} {}", case.file),
        &format!(": error: {}", case.summary),
    );
}

const CONFIG: &str = r#"
resource "platform_postgres_database" "orders" {
  name = "orders"
  team = "checkout"
}
"#;

/// Every broken file in one catalog directory: one plan shows every problem.
#[test]
fn malformed_catalog_reports_every_problem() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("catalog_errors", |bin, ctx| {
        let mut wd = Workdir::dev_overrides();
        let dir = wd.root().join("catalog");
        write_catalog(&dir, &CASES.iter().collect::<Vec<_>>());
        wd.set_env("PLATFORM_CATALOG", &dir);
        wd.write("main.tf", &format!("{REQUIRED_PLATFORM}{CONFIG}"));
        let plan = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&plan);
        assert_no_crash(&plan, ctx);
        for case in CASES {
            assert_case(&plan, ctx, &dir, case);
        }

        // validate and providers schema fail the same way, without crashing.
        for args in [&["validate"][..], &["providers", "schema", "-json"][..]] {
            let out = wd.tf(bin, args);
            assert_failure(&out);
            assert_no_crash(&out, ctx);
            assert_case(&out, &format!("{ctx} {args:?}"), &dir, &CASES[4]);
        }
    });
}

/// Each problem class alone (its own catalog directory): still reported, at the same place.
#[test]
fn malformed_catalog_each_problem_alone() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("catalog_errors_alone", |bin, ctx| {
        for case in CASES {
            let mut wd = Workdir::dev_overrides();
            let dir = wd.root().join("catalog");
            write_catalog(&dir, &[case]);
            wd.set_env("PLATFORM_CATALOG", &dir);
            wd.write("main.tf", &format!("{REQUIRED_PLATFORM}{CONFIG}"));
            let plan = wd.tf(bin, &["plan", "-input=false"]);
            assert_failure(&plan);
            assert_no_crash(&plan, ctx);
            assert_case(&plan, ctx, &dir, case);
        }
    });
}

/// A catalog directory that does not exist, and one without any *.hcl file.
#[test]
fn missing_or_empty_catalog_directory() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("catalog_missing", |bin, ctx| {
        let mut wd = Workdir::dev_overrides();
        wd.write("main.tf", &format!("{REQUIRED_PLATFORM}{CONFIG}"));
        let missing = wd.root().join("no-such-dir");
        wd.set_env("PLATFORM_CATALOG", &missing);
        let plan = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&plan);
        assert_no_crash(&plan, ctx);
        assert_contains_norm(
            &plan,
            ctx,
            &format!(
                "{}:1:1: error: cannot read catalog directory",
                missing.display()
            ),
        );

        let empty = wd.root().join("empty");
        std::fs::create_dir_all(&empty).expect("mkdir");
        wd.set_env("PLATFORM_CATALOG", &empty);
        let plan = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&plan);
        assert_no_crash(&plan, ctx);
        assert_contains_norm(
            &plan,
            ctx,
            &format!(
                "{}:1:1: error: catalog directory contains no *.hcl files",
                empty.display()
            ),
        );
    });
}

/// Hostile files: invalid UTF-8 and absurd nesting are diagnostics, not crashes.
#[test]
fn hostile_catalog_files_do_not_crash() {
    if !acc_enabled() {
        return;
    }
    for_each_bin("catalog_hostile", |bin, ctx| {
        let mut wd = Workdir::dev_overrides();
        let dir = wd.root().join("catalog");
        std::fs::create_dir_all(&dir).expect("catalog dir");
        std::fs::write(dir.join("binary.hcl"), b"\xff\xfe\x00junk").expect("write");
        let deep = format!(
            "offering \"deep\" {{\n  title = {}{}\n}}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        std::fs::write(dir.join("deep.hcl"), deep).expect("write");
        wd.set_env("PLATFORM_CATALOG", &dir);
        wd.write("main.tf", &format!("{REQUIRED_PLATFORM}{CONFIG}"));
        let plan = wd.tf(bin, &["plan", "-input=false"]);
        assert_failure(&plan);
        assert_no_crash(&plan, ctx);
        assert_contains_norm(
            &plan,
            ctx,
            &format!(
                "{}:1:1: error: cannot read catalog file",
                dir.join("binary.hcl").display()
            ),
        );
        assert_contains_norm(
            &plan,
            ctx,
            &format!("{}:2:", dir.join("deep.hcl").display()),
        );
        // Refused before the HCL parser sees it (its time grows with nesting).
        assert_contains_norm(&plan, ctx, "error: brackets nested more than 32 deep");
    });
}
