//! The public API: Socket.IO handlers ([`socket`]) and HTTP routes
//! ([`http`]), both thin: they parse and validate at the edge, then hand a
//! command to the scheduler.

pub mod auth;
pub mod http;
pub mod origin;
pub mod socket;
pub mod worker;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use app::{ErrorBody, ErrorCode, Task, TaskId, TaskSpec, Timestamp};

use self::auth::AccessToken;
use crate::kinds::{Class, Registry};
use crate::scheduler::Dispatcher;

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    pub dispatcher: Dispatcher,
    pub registry: Registry,
    pub remote_kinds: RemoteKinds,
    /// `--token`: who may use the API (everyone when unset).
    pub token: AccessToken,
    /// Events one client socket may send per second.
    pub events_per_sec: u32,
    /// The web UI's options, when its site was built.
    pub site: Option<leptos::prelude::LeptosOptions>,
}

/// Kinds offered by connected remote workers that this server's registry
/// does not have: submissions of them are accepted (their input can only be
/// checked by the worker) while at least one such worker is connected.
///
/// A std lock: held for a map operation only, never across an `.await`.
#[derive(Clone, Default)]
pub struct RemoteKinds(Arc<RwLock<HashMap<String, usize>>>);

impl RemoteKinds {
    pub fn add(&self, kinds: &[String]) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        for k in kinds {
            *map.entry(k.clone()).or_default() += 1;
        }
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

    /// Validates a submission against its kind and makes it a queued task
    /// with a fresh id.
    pub fn prepare(&self, spec: TaskSpec) -> Result<(Task, Class), ErrorBody> {
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
