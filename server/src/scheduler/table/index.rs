//! The lookup index of a single server: every task by kind and status in
//! submission order, the keyed ones by key, and on an in-memory server
//! (`--memory`) the attempts that ended before a task's current one (a
//! durable server keeps those in its store). In a cluster, `list` reads
//! the database instead, and this is not kept.
//!
//! A durable server's table holds every task its store holds, so `list`
//! is answered from here and the store needs no index of its own for it:
//! each one would cost every write of a task an index update.
//!
//! A page of `list` walks only tasks that pass its kind and status
//! filters, newest first (a merge of the per-kind, per-status maps), so it
//! costs about its length at 10^6 tasks. What it costs: one entry of a
//! `BTreeMap<u64, TaskId>` per task (24 bytes, about 40 with the nodes'
//! slack), and for a task with an idempotency key one more with a copy of
//! the key; a task whose first attempt is its only one has no attempts
//! entry.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use app::{Attempt, Cursor, KeyMatch, ListQuery, Task, TaskId, TaskStatus};

use super::{Entry, TaskTable};

const STATUSES: usize = 8;

fn slot(status: TaskStatus) -> usize {
    match status {
        TaskStatus::Scheduled => 0,
        TaskStatus::Waiting => 1,
        TaskStatus::Queued => 2,
        TaskStatus::Running => 3,
        TaskStatus::Succeeded => 4,
        TaskStatus::Failed => 5,
        TaskStatus::Cancelled => 6,
        TaskStatus::TimedOut => 7,
    }
}

/// A prefix filter first walks this many tasks in submission order before
/// it reads the keys with its prefix instead (a rare prefix).
const PREFIX_SCAN: usize = 4096;

/// Tasks by submission order, one kind and status to a map.
type BySeq = BTreeMap<u64, TaskId>;

#[derive(Default)]
pub(in crate::scheduler) struct Lookups {
    by_kind: HashMap<Box<str>, [BySeq; STATUSES]>,
    /// Keyed tasks by (key, seq).
    by_key: BTreeMap<(Box<str>, u64), TaskId>,
    /// Attempts that ended before a task's current one, oldest first.
    earlier: HashMap<TaskId, Vec<Attempt>>,
}

impl Lookups {
    fn add(&mut self, task: &Task, seq: u64) {
        let maps = match self.by_kind.get_mut(task.kind.as_str()) {
            Some(maps) => maps,
            None => self.by_kind.entry(task.kind.as_str().into()).or_default(),
        };
        maps[slot(task.status)].insert(seq, task.id);
        if let Some(key) = &task.key {
            self.by_key.insert((key.as_str().into(), seq), task.id);
        }
    }

    fn moved(&mut self, kind: &str, seq: u64, from: TaskStatus, to: TaskStatus) {
        if from == to {
            return;
        }
        if let Some(maps) = self.by_kind.get_mut(kind)
            && let Some(id) = maps[slot(from)].remove(&seq)
        {
            maps[slot(to)].insert(seq, id);
        }
    }

    fn remove(&mut self, task: &Task, seq: u64) {
        if let Some(maps) = self.by_kind.get_mut(task.kind.as_str()) {
            maps[slot(task.status)].remove(&seq);
        }
        if let Some(key) = &task.key {
            self.by_key.remove(&(Box::<str>::from(key.as_str()), seq));
        }
        self.earlier.remove(&task.id);
    }

    /// The maps a page's kind and status filters select, each walked
    /// newest first from `before`.
    fn streams<'a>(&'a self, q: &ListQuery, before: u64) -> Vec<Stream<'a>> {
        let kinds: Vec<&[BySeq; STATUSES]> = match &q.kind {
            Some(kind) => self.by_kind.get(kind.as_str()).into_iter().collect(),
            None => self.by_kind.values().collect(),
        };
        let mut streams = Vec::new();
        for maps in kinds {
            match q.status {
                Some(status) => streams.push(walk(&maps[slot(status)], before)),
                None => streams.extend(maps.iter().map(|m| walk(m, before))),
            }
        }
        streams
    }
}

type Stream<'a> = Box<dyn Iterator<Item = (u64, TaskId)> + 'a>;

fn walk(map: &BySeq, before: u64) -> Stream<'_> {
    Box::new(map.range(..before).rev().map(|(&seq, &id)| (seq, id)))
}

/// The streams merged, newest first.
fn merge(mut streams: Vec<Stream<'_>>) -> impl Iterator<Item = (u64, TaskId)> + '_ {
    let mut heads: Vec<Option<TaskId>> = vec![None; streams.len()];
    let mut heap = BinaryHeap::with_capacity(streams.len());
    for (i, s) in streams.iter_mut().enumerate() {
        if let Some((seq, id)) = s.next() {
            heads[i] = Some(id);
            heap.push((seq, i));
        }
    }
    std::iter::from_fn(move || {
        let (seq, i) = heap.pop()?;
        let id = heads[i].take()?;
        if let Some((next, next_id)) = streams[i].next() {
            heads[i] = Some(next_id);
            heap.push((next, i));
        }
        Some((seq, id))
    })
}

/// Sets a task's status, and moves it in the lookup index if one is kept.
pub(super) fn set_status(lookups: &mut Option<Box<Lookups>>, entry: &mut Entry, to: TaskStatus) {
    if let Some(l) = lookups {
        l.moved(&entry.task.kind, entry.seq, entry.task.status, to);
    }
    entry.task.status = to;
}

pub(super) fn indexed(lookups: &mut Option<Box<Lookups>>, task: &Task, seq: u64) {
    if let Some(l) = lookups {
        l.add(task, seq);
    }
}

pub(super) fn unindexed(lookups: &mut Option<Box<Lookups>>, task: &Task, seq: u64) {
    if let Some(l) = lookups {
        l.remove(task, seq);
    }
}

impl TaskTable {
    /// Keeps the lookup index from now on (an in-memory server, before any
    /// task comes in).
    pub fn keep_lookups(&mut self) {
        self.lookups = Some(Box::default());
    }

    /// Whether `list` and attempts are answered from this table.
    pub fn has_lookups(&self) -> bool {
        self.lookups.is_some()
    }

    /// One page of `list`, newest first, and the cursor of the next one,
    /// among the tasks that are `visible` (a durable server leaves out
    /// those not yet written). Empty without the lookup index.
    pub fn list(
        &self,
        q: &ListQuery,
        visible: impl Fn(&Entry) -> bool,
    ) -> (Vec<&Entry>, Option<Cursor>) {
        let Some(lookups) = &self.lookups else {
            return (Vec::new(), None);
        };
        let before = q.before.map_or(u64::MAX, |c| c.0);
        let want = q.limit as usize + 1;
        let task = |id: &TaskId| self.tasks.get(id).map(|e| &**e).filter(|e| visible(e));
        let mut found: Vec<(u64, &Entry)> = Vec::with_capacity(want);
        match &q.key {
            None => {
                for (seq, id) in merge(lookups.streams(q, before)).take(want) {
                    found.extend(task(&id).map(|t| (seq, t)));
                }
            }
            Some(KeyMatch::Exact(key)) => {
                let from = (Box::<str>::from(key.as_str()), 0);
                let to = (Box::<str>::from(key.as_str()), before);
                for (&(_, seq), id) in lookups.by_key.range(from..to).rev() {
                    if let Some(t) = task(id).filter(|e| q.matches(&e.task)) {
                        found.push((seq, t));
                        if found.len() == want {
                            break;
                        }
                    }
                }
            }
            Some(KeyMatch::Prefix(prefix)) => {
                // Newest first while matches are dense enough; a rare
                // prefix reads its keys instead.
                let mut walked = 0;
                let mut cut_short = false;
                for (seq, id) in merge(lookups.streams(q, before)) {
                    if let Some(t) = task(&id).filter(|e| q.matches(&e.task)) {
                        found.push((seq, t));
                        if found.len() == want {
                            break;
                        }
                    }
                    walked += 1;
                    if walked == PREFIX_SCAN {
                        cut_short = true;
                        break;
                    }
                }
                if cut_short && found.len() < want {
                    found = by_prefix(lookups, prefix, before, want, |id| {
                        task(id).filter(|e| q.matches(&e.task))
                    });
                }
            }
        }
        let next = (found.len() == want).then(|| {
            found.pop();
            found.last().map(|&(seq, _)| Cursor(seq))
        });
        (found.into_iter().map(|(_, t)| t).collect(), next.flatten())
    }

    /// Attempts that ended before task `id`'s current one (in-memory
    /// server), oldest first.
    pub fn earlier_attempts(&self, id: &TaskId) -> Vec<Attempt> {
        self.lookups
            .as_ref()
            .and_then(|l| l.earlier.get(id).cloned())
            .unwrap_or_default()
    }

    /// Records an attempt of task `id` that ended while the task goes on
    /// (in-memory server).
    pub fn record_attempt(&mut self, id: TaskId, attempt: Attempt) {
        if let Some(l) = &mut self.lookups
            && self.tasks.contains_key(&id)
        {
            l.earlier.entry(id).or_default().push(attempt);
        }
    }
}

/// The newest `want` tasks before `before` among those whose key starts
/// with `prefix`: every such key is read, then the newest kept.
fn by_prefix<'a>(
    lookups: &Lookups,
    prefix: &str,
    before: u64,
    want: usize,
    passes: impl Fn(&TaskId) -> Option<&'a Entry>,
) -> Vec<(u64, &'a Entry)> {
    use std::cmp::Reverse;
    let mut newest: BinaryHeap<Reverse<(u64, TaskId)>> = BinaryHeap::with_capacity(want + 1);
    let from = (Box::<str>::from(prefix), 0);
    for (&(ref key, seq), &id) in lookups.by_key.range(from..) {
        if !key.starts_with(prefix) {
            break;
        }
        if seq >= before || passes(&id).is_none() {
            continue;
        }
        newest.push(Reverse((seq, id)));
        if newest.len() > want {
            newest.pop();
        }
    }
    let mut found: Vec<(u64, &Entry)> = newest
        .into_iter()
        .filter_map(|Reverse((seq, id))| passes(&id).map(|t| (seq, t)))
        .collect();
    found.sort_unstable_by_key(|&(seq, _)| std::cmp::Reverse(seq));
    found
}

#[cfg(test)]
mod tests {
    use app::{TaskSpec, Timestamp, WorkerId};
    use serde_json::json;

    use super::*;
    use crate::kinds::Class;

    fn table(specs: &[(&str, Option<&str>)]) -> (TaskTable, Vec<TaskId>) {
        let mut table = TaskTable::default();
        table.keep_lookups();
        let mut ids = Vec::new();
        for (kind, key) in specs {
            let spec = TaskSpec {
                key: key.map(str::to_owned),
                ..TaskSpec::new(*kind, json!(null))
            };
            let task = Task::new(uuid::Uuid::now_v7().into(), spec, Timestamp::now());
            ids.push(task.id);
            table.enqueue(task, Class::Io, None, false);
        }
        (table, ids)
    }

    fn page(table: &TaskTable, raw: serde_json::Value) -> (Vec<TaskId>, Option<Cursor>) {
        let (tasks, next) = table.list(&ListQuery::parse(raw).unwrap(), |_| true);
        (tasks.iter().map(|e| e.task.id).collect(), next)
    }

    fn rev(ids: &[TaskId]) -> Vec<TaskId> {
        ids.iter().rev().copied().collect()
    }

    #[test]
    fn pages_follow_status_changes_and_removals() {
        let (mut t, ids) = table(&[
            ("echo", Some("a:1")),
            ("sleep", None),
            ("echo", Some("a:2")),
            ("echo", Some("b:1")),
            ("sleep", Some("a:3")),
        ]);
        assert_eq!(page(&t, json!({})).0, rev(&ids));
        let (first, next) = page(&t, json!({"limit": 2}));
        assert_eq!(first, vec![ids[4], ids[3]]);
        let next = next.expect("more");
        assert_eq!(next, Cursor(3));
        let (second, next) = page(&t, json!({"limit": 3, "before": next.to_string()}));
        assert_eq!((second, next), (vec![ids[2], ids[1], ids[0]], None));

        t.start(ids[2], WorkerId::from("w")).unwrap();
        t.settle(ids[2], TaskStatus::Failed, None, None).unwrap();
        t.start(ids[1], WorkerId::from("w")).unwrap();
        assert_eq!(page(&t, json!({"status": "failed"})).0, vec![ids[2]]);
        assert_eq!(page(&t, json!({"status": "running"})).0, vec![ids[1]]);
        assert_eq!(
            page(&t, json!({"status": "queued"})).0,
            vec![ids[4], ids[3], ids[0]]
        );
        assert_eq!(
            page(&t, json!({"kind": "echo"})).0,
            vec![ids[3], ids[2], ids[0]]
        );
        assert_eq!(
            page(&t, json!({"kind": "sleep", "status": "queued"})).0,
            vec![ids[4]]
        );
        assert_eq!(
            page(&t, json!({"key": "a:*"})).0,
            vec![ids[4], ids[2], ids[0]]
        );
        assert_eq!(
            page(&t, json!({"key": "a:2", "status": "failed"})).0,
            vec![ids[2]]
        );
        assert_eq!(
            page(&t, json!({"key": "a:2", "status": "queued"})).0,
            vec![]
        );
        assert_eq!(page(&t, json!({"kind": "nope"})).0, vec![]);

        t.withdraw(ids[4]).unwrap();
        assert_eq!(page(&t, json!({"key": "a:*"})).0, vec![ids[2], ids[0]]);
        assert_eq!(page(&t, json!({})).0.len(), 4);
        // Pruned: gone from every map, its attempts too.
        t.shelve(ids[2], false);
        t.record_attempt(ids[2], sample_attempt());
        assert_eq!(t.earlier_attempts(&ids[2]).len(), 1);
        let pruned = t.prune(0, usize::MAX, i64::MIN, i64::MAX);
        assert_eq!(
            pruned.iter().map(|k| k.id).collect::<Vec<_>>(),
            vec![ids[2]]
        );
        assert_eq!(page(&t, json!({"status": "failed"})).0, vec![]);
        assert_eq!(page(&t, json!({"key": "a:*"})).0, vec![ids[0]]);
        assert!(t.earlier_attempts(&ids[2]).is_empty());
    }

    #[test]
    fn a_rare_prefix_reads_its_keys_instead_of_walking_everything() {
        let mut specs = vec![("echo", Some("rare:1"))];
        specs.extend(std::iter::repeat_n(("echo", None), PREFIX_SCAN * 2));
        specs.push(("echo", Some("rare:2")));
        specs.extend(std::iter::repeat_n(("echo", None), 10));
        let (t, ids) = table(&specs);
        let last = ids.len() - 11;
        let (got, next) = page(&t, json!({"key": "rare:*", "limit": 1}));
        assert_eq!(got, vec![ids[last]]);
        let (got, next) = page(
            &t,
            json!({"key": "rare:*", "before": next.unwrap().to_string()}),
        );
        assert_eq!((got, next), (vec![ids[0]], None));
    }

    fn sample_attempt() -> Attempt {
        Attempt {
            attempt: 1,
            worker: None,
            started_at: Timestamp::now(),
            finished_at: None,
            outcome: app::AttemptOutcome::WorkerLost,
            error: None,
        }
    }
}

/// What the index costs per task: `TW_LOOKUPS=0|1 cargo test -p taskwire
/// --lib index_cost -- --ignored --nocapture` (RSS growth of this process
/// for 10^6 queued `echo` tasks, without or with the index; one process
/// each, so neither reuses the other's memory).
#[cfg(test)]
#[test]
#[ignore]
fn index_cost() {
    use app::{TaskSpec, Timestamp};
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    }
    const N: usize = 1_000_000;
    let lookups = std::env::var("TW_LOOKUPS").is_ok_and(|v| v == "1");
    let before = rss_kib();
    let mut table = TaskTable::with_capacity(N);
    if lookups {
        table.keep_lookups();
    }
    for n in 0..N {
        let spec = TaskSpec::new("echo", serde_json::json!({"seq": n, "text": "hello"}));
        let task = Task::new(uuid::Uuid::now_v7().into(), spec, Timestamp::now());
        table.enqueue(task, crate::kinds::Class::Cpu, None, false);
    }
    let per_task = (rss_kib() - before) * 1024 / N as u64;
    println!(
        "bytes per queued task, lookups {lookups}: {per_task} (a Task is {} bytes, an Entry {})",
        std::mem::size_of::<Task>(),
        std::mem::size_of::<Entry>()
    );
}
