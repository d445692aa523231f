//! Small commits made on the scheduler's own thread at light load
//! ([`Store::commit_here`]), and when not to make them.

use std::time::Duration;

use crate::store::{Store, StoreError, Write};

/// A commit of at most this many writes, after one of at most as many
/// (light load), is made on the scheduler's thread when the store's writer
/// thread is idle ([`Store::commit_here`]): it blocks the event loop for
/// one disk sync, and spares the commit two hand-offs between threads.
/// Larger ones go to the writer thread, so the event loop goes on while
/// the disk syncs.
pub(super) const COMMIT_HERE_AT_MOST: usize = 4;

/// How long commits go to the writer thread after those made on the
/// scheduler's thread were slow (see `SchedulerConfig::commit_here_slow`).
pub(super) const HERE_PAUSE: Duration = Duration::from_secs(1);

/// Commits made on the scheduler's thread: how long they took of late, and
/// until when none is made after they were slow.
#[derive(Default)]
pub(super) struct HereCommits {
    /// Until when commits go to the writer thread (see [`HERE_PAUSE`]).
    after: Option<tokio::time::Instant>,
    /// How long they took, as a moving average (each new one weighs a
    /// quarter).
    average: Duration,
}

impl HereCommits {
    /// Commits `writes` on this thread unless such commits were `slow` of
    /// late or the store's writer thread is busy; `None`: they are for the
    /// writer thread.
    pub(super) fn try_commit(
        &mut self,
        store: &Store,
        writes: &[Write],
        slow: Duration,
    ) -> Option<Result<(), StoreError>> {
        let now = tokio::time::Instant::now();
        if self.after.is_some_and(|t| now < t) {
            return None;
        }
        let started = std::time::Instant::now();
        let result = store.commit_here(writes)?;
        let took = started.elapsed();
        self.average = (self.average * 3 + took) / 4;
        if self.average > slow {
            tracing::debug!(
                ?took,
                average = ?self.average,
                "commits on the scheduler's thread are slow; the next ones go to the store's thread"
            );
            self.after = Some(now + HERE_PAUSE);
        }
        Some(result)
    }
}
