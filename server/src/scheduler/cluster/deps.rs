//! Dependencies in a cluster (v1.1): a task `waiting` for others waits in
//! the database. Whatever ends a task with dependents (a commit, a cancel,
//! a reap, a failure cascading) queues a check there in the same
//! transaction, and the node that did it resolves the checks right after:
//! each waiting task is queued once all it names succeeded (`status`
//! pushed, nodes woken), or failed with `dependency_failed` (`result`
//! pushed). Every node also resolves at each heartbeat, which takes the
//! checks of a node that died before it could.

use super::*;

impl Scheduler {
    /// Resolves the queued dependency checks (one resolution at a time;
    /// one asked for meanwhile runs after it).
    pub(in crate::scheduler) fn resolve(&mut self) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        if side.resolving {
            side.resolve_again = true;
            return;
        }
        side.resolving = true;
        let resolve = side.link.resolve();
        side.push(async move { ClusterDone::Resolved(resolve.await) });
    }

    /// What a resolution changed: pushed, and resolved again while it
    /// changes something (a failure queues its dependents' checks).
    pub(super) async fn resolved(&mut self, result: Result<Resolved, ClusterError>) {
        self.cluster_health(&result);
        let again = match &mut self.cluster {
            Some(side) => {
                side.resolving = false;
                std::mem::take(&mut side.resolve_again)
            }
            None => return,
        };
        let changed = match result {
            Ok(Resolved { tasks }) => {
                let changed = !tasks.is_empty();
                self.announce_stored(&tasks).await;
                changed
            }
            Err(_) => false,
        };
        if again || changed {
            self.resolve();
        }
    }

    /// Pushes what tasks this node does not hold became in the database
    /// (promoted, released, failed): `status` of those not final (the
    /// nodes woken to claim the queued ones), `result` of the others.
    pub(super) async fn announce_stored(&mut self, tasks: &[Task]) {
        let mut kinds = Vec::new();
        for task in tasks {
            if task.status.is_final() {
                self.publisher.result(task).await;
                continue;
            }
            self.publisher.status(&status_of(task)).await;
            if task.status == TaskStatus::Queued {
                kinds.push(task.kind.clone());
            }
        }
        if let Some(side) = &mut self.cluster
            && !kinds.is_empty()
        {
            kinds.sort();
            kinds.dedup();
            side.more = true;
            side.signal(Signal::Wake { kinds });
        }
    }
}
