//! The server's health as `GET /healthz` reports it: healthy, or degraded
//! with a reason (the task store cannot write, say). Whoever notices a
//! problem sets it and clears it once it is over; readers only look. A
//! connection that knows its own state (Redis, in a cluster) is asked
//! instead, through a probe.

use std::sync::{Arc, RwLock};

/// Tells why a part of the server is down, or `None` when it is up.
pub type Probe = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Cheap-clone handle to the server's health.
///
/// A std lock: held to copy or replace a string, never across an `.await`.
#[derive(Clone, Default)]
pub struct Health {
    problem: Arc<RwLock<Option<String>>>,
    probe: Arc<RwLock<Option<Probe>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("problem", &self.problem())
            .finish()
    }
}

impl Health {
    /// Also asks `probe` from now on, for every handle of this health.
    pub fn set_probe(&self, probe: Probe) {
        *self.probe.write().unwrap_or_else(|e| e.into_inner()) = Some(probe);
    }

    /// Marks the server degraded for `reason`.
    pub fn degrade(&self, reason: impl Into<String>) {
        *self.problem.write().unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
    }

    /// Marks the server healthy again (its probe may still say otherwise).
    pub fn restore(&self) {
        *self.problem.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Why the server is degraded, or `None` when it is healthy.
    pub fn problem(&self) -> Option<String> {
        let set = self
            .problem
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        set.or_else(|| {
            let probe = self.probe.read().unwrap_or_else(|e| e.into_inner()).clone();
            probe.and_then(|probe| probe())
        })
    }

    pub fn is_degraded(&self) -> bool {
        self.problem().is_some()
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

    #[test]
    fn a_probe_is_asked_too() {
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let probe_down = down.clone();
        let health = Health::default();
        health.set_probe(Arc::new(move || {
            probe_down
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(|| "redis down".to_owned())
        }));
        assert_eq!(health.problem().as_deref(), Some("redis down"));
        health.degrade("disk full");
        assert_eq!(health.problem().as_deref(), Some("disk full"));
        health.restore();
        down.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(health.problem(), None);
    }
}
