//! The pool of worker processes: N children spawned from this same binary
//! (`taskwire worker`), each supervised and respawned when it dies.
//!
//! - [`frame`]: the length-prefixed JSON codec on their stdin/stdout;
//! - [`port`]: the scheduler's port to a child (frames to its stdin);
//! - [`spawn`]: starting a child that cannot outlive the server;
//! - [`supervise`]: one loop per worker: spawn, link to the scheduler, wait,
//!   report it down, respawn;
//! - [`child`]: the worker side, which runs handlers in slots.

pub mod child;
pub mod frame;
pub mod port;
pub mod spawn;
pub mod supervise;

use std::path::PathBuf;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::scheduler::{Dispatcher, Slots};

/// What the pool runs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Number of worker processes.
    pub workers: usize,
    /// Slots per process.
    pub slots: Slots,
    /// The binary to run as `<exe> worker`; the current one by default.
    pub exe: PathBuf,
    /// The kinds its workers run (the registry's).
    pub kinds: Vec<String>,
    /// Put before each worker's id (`<prefix>local-<n>`): the node's id
    /// and a slash in a cluster, where worker ids must be unique.
    pub id_prefix: String,
    /// Where worker restarts are counted.
    pub metrics: crate::metrics::Metrics,
}

/// Starts one supervisor per worker; they stop when `shutdown` is cancelled
/// and take their children with them.
pub fn start(
    config: &PoolConfig,
    dispatcher: &Dispatcher,
    shutdown: &CancellationToken,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for index in 1..=config.workers {
        set.spawn(supervise::supervise(
            index,
            config.clone(),
            dispatcher.clone(),
            shutdown.clone(),
        ));
    }
    set
}
