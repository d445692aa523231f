//! What writing a task's pushes costs: the JSON text of the two packets
//! every task gets, its submission's ack (`[{ok, task, deduplicated}]`,
//! the task queued) and its `result` (`["result", task]`, finished), written
//! through serde_json as the Socket.IO parser writes them. The baseline, in
//! the same run, is serde_json writing the very same bytes from `Value`
//! trees built beforehand: the generic path, with no type of ours in it.
//!
//! `cargo bench -p taskwire --bench wire [-- TASKS]`; prints ns per task
//! for both, the median of 5 runs, and their ratio.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use app::{Task, TaskAck, events};
use common::{echo, finished};
use serde_json::Value;

const RUNS: usize = 5;

fn main() {
    // `cargo bench` adds `--bench`: only numbers are ours.
    let tasks = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000usize);
    let made: Vec<Task> = (0..tasks).map(|n| echo(n, "wire")).collect();
    let done: Vec<Task> = made.iter().map(finished).collect();
    let trees: Vec<(Value, Value)> = made
        .iter()
        .zip(&done)
        .map(|(m, d)| {
            let ack = serde_json::to_value([TaskAck::submitted(m, false)]);
            let result = serde_json::to_value((events::RESULT, d));
            (ack.expect("a tree"), result.expect("a tree"))
        })
        .collect();
    let mut ours = Vec::with_capacity(RUNS);
    let mut generic = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        ours.push(time(|| {
            for (m, d) in made.iter().zip(&done) {
                let ack = [TaskAck::submitted(m, false)];
                black_box(serde_json::to_vec(&ack).expect("written"));
                black_box(serde_json::to_vec(&(events::RESULT, d)).expect("written"));
            }
        }));
        generic.push(time(|| {
            for (ack, result) in &trees {
                black_box(serde_json::to_vec(ack).expect("written"));
                black_box(serde_json::to_vec(result).expect("written"));
            }
        }));
    }
    // The same bytes both ways, or the comparison means nothing.
    for ((m, d), (ack, result)) in made.iter().zip(&done).zip(&trees).take(100) {
        let ours = serde_json::to_vec(&[TaskAck::submitted(m, false)]);
        assert_eq!(ours.ok(), serde_json::to_vec(ack).ok());
        let ours = serde_json::to_vec(&(events::RESULT, d));
        assert_eq!(ours.ok(), serde_json::to_vec(result).ok());
    }
    let (ours, generic) = (median(ours), median(generic));
    let per_task = |d: Duration| d.as_secs_f64() * 1e9 / tasks as f64;
    println!(
        "wire: {tasks} tasks, ack + result: {:.0} ns per task; serde_json from Value trees: {:.0} ns ({:.2}x ours; median of {RUNS})",
        per_task(ours),
        per_task(generic),
        per_task(generic) / per_task(ours)
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}
