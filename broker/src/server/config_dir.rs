//! The server's `DATA/config/` directory: what the platform team put there
//! (policies, price books, catalogs), reached by name. A name is never a
//! path of the caller's choosing: it resolves under the directory, and one
//! that leads outside (`..`, an absolute path, a symbolic link) is refused.
//! Workspaces select their inputs this way, and the catalog endpoints
//! serve catalogs this way.

use std::path::{Path, PathBuf};

/// `DATA/config`.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("config")
}

/// `name` under `DATA/config`, canonicalized; `Err` with a message naming
/// `field` (`policy`, `catalog`…) when it does not exist or leads outside.
/// The message holds the name as given, never a server path.
pub fn resolve(data_dir: &Path, field: &str, name: &str) -> Result<PathBuf, String> {
    let root = root(data_dir);
    let path = root.join(name);
    match (path.canonicalize(), root.canonicalize()) {
        (Ok(real), Ok(root)) if real.starts_with(&root) => Ok(real),
        _ => Err(format!(
            "{field} {name:?} is not in the server's config directory"
        )),
    }
}

/// [`resolve`] for an optional name (a workspace's `policy`, `pricebook`,
/// `catalog`).
pub fn resolve_opt(
    data_dir: &Path,
    field: &str,
    name: Option<&str>,
) -> Result<Option<PathBuf>, String> {
    name.map(|name| resolve(data_dir, field, name)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_config_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let config = root(&data);
        std::fs::create_dir_all(config.join("prod")).expect("mkdir");
        std::fs::create_dir_all(tmp.path().join("outside")).expect("mkdir");
        let real = config.join("prod").canonicalize().expect("canonical");
        assert_eq!(resolve(&data, "catalog", "prod"), Ok(real.clone()));
        assert_eq!(resolve(&data, "catalog", "prod/../prod"), Ok(real));
        assert_eq!(resolve_opt(&data, "catalog", None), Ok(None));
        #[cfg(unix)]
        std::os::unix::fs::symlink(tmp.path().join("outside"), config.join("escape"))
            .expect("symlink");
        for name in ["missing", "../outside", "/etc", "escape"] {
            let refused = resolve(&data, "catalog", name).expect_err(name);
            assert_eq!(
                refused,
                format!("catalog {name:?} is not in the server's config directory")
            );
            assert!(!refused.contains(&*tmp.path().to_string_lossy()));
        }
    }
}
