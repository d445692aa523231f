//! The durable store's writer, alone: the CPU it spends per task on the
//! writes a task costs at full load (its row inserted, its final state
//! written, its row removed once retention lets it go), committed in
//! groups as the scheduler sends them. No server, no sockets: what this
//! measures is the store's share of bench (a) and (b).
//!
//! `cargo bench -p taskwire --bench store [-- TASKS [PER_COMMIT]]`; prints the CPU time
//! (user + system, the whole process: the writer thread does nearly all of
//! it) and the wall time per task, the median of 5 runs, each on a new
//! database.

mod common;

use std::time::{Duration, Instant};

use app::Task;
use common::{echo, finished};
use taskwire::store::{Key, Store, Write};

/// Tasks per commit by default: what a commit carries under bench (b)
/// (under (a), about 30).
const PER_COMMIT: usize = 200;
/// Finished tasks kept before the oldest are removed (the server's
/// default retention).
const RETAINED: usize = 100_000;
const RUNS: usize = 5;

fn main() {
    // `cargo bench` adds `--bench`: only numbers are ours.
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let tasks = numbers.first().copied().unwrap_or(200_000);
    let per_commit = numbers.get(1).copied().unwrap_or(PER_COMMIT).max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut runs: Vec<(Duration, Duration)> = (0..RUNS)
        .map(|_| rt.block_on(run(tasks, per_commit)))
        .collect();
    runs.sort();
    let (cpu, wall) = runs[RUNS / 2];
    let per_task = |d: Duration| d.as_secs_f64() * 1e6 / tasks as f64;
    println!(
        "store: {tasks} tasks, {per_commit} per commit: {:.2} µs CPU per task, {:.2} µs wall (median of {RUNS})",
        per_task(cpu),
        per_task(wall)
    );
}

/// One run on a new database: CPU and wall time.
async fn run(tasks: usize, per_commit: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (store, _) = Store::open(dir.path()).expect("the store opens");
    let made: Vec<Task> = (0..tasks).map(|n| echo(n, "store")).collect();
    let done: Vec<Task> = made.iter().map(finished).collect();
    let (cpu, wall) = (cpu_time(), Instant::now());
    for (round, batch) in made.chunks(per_commit).enumerate() {
        let first = round * per_commit;
        let mut writes = Vec::with_capacity(3 * per_commit);
        // This round's tasks arrive; the last round's finish; those past
        // retention go.
        writes.extend(
            batch
                .iter()
                .enumerate()
                .map(|(i, t)| Write::task(t, (first + i) as u64, false)),
        );
        if round > 0 {
            let last = first - per_commit;
            for (i, t) in done[last..first].iter().enumerate() {
                writes.push(Write::task(t, (last + i) as u64, true));
            }
        }
        if let Some(gone) = first.checked_sub(RETAINED + per_commit) {
            for (i, t) in made[gone..gone + per_commit].iter().enumerate() {
                let seq = (gone + i) as u64;
                writes.push(Write::Delete(Key { id: t.id, seq }));
            }
        }
        store.commit(writes).await.expect("the commit succeeds");
    }
    (cpu_time() - cpu, wall.elapsed())
}

/// CPU time (user + system) of the whole process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
