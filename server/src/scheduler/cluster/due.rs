//! Delays and retries in a cluster (v1.1): a `scheduled` task waits in the
//! database, and any node promotes it to `queued` when its `run_at` comes.
//!
//! Each node keeps one timer, on the earliest `run_at` it knows of: its
//! own submissions and retries, other nodes' `Due` signals, and what each
//! promotion finds left. The claim poll promotes too, which covers a
//! missed signal and, at start, the tasks that came due while no node was
//! up. The node that promotes a task pushes its `queued` and wakes the
//! others to claim it (or, if it waits for others, see `deps`).

use super::*;

/// How long a node waits before promoting again when its last promotion
/// found nothing due yet something it knows of was (another node is
/// promoting it, or the clocks differ a little): no tight loop.
const PROMOTE_AGAIN: Duration = Duration::from_millis(10);

impl Scheduler {
    /// Some task is scheduled for `at`: promote then, unless the timer is
    /// set earlier. `tell`: the other nodes are told too.
    pub(in crate::scheduler) fn scheduled_for(&mut self, at: Timestamp, tell: bool) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        if tell {
            side.signal(Signal::Due { at });
        }
        if side.due.is_some_and(|(armed, _)| armed <= at) {
            return;
        }
        // One set for years ahead fires early: the promotion finds nothing
        // due, and tells the same time again.
        let (wait, _) = pending::timer_until(at);
        let key = match side.due {
            Some((_, key)) => {
                self.timers.reset(&key, wait);
                key
            }
            None => self.timers.insert(Timer::Promote, wait),
        };
        side.due = Some((at, key));
    }

    /// The earliest `run_at` this node knew of came.
    pub(in crate::scheduler) fn due_timer_fired(&mut self) {
        if let Some(side) = &mut self.cluster {
            side.due = None;
        }
        self.promote();
    }

    /// Queues the scheduled tasks that came due (one promotion at a time;
    /// one asked for meanwhile runs after it).
    pub(in crate::scheduler) fn promote(&mut self) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        if side.promoting {
            side.promote_again = true;
            return;
        }
        side.promoting = true;
        let promote = side.link.promote();
        side.push(async move { ClusterDone::Promoted(promote.await) });
    }

    /// What a promotion did: `queued` (or `waiting`, or the `result` of a
    /// task whose dependency had failed) pushed for each task, the nodes
    /// woken to claim the queued ones, and the timer set for the next.
    pub(in crate::scheduler) async fn promoted(&mut self, result: Result<Promoted, ClusterError>) {
        self.cluster_health(&result);
        let again = match &mut self.cluster {
            Some(side) => {
                side.promoting = false;
                std::mem::take(&mut side.promote_again)
            }
            None => return,
        };
        if let Ok(Promoted { tasks, next }) = result {
            self.announce_stored(&tasks).await;
            // Some wait for others now, or failed with dependents of their
            // own: checked again at once.
            if tasks.iter().any(|t| t.status != TaskStatus::Queued) {
                self.resolve();
            }
            if let Some(next) = next {
                let soonest = match tasks.is_empty() {
                    true => Timestamp::now().plus_millis(PROMOTE_AGAIN.as_millis() as u64),
                    false => next,
                };
                self.scheduled_for(next.max(soonest), false);
            }
        }
        if again {
            self.promote();
        }
    }

    /// A retry of a task this node ran waits for its backoff in the
    /// database: the task leaves this node (stored `scheduled`, its
    /// attempt fenced), then `scheduled` is pushed and every node is told
    /// when it is due.
    pub(in crate::scheduler) async fn give_back_scheduled(
        &mut self,
        id: TaskId,
        error: ErrorBody,
        worker: Option<WorkerId>,
    ) {
        let Some(mut entry) = self.table.withdraw(id) else {
            return;
        };
        // The attempt's error and worker go with the write; the database
        // moves them to the attempt it records (migration 0007) and clears
        // them from the task.
        entry.task.error = Some(Box::new(error));
        entry.task.worker = worker;
        let run_at = entry.task.run_at.unwrap_or_else(Timestamp::now);
        let ev = status_of(&entry.task);
        self.outbox.fenced.push(Fenced::Put(entry.task));
        self.emit(Deferred::Rescheduled { ev, run_at }).await;
    }
}
