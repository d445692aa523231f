//! What the cluster answered: each finished operation of
//! [`ClusterDone`], and `stats` of the whole cluster.

use super::*;

impl Scheduler {
    pub(in crate::scheduler) async fn on_cluster(&mut self, done: ClusterDone) {
        match done {
            ClusterDone::Inserted {
                submissions,
                submitted,
            } => self.inserted(submissions, submitted).await,
            ClusterDone::Deduplicated {
                acking,
                stored,
                result,
            } => self.deduplicated(acking, stored, result).await,
            ClusterDone::Claimed(result) => {
                self.cluster_health(&result);
                let Some(side) = &mut self.cluster else {
                    return;
                };
                side.claiming = false;
                let claimed = match result {
                    Ok(claimed) => claimed,
                    Err(_) => return,
                };
                // Any claimed: more may be waiting.
                side.more |= !claimed.is_empty();
                self.take_to_start(claimed.into_iter().map(Claimed::unstarted));
            }
            ClusterDone::Read {
                id,
                reply,
                joined,
                done,
                result,
            } => {
                self.cluster_health(&result);
                let finished = !matches!(&result, Ok(Some(t)) if !t.status.is_final());
                if let Some(client) = joined
                    && finished
                {
                    client.leave(id.room());
                }
                match result {
                    Ok(Some(task)) => {
                        if let Some(reply) = reply {
                            reply.task(&task);
                        }
                        if let Some(done) = done {
                            done.send(Ok(()));
                        }
                    }
                    Ok(None) => {
                        if let Some(reply) = reply {
                            reply.error(not_found(id));
                        }
                        if let Some(done) = done {
                            done.send(Err(not_found(id)));
                        }
                    }
                    Err(e) => {
                        let error = Self::unavailable_or_internal(&e);
                        if let Some(reply) = reply {
                            reply.error(error.clone());
                        }
                        if let Some(done) = done {
                            done.send(Err(error));
                        }
                    }
                }
            }
            ClusterDone::Cancel { id, reply, result } => {
                self.cluster_health(&result);
                match result {
                    Ok(CancelOutcome::Cancelled(task)) => {
                        reply.task(&task);
                        self.publisher.result(&task).await;
                        // What waits for it fails.
                        self.resolve();
                    }
                    // Claimed here meanwhile, and running.
                    Ok(CancelOutcome::Running { owner, .. })
                        if owner == self.node.id && self.table.contains(&id) =>
                    {
                        self.cancel(id, reply).await;
                    }
                    // Running elsewhere, or being given back from here (the
                    // cancel ends it when that is stored).
                    Ok(CancelOutcome::Running { owner, .. }) => self.await_cancel(id, owner, reply),
                    Ok(CancelOutcome::AlreadyFinished(task)) => reply.error(ErrorBody::new(
                        ErrorCode::AlreadyFinished,
                        format!("task {id} is already {}", task.status),
                    )),
                    Ok(CancelOutcome::NotFound) => reply.error(not_found(id)),
                    Err(e) => reply.error(Self::unavailable_or_internal(&e)),
                }
            }
            ClusterDone::Beat(result) => {
                self.cluster_health(&result);
                if let Some(side) = &mut self.cluster {
                    side.beating = false;
                }
                if let Ok(false) = result {
                    // Declared dead: every task it held was taken back.
                    tracing::error!(
                        "this node's lease ran out and the cluster took its tasks back; rejoining"
                    );
                    let held: Vec<TaskId> = self.table.ids();
                    self.forget_taken(&held);
                    if let Some(side) = &mut self.cluster {
                        let rejoin = side.link.rejoin();
                        side.push(async move { ClusterDone::Rejoined(rejoin.await) });
                    }
                }
            }
            ClusterDone::CancelRead {
                id,
                replies,
                forced,
                result,
            } => {
                self.cluster_health(&result);
                if let Ok(Some(task)) = &result
                    && !task.status.is_final()
                    && !forced
                {
                    // Not stopped yet: keep waiting (the timer is set).
                    if let Some(side) = &mut self.cluster {
                        side.cancels.entry(id).or_default().extend(replies);
                    }
                    return;
                }
                for reply in replies {
                    match &result {
                        Ok(Some(task)) => match task.status {
                            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::TimedOut => {
                                reply.error(ErrorBody::new(
                                    ErrorCode::AlreadyFinished,
                                    format!("task {id} is already {}", task.status),
                                ));
                            }
                            _ => reply.task(task),
                        },
                        Ok(None) => reply.error(not_found(id)),
                        Err(e) => reply.error(Self::unavailable_or_internal(e)),
                    }
                }
            }
            ClusterDone::Rejoined(result) => self.cluster_health(&result),
            ClusterDone::CancelRequests(result) => {
                self.cluster_health(&result);
                let owner = self.node.id.clone();
                for id in result.unwrap_or_default() {
                    // Already being stopped: nothing to do.
                    if self
                        .table
                        .get(&id)
                        .is_some_and(|e| !e.task.status.is_final())
                    {
                        let owner = owner.clone();
                        self.on_signal(Signal::Cancel { id, owner }).await;
                    }
                }
            }
            ClusterDone::Reaped(result) => {
                self.cluster_health(&result);
                let Ok(reaped) = result else { return };
                if reaped.iter().any(|r| r.task.status.is_final()) {
                    self.resolve();
                }
                for Reaped { task, from } in reaped {
                    tracing::warn!(task = %task.id, node = %from, status = %task.status, "took a task back from a node whose lease ran out");
                    if task.status.is_final() {
                        self.publisher.result(&task).await;
                    } else {
                        self.publisher.status(&status_of(&task)).await;
                        if let Some(side) = &mut self.cluster {
                            side.more = true;
                            side.signal(Signal::Wake {
                                kinds: vec![task.kind.clone()],
                            });
                        }
                    }
                }
            }
            ClusterDone::Overview { reply, result } => {
                self.cluster_health(&result);
                match result {
                    Ok((counts, nodes)) => {
                        let stats = self.cluster_overview(counts, nodes);
                        match reply {
                            Some(reply) => reply.send(Ok(stats)),
                            None => self.publisher.stats(&stats).await,
                        }
                    }
                    Err(e) => {
                        if let Some(reply) = reply {
                            reply.send(Err(Self::unavailable_or_internal(&e)));
                        }
                    }
                }
            }
            ClusterDone::Promoted(result) => self.promoted(result).await,
            ClusterDone::Resolved(result) => self.resolved(result).await,
            ClusterDone::Signalled(result) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "a signal to the other nodes was not sent");
                }
            }
        }
    }

    pub(super) fn unavailable_or_internal(e: &ClusterError) -> ErrorBody {
        match e {
            ClusterError::Unavailable(_) => Self::unavailable(e),
            ClusterError::Failed(m) => ErrorBody::new(ErrorCode::Internal, m.clone()),
        }
    }

    /// `stats` of the whole cluster: counts from the database, workers and
    /// nodes as of their last heartbeats (this node's as it is now).
    fn cluster_overview(&mut self, counts: Counts, nodes: Vec<NodeState>) -> Stats {
        let kinds = self.cluster_kind_lines(&counts, &nodes);
        let me = self.node.id.clone();
        let mut workers = Vec::new();
        let mut summaries = Vec::new();
        for node in nodes {
            let (node_workers, running) = match node.info.id == me {
                true => (
                    self.workers.iter().map(|w| self.worker_info(w)).collect(),
                    self.table.running() as u64,
                ),
                false => (node.workers, node.running),
            };
            summaries.push(app::NodeSummary {
                id: node.info.id.0.clone(),
                addr: node.info.addr.clone(),
                started_at: node.info.started_at,
                workers: node_workers.len() as u32,
                running,
            });
            workers.extend(node_workers);
        }
        let total = counts.succeeded + counts.failed + counts.cancelled + counts.timed_out;
        let now = tokio::time::Instant::now();
        let throughput = match &mut self.cluster {
            Some(side) => {
                side.history.push_back((now, total));
                while side.history.len() > stats::HISTORY_TICKS {
                    side.history.pop_front();
                }
                stats::throughput(&side.history, total)
            }
            None => 0.0,
        };
        Stats {
            scheduled: counts.scheduled,
            waiting: counts.waiting,
            queued: counts.queued,
            running: counts.running,
            succeeded: counts.succeeded,
            failed: counts.failed,
            cancelled: counts.cancelled,
            timed_out: counts.timed_out,
            workers,
            nodes: summaries,
            throughput_per_s: throughput,
            kinds,
            at: Timestamp::now(),
        }
    }
}
