//! The remote worker SDK: runs this binary's kinds for a Taskwire server it
//! connects to over Socket.IO (`/worker` namespace), as `taskwire
//! remote-worker`. Jobs run on the same `Handler`s the local pool uses.
//!
//! Two rules keep a worker from wedging with tasks the server thinks it
//! runs. Reports (`progress`, `done`, `fail`) are sent without asking for
//! an ack: rust_socketio 0.6 picks ack ids at random below 1000 and, when
//! two acks in flight share one, removes them by stale index and panics in
//! its receive loop, which then stops reading for good. And a panic
//! anywhere but inside a handler ends the process: its connection closes,
//! so the server puts its tasks back in the queue at once, as for a crashed
//! local worker process. A handler's own panic fails its task.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, Once};
use std::task::Poll;
use std::time::Duration;

use app::{ProgressEvent, Task, TaskId, WorkerDone, WorkerFail, WorkerHello, events};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::kinds::{Class, Ctx, Handler, HandlerError, Registry};

/// Why the remote worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("socket.io: {0}")]
    Socket(#[from] Box<rust_socketio::Error>),
    #[error("the server did not accept the connection within {0:?}")]
    Timeout(Duration),
    #[error("the connection was closed")]
    Closed,
    #[error("the server refused the worker: {0}")]
    Refused(String),
    #[error("this binary has none of the kinds {0:?}")]
    NoKinds(Vec<String>),
}

impl From<rust_socketio::Error> for RemoteError {
    fn from(e: rust_socketio::Error) -> Self {
        Self::Socket(Box::new(e))
    }
}

/// Options of a remote worker.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub url: String,
    pub name: String,
    pub token: Option<String>,
    /// Kinds to offer; empty means every kind of the registry.
    pub kinds: Vec<String>,
    pub concurrency: u32,
}

enum Incoming {
    Job(Box<Task>),
    Cancel(TaskId),
    Closed,
}

/// Connects and runs jobs until the connection closes.
pub async fn run(config: RemoteConfig, registry: Registry) -> Result<(), RemoteError> {
    exit_on_panic_outside_handlers();
    let hello = hello(&config, &registry)?;
    let (sio, mut incoming) = connect(&config.url, &hello).await?;
    tracing::info!(name = %config.name, "connected to {}", config.url);

    let jobs = Jobs {
        registry,
        reports: Reporter::start(sio),
        running: Arc::default(),
        // The server never sends more than `concurrency` jobs; the semaphore
        // only bounds CPU-bound work's threads if it did.
        cpu: Arc::new(Semaphore::new(config.concurrency as usize)),
    };
    while let Some(msg) = incoming.recv().await {
        match msg {
            Incoming::Job(task) => jobs.start(*task),
            Incoming::Cancel(id) => jobs.cancel(id),
            Incoming::Closed => break,
        }
    }
    Err(RemoteError::Closed)
}

/// The worker's `auth`: the kinds it offers (all of the registry's unless
/// the config names some, which the registry must have).
fn hello(config: &RemoteConfig, registry: &Registry) -> Result<WorkerHello, RemoteError> {
    let kinds: Vec<String> = if config.kinds.is_empty() {
        registry.kinds()
    } else {
        config.kinds.clone()
    };
    if let Some(missing) = kinds.iter().find(|k| registry.get(k).is_none()) {
        return Err(RemoteError::NoKinds(vec![missing.clone()]));
    }
    Ok(WorkerHello {
        token: config.token.clone(),
        name: config.name.clone(),
        kinds,
        concurrency: config.concurrency,
    })
}

/// Connects to `/worker` and waits until the server accepts (or refuses)
/// the worker; jobs, cancels and the end of the connection arrive on the
/// returned channel.
async fn connect(
    url: &str,
    hello: &WorkerHello,
) -> Result<(SioClient, mpsc::UnboundedReceiver<Incoming>), RemoteError> {
    let (tx, incoming) = mpsc::unbounded_channel();
    let (up_tx, up_rx) = oneshot::channel::<Result<(), String>>();
    let up = Arc::new(Mutex::new(Some(up_tx)));
    let refused = up.clone();
    let sio = ClientBuilder::new(url)
        .namespace(events::WORKER_NS)
        .transport_type(TransportType::Websocket)
        .reconnect(false)
        .auth(serde_json::to_value(hello).unwrap_or(Value::Null))
        .on(Event::Connect, move |_, _| {
            if let Some(tx) = up.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(Ok(()));
            }
            async {}.boxed()
        })
        .on(Event::Error, move |payload, _| {
            if let Some(message) = crate::client::connect_error(payload)
                && let Some(tx) = refused.lock().unwrap_or_else(|e| e.into_inner()).take()
            {
                let _ = tx.send(Err(message));
            }
            async {}.boxed()
        })
        .on(events::JOB, {
            let tx = tx.clone();
            move |payload, _| {
                if let Some(task) =
                    first(payload).and_then(|v| serde_json::from_value::<Task>(v).ok())
                {
                    let _ = tx.send(Incoming::Job(Box::new(task)));
                }
                async {}.boxed()
            }
        })
        .on(events::CANCEL, {
            let tx = tx.clone();
            move |payload, _| {
                if let Some(id) = first(payload).and_then(|v| TaskId::from_payload(&v).ok()) {
                    let _ = tx.send(Incoming::Cancel(id));
                }
                async {}.boxed()
            }
        })
        .on(Event::Close, move |_, _| {
            let _ = tx.send(Incoming::Closed);
            async {}.boxed()
        })
        .connect()
        .await?;
    let wait = HELLO_TIMEOUT;
    tokio::time::timeout(wait, up_rx)
        .await
        .map_err(|_| RemoteError::Timeout(wait))?
        .map_err(|_| RemoteError::Closed)?
        .map_err(RemoteError::Refused)?;
    Ok((sio, incoming))
}

/// The jobs this worker runs: each on its kind's handler, with a stop
/// token a `cancel` fires.
struct Jobs {
    registry: Registry,
    reports: Reporter,
    running: Arc<Mutex<HashMap<TaskId, CancellationToken>>>,
    cpu: Arc<Semaphore>,
}

impl Jobs {
    /// Starts `task` in a tokio task of its own; its outcome is reported.
    fn start(&self, task: Task) {
        let id = task.id;
        let Some(handler) = self.registry.get(&task.kind).cloned() else {
            let fail = WorkerFail::task_failed(id, format!("no kind {}", task.kind));
            self.reports.send(events::FAIL, &fail);
            return;
        };
        let stop = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, stop.clone());
        let progress = self.reports.clone();
        let ctx = Ctx::new(
            stop,
            Arc::new(move |done, total, message| {
                let ev = ProgressEvent {
                    task_id: id,
                    done,
                    total,
                    message,
                };
                progress.send(events::PROGRESS, &ev);
            }),
        );
        let reports = self.reports.clone();
        let running = self.running.clone();
        let cpu = self.cpu.clone();
        tokio::spawn(async move {
            let outcome = run_handler(handler, task.input.to_value(), ctx, &cpu).await;
            running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            match outcome {
                Ok(output) => reports.send(
                    events::DONE,
                    &WorkerDone {
                        task_id: id,
                        output: output.into(),
                    },
                ),
                Err(HandlerError::Failed(message)) => {
                    reports.send(events::FAIL, &WorkerFail::task_failed(id, message));
                }
                // Cancelled or timed out: the server has ended it already.
                Err(HandlerError::Stopped) => {}
            }
        });
    }

    /// Stops a running job (a job that already ended is not there).
    fn cancel(&self, id: TaskId) {
        if let Some(t) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            t.cancel();
        }
    }
}

/// Runs a handler to its outcome: I/O-bound ones on this runtime,
/// CPU-bound ones on a blocking thread once a `cpu` permit is free.
async fn run_handler(
    handler: Arc<dyn Handler>,
    input: Value,
    ctx: Ctx,
    cpu: &Arc<Semaphore>,
) -> Result<Value, HandlerError> {
    match handler.class() {
        Class::Io => guarded(handler.run(input, ctx)).await,
        Class::Cpu => {
            let _permit = cpu.clone().acquire_owned().await;
            let rt = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || rt.block_on(guarded(handler.run(input, ctx))))
                .await
                .unwrap_or_else(|_| Err(panicked()))
        }
    }
}

fn first(payload: Payload) -> Option<Value> {
    match payload {
        Payload::Text(values) => values.into_iter().next(),
        _ => None,
    }
}

/// Sends reports in order from one task, as plain events: the server acks
/// each, but the worker does not ask for it (see the module's comment), so
/// no report can be held back or lost by an ack mix-up. A report that does
/// not reach the server is covered by the server itself: a lost connection
/// puts the task back in the queue.
#[derive(Clone)]
struct Reporter(mpsc::UnboundedSender<(&'static str, Value)>);

impl Reporter {
    fn start(sio: SioClient) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, Value)>();
        tokio::spawn(async move {
            while let Some((event, payload)) = rx.recv().await {
                if let Err(e) = sio.emit(event, payload).await {
                    tracing::warn!(event, error = %e, "report not sent");
                }
            }
        });
        Self(tx)
    }

    /// Queues a report; one that cannot become JSON is logged and dropped
    /// (none of the protocol's types can fail to).
    fn send(&self, event: &'static str, payload: &impl Serialize) {
        match serde_json::to_value(payload) {
            Ok(payload) => drop(self.0.send((event, payload))),
            Err(e) => tracing::warn!(event, error = %e, "report not sent"),
        }
    }
}

thread_local! {
    /// How many handler polls are running on this thread (the panic hook's
    /// way to tell a handler's panic, which fails one task, from any other).
    static IN_HANDLER: Cell<u32> = const { Cell::new(0) };
}

/// Exit status of a worker stopped by a panic outside its handlers.
const PANIC_EXIT: i32 = 101;

/// How long the server may take to answer a worker's hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// Installs (once per process) a panic hook that ends the process on a
/// panic outside a handler. Such a panic may have killed a task the
/// connection depends on (rust_socketio's receive loop runs in one), and a
/// worker that stays connected but deaf would keep its tasks `running`
/// forever; exiting closes the socket, and the server requeues them.
fn exit_on_panic_outside_handlers() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            if IN_HANDLER.with(Cell::get) == 0 {
                eprintln!("taskwire remote-worker: panic outside a handler; exiting");
                std::process::exit(PANIC_EXIT);
            }
        }));
    });
}

/// Marks this thread as polling a handler while it lives.
struct InHandler;

impl InHandler {
    fn enter() -> Self {
        IN_HANDLER.with(|n| n.set(n.get() + 1));
        Self
    }
}

impl Drop for InHandler {
    fn drop(&mut self) {
        IN_HANDLER.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

fn panicked() -> HandlerError {
    HandlerError::Failed("the handler panicked".into())
}

/// Runs a handler's future with its panics caught: a panicking handler
/// fails its task instead of ending the worker.
async fn guarded<T>(fut: impl Future<Output = Result<T, HandlerError>>) -> Result<T, HandlerError> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        let _in = InHandler::enter();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Err(panicked())),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of the test below.
    const CHILD: &str = "TASKWIRE_TEST_PANIC_CHILD";

    #[tokio::test]
    async fn a_panic_outside_handlers_ends_the_process() {
        if std::env::var_os(CHILD).is_some() {
            exit_on_panic_outside_handlers();
            // A handler's panic is its task's failure, not the process's end.
            let out: Result<(), _> = guarded(async { panic!("handler bug") }).await;
            assert!(out.is_err());
            eprintln!("survived the handler panic");
            // As rust_socketio runs callbacks: in a task of its own, where
            // tokio would catch the panic and leave the socket deaf.
            let _ = tokio::spawn(async { panic!("in a socket.io callback") }).await;
            unreachable!("the hook ends the process first");
        }
        // The hook is process-wide: run the test body in a child process.
        let exe = std::env::current_exe().unwrap();
        let out = tokio::process::Command::new(exe)
            .args([
                "--exact",
                "remote::tests::a_panic_outside_handlers_ends_the_process",
            ])
            .args(["--nocapture", "--test-threads", "1"])
            .env(CHILD, "1")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(PANIC_EXIT), "{stderr}");
        assert!(stderr.contains("survived the handler panic"), "{stderr}");
        assert!(
            stderr.contains("panic outside a handler; exiting"),
            "{stderr}"
        );
    }

    #[tokio::test]
    async fn a_handler_panic_fails_its_task() {
        // (The hook itself is not installed here: it would end the whole
        // test binary on any other test's failing assert.)
        let out: Result<(), _> = guarded(async { panic!("handler bug") }).await;
        assert_eq!(
            out.unwrap_err().to_string(),
            panicked().to_string(),
            "the panic is the task's failure"
        );
        assert_eq!(IN_HANDLER.with(Cell::get), 0, "the marker is reset");
        assert_eq!(
            guarded(async { Ok::<_, HandlerError>(7) }).await.unwrap(),
            7
        );
    }
}
