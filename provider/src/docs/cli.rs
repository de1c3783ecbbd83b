//! `terraform-provider-platform docs [--catalog DIR] [--out DIR]
//! [--schemas DIR] [--examples DIR] [--check]`.
//!
//! Reached only when the first argument is `docs`: the plugin path never
//! parses any of this.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Examples, Owned};
use crate::engine::CatalogSource;

pub const USAGE: &str = "\
Usage: terraform-provider-platform docs [--catalog DIR] [--out DIR] [--schemas DIR]
                                        [--examples DIR] [--check]

Writes the offering docs in the Terraform registry layout (OUT/index.md,
OUT/resources/<name>.md, OUT/data-sources/<name>.md,
OUT/ephemeral-resources/<name>.md) and, with --schemas, a JSON Schema
(draft 2020-12) per offering version (SCHEMAS/<offering>/<version>.schema.json).
Pages and schemas no longer generated are removed; other files are kept.

  --catalog DIR    catalog directory (default: PLATFORM_CATALOG, else the
                   catalog compiled into the provider, as the provider does)
  --out DIR        where the pages go (default: docs)
  --schemas DIR    also write the JSON Schemas there
  --examples DIR   registry-layout examples (default: examples, when present):
                   provider/provider.tf, resources/<type>/resource.tf and
                   import.sh, data-sources/<type>/data-source.tf,
                   ephemeral-resources/<type>/ephemeral-resource.tf
  --check          write nothing; exit 1 naming every file that differs from
                   what would be generated
";

#[derive(Debug, Default, PartialEq)]
pub struct Args {
    pub catalog: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub schemas: Option<PathBuf>,
    pub examples: Option<PathBuf>,
    pub check: bool,
    pub help: bool,
}

impl Args {
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut parsed = Args::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let slot = match flag {
                "--catalog" => &mut parsed.catalog,
                "--out" => &mut parsed.out,
                "--schemas" => &mut parsed.schemas,
                "--examples" => &mut parsed.examples,
                "--check" if inline.is_none() => {
                    parsed.check = true;
                    continue;
                }
                "--help" | "-h" if inline.is_none() => {
                    parsed.help = true;
                    continue;
                }
                _ => return Err(format!("unknown argument {arg:?}")),
            };
            let value = match inline {
                Some(value) => value,
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a directory"))?,
            };
            if value.is_empty() {
                return Err(format!("{flag} needs a directory"));
            }
            if slot.replace(PathBuf::from(value)).is_some() {
                return Err(format!("{flag} given twice"));
            }
        }
        Ok(parsed)
    }

    /// The command that writes what `--check` compares against.
    pub fn regenerate_command(&self) -> String {
        let mut command = "cargo run -q -p terraform-provider-platform -- docs".to_owned();
        for (flag, value) in [
            ("--catalog", &self.catalog),
            ("--out", &self.out),
            ("--schemas", &self.schemas),
            ("--examples", &self.examples),
        ] {
            if let Some(value) = value {
                command.push_str(&format!(" {flag} {}", value.display()));
            }
        }
        command
    }
}

/// Runs the subcommand; `args` are the arguments after `docs`.
pub fn main(args: &[String]) -> ExitCode {
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("terraform-provider-platform docs: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("terraform-provider-platform docs: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let source = match &args.catalog {
        Some(dir) => CatalogSource::Dir(dir.clone()),
        None => CatalogSource::from_env(),
    };
    let loaded = match crate::engine::load(&source) {
        Ok(loaded) => loaded,
        Err(diags) => {
            // Already `file:line:col: error: …`.
            for diag in &diags {
                eprintln!("{}", diag.summary);
                if !diag.detail.is_empty() {
                    eprintln!("  {}", diag.detail);
                }
            }
            return Err(format!(
                "the catalog has {} error(s); no docs were written",
                diags.len()
            ));
        }
    };
    let examples = match &args.examples {
        Some(dir) if dir.is_dir() => Examples::dir(dir),
        Some(dir) => return Err(format!("--examples {}: not a directory", dir.display())),
        None if PathBuf::from("examples").is_dir() => Examples::dir("examples"),
        None => {
            eprintln!("note: no examples directory here; pages have no example usage");
            Examples::none()
        }
    };
    let generated = super::generate(&loaded, &examples)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("docs"));
    let mut targets = vec![(&generated.pages, out, Owned::Pages)];
    if let Some(schemas) = &args.schemas {
        targets.push((&generated.schemas, schemas.clone(), Owned::Schemas));
    }
    if args.check {
        let mut differences = Vec::new();
        for (files, root, owned) in &targets {
            differences.extend(super::compare(files, root, *owned)?);
        }
        if differences.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("The generated docs differ from the files on disk:");
        for difference in &differences {
            eprintln!("  {difference}");
        }
        eprintln!("Regenerate with:\n  {}", args.regenerate_command());
        return Ok(ExitCode::FAILURE);
    }
    for (files, root, owned) in &targets {
        for removed in super::write(files, root, *owned)? {
            eprintln!("removed {}", root.join(removed).display());
        }
    }
    let schemas = if args.schemas.is_some() {
        format!(" and {} schemas", generated.schemas.len())
    } else {
        String::new()
    };
    eprintln!("wrote {} pages{schemas}", generated.pages.len());
    Ok(ExitCode::SUCCESS)
}
