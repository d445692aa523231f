//! The write-ahead log made ready at start: filled to the size it reaches
//! before a checkpoint, so that commits overwrite instead of growing it.

use std::fs::File;
use std::path::Path;

/// How long the WAL gets before a checkpoint starts it again from the top
/// (`wal_autocheckpoint` frames of a 4 KiB page and its 24-byte header).
pub(super) const WAL_BYTES: u64 = 32 + 8192 * (4096 + 24);

/// Writes zeros after the end of the WAL file up to [`WAL_BYTES`], as
/// PostgreSQL fills its WAL segments: a commit then overwrites blocks the
/// file already has, and its `fdatasync` has no file size to journal (here
/// about half the time of one that grows the file). SQLite reads a frame
/// only if its checksum and salt match the log's header, so zeros past the
/// last frame are never taken for one; bytes already there are not
/// touched. On a clean shutdown SQLite removes the WAL, so each start
/// fills it again (about 34 MB). Skipped on a disk with less than four
/// times that free, and undone if writing fails: it must never be what
/// fills a disk.
pub(super) fn prefill(db: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    let mut wal = std::fs::OpenOptions::new().append(true).open(&name)?;
    let start = wal.metadata()?.len();
    let missing = WAL_BYTES.saturating_sub(start);
    if missing == 0 || available(&wal)? < 4 * missing {
        return Ok(());
    }
    let zeros = vec![0; 1 << 20];
    let mut len = start;
    let written = (|| {
        while len < WAL_BYTES {
            let n = zeros
                .len()
                .min(usize::try_from(WAL_BYTES - len).unwrap_or(usize::MAX));
            wal.write_all(&zeros[..n])?;
            len += n as u64;
        }
        wal.sync_all()
    })();
    if written.is_err() {
        let _ = wal.set_len(start);
    }
    written
}

/// Bytes free for this user on the filesystem holding `file`.
fn available(file: &File) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd as _;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `file` keeps its descriptor open, and fstatvfs only writes
    // the struct it is given.
    if unsafe { libc::fstatvfs(file.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fstatvfs succeeded, so it filled the struct.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // u64 on 64-bit Linux, narrower elsewhere
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
