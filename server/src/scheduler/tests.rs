//! The scheduler alone, on tokio's paused clock: fake workers that record
//! what they were handed, a publisher that records every push, and the
//! `Dispatcher` as the only way in. Every wait is on an event the
//! scheduler causes; time moves only when everything is idle.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::{ErrorCode, ProgressEvent, Stats, StatusEvent, Task, TaskId, TaskSpec, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;

/// What a fake worker was asked to do.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Run(TaskId),
    Stop(TaskId),
    Kill,
}

/// A worker port that reports every call to the test.
struct FakePort {
    name: &'static str,
    calls: mpsc::UnboundedSender<(&'static str, Call)>,
    stopping: Stopping,
}

impl WorkerPort for FakePort {
    fn run(&mut self, task: &Task) -> Result<(), PortError> {
        let _ = self.calls.send((self.name, Call::Run(task.id)));
        Ok(())
    }

    fn stop(&mut self, id: TaskId) -> Stopping {
        let _ = self.calls.send((self.name, Call::Stop(id)));
        self.stopping
    }

    fn kill(&self) {
        let _ = self.calls.send((self.name, Call::Kill));
    }

    fn is_remote(&self) -> bool {
        self.stopping == Stopping::Released
    }
}

/// A push, as the test compares it.
#[derive(Debug, Clone, PartialEq)]
enum Push {
    Status(TaskId, TaskStatus, u32),
    Progress(TaskId, u64, u64),
    Result(TaskId, TaskStatus, Option<ErrorCode>),
}

/// Records pushes (`stats` ticks are left out: they come with time).
struct Recorder(mpsc::UnboundedSender<Push>);

impl Publisher for Recorder {
    fn status<'a>(&'a self, ev: &'a StatusEvent) -> BoxFuture<'a, ()> {
        let _ = self.0.send(Push::Status(ev.task_id, ev.status, ev.attempt));
        async {}.boxed()
    }

    fn progress<'a>(&'a self, ev: &'a ProgressEvent) -> BoxFuture<'a, ()> {
        let _ = self.0.send(Push::Progress(ev.task_id, ev.done, ev.total));
        async {}.boxed()
    }

    fn result<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, ()> {
        let code = task.error.as_ref().map(|e| e.code);
        let _ = self.0.send(Push::Result(task.id, task.status, code));
        async {}.boxed()
    }

    fn stats<'a>(&'a self, _: &'a Stats) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }
}

/// A client that records the rooms it joined and the pushes it got as a
/// follower.
struct FakeClient {
    id: ClientId,
    rooms: Mutex<Vec<String>>,
    pushes: Mutex<Vec<Push>>,
}

impl ClientPort for FakeClient {
    fn id(&self) -> ClientId {
        self.id
    }

    fn join(&self, rooms: Vec<String>) {
        self.rooms.lock().unwrap().extend(rooms);
    }

    fn leave(&self, room: String) {
        self.rooms.lock().unwrap().retain(|r| *r != room);
    }

    fn status(&self, ev: &StatusEvent) {
        let push = Push::Status(ev.task_id, ev.status, ev.attempt);
        self.pushes.lock().unwrap().push(push);
    }

    fn progress(&self, ev: &ProgressEvent) {
        let push = Push::Progress(ev.task_id, ev.done, ev.total);
        self.pushes.lock().unwrap().push(push);
    }

    fn result(&self, task: &Task) {
        let code = task.error.as_ref().map(|e| e.code);
        let push = Push::Result(task.id, task.status, code);
        self.pushes.lock().unwrap().push(push);
    }
}

/// Longest a test waits for anything, in paused (virtual) time: far past
/// every timer the tests set, so it fires only when an expected event
/// never comes.
const PATIENCE: Duration = Duration::from_secs(3600);

struct Harness {
    dispatcher: Dispatcher,
    calls: mpsc::UnboundedReceiver<(&'static str, Call)>,
    calls_tx: mpsc::UnboundedSender<(&'static str, Call)>,
    pushes: mpsc::UnboundedReceiver<Push>,
    shutdown: CancellationToken,
}

impl Harness {
    fn start(config: SchedulerConfig) -> Self {
        let (dispatcher, mailbox) = channel();
        let (push_tx, pushes) = mpsc::unbounded_channel();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        spawn(
            mailbox,
            config,
            Arc::new(Recorder(push_tx)),
            NodeInfo {
                id: crate::cluster::NodeId("test".into()),
                addr: "127.0.0.1:0".into(),
                started_at: Timestamp::now(),
            },
            Backing::Memory,
            crate::metrics::Metrics::default(),
            shutdown.clone(),
        );
        Self {
            dispatcher,
            calls,
            calls_tx,
            pushes,
            shutdown,
        }
    }

    /// Connects a worker named `name` with `slots`.
    async fn worker(&self, name: &'static str, slots: Slots, stopping: Stopping) {
        let link = WorkerLink {
            id: WorkerId::from(name.to_owned()),
            incarnation: 1,
            slots,
            port: Box::new(FakePort {
                name,
                calls: self.calls_tx.clone(),
                stopping,
            }),
            kinds: None,
            pid: None,
        };
        self.dispatcher.send(Command::WorkerUp(link)).await.unwrap();
    }

    async fn worker_down(&self, name: &'static str) {
        let cmd = Command::WorkerDown {
            id: WorkerId::from(name.to_owned()),
            incarnation: 1,
        };
        self.dispatcher.send(cmd).await.unwrap();
    }

    async fn report(&self, name: &'static str, report: Report) {
        let cmd = Command::FromWorker {
            id: WorkerId::from(name.to_owned()),
            incarnation: 1,
            reports: vec![report],
        };
        self.dispatcher.send(cmd).await.unwrap();
    }

    /// Submits tasks (of `class`, with these priorities) as one batch and
    /// returns their ids once acked.
    async fn submit(&self, specs: &[(i32, Class)], tune: impl Fn(&mut Task)) -> Vec<TaskId> {
        let tasks = specs
            .iter()
            .map(|&(priority, class)| {
                let spec = TaskSpec {
                    priority,
                    ..TaskSpec::new("echo", json!({ "priority": priority }))
                };
                let mut task =
                    Task::new(TaskId::from(uuid::Uuid::now_v7()), spec, Timestamp::now());
                tune(&mut task);
                (task, class)
            })
            .collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply = TasksReply::new(move |r| {
            let _ = tx.send(r.map(|s| s.tasks.iter().map(|t| t.id).collect::<Vec<_>>()));
        });
        let cmd = Command::Submit {
            tasks,
            client: None,
            reply,
        };
        self.dispatcher.send(cmd).await.unwrap();
        rx.await.unwrap().expect("submission accepted")
    }

    async fn next_call(&mut self) -> (&'static str, Call) {
        tokio::time::timeout(PATIENCE, self.calls.recv())
            .await
            .expect("a worker call")
            .expect("calls open")
    }

    async fn next_push(&mut self) -> Push {
        tokio::time::timeout(PATIENCE, self.pushes.recv())
            .await
            .expect("a push")
            .expect("pushes open")
    }

    /// The next pushes until (and with) the `result` of `id`.
    async fn pushes_until_result(&mut self, id: TaskId) -> Vec<Push> {
        let mut seen = Vec::new();
        loop {
            let push = self.next_push().await;
            let done = matches!(push, Push::Result(t, ..) if t == id);
            seen.push(push);
            if done {
                return seen;
            }
        }
    }

    /// Nothing else was handed to any worker so far.
    fn no_more_calls(&mut self) {
        assert_eq!(self.calls.try_recv().ok(), None);
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn done(id: TaskId) -> Report {
    Report::Done {
        id,
        output: json!({ "ok": true }).into(),
    }
}

const CPU: Class = Class::Cpu;
const IO: Class = Class::Io;

#[tokio::test(start_paused = true)]
async fn runs_by_priority_then_in_submission_order() {
    let mut h = Harness::start(SchedulerConfig::default());
    let ids = h
        .submit(&[(0, CPU), (5, CPU), (5, CPU), (1, CPU)], |_| {})
        .await;
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    let mut order = Vec::new();
    for _ in 0..ids.len() {
        let (_, call) = h.next_call().await;
        let Call::Run(id) = call else {
            panic!("expected a run, got {call:?}")
        };
        order.push(id);
        h.report("w", done(id)).await;
    }
    assert_eq!(order, vec![ids[1], ids[2], ids[3], ids[0]]);
}

#[tokio::test(start_paused = true)]
async fn each_class_gets_its_own_slots() {
    let mut h = Harness::start(SchedulerConfig::default());
    let cpu = h.submit(&[(0, CPU), (0, CPU)], |_| {}).await;
    let io = h.submit(&[(0, IO), (0, IO), (0, IO)], |_| {}).await;
    h.worker("w", Slots::per_class(1, 2), Stopping::Confirmed)
        .await;
    let mut started = Vec::new();
    for _ in 0..3 {
        started.push(h.next_call().await.1);
    }
    assert_eq!(
        started,
        vec![Call::Run(cpu[0]), Call::Run(io[0]), Call::Run(io[1])]
    );
    let stats = h.dispatcher.stats().await.unwrap();
    assert_eq!((stats.running, stats.queued), (3, 2));
    h.no_more_calls();
    // A free CPU slot takes the next CPU task, not an I/O one.
    h.report("w", done(cpu[0])).await;
    assert_eq!(h.next_call().await.1, Call::Run(cpu[1]));
}

#[tokio::test(start_paused = true)]
async fn a_task_over_its_timeout_is_stopped_and_its_worker_killed_if_it_hangs() {
    let mut h = Harness::start(SchedulerConfig {
        stop_grace: Duration::from_secs(2),
        ..SchedulerConfig::default()
    });
    let start = tokio::time::Instant::now();
    let ids = h.submit(&[(0, CPU)], |t| t.timeout_ms = Some(1000)).await;
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(ids[0]));
    assert_eq!(h.next_call().await.1, Call::Stop(ids[0]));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let pushes = h.pushes_until_result(ids[0]).await;
    assert_eq!(
        pushes.last(),
        Some(&Push::Result(
            ids[0],
            TaskStatus::TimedOut,
            Some(ErrorCode::TimedOut)
        ))
    );
    // It never answers `Stopped`: killed once the grace period is over.
    assert_eq!(h.next_call().await.1, Call::Kill);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_queued_task_never_runs() {
    let mut h = Harness::start(SchedulerConfig::default());
    let ids = h.submit(&[(0, CPU), (0, CPU)], |_| {}).await;
    let cancelled = h.dispatcher.cancel(ids[0]).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(
        h.next_push().await,
        Push::Result(ids[0], TaskStatus::Cancelled, Some(ErrorCode::Cancelled))
    );
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(ids[1]));
    let again = h.dispatcher.cancel(ids[0]).await.unwrap_err();
    assert_eq!(again.code, ErrorCode::AlreadyFinished);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_running_task_is_stopped_and_its_slot_freed_when_it_stops() {
    let mut h = Harness::start(SchedulerConfig::default());
    let ids = h.submit(&[(0, CPU), (0, CPU)], |_| {}).await;
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(ids[0]));
    let cancelled = h.dispatcher.cancel(ids[0]).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(h.next_call().await.1, Call::Stop(ids[0]));
    // The slot stays taken until the worker says it stopped.
    h.dispatcher.stats().await.unwrap();
    h.no_more_calls();
    h.report("w", Report::Stopped { id: ids[0] }).await;
    assert_eq!(h.next_call().await.1, Call::Run(ids[1]));
    let pushes = h.pushes_until_result(ids[0]).await;
    assert_eq!(
        pushes,
        vec![
            Push::Status(ids[0], TaskStatus::Running, 1),
            Push::Result(ids[0], TaskStatus::Cancelled, Some(ErrorCode::Cancelled)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_lost_worker_s_task_is_retried_until_max_attempts_then_fails() {
    let mut h = Harness::start(SchedulerConfig::default());
    let ids = h.submit(&[(0, CPU)], |t| t.max_attempts = 2).await;
    let id = ids[0];
    h.worker("a", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await, ("a", Call::Run(id)));
    h.worker_down("a").await;
    h.worker("b", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await, ("b", Call::Run(id)));
    h.worker_down("b").await;
    let pushes = h.pushes_until_result(id).await;
    assert_eq!(
        pushes,
        vec![
            Push::Status(id, TaskStatus::Running, 1),
            Push::Status(id, TaskStatus::Queued, 1),
            Push::Status(id, TaskStatus::Running, 2),
            Push::Result(id, TaskStatus::Failed, Some(ErrorCode::WorkerLost)),
        ]
    );
    let task = h.dispatcher.get(id).await.unwrap();
    assert_eq!(task.attempt, 2);
}

#[tokio::test(start_paused = true)]
async fn progress_and_output_reach_the_room_in_order() {
    let mut h = Harness::start(SchedulerConfig::default());
    let id = h.submit(&[(0, IO)], |_| {}).await[0];
    h.worker("w", Slots::per_class(0, 1), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(id));
    let progress = Report::Progress {
        id,
        done: 1,
        total: 2,
        message: None,
    };
    h.report("w", progress).await;
    h.report("w", done(id)).await;
    assert_eq!(
        h.pushes_until_result(id).await,
        vec![
            Push::Status(id, TaskStatus::Running, 1),
            Push::Progress(id, 1, 2),
            Push::Result(id, TaskStatus::Succeeded, None),
        ]
    );
    let task = h.dispatcher.get(id).await.unwrap();
    assert_eq!(task.output, Some(json!({ "ok": true }).into()));
}

#[tokio::test(start_paused = true)]
async fn a_drain_refuses_new_tasks_and_requeues_what_outlives_the_grace() {
    let mut h = Harness::start(SchedulerConfig::default());
    let ids = h.submit(&[(0, CPU), (0, CPU)], |_| {}).await;
    h.worker("w", Slots::per_class(2, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(ids[0]));
    assert_eq!(h.next_call().await.1, Call::Run(ids[1]));
    let start = tokio::time::Instant::now();
    let (done_tx, drained) = tokio::sync::oneshot::channel();
    let drain = Command::Drain {
        grace: Duration::from_secs(5),
        done: done_tx,
    };
    h.dispatcher.send(drain).await.unwrap();
    // One finishes within the grace period, the other does not.
    h.report("w", done(ids[0])).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let refused = Command::Submit {
        tasks: Vec::new(),
        client: None,
        reply: TasksReply::new(move |r| {
            let _ = tx.send(r.err().map(|e| e.code));
        }),
    };
    h.dispatcher.send(refused).await.unwrap();
    assert_eq!(rx.await.unwrap(), Some(ErrorCode::QueueFull));
    drained.await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    let first = h.dispatcher.get(ids[0]).await.unwrap();
    assert_eq!(first.status, TaskStatus::Succeeded);
    // Back in the queue, its attempt not counted, and not started again.
    let second = h.dispatcher.get(ids[1]).await.unwrap();
    assert_eq!((second.status, second.attempt), (TaskStatus::Queued, 0));
    h.no_more_calls();
}

#[tokio::test(start_paused = true)]
async fn only_the_newest_finished_tasks_are_kept() {
    let mut h = Harness::start(SchedulerConfig {
        retain_finished: 2,
        ..SchedulerConfig::default()
    });
    let ids = h.submit(&[(0, IO), (0, IO), (0, IO)], |_| {}).await;
    h.worker("w", Slots::per_class(0, 1), Stopping::Confirmed)
        .await;
    for &id in &ids {
        assert_eq!(h.next_call().await.1, Call::Run(id));
        h.report("w", done(id)).await;
        h.pushes_until_result(id).await;
    }
    let gone = h.dispatcher.get(ids[0]).await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::NotFound);
    for &id in &ids[1..] {
        let kept = h.dispatcher.get(id).await.unwrap();
        assert_eq!(kept.status, TaskStatus::Succeeded);
    }
    let stats = h.dispatcher.stats().await.unwrap();
    assert_eq!(stats.succeeded, 3, "counters are not limited by retention");
}

#[tokio::test(start_paused = true)]
async fn a_client_follows_its_tasks_without_rooms_and_is_held_to_its_limit() {
    let mut h = Harness::start(SchedulerConfig {
        max_unfinished_per_socket: 2,
        ..SchedulerConfig::default()
    });
    let client = Arc::new(FakeClient {
        id: ClientId([7; 16]),
        rooms: Mutex::default(),
        pushes: Mutex::default(),
    });
    let submit = |n: usize| {
        let tasks = (0..n)
            .map(|_| {
                let spec = TaskSpec {
                    max_attempts: 1,
                    ..TaskSpec::new("echo", json!(null))
                };
                (
                    Task::new(TaskId::from(uuid::Uuid::now_v7()), spec, Timestamp::now()),
                    CPU,
                )
            })
            .collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply = TasksReply::new(move |r| {
            drop(tx.send(r.map(|s| s.tasks.iter().map(|t| t.id).collect::<Vec<_>>())))
        });
        let cmd = Command::Submit {
            tasks,
            client: Some(client.clone() as Client),
            reply,
        };
        (cmd, rx)
    };
    let (cmd, rx) = submit(2);
    h.dispatcher.send(cmd).await.unwrap();
    let ids = rx.await.unwrap().unwrap();
    assert!(client.rooms.lock().unwrap().is_empty(), "no room joined");
    let (cmd, rx) = submit(1);
    h.dispatcher.send(cmd).await.unwrap();
    assert_eq!(rx.await.unwrap().unwrap_err().code, ErrorCode::RateLimited);
    // A finished task no longer counts; its follower got its `result`, as
    // its room did.
    h.dispatcher.cancel(ids[0]).await.unwrap();
    let room = h.pushes_until_result(ids[0]).await;
    let followed: Vec<Push> = client.pushes.lock().unwrap().clone();
    assert_eq!(followed.last(), room.last(), "{followed:?}");
    let (cmd, rx) = submit(1);
    h.dispatcher.send(cmd).await.unwrap();
    assert_eq!(rx.await.unwrap().unwrap().len(), 1);
}

mod commits;
mod pauses;
mod pending;
