//! Configuration archives: what `platform-broker plan DIR --server URL`
//! uploads (a gzipped tar of DIR, as Terraform's CLI-driven runs upload) and
//! what the server unpacks for a run.
//!
//! **Invariants:** an archive holds only regular files and directories under
//! relative paths of plain names (no `..`, no absolute path, no link of any
//! kind, no device), within `MAX_PACKED` bytes packed, `MAX_UNPACKED` bytes
//! unpacked and `MAX_ENTRIES` entries; one that does not is refused whole,
//! before anything is written, with the entry that broke the rule.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The largest upload the server takes.
pub const MAX_PACKED: usize = 32 * 1024 * 1024;
/// The most an archive may unpack to.
pub const MAX_UNPACKED: u64 = 256 * 1024 * 1024;
/// The most entries an archive may hold.
pub const MAX_ENTRIES: usize = 20_000;

/// Directories never uploaded: Terraform's and the broker's working data,
/// and version control.
const SKIPPED: &[&str] = &[".terraform", ".platform", ".git"];

/// Files never uploaded, at any depth: local state (the server keeps the
/// workspace's state; a local copy would make terraform offer to migrate it)
/// and its lock.
fn skipped_file(name: &str) -> bool {
    name.ends_with(".tfstate")
        || name.ends_with(".tfstate.backup")
        || name == ".terraform.tfstate.lock.info"
}

/// What an archive holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub bytes: u64,
}

/// Packs `dir` (its files, recursively, in name order, without
/// `.terraform/`, `.platform/`, `.git/` and local state files) into a
/// gzipped tar. A symbolic
/// link to a file inside `dir` is packed as that file; any other link is
/// refused.
pub fn pack(dir: &Path) -> Result<Vec<u8>, String> {
    let root = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut total = 0u64;
    let mut entries = 0usize;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = root.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&here)
            .map_err(|e| format!("{}: {e}", here.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", here.display()))?;
        names.sort();
        // Directories are pushed in reverse so they pop in name order.
        let mut subdirs = Vec::new();
        for name in names {
            let Some(text) = name.to_str() else {
                return Err(format!(
                    "{}: a file name that is not UTF-8",
                    here.join(&name).display()
                ));
            };
            if rel.as_os_str().is_empty() && SKIPPED.contains(&text)
                || text == ".git"
                || skipped_file(text)
            {
                continue;
            }
            let path = here.join(&name);
            let entry_rel = rel.join(&name);
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let meta = if meta.file_type().is_symlink() {
                let real = path
                    .canonicalize()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let target =
                    std::fs::metadata(&real).map_err(|e| format!("{}: {e}", path.display()))?;
                if !real.starts_with(&root) || !target.is_file() {
                    return Err(format!(
                        "{}: a symbolic link to something other than a file inside {} \
                         (not uploaded)",
                        entry_rel.display(),
                        dir.display()
                    ));
                }
                target
            } else {
                meta
            };
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(format!(
                    "{} holds more than {MAX_ENTRIES} files and directories",
                    dir.display()
                ));
            }
            if meta.is_dir() {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                header.set_mtime(0);
                tar.append_data(&mut header, &entry_rel, std::io::empty())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                subdirs.push(entry_rel);
            } else if meta.is_file() {
                total += meta.len();
                if total > MAX_UNPACKED {
                    return Err(format!(
                        "{} holds more than {} MiB",
                        dir.display(),
                        MAX_UNPACKED >> 20
                    ));
                }
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(meta.len());
                header.set_mtime(0);
                let file =
                    std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                tar.append_data(&mut header, &entry_rel, file)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            } else {
                return Err(format!(
                    "{}: not a file or directory (not uploaded)",
                    entry_rel.display()
                ));
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    let gz = tar
        .into_inner()
        .map_err(|e| format!("cannot pack {}: {e}", dir.display()))?;
    let bytes = gz
        .finish()
        .map_err(|e| format!("cannot pack {}: {e}", dir.display()))?;
    if bytes.len() > MAX_PACKED {
        return Err(format!(
            "{} packs to {} MiB; the server takes at most {} MiB",
            dir.display(),
            bytes.len() >> 20,
            MAX_PACKED >> 20
        ));
    }
    Ok(bytes)
}

/// The bounds an archive must keep.
#[derive(Clone, Copy)]
struct Limits {
    packed: usize,
    unpacked: u64,
    entries: usize,
}

const LIMITS: Limits = Limits {
    packed: MAX_PACKED,
    unpacked: MAX_UNPACKED,
    entries: MAX_ENTRIES,
};

/// Checks an archive against the rules without writing anything.
pub fn check(bytes: &[u8]) -> Result<Summary, String> {
    walk(bytes, None, LIMITS)
}

/// Unpacks an archive into `dest` (which must exist and be empty), after
/// checking all of it.
pub fn unpack(bytes: &[u8], dest: &Path) -> Result<Summary, String> {
    walk(bytes, None, LIMITS)?;
    walk(bytes, Some(dest), LIMITS)
}

/// The entry's path as plain names, or why not.
fn plain_path(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{}: only relative paths of plain names are allowed",
                    path.display()
                ));
            }
        }
    }
    Ok(out)
}

fn walk(bytes: &[u8], dest: Option<&Path>, limits: Limits) -> Result<Summary, String> {
    if bytes.len() > limits.packed {
        return Err(format!("larger than {} bytes", limits.packed));
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut summary = Summary::default();
    let mut entries = 0usize;
    let bad = |e: std::io::Error| format!("not a gzipped tar: {e}");
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        entries += 1;
        if entries > limits.entries {
            return Err(format!("more than {} entries", limits.entries));
        }
        let raw = entry.path().map_err(bad)?.into_owned();
        let rel = plain_path(&raw)?;
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() {
            // `./` itself, as `tar -C DIR .` writes it.
            if kind == tar::EntryType::Directory {
                continue;
            }
            return Err("an entry with an empty path".into());
        }
        match kind {
            tar::EntryType::Directory => {
                if let Some(dest) = dest {
                    let path = dest.join(&rel);
                    std::fs::create_dir_all(&path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(bad)?;
                summary.bytes = summary.bytes.saturating_add(size);
                if summary.bytes > limits.unpacked {
                    return Err(format!("unpacks to more than {} bytes", limits.unpacked));
                }
                summary.files += 1;
                match dest {
                    Some(dest) => {
                        let path = dest.join(&rel);
                        if let Some(parent) = path.parent() {
                            std::fs::create_dir_all(parent)
                                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                        }
                        // create_new: an archive naming one file twice is
                        // refused rather than overwriting.
                        let mut file = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&path)
                            .map_err(|e| format!("{}: {e}", rel.display()))?;
                        let copied = std::io::copy(&mut (&mut entry).take(size), &mut file)
                            .map_err(|e| format!("{}: {e}", rel.display()))?;
                        if copied != size {
                            return Err(format!("{}: cut short", rel.display()));
                        }
                    }
                    None => {
                        let copied =
                            std::io::copy(&mut (&mut entry).take(size), &mut std::io::sink())
                                .map_err(bad)?;
                        if copied != size {
                            return Err(format!("{}: cut short", rel.display()));
                        }
                    }
                }
            }
            other => {
                return Err(format!(
                    "{}: a {} entry (only files and directories are allowed)",
                    rel.display(),
                    describe(other)
                ));
            }
        }
    }
    Ok(summary)
}

fn describe(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        let raw = builder.into_inner().expect("test step");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).expect("test step");
        gz.finish().expect("test step")
    }

    fn file(builder: &mut tar::Builder<Vec<u8>>, name: &str, body: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`; write the raw name as an attacker would.
        let bytes = name.as_bytes();
        header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        header.set_cksum();
        builder.append(&header, body).expect("test step");
    }

    #[test]
    fn packs_and_unpacks_a_directory_without_working_data() {
        let dir = tempfile::tempdir().expect("test step");
        std::fs::write(dir.path().join("main.tf"), "# main\n").expect("test step");
        std::fs::create_dir_all(dir.path().join("modules/db")).expect("test step");
        std::fs::write(dir.path().join("modules/db/db.tf"), "# db\n").expect("test step");
        std::fs::write(dir.path().join("terraform.tfstate"), "{}").expect("test step");
        std::fs::write(dir.path().join("modules/db/terraform.tfstate.backup"), "{}")
            .expect("test step");
        for skipped in [".terraform", ".platform", ".git"] {
            std::fs::create_dir_all(dir.path().join(skipped)).expect("test step");
            std::fs::write(dir.path().join(skipped).join("x"), "secret").expect("test step");
        }
        std::os::unix::fs::symlink("main.tf", dir.path().join("link.tf")).expect("test step");
        let bytes = pack(dir.path()).expect("test step");
        assert_eq!(
            pack(dir.path()).expect("test step"),
            bytes,
            "packing is deterministic"
        );
        let out = tempfile::tempdir().expect("test step");
        let summary = unpack(&bytes, out.path()).expect("test step");
        assert_eq!(summary.files, 3);
        assert_eq!(
            std::fs::read_to_string(out.path().join("modules/db/db.tf")).expect("test step"),
            "# db\n"
        );
        assert_eq!(
            std::fs::read_to_string(out.path().join("link.tf")).expect("test step"),
            "# main\n"
        );
        assert!(!out.path().join(".terraform").exists());
        assert!(!out.path().join(".platform").exists());
        assert!(!out.path().join(".git").exists());
    }

    #[test]
    fn pack_refuses_a_link_that_leads_out() {
        let dir = tempfile::tempdir().expect("test step");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("x.tf")).expect("test step");
        let err = pack(dir.path()).expect_err("refused");
        assert!(err.contains("x.tf: a symbolic link"), "{err}");
    }

    #[test]
    fn refuses_escapes_links_and_garbage_whole() {
        let out = tempfile::tempdir().expect("test step");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                tar_gz(|b| {
                    file(b, "ok.tf", b"x");
                    file(b, "../escape.tf", b"x");
                }),
                "only relative paths",
            ),
            (
                tar_gz(|b| file(b, "/etc/cron.d/x", b"x")),
                "only relative paths",
            ),
            (
                tar_gz(|b| {
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    b.append_link(&mut header, "l.tf", "/etc/passwd")
                        .expect("test step");
                }),
                "symbolic link entry",
            ),
            (
                tar_gz(|b| {
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    b.append_link(&mut header, "h.tf", "ok.tf")
                        .expect("test step");
                }),
                "hard link entry",
            ),
            (
                tar_gz(|b| {
                    file(b, "a.tf", b"1");
                    file(b, "a.tf", b"2");
                }),
                "a.tf",
            ),
            (b"not gzip at all".to_vec(), "not a gzipped tar"),
        ];
        for (bytes, want) in cases {
            let dest = tempfile::tempdir_in(out.path()).expect("test step");
            let err = unpack(&bytes, dest.path()).expect_err("refused");
            assert!(err.contains(want), "{err} lacks {want}");
        }
        // Refused whole: the good entry before the bad one was not written.
        let dest = tempfile::tempdir().expect("test step");
        let bytes = tar_gz(|b| {
            file(b, "ok.tf", b"x");
            file(b, "../escape.tf", b"x");
        });
        assert!(unpack(&bytes, dest.path()).is_err());
        assert!(!dest.path().join("ok.tf").exists());
    }

    #[test]
    fn refuses_what_exceeds_the_limits() {
        let small = Limits {
            packed: 4096,
            unpacked: 1000,
            entries: 3,
        };
        // A bomb: 600 KiB of zeros packs to well under 4 KiB.
        let zeros = vec![0u8; 600 * 1024];
        let bomb = tar_gz(|b| file(b, "big.tf", &zeros));
        assert!(bomb.len() < small.packed, "{}", bomb.len());
        let err = walk(&bomb, None, small).expect_err("refused");
        assert!(err.contains("unpacks to more than 1000 bytes"), "{err}");
        let many = tar_gz(|b| {
            for i in 0..4 {
                file(b, &format!("f{i}.tf"), b"x");
            }
        });
        let err = walk(&many, None, small).expect_err("refused");
        assert!(err.contains("more than 3 entries"), "{err}");
        let err = walk(&vec![0u8; 5000], None, small).expect_err("refused");
        assert!(err.contains("larger than 4096 bytes"), "{err}");
        // Within the limits it passes.
        assert_eq!(
            walk(&tar_gz(|b| file(b, "a.tf", b"abc")), None, small).expect("test step"),
            Summary { files: 1, bytes: 3 }
        );
    }
}
