//! The public API: Socket.IO handlers ([`socket`]) and HTTP routes
//! ([`http`]), both thin: they parse and validate at the edge, then hand a
//! command to the scheduler.

pub mod auth;
pub mod http;
pub mod kinds;
pub mod lookup;
pub mod origin;
pub mod publish;
pub mod schedules;
pub mod socket;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use app::{ErrorBody, ErrorCode, Task, TaskId, TaskSpec, TaskStatus, Timestamp, events};
use axum::extract::Request;
use axum::response::Response;
use futures_util::future::BoxFuture;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::handler::ConnectHandler;
use socketioxide_core::adapter::DefinedAdapter;

use self::auth::AccessToken;
use crate::health::Health;
use crate::kinds::{Class, Registry};
use crate::scheduler::Dispatcher;

/// Registers the namespaces `/` (clients) and `/worker` (remote workers)
/// on `io`, whatever its adapter. Returns each namespace's adapter
/// initialisation: `()` for the LocalAdapter; a future for a remote one,
/// which subscribes to the namespace's channels and must be awaited (the
/// namespace exists only once it has succeeded).
pub fn register_namespaces<A: Adapter + DefinedAdapter>(io: &SocketIo<A>) -> [A::InitRes; 2] {
    [
        io.ns(
            events::CLIENT_NS,
            socket::on_connect.with(socket::register::<A>),
        ),
        io.ns(
            events::WORKER_NS,
            worker::on_connect::<A>.with(worker::register::<A>),
        ),
    ]
}

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    pub dispatcher: Dispatcher,
    /// Degraded while the task store cannot write (`GET /healthz`).
    pub health: Health,
    pub registry: Registry,
    pub remote_kinds: RemoteKinds,
    /// `--token`: who may use the API (everyone when unset).
    pub token: AccessToken,
    /// Events one client or worker socket may send per second.
    pub events_per_sec: u32,
    /// Whether this server runs tasks on its own worker processes: then
    /// remote workers may not offer the kinds of its registry.
    pub local_workers: bool,
    /// Renders a task's page, when the web UI's site was built.
    pub task_page: Option<TaskPage>,
    /// Renders the schedules page, when the web UI's site was built.
    pub schedules_page: Option<SchedulesPage>,
    /// Renders the task explorer, when the web UI's site was built.
    pub tasks_page: Option<ExplorerPage>,
    /// The recurring schedules (refusing everything in cluster mode).
    pub schedules: crate::schedules::Schedules,
    /// Where `list` and attempts are read.
    pub lookup: crate::lookup::Lookup,
    /// What `GET /metrics` shows.
    pub metrics: crate::metrics::Metrics,
}

/// A task's page for a browser (`GET /tasks/{id}` with `Accept:
/// text/html`), given the task as read (`None`: not found). The site
/// renders it; the API knows it only through this, so it does not depend
/// on the site.
pub type TaskPage =
    Arc<dyn Fn(AppState, Option<Task>, Request) -> BoxFuture<'static, Response> + Send + Sync>;

/// The schedules page for a browser (`GET /schedules` with `Accept:
/// text/html`), which the site renders as [`TaskPage`] renders a task's.
pub type SchedulesPage =
    Arc<dyn Fn(AppState, Request) -> BoxFuture<'static, Response> + Send + Sync>;

/// The task explorer for a browser (`GET /tasks` with `Accept:
/// text/html`), rendered as the schedules page is.
pub type ExplorerPage = SchedulesPage;

/// Kinds offered by connected remote workers that this server's registry
/// does not have: submissions of them are accepted (their input can only be
/// checked by the worker) while at least one such worker is connected.
///
/// A std lock: held for a map operation only, never across an `.await`.
#[derive(Clone, Default)]
pub struct RemoteKinds(Arc<RwLock<HashMap<String, usize>>>);

/// Most distinct kinds all remote workers together may offer: every page
/// and `GET /kinds` lists them.
pub const MAX_REMOTE_KINDS: usize = 1024;

impl RemoteKinds {
    /// Counts a new worker's kinds in, unless that would make more than
    /// [`MAX_REMOTE_KINDS`] distinct ones (then nothing changes).
    pub fn try_add(&self, kinds: &[String]) -> Result<(), ErrorBody> {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        let mut fresh: Vec<&String> = kinds.iter().filter(|k| !map.contains_key(*k)).collect();
        fresh.sort();
        fresh.dedup();
        if map.len() + fresh.len() > MAX_REMOTE_KINDS {
            return Err(ErrorBody::invalid(format!(
                "remote workers may offer at most {MAX_REMOTE_KINDS} kinds in all; \
                 {} are offered and this worker adds {}",
                map.len(),
                fresh.len()
            )));
        }
        for k in kinds {
            *map.entry(k.clone()).or_default() += 1;
        }
        Ok(())
    }

    pub fn remove(&self, kinds: &[String]) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        for k in kinds {
            if let Some(n) = map.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(k);
                }
            }
        }
    }

    /// The kinds offered now, sorted.
    pub fn names(&self) -> Vec<String> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = map.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn offers(&self, kind: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(kind)
    }
}

impl AppState {
    /// Every kind a submission may name: the registry's, then those only
    /// connected remote workers run.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds = self.registry.kinds();
        for k in self.remote_kinds.names() {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        kinds
    }

    /// Validates a submission against its kind and makes it a new task
    /// with a fresh id (its `after` may name tasks by id only).
    pub fn prepare(&self, spec: TaskSpec) -> Result<(Task, Class), ErrorBody> {
        self.prepare_item(spec, 0, &[])
    }

    /// [`AppState::prepare`] for each item of a `tasks` batch, whose
    /// `after` may also name earlier items by index (`"#0"`).
    pub fn prepare_batch(&self, specs: Vec<TaskSpec>) -> Result<Vec<(Task, Class)>, ErrorBody> {
        let mut ids = Vec::with_capacity(specs.len());
        let mut tasks = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let (task, class) = self
                .prepare_item(spec, i, &ids)
                .map_err(|e| e.in_batch_item(i))?;
            ids.push(task.id);
            tasks.push((task, class));
        }
        Ok(tasks)
    }

    /// The new task that re-runs task `id` (`retry`): its spec, with
    /// `retry_of` set; only a `failed`, `cancelled` or `timed_out` task may
    /// be retried (else `invalid_payload`). Its kind must still be known.
    pub async fn prepare_retry(&self, id: TaskId) -> Result<(Task, Class), ErrorBody> {
        let old = self.dispatcher.get(id).await?;
        if !matches!(
            old.status,
            TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::TimedOut
        ) {
            return Err(ErrorBody::invalid(format!(
                "only a failed, cancelled or timed-out task can be retried; task {id} is {}",
                old.status
            ))
            .with_field(app::Field::TaskId));
        }
        let (mut task, class) = self.prepare(old.spec())?;
        task.retry_of = Some(id);
        Ok((task, class))
    }

    fn prepare_item(
        &self,
        mut spec: TaskSpec,
        position: usize,
        earlier: &[TaskId],
    ) -> Result<(Task, Class), ErrorBody> {
        spec.resolve_after(position, earlier)?;
        let class = match self.registry.validate(&spec) {
            Err(e) if e.code == ErrorCode::UnknownKind && self.remote_kinds.offers(&spec.kind) => {
                Class::Cpu
            }
            other => other?,
        };
        let id = TaskId::from(uuid::Uuid::now_v7());
        Ok((Task::new(id, spec, Timestamp::now()), class))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_kinds_are_capped_in_all() {
        let kinds = RemoteKinds::default();
        let names = |from: usize, n: usize| -> Vec<String> {
            (from..from + n).map(|i| format!("k{i}")).collect()
        };
        kinds.try_add(&names(0, MAX_REMOTE_KINDS - 1)).unwrap();
        // Kinds already offered cost nothing; duplicates count once.
        kinds.try_add(&names(0, 10)).unwrap();
        kinds
            .try_add(&["new".into(), "new".into()])
            .expect("one more distinct kind fits");
        let err = kinds.try_add(&names(5000, 1)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPayload);
        assert!(
            err.message.contains("at most 1024 kinds in all"),
            "{}",
            err.message
        );
        assert!(!kinds.offers("k5000"), "a refused worker adds nothing");
        kinds.remove(&["new".into(), "new".into()]);
        assert!(!kinds.offers("new"));
        kinds.try_add(&names(5000, 1)).expect("room again");
    }
}
