//! The run queues: higher priority first, first-in first-out within a
//! priority, one queue per kind so that a kind no free worker runs (one only
//! a busy remote worker offers, say) never holds back the others. Removal is
//! lazy: the scheduler skips popped ids whose task is no longer queued, so
//! cancelling a queued task is O(1).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use app::TaskId;

/// One queued task's place in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub priority: i32,
    /// Submission order; a retried task keeps its original `seq` and so its
    /// place among tasks of its priority.
    pub seq: u64,
    pub id: TaskId,
}

impl Ord for Place {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.priority, Reverse(self.seq)).cmp(&(other.priority, Reverse(other.seq)))
    }
}

impl PartialOrd for Place {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A max-heap of [`Place`]s.
#[derive(Debug, Default)]
pub struct RunQueue {
    heap: BinaryHeap<Place>,
}

impl RunQueue {
    pub fn push(&mut self, place: Place) {
        self.heap.push(place);
    }

    /// The next task to run, if any (possibly stale: check its status).
    pub fn pop(&mut self) -> Option<Place> {
        self.heap.pop()
    }

    /// The next task to run, without taking it.
    pub fn peek(&self) -> Option<Place> {
        self.heap.peek().copied()
    }

    /// Whether nothing, not even a stale entry, is left.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Entries, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

/// The queued tasks of one class, by kind.
#[derive(Debug, Default)]
pub struct KindQueues {
    /// Only kinds with entries: an emptied queue is removed, so a round
    /// looks at the kinds that have work and nothing else.
    by_kind: HashMap<String, RunQueue>,
}

impl KindQueues {
    pub fn push(&mut self, kind: &str, place: Place) {
        match self.by_kind.get_mut(kind) {
            Some(q) => q.push(place),
            None => {
                let mut q = RunQueue::default();
                q.push(place);
                self.by_kind.insert(kind.to_owned(), q);
            }
        }
    }

    /// Takes the first in line among the kinds `runnable` accepts
    /// (possibly stale: check its status).
    pub fn pop_runnable(&mut self, mut runnable: impl FnMut(&str) -> bool) -> Option<Place> {
        let (kind, _) = self
            .by_kind
            .iter()
            .filter_map(|(kind, q)| Some((kind, q.peek()?)))
            .filter(|(kind, _)| runnable(kind))
            .max_by_key(|(_, place)| *place)?;
        let kind = kind.clone();
        let q = self.by_kind.get_mut(&kind)?;
        let place = q.pop();
        if q.is_empty() {
            self.by_kind.remove(&kind);
        }
        place
    }

    /// Entries of every kind, stale ones included.
    pub fn len(&self) -> usize {
        self.by_kind.values().map(RunQueue::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(priority: i32, seq: u64) -> Place {
        Place {
            priority,
            seq,
            id: uuid::Uuid::from_u128(u128::from(seq)).into(),
        }
    }

    #[test]
    fn priority_then_fifo() {
        let mut q = RunQueue::default();
        for (p, s) in [(0, 1), (5, 2), (0, 3), (-1, 4), (5, 5), (10, 6), (0, 7)] {
            q.push(place(p, s));
        }
        let order: Vec<u64> = std::iter::from_fn(|| q.pop()).map(|p| p.seq).collect();
        assert_eq!(order, vec![6, 2, 5, 1, 3, 7, 4]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_retried_task_keeps_its_place() {
        let mut q = RunQueue::default();
        q.push(place(0, 10));
        q.push(place(0, 11));
        // Task 3 ran, its worker died, it is queued again with its old seq.
        q.push(place(0, 3));
        assert_eq!(q.pop().map(|p| p.seq), Some(3));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_kind_nobody_runs_does_not_hold_back_the_others() {
        let mut q = KindQueues::default();
        q.push("remote-only", place(9, 1));
        q.push("primes", place(0, 2));
        q.push("remote-only", place(0, 3));
        q.push("sha256", place(5, 4));
        let local = |kind: &str| kind != "remote-only";
        let order: Vec<u64> = std::iter::from_fn(|| q.pop_runnable(local))
            .map(|p| p.seq)
            .collect();
        assert_eq!(order, vec![4, 2]);
        assert_eq!(q.len(), 2);
        // Once its worker is there, it comes first again (priority 9).
        assert_eq!(q.pop_runnable(|_| true).map(|p| p.seq), Some(1));
        assert_eq!(q.pop_runnable(|_| true).map(|p| p.seq), Some(3));
        assert!(q.is_empty());
    }
}
