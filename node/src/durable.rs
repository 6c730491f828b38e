//! Crash-safe writes and removals: the one atomic write of every state file
//! of the node (key, certificates, `node.json`, outbox, policy chain, the
//! boot partition's status) and of the hub (CA key, server key, CRL).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` so that after a crash or power loss the file
/// holds either the old or the new content, never a mix: write a temporary
/// file in the same directory (created with `mode`), fsync it, rename it over
/// `path`, fsync the directory. The new file takes the owner of the directory
/// (a node's data directory belongs to the agent's user and provisioning runs
/// as root; the hub's belongs to the hub's user and its CLI may run as root).
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    atomic_write_then(path, bytes, mode, sync_dir)
}

/// Makes a rename or delete in `dir` durable: without it a power cut can
/// leave the old file (or none) although the new one was reported written.
/// Some file systems (FAT) do not support fsync on a directory; there the
/// rename is as durable as it gets.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput || e.raw_os_error() == Some(22) => Ok(()),
        other => other,
    }
}

/// Removes `path` durably (the directory entry is synced); a missing file is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent(path))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The temporary file of a write of `name`: hidden, ending in `.tmp` (the
/// outbox skips such names), and always the same, so that the next write
/// finds and replaces what a crash left behind.
fn tmp_path(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(".tmp");
    dir.join(tmp)
}

fn atomic_write_then(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    sync: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = tmp_path(dir, name);
    // Writers of one directory take turns (the hub's CLI and the running hub
    // may write the same file; the agent's tasks write side by side), so a
    // temporary file found now is a crash's leftover, never another
    // writer's. The kernel drops the lock of a process that dies.
    let turn = File::open(dir)?;
    turn.lock()?;
    // The leftover may have other permissions; start afresh.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = write_tmp(&tmp, dir, bytes, mode).and_then(|()| {
        crate::fault::point(&format!("{}.tmp", name.to_string_lossy()));
        fs::rename(&tmp, path)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync(dir)?;
    crate::fault::point(&name.to_string_lossy());
    drop(turn);
    Ok(())
}

fn write_tmp(tmp: &Path, dir: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    let dir_meta = fs::metadata(dir)?;
    let file_meta = file.metadata()?;
    // Only root may give a file away, and the umask may have taken bits of
    // `mode`; FAT refuses both even to root. Either way the file stays
    // readable by whoever wrote it.
    let tolerate = |r: io::Result<()>| match r {
        Err(e) if e.kind() != io::ErrorKind::PermissionDenied => Err(e),
        _ => Ok(()),
    };
    if file_meta.mode() & 0o7777 != mode {
        tolerate(file.set_permissions(fs::Permissions::from_mode(mode)))?;
    }
    if (file_meta.uid(), file_meta.gid()) != (dir_meta.uid(), dir_meta.gid()) {
        tolerate(std::os::unix::fs::fchown(
            &file,
            Some(dir_meta.uid()),
            Some(dir_meta.gid()),
        ))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<OsString> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        atomic_write(&path, b"old", 0o600).unwrap();
        atomic_write(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            names(dir.path()),
            vec![OsString::from("key.pem")],
            "no temporary file left behind"
        );
    }

    #[test]
    fn atomic_write_ignores_a_stale_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(".cert.pem.tmp");
        fs::write(&stale, b"half written").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o400)).unwrap();
        let path = dir.path().join("cert.pem");
        atomic_write(&path, b"whole", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert!(!stale.exists());
    }

    #[test]
    fn concurrent_writers_of_one_file_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crl.pem");
        let writers: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        atomic_write(&path, &[b'a' + i; 4096], 0o644).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let content = fs::read(&path).unwrap();
        assert_eq!(content.len(), 4096);
        assert!(
            content.iter().all(|b| *b == content[0]),
            "one writer's bytes"
        );
        assert_eq!(names(dir.path()), vec![OsString::from("crl.pem")]);
    }

    #[test]
    fn atomic_write_into_missing_directory_fails_without_debris() {
        let dir = tempfile::tempdir().unwrap();
        let err = atomic_write(&dir.path().join("nope/x"), b"x", 0o644).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn the_directory_is_synced_after_the_rename() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("crl.pem");
        let mut synced = None;
        atomic_write_then(&p, b"new", 0o644, |dir| {
            // The rename is done when the directory is synced.
            synced = Some((dir.to_path_buf(), fs::read(&p)?));
            sync_dir(dir)
        })
        .unwrap();
        assert_eq!(synced, Some((d.path().to_path_buf(), b"new".to_vec())));
        let err = atomic_write_then(&p, b"x", 0o644, |_| Err(io::Error::other("disk")));
        assert_eq!(err.unwrap_err().to_string(), "disk");
    }

    #[test]
    fn remove_is_durable_and_tolerates_a_missing_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        atomic_write(&p, b"one", 0o600).unwrap();
        remove(&p).unwrap();
        remove(&p).unwrap();
        assert!(!p.exists());
    }
}
