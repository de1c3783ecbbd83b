//! Terraform's provider network mirror protocol over a release directory
//! (what `scripts/release` writes): `index.json`, `VERSION.json` and the
//! archives, for the providers named with `--source HOST/NAMESPACE/TYPE`.
//!
//! The hashes served are the `zh:` (SHA-256 of the zip) lines of the
//! release's `terraform-provider-TYPE_VERSION_SHA256SUMS` — the file the
//! release signs — never hashes of whatever zip lies in the directory now:
//! Terraform checks every download against them, so a zip changed after the
//! release is refused by Terraform, not served as if it were the release.
//! An archive the sums do not list is not served.
//!
//! `scan` reads the directory on every request, so a release copied in later
//! is served without a restart. `serve` is the HTTP front end.

pub mod serve;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// A provider address the mirror answers for: `HOST/NAMESPACE/TYPE`,
/// compared as Terraform does (host and namespace case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub host: String,
    pub namespace: String,
    pub kind: String,
}

impl Source {
    /// `HOST/NAMESPACE/TYPE`, or `NAMESPACE/TYPE` (on `registry.terraform.io`).
    pub fn parse(text: &str) -> Result<Source> {
        let parts: Vec<&str> = text.split('/').collect();
        let (host, namespace, kind) = match parts.as_slice() {
            [host, namespace, kind] => (*host, *namespace, *kind),
            [namespace, kind] => ("registry.terraform.io", *namespace, *kind),
            _ => bail!(
                "provider source {text:?}: expected HOST/NAMESPACE/TYPE, e.g. registry.terraform.io/platform/platform"
            ),
        };
        let label = |what: &str, value: &str, extra: &[char]| -> Result<String> {
            let ok = !value.is_empty()
                && value.len() <= 64
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || extra.contains(&c));
            if !ok {
                bail!(
                    "provider source {text:?}: {what} {value:?} may hold only letters, digits and '-'{}",
                    if extra.is_empty() {
                        ""
                    } else {
                        " (and '.', ':')"
                    }
                );
            }
            Ok(value.to_ascii_lowercase())
        };
        Ok(Source {
            host: label("host", host, &['.', ':'])?,
            namespace: label("namespace", namespace, &[])?,
            kind: label("type", kind, &[])?,
        })
    }

    /// Whether a request's path segments name this provider.
    pub fn matches(&self, host: &str, namespace: &str, kind: &str) -> bool {
        self.host.eq_ignore_ascii_case(host)
            && self.namespace.eq_ignore_ascii_case(namespace)
            && self.kind.eq_ignore_ascii_case(kind)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.host, self.namespace, self.kind)
    }
}

/// One platform's archive of a released version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archive {
    /// The zip's file name in the release directory.
    pub file: String,
    /// Lowercase hex SHA-256 of the zip, from the signed sums file.
    pub sha256: String,
}

/// The released versions of one provider type: version → `OS_ARCH` → archive.
pub type Releases = BTreeMap<semver::Version, BTreeMap<String, Archive>>;

/// The name of a provider type's sums file for `version`.
pub fn sums_file(kind: &str, version: &str) -> String {
    format!("terraform-provider-{kind}_{version}_SHA256SUMS")
}

/// Reads every `terraform-provider-KIND_VERSION_SHA256SUMS` in `dir` and
/// returns the versions with at least one archive that exists. A sums file
/// that cannot be read or parsed is an error naming it (and its line).
pub fn scan(dir: &Path, kind: &str) -> Result<Releases> {
    let prefix = format!("terraform-provider-{kind}_");
    let mut releases = Releases::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(version) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix("_SHA256SUMS"))
        else {
            continue;
        };
        let Ok(parsed) = semver::Version::parse(version) else {
            bail!("{name}: {version:?} is not a semantic version (MAJOR.MINOR.PATCH)");
        };
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let archives = parse_sums(&text, name, &format!("{prefix}{version}_"))?;
        let present: BTreeMap<String, Archive> = archives
            .into_iter()
            .filter(|(_, archive)| {
                std::fs::symlink_metadata(dir.join(&archive.file)).is_ok_and(|m| m.is_file())
            })
            .collect();
        if !present.is_empty() {
            releases.insert(parsed, present);
        }
    }
    Ok(releases)
}

/// The archives a sums file lists: lines `HEX  FILE` (`sha256sum`'s text
/// and binary forms). Lines for other files (the manifest) are skipped;
/// a malformed line, or two hashes for one platform, is an error.
fn parse_sums(text: &str, name: &str, zip_prefix: &str) -> Result<BTreeMap<String, Archive>> {
    let mut archives = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{name}:{}", index + 1);
        let (hash, file) = match line.split_once("  ").or_else(|| line.split_once(" *")) {
            Some(pair) => pair,
            None => bail!("{}: expected `SHA256  FILE`", at()),
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{}: {hash:?} is not a SHA-256 in hex", at());
        }
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            bail!(
                "{}: {file:?} is not a file name in the release directory",
                at()
            );
        }
        let Some(platform) = file
            .strip_prefix(zip_prefix)
            .and_then(|rest| rest.strip_suffix(".zip"))
        else {
            continue;
        };
        let valid = platform.split_once('_').is_some_and(|(os, arch)| {
            [os, arch].iter().all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
        });
        if !valid {
            bail!(
                "{}: {file:?}: the platform {platform:?} is not OS_ARCH",
                at()
            );
        }
        let archive = Archive {
            file: file.to_owned(),
            sha256: hash.to_ascii_lowercase(),
        };
        if archives.insert(platform.to_owned(), archive).is_some() {
            bail!("{}: a second archive for {platform}", at());
        }
    }
    Ok(archives)
}

/// `index.json`: `{"versions": {"V": {}}}`.
pub fn index_json(releases: &Releases) -> serde_json::Value {
    let versions: serde_json::Map<String, serde_json::Value> = releases
        .keys()
        .map(|v| (v.to_string(), serde_json::json!({})))
        .collect();
    serde_json::json!({ "versions": versions })
}

/// `VERSION.json`: `{"archives": {"OS_ARCH": {"url", "hashes": ["zh:…"]}}}`;
/// the URLs are relative to the JSON's own URL (the archives are served
/// next to it).
pub fn version_json(archives: &BTreeMap<String, Archive>) -> serde_json::Value {
    let archives: serde_json::Map<String, serde_json::Value> = archives
        .iter()
        .map(|(platform, archive)| {
            (
                platform.clone(),
                serde_json::json!({
                    "url": archive.file,
                    "hashes": [format!("zh:{}", archive.sha256)],
                }),
            )
        })
        .collect();
    serde_json::json!({ "archives": archives })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn sources_parse_and_match_like_terraform() {
        let s = Source::parse("Registry.Terraform.io/Platform/platform").expect("parses");
        assert_eq!(s.to_string(), "registry.terraform.io/platform/platform");
        assert!(s.matches("registry.terraform.io", "PLATFORM", "platform"));
        assert!(!s.matches("registry.terraform.io", "hashicorp", "platform"));
        let short = Source::parse("platform/platform").expect("parses");
        assert_eq!(short, s);
        assert!(Source::parse("mirror.example.com:8443/acme/db").is_ok());
        for bad in ["", "a", "a/b/c/d", "h/../x", "h/a b/x", "h//x"] {
            let error = Source::parse(bad).expect_err(bad).to_string();
            assert!(error.contains("provider source"), "{bad}: {error}");
        }
    }

    #[test]
    fn sums_lines_become_archives() {
        let text = format!(
            "{HASH}  terraform-provider-platform_0.1.0_linux_amd64.zip\n\
             {HASH} *terraform-provider-platform_0.1.0_darwin_arm64.zip\n\
             {HASH}  terraform-provider-platform_0.1.0_manifest.json\n\n"
        );
        let archives =
            parse_sums(&text, "S", "terraform-provider-platform_0.1.0_").expect("parses");
        assert_eq!(
            archives.keys().collect::<Vec<_>>(),
            ["darwin_arm64", "linux_amd64"]
        );
        let json = version_json(&archives);
        assert_eq!(
            json["archives"]["linux_amd64"]["url"],
            "terraform-provider-platform_0.1.0_linux_amd64.zip"
        );
        assert_eq!(
            json["archives"]["linux_amd64"]["hashes"][0],
            format!("zh:{HASH}")
        );
    }

    #[test]
    fn malformed_sums_are_errors_at_their_line() {
        let p = "terraform-provider-platform_0.1.0_";
        let cases = [
            (
                format!("{HASH}  {p}linux_amd64.zip\nnonsense\n"),
                "S:2: expected",
            ),
            (
                format!("abc  {p}linux_amd64.zip\n"),
                "S:1: \"abc\" is not a SHA-256",
            ),
            (format!("{HASH}  ../{p}linux_amd64.zip\n"), "S:1: \"../"),
            (format!("{HASH}  {p}linux.zip\n"), "is not OS_ARCH"),
            (format!("{HASH}  {p}Linux_amd64.zip\n"), "is not OS_ARCH"),
            (
                format!("{HASH}  {p}linux_amd64.zip\n{HASH} *{p}linux_amd64.zip\n"),
                "S:2: a second archive for linux_amd64",
            ),
        ];
        for (text, needle) in cases {
            let error = parse_sums(&text, "S", p).expect_err(&text).to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn scan_serves_only_listed_archives_that_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zip = "terraform-provider-platform_0.2.0_linux_amd64.zip";
        std::fs::write(dir.path().join(zip), b"zip").expect("write");
        // Listed but missing: not served. Present but unlisted: not served.
        std::fs::write(
            dir.path()
                .join("terraform-provider-platform_0.2.0_linux_arm64.zip.unlisted"),
            b"x",
        )
        .expect("write");
        std::fs::write(
            dir.path().join(sums_file("platform", "0.2.0")),
            format!("{HASH}  {zip}\n{HASH}  terraform-provider-platform_0.2.0_darwin_arm64.zip\n"),
        )
        .expect("write");
        // A version whose archives are all missing is not listed.
        std::fs::write(
            dir.path().join(sums_file("platform", "0.1.0")),
            format!("{HASH}  terraform-provider-platform_0.1.0_linux_amd64.zip\n"),
        )
        .expect("write");
        let releases = scan(dir.path(), "platform").expect("scan");
        assert_eq!(
            index_json(&releases),
            serde_json::json!({"versions": {"0.2.0": {}}})
        );
        let archives = &releases[&semver::Version::new(0, 2, 0)];
        assert_eq!(archives.keys().collect::<Vec<_>>(), ["linux_amd64"]);
        // Another type in the same directory is another provider.
        assert!(scan(dir.path(), "other").expect("scan").is_empty());
        std::fs::write(dir.path().join(sums_file("platform", "latest")), "").expect("write");
        let error = scan(dir.path(), "platform")
            .expect_err("bad version")
            .to_string();
        assert!(
            error.contains("\"latest\" is not a semantic version"),
            "{error}"
        );
    }
}
