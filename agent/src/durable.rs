//! Crash-safe writes and removals of the agent's state files, on top of the
//! node-state helpers shared with provisioning.

use std::io;
use std::path::Path;

use vantage_provision::state::{atomic_write, sync_dir};

/// Writes `bytes` to `path` so that after a crash or power cut the file holds
/// either the old content or the new, never a mix.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write(path, bytes, 0o600)
}

/// Removes `path` durably (the directory entry is synced); a missing file is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        remove(&p).unwrap();
        remove(&p).unwrap();
        assert!(!p.exists());
    }
}
