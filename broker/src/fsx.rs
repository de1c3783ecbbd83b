//! Files under the broker home, never through a symlink.
//!
//! Anyone who can write the working directory can plant a symlink at
//! `.platform/audit.log` or `.platform/runs` pointing anywhere the broker's
//! user can write. Every file the broker opens under its home goes through
//! here: the last component is opened with `O_NOFOLLOW`, directories are
//! checked with `lstat` before use, and writes go to a uniquely named
//! temporary file created exclusively, then renamed over the target (a rename
//! replaces a symlink, it never writes through it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

fn nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn symlink_error(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} is a symbolic link; the broker never follows links under its home (remove it)",
        path.display()
    ))
}

/// Opens an existing file for reading without following a symlink.
pub fn open_read(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nofollow())
        .open(path)
        .map_err(|e| loop_means_symlink(e, path))
}

/// `ELOOP` from `O_NOFOLLOW` means the last component is a symlink: say so.
fn loop_means_symlink(error: io::Error, path: &Path) -> io::Error {
    if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        symlink_error(path)
    } else {
        error
    }
}

/// Reads a whole file without following a symlink.
pub fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_read(path)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// Reads a whole UTF-8 file without following a symlink.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read_nofollow(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

/// Opens (creating if needed) a file for appending, never through a symlink.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(nofollow())
        .open(path)
        .map_err(|e| loop_means_symlink(e, path))
}

/// Opens (creating if needed) a file for reading and writing in place.
pub fn open_rw(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags(nofollow())
        .open(path)
        .map_err(|e| loop_means_symlink(e, path))
}

/// Creates `path` exclusively with `bytes` (fsynced); `AlreadyExists` when
/// anything, a symlink included, is there.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nofollow())
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes a file atomically: a uniquely named temporary file (created
/// exclusively, `mode`, fsynced), renamed over `path`, then the directory
/// fsynced. Concurrent writers never share a temporary file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, bytes, mode, true)
}

/// [`write_atomic`] without the fsyncs: for caches derived from durable
/// records (a crash may lose the file, never leave half of it).
pub fn write_cache(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, bytes, mode, false)
}

fn write_atomic_with(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    let mut nonce = [0u8; 6];
    crate::bundle::fill_random(&mut nonce);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", crate::key::hex(&nonce)));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nofollow())
            .open(&tmp)?;
        // The mode of create_new is filtered by the umask: set it exactly.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        if sync { file.sync_all() } else { Ok(()) }
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    if let Err(error) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    if sync
        && let Some(parent) = path.parent()
        && let Ok(dir) = File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Makes sure `path` is a real directory (creating it, `mode`, if missing):
/// a symlink in its place is an error.
pub fn ensure_dir(path: &Path, mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(symlink_error(path)),
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::other(format!(
            "{} is not a directory",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent()
                && !parent.as_os_str().is_empty()
            {
                fs::create_dir_all(parent)?;
            }
            match fs::create_dir(path) {
                Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(mode)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => ensure_dir(path, mode),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Checks that no component of `path` below `root` is a symlink (`root`
/// itself is checked by whoever chose it). Missing components are fine.
pub fn check_no_symlink_below(root: &Path, path: &Path) -> io::Result<()> {
    let Ok(rest) = path.strip_prefix(root) else {
        return Ok(());
    };
    let mut at = root.to_path_buf();
    for part in rest.components() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(symlink_error(&at)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_never_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        fs::write(&outside, "keep").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        let error = read_nofollow(&link).expect_err("followed");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(open_append(&link, 0o600).is_err());
        assert!(create_new(&link, b"x", 0o600).is_err());
        // An atomic write replaces the link itself; the target is untouched.
        write_atomic(&link, b"new", 0o600).expect("write");
        assert_eq!(fs::read_to_string(&outside).expect("read"), "keep");
        assert!(
            !fs::symlink_metadata(&link)
                .expect("meta")
                .file_type()
                .is_symlink()
        );

        let dir_link = dir.path().join("runs");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &dir_link).expect("symlink");
        assert!(ensure_dir(&dir_link, 0o700).is_err());
        assert!(check_no_symlink_below(dir.path(), &dir_link.join("r1/identity.json")).is_err());
        assert!(check_no_symlink_below(dir.path(), &dir.path().join("x/y")).is_ok());
    }

    #[test]
    fn concurrent_atomic_writes_never_collide() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("approvals.json");
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || write_atomic(&path, format!("{i}").as_bytes(), 0o600))
            })
            .collect();
        for t in threads {
            t.join().expect("thread").expect("write");
        }
        let left: Vec<_> = fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(left.len(), 1, "temporary files left behind");
    }
}
