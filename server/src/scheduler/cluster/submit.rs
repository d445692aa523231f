//! Submissions in a cluster: stored in the database (the submissions of a
//! round together), then acked. An idempotency key may name an existing
//! task instead of a new one: the socket then follows that task.

use super::*;
use crate::cluster::db::decides_in_database;

/// What a submission's ack needs once it is stored.
pub(in crate::scheduler) struct Acking {
    reply: TasksReply,
    /// The submitting socket, if any: in the rooms of the new tasks
    /// already.
    client: Option<Client>,
    /// The ids the tasks were given (a deduplicated one is never created).
    ids: Vec<TaskId>,
}

impl Scheduler {
    /// Stores new tasks in the shared queue (with the other submissions
    /// of the round, see [`Scheduler::insert_submissions`]); acked once
    /// committed.
    pub(in crate::scheduler) fn cluster_submit(
        &mut self,
        tasks: Vec<Task>,
        client: Option<Client>,
        reply: TasksReply,
    ) {
        if let Some(side) = &mut self.cluster {
            let ids = tasks.iter().map(|t| t.id).collect();
            let acking = Acking { reply, client, ids };
            side.submissions.push((acking, tasks));
        }
    }

    /// Stores every submission waiting, together, unless a store is under
    /// way: under load, each carries what came in meanwhile. Plain queued
    /// tasks this node has free slots for are offered to start here as
    /// they are stored. A claim under way (tasks queued earlier, which go
    /// first) is waited for: it may fill those slots.
    pub(in crate::scheduler) fn insert_submissions(&mut self) {
        let window = self.config.dedup_window;
        let Some(side) = &self.cluster else {
            return;
        };
        if side.inserting || side.claiming || side.submissions.is_empty() {
            return;
        }
        let start = match self.stopping || self.outbox.degraded.is_some() {
            true => HashSet::new(),
            false => self.offers(),
        };
        let Some(side) = &mut self.cluster else {
            return;
        };
        side.inserting = true;
        let (submissions, tasks): (Vec<Acking>, Vec<Vec<Task>>) =
            std::mem::take(&mut side.submissions).into_iter().unzip();
        let submit = side.link.submit(tasks, window, start);
        side.push(async move {
            ClusterDone::Inserted {
                submissions,
                submitted: submit.await,
            }
        });
    }

    /// The waiting submissions' tasks to offer to start here: plain
    /// queued ones (no key, no dependency, no concurrency key) of kinds
    /// not paused here, into the free slots, the highest priority first,
    /// then in order.
    fn offers(&self) -> HashSet<TaskId> {
        let mut start = HashSet::new();
        let (Some(side), Some((mut slots, mut limit))) = (&self.cluster, self.free_slots()) else {
            return start;
        };
        let mut candidates: Vec<&Task> = side
            .submissions
            .iter()
            .map(|(_, tasks)| tasks)
            .filter(|tasks| !decides_in_database(tasks))
            .flatten()
            .filter(|t| {
                t.status == TaskStatus::Queued
                    && t.concurrency_key.is_none()
                    && !self.by_kind.paused.contains(&t.kind)
            })
            .collect();
        candidates.sort_by_key(|t| std::cmp::Reverse(t.priority));
        for task in candidates {
            if limit == 0 {
                break;
            }
            if let Some(free) = slots.get_mut(&task.kind)
                && *free > 0
            {
                *free -= 1;
                limit -= 1;
                start.insert(task.id);
            }
        }
        start
    }

    /// Submissions were stored (or not): each is acked, the tasks started
    /// here as they were stored wait for their slots as claimed ones do,
    /// and the nodes are told of the others (woken to claim the queued
    /// ones, told when the scheduled ones are due).
    pub(super) async fn inserted(&mut self, submissions: Vec<Acking>, submitted: Submitted) {
        let Submitted { outcomes, started } = submitted;
        if let Some(side) = &mut self.cluster {
            side.inserting = false;
        }
        let mut kinds = Vec::new();
        let mut due: Option<Timestamp> = None;
        let mut to_start = Vec::with_capacity(started.len());
        for (acking, outcome) in submissions.into_iter().zip(outcomes) {
            self.cluster_health(&outcome);
            let stored = match outcome {
                Ok(Ok(stored)) => stored,
                Ok(Err(refused)) => {
                    acking.reply.error(refused);
                    continue;
                }
                Err(e) => {
                    acking.reply.error(Self::unavailable_or_internal(&e));
                    continue;
                }
            };
            let new = stored
                .tasks
                .iter()
                .zip(&stored.deduplicated)
                .filter(|(_, dedup)| !**dedup);
            for (task, _) in new {
                match task.status {
                    TaskStatus::Queued => match started.get(&task.id) {
                        Some(&seq) => to_start.push((task.clone(), seq)),
                        None => kinds.push(task.kind.clone()),
                    },
                    TaskStatus::Scheduled => {
                        if let Some(at) = task.run_at {
                            due = Some(due.map_or(at, |d| d.min(at)));
                        }
                    }
                    _ => {}
                }
            }
            self.ack_stored(acking, stored).await;
        }
        self.take_to_start(to_start);
        if let Some(at) = due {
            self.scheduled_for(at, true);
        }
        if !kinds.is_empty()
            && let Some(side) = &mut self.cluster
        {
            kinds.sort();
            kinds.dedup();
            side.more = true;
            side.signal(Signal::Wake { kinds });
        }
    }

    /// Acks a stored submission. A socket whose keys named existing tasks
    /// follows those instead: it joins their rooms, then they are read
    /// again for the ack, so no push about them can fall between the two.
    async fn ack_stored(&mut self, acking: Acking, stored: Stored) {
        let Some(client) = &acking.client else {
            return self.ack(acking, &stored).await;
        };
        let mut named = Vec::new();
        for (i, task) in stored.tasks.iter().enumerate() {
            if !stored.deduplicated[i] {
                continue;
            }
            client.leave(acking.ids[i].room());
            if !acking.ids.contains(&task.id) && !named.contains(&task.id) {
                named.push(task.id);
            }
        }
        if named.is_empty() {
            return self.ack(acking, &stored).await;
        }
        let Some(side) = &mut self.cluster else {
            return;
        };
        client.join(named.iter().map(TaskId::room).collect());
        let read = side.link.get_many(named);
        side.push(async move {
            ClusterDone::Deduplicated {
                acking,
                stored,
                result: read.await,
            }
        });
    }

    /// The tasks a submission's keys named, read again: acked as they are
    /// now (as stored, if the read failed); the socket leaves the rooms of
    /// those finished, whose results the ack holds.
    pub(super) async fn deduplicated(
        &mut self,
        acking: Acking,
        mut stored: Stored,
        result: Result<Vec<Task>, ClusterError>,
    ) {
        self.cluster_health(&result);
        for now in result.unwrap_or_default() {
            for (i, task) in stored.tasks.iter_mut().enumerate() {
                if stored.deduplicated[i] && task.id == now.id {
                    *task = now.clone();
                }
            }
        }
        if let Some(client) = &acking.client {
            let finished = stored
                .tasks
                .iter()
                .zip(&stored.deduplicated)
                .filter(|(t, dedup)| **dedup && t.status.is_final() && !acking.ids.contains(&t.id));
            for (task, _) in finished {
                client.leave(task.id.room());
            }
        }
        self.ack(acking, &stored).await;
    }

    /// Acks a stored submission, then pushes the `result` of each new task
    /// that failed at once (a task it named had failed): the ack shows it
    /// failed, and its result follows as for any task.
    async fn ack(&mut self, acking: Acking, stored: &Stored) {
        acking.reply.owned(&stored.tasks, &stored.deduplicated);
        let failed = stored
            .tasks
            .iter()
            .zip(&stored.deduplicated)
            .filter(|(t, dedup)| !**dedup && t.status.is_final());
        for (task, _) in failed {
            self.publisher.result(task).await;
        }
    }
}
