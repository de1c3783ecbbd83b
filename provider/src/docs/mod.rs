//! `terraform-provider-platform docs`: offering docs in the Terraform
//! registry's layout, and a JSON Schema per offering version, generated from
//! the same catalog snapshot and schemas the provider serves.
//!
//! Output is a pure function of the catalog and the example files: no dates,
//! no paths, maps iterated in order, so a regenerated tree is byte-identical
//! and `--check` can compare it with what is committed.
//!
//! Layout (relative to `--out`): `index.md`, `resources/<name>.md`,
//! `data-sources/<name>.md`, `ephemeral-resources/<name>.md`, where `<name>`
//! is the type name without the provider prefix. Schemas (relative to
//! `--schemas`): `<offering>/<version>.schema.json`.

pub mod cli;
pub mod json_schema;
pub mod pages;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::Loaded;

/// Example files in the registry's `examples/` layout, when there are any.
#[derive(Debug, Clone)]
pub struct Examples {
    dir: Option<PathBuf>,
}

impl Examples {
    pub fn dir(dir: impl Into<PathBuf>) -> Examples {
        Examples {
            dir: Some(dir.into()),
        }
    }

    pub fn none() -> Examples {
        Examples { dir: None }
    }

    /// The file at `relative`, `None` when it does not exist; any other
    /// read error is an error (a page silently missing its example would be
    /// worse than no page).
    pub fn read(&self, relative: &str) -> Result<Option<String>, String> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let path = dir.join(relative);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Which files under a root the generator owns: only these are compared,
/// and only these are removed when no longer generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    /// `index.md` and `*.md` in `resources/`, `data-sources/`,
    /// `ephemeral-resources/` (other files such as `policy-input.md` are
    /// left alone).
    Pages,
    /// Every `*.schema.json` below the root.
    Schemas,
}

pub const PAGE_DIRS: [&str; 3] = ["resources", "data-sources", "ephemeral-resources"];

impl Owned {
    /// Owned files that exist under `root`, as `/`-separated relative paths.
    pub fn existing(self, root: &Path) -> Result<Vec<String>, String> {
        let mut found = Vec::new();
        match self {
            Owned::Pages => {
                if root.join("index.md").is_file() {
                    found.push("index.md".to_owned());
                }
                for dir in PAGE_DIRS {
                    for name in list_dir(&root.join(dir))? {
                        if name.ends_with(".md") {
                            found.push(format!("{dir}/{name}"));
                        }
                    }
                }
            }
            Owned::Schemas => walk_schemas(root, "", &mut found)?,
        }
        found.sort();
        Ok(found)
    }
}

/// File names in `dir` (empty when it does not exist).
fn list_dir(dir: &Path) -> Result<Vec<String>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn walk_schemas(root: &Path, relative: &str, found: &mut Vec<String>) -> Result<(), String> {
    let dir = root.join(relative);
    for name in list_dir(&dir)? {
        let rel = if relative.is_empty() {
            name.clone()
        } else {
            format!("{relative}/{name}")
        };
        if dir.join(&name).is_dir() {
            walk_schemas(root, &rel, found)?;
        } else if name.ends_with(".schema.json") {
            found.push(rel);
        }
    }
    Ok(())
}

/// Generated files, each keyed by its `/`-separated path relative to its
/// root.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Generated {
    pub pages: BTreeMap<String, String>,
    pub schemas: BTreeMap<String, String>,
}

/// Every page and schema for one loaded catalog.
pub fn generate(loaded: &Loaded, examples: &Examples) -> Result<Generated, String> {
    let catalog = &loaded.catalog;
    let schemas = &loaded.schemas;
    let prefix = &catalog.provider_prefix;
    let mut generated = Generated::default();
    generated.pages.insert(
        "index.md".into(),
        pages::index_page(catalog, schemas, examples)?,
    );
    for (type_name, (offering_name, schema)) in &schemas.resources {
        let Some(offering) = catalog.offering(offering_name) else {
            return Err(format!(
                "{type_name}: the schema names offering {offering_name:?}, which the catalog lacks"
            ));
        };
        generated.pages.insert(
            format!("resources/{}.md", pages::page_name(prefix, type_name)),
            pages::resource_page(catalog, offering, type_name, schema, examples)?,
        );
        for (path, text) in json_schema::offering_schemas(catalog, offering) {
            generated.schemas.insert(path, text);
        }
    }
    for (type_name, schema) in &schemas.data_sources {
        let example = examples.read(&format!("data-sources/{type_name}/data-source.tf"))?;
        generated.pages.insert(
            format!("data-sources/{}.md", pages::page_name(prefix, type_name)),
            pages::plain_page(type_name, "Data Source", schema, example, "Catalog"),
        );
    }
    for (type_name, schema) in &schemas.ephemeral {
        let example = examples.read(&format!(
            "ephemeral-resources/{type_name}/ephemeral-resource.tf"
        ))?;
        generated.pages.insert(
            format!(
                "ephemeral-resources/{}.md",
                pages::page_name(prefix, type_name)
            ),
            pages::plain_page(type_name, "Ephemeral Resource", schema, example, ""),
        );
    }
    Ok(generated)
}

/// Writes `files` under `root` (creating directories, rewriting only files
/// whose content differs) and removes owned files no longer generated.
/// Returns the removed files.
pub fn write(
    files: &BTreeMap<String, String>,
    root: &Path,
    owned: Owned,
) -> Result<Vec<String>, String> {
    for (relative, text) in files {
        let path = root.join(relative);
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let mut removed = Vec::new();
    for relative in owned.existing(root)? {
        if !files.contains_key(&relative) {
            let path = root.join(&relative);
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            removed.push(relative);
        }
    }
    Ok(removed)
}

/// How a file on disk differs from the generated one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Generated but not on disk.
    Missing(PathBuf),
    /// On disk (an owned file) but no longer generated.
    Stale(PathBuf),
    /// Content differs; the first differing line (1-based) and both sides
    /// of it (`None`: that side has ended).
    Changed {
        path: PathBuf,
        line: usize,
        generated: Option<String>,
        found: Option<String>,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |line: &Option<String>| match line {
            Some(line) => format!("{line:?}"),
            None => "(end of file)".to_owned(),
        };
        match self {
            Difference::Missing(path) => write!(f, "{}: missing (it is generated)", path.display()),
            Difference::Stale(path) => write!(
                f,
                "{}: no longer generated (remove it, or regenerate)",
                path.display()
            ),
            Difference::Changed {
                path,
                line,
                generated,
                found,
            } => write!(
                f,
                "{}:{line}: differs from the generated text\n    generated: {}\n    found:     {}",
                path.display(),
                side(generated),
                side(found)
            ),
        }
    }
}

/// Compares generated files with what is under `root`.
pub fn compare(
    files: &BTreeMap<String, String>,
    root: &Path,
    owned: Owned,
) -> Result<Vec<Difference>, String> {
    let mut differences = Vec::new();
    for (relative, text) in files {
        let path = root.join(relative);
        match std::fs::read(&path) {
            Ok(bytes) if bytes == text.as_bytes() => {}
            Ok(bytes) => {
                let found = String::from_utf8_lossy(&bytes);
                differences.push(first_difference(path, text, &found));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                differences.push(Difference::Missing(path));
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    for relative in owned.existing(root)? {
        if !files.contains_key(&relative) {
            differences.push(Difference::Stale(root.join(relative)));
        }
    }
    Ok(differences)
}

fn first_difference(path: PathBuf, generated: &str, found: &str) -> Difference {
    // split('\n') so that a missing or extra final newline shows as a line.
    let mut generated_lines = generated.split('\n');
    let mut found_lines = found.split('\n');
    let mut line = 1;
    loop {
        let (g, f) = (generated_lines.next(), found_lines.next());
        if g != f || (g.is_none() && f.is_none()) {
            return Difference::Changed {
                path,
                line,
                generated: g.map(str::to_owned),
                found: f.map(str::to_owned),
            };
        }
        line += 1;
    }
}
