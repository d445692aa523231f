//! How many tasks are queued and running, in all and by kind: the task
//! table's counts (`stats.queued`, `stats.running`, `stats.kinds`).

use std::collections::HashMap;

/// One kind's queued and running tasks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KindDepth {
    pub queued: u64,
    pub running: u64,
}

#[derive(Debug, Default)]
pub(super) struct Depth {
    pub queued: usize,
    pub running: usize,
    /// Only kinds with some.
    by_kind: HashMap<String, KindDepth>,
}

impl Depth {
    fn kind(&mut self, kind: &str) -> &mut KindDepth {
        // Looked up first: a kind's name is copied only the first time.
        if !self.by_kind.contains_key(kind) {
            self.by_kind.insert(kind.to_owned(), KindDepth::default());
        }
        self.by_kind.get_mut(kind).expect("inserted above")
    }

    fn forget_if_empty(&mut self, kind: &str) {
        if self.by_kind.get(kind) == Some(&KindDepth::default()) {
            self.by_kind.remove(kind);
        }
    }

    /// A task of `kind` became queued.
    pub fn queue(&mut self, kind: &str) {
        self.queued += 1;
        self.kind(kind).queued += 1;
    }

    /// A task of `kind` is no longer queued.
    pub fn unqueue(&mut self, kind: &str) {
        self.queued -= 1;
        if let Some(d) = self.by_kind.get_mut(kind) {
            d.queued = d.queued.saturating_sub(1);
        }
        self.forget_if_empty(kind);
    }

    /// A task of `kind` became running.
    pub fn run(&mut self, kind: &str) {
        self.running += 1;
        self.kind(kind).running += 1;
    }

    /// A task of `kind` is no longer running.
    pub fn unrun(&mut self, kind: &str) {
        self.running -= 1;
        if let Some(d) = self.by_kind.get_mut(kind) {
            d.running = d.running.saturating_sub(1);
        }
        self.forget_if_empty(kind);
    }

    /// The kinds with queued or running tasks.
    pub fn by_kind(&self) -> impl Iterator<Item = (&String, &KindDepth)> {
        self.by_kind.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_forgets_idle_kinds() {
        let mut d = Depth::default();
        d.queue("echo");
        d.queue("echo");
        d.queue("sleep");
        d.unqueue("echo");
        d.run("echo");
        assert_eq!((d.queued, d.running), (2, 1));
        let mut kinds: Vec<_> = d.by_kind().map(|(k, v)| (k.clone(), *v)).collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            kinds,
            vec![
                (
                    "echo".into(),
                    KindDepth {
                        queued: 1,
                        running: 1
                    }
                ),
                (
                    "sleep".into(),
                    KindDepth {
                        queued: 1,
                        running: 0
                    }
                ),
            ]
        );
        d.unqueue("sleep");
        assert_eq!(d.by_kind().count(), 1);
    }
}
