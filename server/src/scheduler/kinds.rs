//! Per kind (v1.1): pausing and resuming a kind, and its line in
//! `stats.kinds`.
//!
//! A paused kind's queued tasks keep their place in line; dispatch passes
//! their queue by (as it passes a kind no free worker runs), so running
//! ones finish, submissions are still accepted, and a resume dispatches
//! in the same round. Concurrency keys, delays and dependencies need
//! nothing of their own: a task they release joins its kind's queue and
//! waits there like any other.
//!
//! Where a pause is kept: in memory only (`--memory`); in the embedded
//! store's `paused_kinds` table, written before the answer (durable); in
//! the cluster's database, where claims skip paused kinds (cluster mode:
//! see `cluster::db::pause`).

use std::collections::{BTreeMap, BTreeSet};

use app::{KindInfo, KindStats};

use super::latency::{self, Latencies, Pair};
use super::*;

/// What the scheduler knows per kind beyond its tasks.
#[derive(Default)]
pub(super) struct ByKind {
    /// Paused kinds (on a single server; a cluster's are in its database).
    pub paused: BTreeSet<String>,
    /// Queue waits and run times of the last few minutes.
    pub latencies: Latencies,
}

/// The answer to a pause or a resume.
pub type KindReply = Reply<Result<KindInfo, ErrorBody>>;

/// The answer to `GET /kinds`.
pub type KindsReply = Reply<Result<Vec<KindInfo>, ErrorBody>>;

impl ByKind {
    /// A task of `kind` started after `wait` in the queue: the dashboard's
    /// figures and `/metrics` both take it, here.
    pub fn waited(&mut self, metrics: &Metrics, kind: &str, wait: Duration) {
        self.latencies.waited(kind, wait);
        metrics.waited(kind, wait);
    }

    /// A task of `kind` ended `status` after running `run` (`None`: it
    /// never ran).
    pub fn ended(
        &mut self,
        metrics: &Metrics,
        kind: &str,
        status: TaskStatus,
        run: Option<Duration>,
    ) {
        if let Some(run) = run {
            self.latencies.ran(kind, run);
            metrics.ran(kind, run);
        }
        metrics.finished(kind, status);
    }
}

/// Commands about kinds.
pub enum KindsCommand {
    /// Pauses (`paused`) or resumes `kind`. `known`: a submission may
    /// name it now; a kind that is neither known nor paused is
    /// `unknown_kind`.
    Set {
        kind: String,
        paused: bool,
        known: bool,
        reply: KindReply,
    },
    /// `kinds` (those a submission may name, in order), each with whether
    /// it is paused, then any other paused kind (one whose remote workers
    /// left, say), by name.
    List {
        kinds: Vec<String>,
        reply: KindsReply,
    },
}

impl KindsCommand {
    pub(super) fn refuse(self, error: ErrorBody) {
        match self {
            Self::Set { reply, .. } => reply.send(Err(error)),
            Self::List { reply, .. } => reply.send(Err(error)),
        }
    }
}

impl Dispatcher {
    /// Pauses or resumes `kind` (see [`KindsCommand::Set`]).
    pub async fn set_paused(
        &self,
        kind: String,
        paused: bool,
        known: bool,
    ) -> Result<KindInfo, ErrorBody> {
        let (reply, rx) = Reply::channel();
        let cmd = KindsCommand::Set {
            kind,
            paused,
            known,
            reply,
        };
        self.send(Command::Kinds(cmd)).await?;
        rx.await.map_err(|_| command::stopped())?
    }

    /// `kinds` with whether each is paused (see [`KindsCommand::List`]).
    pub async fn kinds(&self, kinds: Vec<String>) -> Result<Vec<KindInfo>, ErrorBody> {
        let (reply, rx) = Reply::channel();
        self.send(Command::Kinds(KindsCommand::List { kinds, reply }))
            .await?;
        rx.await.map_err(|_| command::stopped())?
    }
}

/// `kinds` in order, then the other paused ones.
pub(super) fn listing(kinds: Vec<String>, paused: &BTreeSet<String>) -> Vec<KindInfo> {
    let mut out: Vec<KindInfo> = kinds
        .iter()
        .map(|k| KindInfo {
            kind: k.clone(),
            paused: paused.contains(k),
        })
        .collect();
    for k in paused {
        if !kinds.contains(k) {
            out.push(KindInfo {
                kind: k.clone(),
                paused: true,
            });
        }
    }
    out
}

pub(super) fn unknown_kind(kind: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::UnknownKind,
        format!("no kind {kind:?} on this server"),
    )
}

impl Scheduler {
    pub(super) fn on_kinds(&mut self, cmd: KindsCommand) {
        if self.cluster.is_some() {
            return self.cluster_kinds(cmd);
        }
        match cmd {
            KindsCommand::List { kinds, reply } => {
                reply.send(Ok(listing(kinds, &self.by_kind.paused)));
            }
            KindsCommand::Set {
                kind,
                paused,
                known,
                reply,
            } => {
                if !known && !self.by_kind.paused.contains(&kind) {
                    return reply.send(Err(unknown_kind(&kind)));
                }
                let changed = match paused {
                    true => self.by_kind.paused.insert(kind.clone()),
                    false => self.by_kind.paused.remove(&kind),
                };
                tracing::info!(kind, paused, changed, "kind paused or resumed");
                let info = KindInfo { kind, paused };
                // A resume dispatches in this round (after the command);
                // with a store, the answer waits until the pause is
                // written (in order with every other pause).
                match &self.outbox.store {
                    Some(store) => {
                        let write = store.commit(vec![Write::Pause {
                            kind: info.kind.clone(),
                            paused,
                        }]);
                        tokio::spawn(async move {
                            reply.send(write.await.map(|()| info).map_err(|e| {
                                ErrorBody::new(
                                    ErrorCode::Internal,
                                    format!("the pause could not be stored: {e}"),
                                )
                            }));
                        });
                    }
                    None => reply.send(Ok(info)),
                }
            }
        }
    }

    /// `stats.kinds` on a single server: every kind with queued or running
    /// tasks, latencies in the window, or a pause, by name.
    pub(super) fn kind_lines(&self) -> Vec<KindStats> {
        let latencies = self.by_kind.latencies.snapshot();
        let depth: BTreeMap<&String, _> = self.table.by_kind().collect();
        let mut names: BTreeSet<&String> = depth.keys().copied().collect();
        names.extend(latencies.keys());
        names.extend(self.by_kind.paused.iter());
        names
            .into_iter()
            .map(|kind| {
                let d = depth.get(kind).copied().copied().unwrap_or_default();
                line(
                    kind,
                    self.by_kind.paused.contains(kind),
                    d.queued,
                    d.running,
                    latencies.get(kind),
                )
            })
            .collect()
    }
}

/// One kind's line of `stats.kinds`.
pub(super) fn line(
    kind: &str,
    paused: bool,
    queued: u64,
    running: u64,
    latency: Option<&Pair>,
) -> KindStats {
    KindStats {
        kind: kind.to_owned(),
        paused,
        queued,
        running,
        wait_ms: latency
            .map(|p| latency::summary(&p.wait))
            .unwrap_or_default(),
        run_ms: latency
            .map(|p| latency::summary(&p.run))
            .unwrap_or_default(),
    }
}
