//! Which file the store opened, checked at every commit.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Which file the store opened: the database must still be that file at
/// every commit. A database deleted or replaced under a running server
/// would take every later write with it (they would land in an unlinked
/// inode, or be mixed into someone else's file), so that is refused.
#[derive(Debug, Clone)]
pub(super) struct FileIdentity {
    pub(super) path: PathBuf,
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    pub(super) fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// `Err` with the reason when the path no longer names the opened file.
    pub(super) fn verify(&self) -> Result<(), String> {
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => Ok(()),
            Ok(_) => Err(format!(
                "the database file {} was replaced while the server ran; restart the server",
                self.path.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "the database file {} was deleted while the server ran; restart the server",
                self.path.display()
            )),
            Err(e) => Err(format!(
                "the database file {} cannot be checked: {e}",
                self.path.display()
            )),
        }
    }
}
