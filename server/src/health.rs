//! The server's health as `GET /healthz` reports it: healthy, or degraded
//! with a reason (the task store cannot write, say). Whoever notices a
//! problem sets it and clears it once it is over; readers only look.

use std::sync::{Arc, RwLock};

/// Cheap-clone handle to the server's health.
///
/// A std lock: held to copy or replace a string, never across an `.await`.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<RwLock<Option<String>>>);

impl Health {
    /// Marks the server degraded for `reason`.
    pub fn degrade(&self, reason: impl Into<String>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
    }

    /// Marks the server healthy again.
    pub fn restore(&self) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Why the server is degraded, or `None` when it is healthy.
    pub fn problem(&self) -> Option<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_degraded(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrade_and_restore() {
        let health = Health::default();
        assert_eq!(health.problem(), None);
        let seen_elsewhere = health.clone();
        health.degrade("disk full");
        assert_eq!(seen_elsewhere.problem().as_deref(), Some("disk full"));
        assert!(seen_elsewhere.is_degraded());
        health.restore();
        assert!(!seen_elsewhere.is_degraded());
    }
}
