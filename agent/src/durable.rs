//! Crash-safe writes and removals of the agent's state files (mode 0600),
//! through the node library's one atomic write.

use std::io;
use std::path::Path;

use vantage_node::durable::atomic_write;
pub use vantage_node::durable::remove;

/// Writes `bytes` to `path` so that after a crash or power cut the file holds
/// either the old content or the new, never a mix.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write(path, bytes, 0o600)
}
