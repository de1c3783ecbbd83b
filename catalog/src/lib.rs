//! The platform catalog: HCL offerings → a typed model, with `file:line:col` diagnostics.
//!
//! # Key design decision: parsing never fails, it reports
//!
//! [`load_dir`] and [`load_sources`] always return a [`Catalog`] *and* every problem found, as
//! [`Diagnostic`]s (rust-analyzer's "parsing never fails", hashicorp/hcl's diagnostics). Callers
//! decide with [`has_errors`]; the provider refuses to serve a schema from a catalog with
//! errors, so a half-valid catalog never becomes a half schema.
//!
//! To point at the exact attribute, the loader walks hcl-edit's tree, which keeps byte spans.
//! Values and expressions are then converted to hcl-rs's types and evaluated by hcl-rs itself
//! (`hcl::eval`); this crate has no expression interpreter of its own. All references
//! (`input.*`, `tier.values.*`, `primitive.*.outputs.*`) are checked at load time, so
//! evaluation at plan/apply time only fails when runtime data is missing.
//!
//! Nothing here panics on any input: malformed files, spans and values become diagnostics.

pub mod describe;
mod diag;
mod eval;
mod guardrail;
pub mod json;
pub mod json_schema;
mod load;
mod model;
mod nesting;
mod refs;

use std::path::Path;

use sha2::{Digest, Sha256};

pub use diag::{Diagnostic, Location, Severity, has_errors};
pub use eval::{EvalScope, check_arithmetic};
pub use guardrail::fmt_value;
pub use load::RESERVED_ATTRIBUTES;
pub use model::{
    Catalog, Deprecation, Input, InputType, Offering, OnChange, Output, Owner, PathStep, Price,
    Primitive, Status, Tier, Version, Violation,
};
pub use nesting::{MAX_INDEX_NESTING, MAX_NESTING, MAX_OPERAND_NESTING, TooDeep, check_nesting};

/// One catalog file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Shown in diagnostics (usually a path).
    pub name: String,
    pub text: String,
}

/// Loads every `*.hcl` file in `dir` (not recursively), sorted by file name. An unreadable
/// directory or file, or a directory without any `*.hcl` file, is a diagnostic too.
pub fn load_dir(dir: &Path) -> (Catalog, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let io_error = |name: String, summary: String| Diagnostic {
        severity: Severity::Error,
        file: name,
        line: 1,
        col: 1,
        summary,
        detail: None,
    };
    let dir_name = dir.display().to_string();
    let mut paths: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|entry| match entry {
                Ok(entry) => Some(entry.path()),
                Err(err) => {
                    diags.push(io_error(
                        dir_name.clone(),
                        format!("cannot read catalog directory: {err}"),
                    ));
                    None
                }
            })
            .filter(|path| path.extension().is_some_and(|ext| ext == "hcl"))
            .collect(),
        Err(err) => {
            diags.push(io_error(
                dir_name.clone(),
                format!("cannot read catalog directory: {err}"),
            ));
            Vec::new()
        }
    };
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if paths.is_empty() && diags.is_empty() {
        diags.push(io_error(
            dir_name,
            "catalog directory contains no *.hcl files".to_string(),
        ));
    }
    let mut sources = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push(Source { name, text }),
            Err(err) => diags.push(io_error(name, format!("cannot read catalog file: {err}"))),
        }
    }
    let (catalog, more) = load_sources(sources);
    diags.extend(more);
    (catalog, diags)
}

/// Loads a catalog from in-memory sources (e.g. a catalog compiled into a binary). The result
/// does not depend on the order of `sources`.
pub fn load_sources(sources: Vec<Source>) -> (Catalog, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let catalog = load::load(sources, &mut diags);
    (catalog, diags)
}

/// `sha256:<hex>` over (file name, content) pairs sorted by file name, each part
/// length-prefixed so that no two different catalogs hash the same bytes. Only the last path
/// component of a source name counts, so moving the catalog directory keeps its digest.
pub(crate) fn digest(sources: &[Source]) -> String {
    let mut pairs: Vec<(&str, &str)> = sources
        .iter()
        .map(|source| {
            let file_name = Path::new(&source.name)
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or(&source.name);
            (file_name, source.text.as_str())
        })
        .collect();
    pairs.sort_unstable();
    let mut hasher = Sha256::new();
    for (name, text) in pairs {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests;
