//! Concurrency keys (v1.1): tasks sharing a `concurrency_key` run at most
//! `concurrency_limit` at once. A queued task whose key is at its limit is
//! parked aside, out of the run queue, so it holds back no other task; one
//! parked task goes back in line each time a task of its key stops running.

use std::collections::{BinaryHeap, HashMap};

use super::queue::Place;

#[derive(Debug, Default)]
pub(super) struct Limits {
    /// Running tasks per key (only keys with some).
    running: HashMap<String, u32>,
    /// Queued tasks set aside per key, best first.
    parked: HashMap<String, BinaryHeap<Place>>,
}

impl Limits {
    /// Whether `key` already has `limit` tasks running.
    pub fn full(&self, key: &str, limit: u32) -> bool {
        self.running.get(key).copied().unwrap_or(0) >= limit
    }

    /// Sets a queued task of `key` aside until one of its key stops.
    pub fn park(&mut self, key: &str, place: Place) {
        match self.parked.get_mut(key) {
            Some(heap) => heap.push(place),
            None => {
                self.parked
                    .insert(key.to_owned(), BinaryHeap::from(vec![place]));
            }
        }
    }

    /// A task of `key` started.
    pub fn started(&mut self, key: &str) {
        match self.running.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.running.insert(key.to_owned(), 1);
            }
        }
    }

    /// A task of `key` stopped running: the best task parked under it, if
    /// any, to put back in line (possibly stale: its status is checked
    /// when it is popped again).
    pub fn stopped(&mut self, key: &str) -> Option<Place> {
        if let Some(n) = self.running.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.running.remove(key);
            }
        }
        let heap = self.parked.get_mut(key)?;
        let place = heap.pop();
        if heap.is_empty() {
            self.parked.remove(key);
        }
        place
    }

    /// Tasks set aside, stale ones included.
    #[cfg(test)]
    pub fn parked(&self) -> usize {
        self.parked.values().map(BinaryHeap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(seq: u64) -> Place {
        Place {
            priority: 0,
            seq,
            id: uuid::Uuid::from_u128(u128::from(seq)).into(),
        }
    }

    #[test]
    fn parked_tasks_come_back_one_per_stop_best_first() {
        let mut limits = Limits::default();
        limits.started("customer-1");
        assert!(limits.full("customer-1", 1));
        assert!(!limits.full("customer-1", 2));
        assert!(!limits.full("customer-2", 1));
        limits.park("customer-1", place(7));
        limits.park("customer-1", place(3));
        assert_eq!(limits.stopped("customer-1").map(|p| p.seq), Some(3));
        assert!(!limits.full("customer-1", 1));
        limits.started("customer-1");
        assert_eq!(limits.stopped("customer-1").map(|p| p.seq), Some(7));
        assert_eq!(limits.stopped("customer-1"), None);
        assert_eq!(limits.parked(), 0);
    }
}
