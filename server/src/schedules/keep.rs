//! Where the schedules are kept: nowhere but the actor (`--memory`), the
//! durable store's `schedules` table, or the cluster's database, which all
//! nodes share and where a compare-and-set on `next_run_at` lets one node
//! only fire each firing.

use app::{ErrorBody, ErrorCode, Schedule, TaskId, Timestamp};

use crate::cluster::db::Db;
use crate::store::{Store, Write};

/// Where the schedules are kept across restarts.
pub enum Keep {
    /// Nowhere (`--memory`).
    Memory,
    /// In the durable store's `schedules` table.
    Store(Store),
    /// In the cluster's database, shared by every node: the database is
    /// the truth, and each node's actor a cache of it.
    Cluster(Db),
}

impl Keep {
    /// Whether other nodes change the schedules too.
    pub(super) fn shared(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Every schedule kept (those that cannot be read are logged and left
    /// out).
    pub(super) async fn load(&self) -> Result<Vec<Schedule>, ErrorBody> {
        match self {
            Self::Memory => Ok(Vec::new()),
            Self::Store(store) => {
                let stored = store.load_schedules().map_err(|e| internal("read", e))?;
                Ok(stored
                    .into_iter()
                    .filter_map(|s| match serde_json::from_str(&s.body) {
                        Ok(schedule) => Some(schedule),
                        Err(e) => {
                            tracing::error!(name = %s.name, error = %e, "stored schedule unreadable; left out");
                            None
                        }
                    })
                    .collect())
            }
            Self::Cluster(db) => db.schedules().await.map_err(|e| unavailable("read", e)),
        }
    }

    /// Stores a created or replaced schedule and answers it as stored: in
    /// the cluster, with the history (`last_run_at`, `last_task_id`) the
    /// database holds, which another node may have written since.
    pub(super) async fn put(&self, schedule: Schedule) -> Result<Schedule, ErrorBody> {
        match self {
            Self::Memory => Ok(schedule),
            Self::Store(store) => {
                store
                    .commit(vec![put_write(&schedule)?])
                    .await
                    .map_err(|e| internal("store", e))?;
                Ok(schedule)
            }
            Self::Cluster(db) => db
                .put_schedule(&schedule)
                .await
                .map_err(|e| unavailable("store", e)),
        }
    }

    /// Deletes a schedule; whether there was one (in the cluster, the
    /// database says; elsewhere the caller already knows).
    pub(super) async fn delete(&self, name: &str) -> Result<bool, ErrorBody> {
        match self {
            Self::Memory => Ok(true),
            Self::Store(store) => {
                store
                    .commit(vec![Write::DeleteSchedule(name.to_owned())])
                    .await
                    .map_err(|e| internal("delete", e))?;
                Ok(true)
            }
            Self::Cluster(db) => db
                .delete_schedule(name)
                .await
                .map_err(|e| unavailable("delete", e)),
        }
    }

    /// Claims the firing that moves `name`'s `next_run_at` from `expected`
    /// to `next`. Only in the cluster can it be lost: another node fired
    /// it, or the schedule changed or was paused since this node read it.
    pub(super) async fn claim(
        &self,
        name: &str,
        expected: Timestamp,
        next: Option<Timestamp>,
    ) -> Result<bool, ErrorBody> {
        match self {
            Self::Memory | Self::Store(_) => Ok(true),
            Self::Cluster(db) => db
                .claim_firing(name, expected, next)
                .await
                .map_err(|e| unavailable("claim a firing of", e)),
        }
    }

    /// Records a firing that was submitted (or skipped): its time, its
    /// task, and the next firing.
    pub(super) async fn record(
        &self,
        schedule: &Schedule,
        fired: Option<(Timestamp, TaskId)>,
    ) -> Result<(), ErrorBody> {
        match self {
            Self::Memory => Ok(()),
            Self::Store(store) => store
                .commit(vec![put_write(schedule)?])
                .await
                .map_err(|e| internal("store", e)),
            Self::Cluster(db) => match fired {
                // The claim already moved `next_run_at` on.
                None => Ok(()),
                Some((at, id)) => db
                    .record_firing(&schedule.name, at, id)
                    .await
                    .map_err(|e| unavailable("record a firing of", e)),
            },
        }
    }
}

/// The write that stores `schedule` as it is now.
fn put_write(schedule: &Schedule) -> Result<Write, ErrorBody> {
    let body = serde_json::to_string(schedule)
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("schedule not stored: {e}")))?;
    Ok(Write::PutSchedule {
        name: schedule.name.clone(),
        body,
    })
}

fn internal(what: &str, e: impl std::fmt::Display) -> ErrorBody {
    tracing::error!(error = %e, "cannot {what} a schedule");
    ErrorBody::new(
        ErrorCode::Internal,
        format!("cannot {what} the schedule: {e}; try again later"),
    )
}

fn unavailable(what: &str, e: crate::cluster::db::DbError) -> ErrorBody {
    tracing::warn!(error = %e, "cannot {what} a schedule");
    let code = if e.is_unavailable() {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    };
    ErrorBody::new(
        code,
        format!("cannot {what} the schedule: {e}; try again later"),
    )
}
