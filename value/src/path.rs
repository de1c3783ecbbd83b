//! Attribute paths and the crate's error type.

use std::fmt;

/// One step of an attribute path, mirroring tfplugin6 `AttributePath.Step`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathStep {
    /// An object attribute (or block) name.
    Attr(String),
    /// A map element key.
    Key(String),
    /// A list, set or tuple element index.
    Index(i64),
}

/// An attribute path, as Terraform diagnostics and `requires_replace` use them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Path(pub Vec<PathStep>);

impl Path {
    /// The empty path: the value itself.
    pub fn root() -> Self {
        Path(Vec::new())
    }

    /// This path extended by an attribute step.
    pub fn attr(mut self, name: &str) -> Self {
        self.0.push(PathStep::Attr(name.to_owned()));
        self
    }

    /// This path extended by a map-key step.
    pub fn key(mut self, key: &str) -> Self {
        self.0.push(PathStep::Key(key.to_owned()));
        self
    }

    /// This path extended by an index step.
    pub fn index(mut self, index: i64) -> Self {
        self.0.push(PathStep::Index(index));
        self
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

/// Renders like Terraform does in messages: `.rule[0].port`, `.tags["k"]`.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.0 {
            match step {
                PathStep::Attr(name) => write!(f, ".{name}")?,
                PathStep::Key(key) => write!(f, "[{key:?}]")?,
                PathStep::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// A decoding or encoding failure, with the path of the value that caused it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.path, .message))]
pub struct Error {
    path: Path,
    message: String,
}

fn render(path: &Path, message: &str) -> String {
    if path.is_root() {
        message.to_owned()
    } else {
        format!("at {path}: {message}")
    }
}

impl Error {
    /// An error at `path`.
    pub fn new(path: Path, message: impl Into<String>) -> Self {
        Error {
            path,
            message: message.into(),
        }
    }

    /// An error about the value at the root; codecs add steps as it travels up.
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        Error::new(Path::root(), message)
    }

    /// Where the problem is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the path with `step`. Errors are built at the failing leaf and
    /// gain their path on the way up, so the happy path never allocates one.
    pub(crate) fn within(mut self, step: PathStep) -> Self {
        self.path.0.insert(0, step);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(err: Error, expect: &str) {
        assert_eq!(err.to_string(), expect);
    }

    #[test]
    fn renders_paths() {
        check(Error::msg("boom"), "boom");
        check(
            Error::msg("expected number, found string")
                .within(PathStep::Attr("port".into()))
                .within(PathStep::Index(0))
                .within(PathStep::Attr("rule".into())),
            "at .rule[0].port: expected number, found string",
        );
        check(
            Error::new(Path::root().attr("tags").key("k\""), "x"),
            r#"at .tags["k\""]: x"#,
        );
    }
}
