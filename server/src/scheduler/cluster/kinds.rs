//! Kinds on a cluster node (v1.1): pauses are the cluster's (its
//! database: every node's claims skip a paused kind once the pause
//! returned), and `stats.kinds` is cluster-wide: counts from the
//! database, latencies merged from every node's last heartbeat (this
//! node's as they are now).

use std::collections::BTreeMap;

use app::{KindInfo, KindStats};

use super::*;
use crate::cluster::KindLatencies;
use crate::scheduler::kinds::{self, KindsCommand};
use crate::scheduler::latency::{self, Pair};

impl Scheduler {
    pub(in crate::scheduler) fn cluster_kinds(&mut self, cmd: KindsCommand) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        let link = side.link.clone();
        let failed = |e: ClusterError| Self::unavailable_or_internal(&e);
        match cmd {
            KindsCommand::List {
                kinds: names,
                reply,
            } => {
                let paused = link.paused_kinds();
                tokio::spawn(async move {
                    reply.send(
                        paused
                            .await
                            .map_err(failed)
                            .map(|paused| kinds::listing(names, &paused.into_iter().collect())),
                    );
                });
            }
            KindsCommand::Set {
                kind,
                paused,
                known,
                reply,
            } => {
                tokio::spawn(async move {
                    let answer = async {
                        if !known {
                            // Only a kind paused already may be resumed.
                            let held = link.paused_kinds().await.map_err(failed)?;
                            if !held.contains(&kind) {
                                return Err(kinds::unknown_kind(&kind));
                            }
                        }
                        link.set_paused(kind.clone(), paused)
                            .await
                            .map_err(failed)?;
                        tracing::info!(kind, paused, "kind paused or resumed in the cluster");
                        if !paused {
                            // Every node claims at once (at most once: the
                            // claim tick is the fallback).
                            let wake = Signal::Wake {
                                kinds: vec![kind.clone()],
                            };
                            if let Err(e) = link.signal(wake).await {
                                tracing::debug!(error = %e, "the resume's wake-up was not sent");
                            }
                        }
                        Ok(KindInfo { kind, paused })
                    };
                    reply.send(answer.await);
                });
            }
        }
    }

    /// This node's latencies, as its heartbeat publishes them.
    pub(in crate::scheduler) fn latency_pairs(&self) -> BTreeMap<String, KindLatencies> {
        self.by_kind
            .latencies
            .snapshot()
            .into_iter()
            .map(|(kind, pair)| {
                let pairs = KindLatencies {
                    wait: latency::to_pairs(&pair.wait),
                    run: latency::to_pairs(&pair.run),
                };
                (kind, pairs)
            })
            .collect()
    }

    /// `stats.kinds` of the whole cluster.
    pub(in crate::scheduler) fn cluster_kind_lines(
        &self,
        counts: &Counts,
        nodes: &[NodeState],
    ) -> Vec<KindStats> {
        let mut merged: BTreeMap<String, Pair> = self.by_kind.latencies.snapshot();
        for node in nodes.iter().filter(|n| n.info.id != self.node.id) {
            for (kind, pairs) in &node.latencies {
                let theirs = Pair {
                    wait: latency::from_pairs(&pairs.wait),
                    run: latency::from_pairs(&pairs.run),
                };
                match merged.get_mut(kind) {
                    Some(sum) => sum.merge(&theirs),
                    None => {
                        merged.insert(kind.clone(), theirs);
                    }
                }
            }
        }
        let mut names: Vec<&String> = counts.kinds.keys().chain(merged.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|kind| {
                let c = counts.kinds.get(kind).cloned().unwrap_or_default();
                kinds::line(kind, c.paused, c.queued, c.running, merged.get(kind))
            })
            .collect()
    }
}
