//! Where a resource address is declared: the `resource`, `data` or `module`
//! block of the Terraform configuration, found by parsing its `*.tf` files
//! with hcl-edit (spans, not text search). Used for SARIF physical locations.
//!
//! `aws_s3_bucket.b`, `aws_s3_bucket.b[0]` and `aws_s3_bucket.b["k"]` are
//! the `resource "aws_s3_bucket" "b"` block (an instance key names no block
//! of its own); `data.x.y` the `data "x" "y"` block. `module.m.<rest>`
//! follows the `module "m"` block's `source` when it is a local path
//! (`./…`, `../…`) and looks for `<rest>` there, recursively; a module that
//! is not on disk (registry, git, …), or a resource that is not found inside
//! a local one, is located at the `module "m"` block of its caller.
//!
//! Only `*.tf` files are read (not `*.tf.json`: an address declared only
//! there has no physical location), and only locations leave this module:
//! no attribute value of the configuration does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Body, Structure};

/// The SARIF `uriBaseId` of URIs relative to the source root (the broker's
/// working directory: the repository root in CI).
pub const SRCROOT: &str = "%SRCROOT%";

/// A block's place in a file; lines and columns count from 1, columns in
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `/`-separated and percent-encoded: relative to the source root when
    /// `base` is set, else an absolute `file://` URI.
    pub uri: String,
    /// [`SRCROOT`] for a relative `uri`.
    pub base: Option<&'static str>,
    pub start_line: usize,
    pub start_column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resource,
    Data,
    Module,
}

/// One top-level block of a module's configuration.
#[derive(Debug)]
struct Decl {
    kind: Kind,
    labels: Vec<String>,
    /// A module call's `source`, when it is a plain string.
    source: Option<String>,
    file: Rc<PathBuf>,
    /// (line, column) of the block's first and one past its last character.
    start: (usize, usize),
    end: (usize, usize),
}

/// The `*.tf` files of one directory, parsed.
#[derive(Debug, Default)]
struct Module {
    decls: Vec<Decl>,
    /// `main.tf` if there is one, else the first `*.tf` file by name.
    main: Option<PathBuf>,
}

/// Locates addresses in the configuration of `dir`, reading each module
/// directory once.
pub struct Locator {
    dir: PathBuf,
    srcroot: Option<PathBuf>,
    modules: RefCell<HashMap<PathBuf, Rc<Module>>>,
}

impl Locator {
    /// `dir` is the root module (the plan's directory); URIs are made
    /// relative to `srcroot` (absolute `file://` URIs for files outside it,
    /// or for every file when it is `None`).
    pub fn new(dir: &Path, srcroot: Option<&Path>) -> Locator {
        let absolute = |p: &Path| {
            std::path::absolute(p)
                .map(|a| normalize(&a))
                .unwrap_or_else(|_| p.to_path_buf())
        };
        Locator {
            dir: absolute(dir),
            srcroot: srcroot.map(absolute),
            modules: RefCell::new(HashMap::new()),
        }
    }

    /// A locator for `dir`, with URIs relative to the working directory.
    pub fn from_cwd(dir: &Path) -> Locator {
        let cwd = std::env::current_dir().ok();
        Locator::new(dir, cwd.as_deref())
    }

    /// The block that declares `address`, or `None` when it is not found
    /// (a malformed address, a module or resource not in the configuration).
    pub fn locate(&self, address: &str) -> Option<Location> {
        let parsed = parse_address(address)?;
        let mut dir = self.dir.clone();
        let mut call: Option<(Rc<Module>, usize)> = None;
        for name in &parsed.modules {
            let module = self.module(&dir);
            let index = module
                .decls
                .iter()
                .position(|d| d.kind == Kind::Module && d.labels == [name.as_str()])?;
            match module.decls[index]
                .source
                .as_deref()
                .filter(|s| is_local(s))
            {
                Some(source) => {
                    dir = normalize(&dir.join(source));
                    call = Some((module, index));
                }
                None => return Some(self.location(&module.decls[index])),
            }
        }
        let module = self.module(&dir);
        let found = module.decls.iter().find(|d| {
            d.kind == parsed.kind && d.labels == [parsed.ty.as_str(), parsed.name.as_str()]
        });
        match (found, call) {
            (Some(decl), _) => Some(self.location(decl)),
            (None, Some((caller, index))) => Some(self.location(&caller.decls[index])),
            (None, None) => None,
        }
    }

    /// Line 1 of the root module's main file (`main.tf`, else the first
    /// `*.tf` by name): where a finding about the whole plan is shown.
    pub fn main_file(&self) -> Option<Location> {
        let module = self.module(&self.dir);
        let file = module.main.as_ref()?;
        let (uri, base) = self.uri(file);
        Some(Location {
            uri,
            base,
            start_line: 1,
            start_column: 1,
            end_line: 1,
            end_column: 1,
        })
    }

    fn location(&self, decl: &Decl) -> Location {
        let (uri, base) = self.uri(&decl.file);
        Location {
            uri,
            base,
            start_line: decl.start.0,
            start_column: decl.start.1,
            end_line: decl.end.0,
            end_column: decl.end.1,
        }
    }

    /// `file` relative to the source root, also when one of them is
    /// reached through a symbolic link (a checkout under a linked `/tmp`).
    fn relative(&self, file: &Path) -> Option<PathBuf> {
        let root = self.srcroot.as_ref()?;
        if let Ok(rel) = file.strip_prefix(root) {
            return Some(rel.to_path_buf());
        }
        let (file, root) = (file.canonicalize().ok()?, root.canonicalize().ok()?);
        file.strip_prefix(root).ok().map(Path::to_path_buf)
    }

    fn uri(&self, file: &Path) -> (String, Option<&'static str>) {
        if let Some(rel) = self.relative(file) {
            let parts: Vec<String> = rel
                .components()
                .map(|c| percent_encode(&c.as_os_str().to_string_lossy()))
                .collect();
            return (parts.join("/"), Some(SRCROOT));
        }
        let parts: Vec<String> = file
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .map(|c| percent_encode(&c.as_os_str().to_string_lossy()))
            .collect();
        (format!("file:///{}", parts.join("/")), None)
    }

    fn module(&self, dir: &Path) -> Rc<Module> {
        if let Some(m) = self.modules.borrow().get(dir) {
            return Rc::clone(m);
        }
        let module = Rc::new(read_module(dir));
        self.modules
            .borrow_mut()
            .insert(dir.to_path_buf(), Rc::clone(&module));
        module
    }
}

/// Parses every `*.tf` file of `dir`; unreadable or unparsable files
/// (terraform itself would have refused them) contribute nothing.
fn read_module(dir: &Path) -> Module {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf") && p.is_file())
        .collect();
    files.sort();
    let main = files
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "main.tf"))
        .or(files.first())
        .cloned();
    let mut decls = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(body) = hcl_edit::parser::parse_body(&text) else {
            continue;
        };
        collect(&body, &text, &Rc::new(path), &mut decls);
    }
    Module { decls, main }
}

fn collect(body: &Body, text: &str, file: &Rc<PathBuf>, out: &mut Vec<Decl>) {
    for structure in body.iter() {
        let Structure::Block(block) = structure else {
            continue;
        };
        let kind = match block.ident.as_str() {
            "resource" => Kind::Resource,
            "data" => Kind::Data,
            "module" => Kind::Module,
            _ => continue,
        };
        let Some(span) = block.span() else { continue };
        let source = match block.body.get_attribute("source").map(|a| &a.value) {
            Some(Expression::String(s)) => Some(s.value().to_string()),
            _ => None,
        };
        out.push(Decl {
            kind,
            labels: block.labels.iter().map(|l| l.as_str().to_owned()).collect(),
            source,
            file: Rc::clone(file),
            start: line_column(text, span.start),
            end: line_column(text, span.end),
        });
    }
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..crate::floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Terraform's local module sources: `./…` and `../…` (not `.` alone, not
/// registry addresses, URLs or `git::` sources).
fn is_local(source: &str) -> bool {
    source.starts_with("./") || source.starts_with("../")
}

/// `a/./b/../c` → `a/c`, without touching the file system (a module source
/// may go through a directory that a symlink would resolve differently, but
/// terraform itself joins them the same way).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// RFC 3986 path segment encoding: unreserved characters and the
/// sub-delimiters terraform file names may hold stay as they are.
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An address split into its module path and the resource it names.
#[derive(Debug, PartialEq, Eq)]
struct Address {
    modules: Vec<String>,
    kind: Kind,
    ty: String,
    name: String,
}

/// `module.a["k"].module.b.data.t.n[0]` → modules `[a, b]`, data `t.n`.
/// Instance keys (`[0]`, `["k"]`, which may hold dots and brackets inside
/// their quotes) are dropped: every instance shares its block.
fn parse_address(address: &str) -> Option<Address> {
    let mut steps = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in address.chars() {
        if quoted {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            '"' if depth > 0 => quoted = true,
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1)?,
            '.' if depth == 0 => steps.push(std::mem::take(&mut current)),
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    if depth != 0 || quoted {
        return None;
    }
    steps.push(current);
    if steps.iter().any(String::is_empty) {
        return None;
    }
    let mut modules = Vec::new();
    let mut rest = steps.as_slice();
    while let [first, name, tail @ ..] = rest {
        if first != "module" {
            break;
        }
        modules.push(name.clone());
        rest = tail;
    }
    let (kind, ty, name) = match rest {
        [data, ty, name] if data == "data" => (Kind::Data, ty, name),
        [ty, name] => (Kind::Resource, ty, name),
        _ => return None,
    };
    Some(Address {
        modules,
        kind,
        ty: ty.clone(),
        name: name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let a = parse_address(r#"module.a["x.y[]"].module.b[0].data.t.n["k"]"#).expect("parses");
        assert_eq!(a.modules, ["a", "b"]);
        assert_eq!(
            (a.kind, a.ty.as_str(), a.name.as_str()),
            (Kind::Data, "t", "n")
        );
        let a = parse_address("aws_s3_bucket.b[3]").expect("parses");
        assert!(a.modules.is_empty());
        assert_eq!(
            (a.kind, a.ty.as_str(), a.name.as_str()),
            (Kind::Resource, "aws_s3_bucket", "b")
        );
        let a = parse_address(r#"aws_s3_bucket.b["a\"]b"]"#).expect("parses");
        assert_eq!(a.name, "b");
        for bad in ["", "x", "a.b.c", "a..b", "a.b[0", "module.m", "a.b]"] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_columns_and_uris() {
        let text = "a\nbé c\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (2, 1));
        assert_eq!(line_column(text, 5), (2, 3));
        assert_eq!(percent_encode("my file%.tf"), "my%20file%25.tf");
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert!(is_local("./m") && is_local("../m"));
        assert!(!is_local("hashicorp/consul/aws") && !is_local("git::https://x/y.git"));
    }

    /// A configuration reached through a symbolic link still gets a URI
    /// relative to the source root.
    #[cfg(unix)]
    #[test]
    fn symlinked_directories_stay_relative() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join("infra")).expect("mkdir");
        std::fs::write(
            repo.join("infra/main.tf"),
            "\nresource \"null_resource\" \"n\" {}\n",
        )
        .expect("write");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&repo, &link).expect("symlink");
        let l = Locator::new(&link.join("infra"), Some(&repo))
            .locate("null_resource.n")
            .expect("located");
        assert_eq!((l.uri.as_str(), l.base), ("infra/main.tf", Some(SRCROOT)));
        assert_eq!(
            (l.start_line, l.start_column, l.end_line, l.end_column),
            (2, 1, 2, 32)
        );
    }
}
