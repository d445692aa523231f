//! The public API: Socket.IO handlers ([`socket`]) and HTTP routes
//! ([`http`]), both thin: they parse and validate at the edge, then hand a
//! command to the scheduler.

pub mod http;
pub mod socket;

use app::{ErrorBody, Task, TaskId, TaskSpec, Timestamp};

use crate::kinds::{Class, Registry};
use crate::scheduler::Dispatcher;

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    pub dispatcher: Dispatcher,
    pub registry: Registry,
}

impl AppState {
    /// Validates a submission against its kind and makes it a queued task
    /// with a fresh id.
    pub fn prepare(&self, spec: TaskSpec) -> Result<(Task, Class), ErrorBody> {
        let class = self.registry.validate(&spec)?;
        let id = TaskId::from(uuid::Uuid::now_v7());
        Ok((Task::new(id, spec, Timestamp::now()), class))
    }
}
