//! The remote worker SDK: runs this binary's kinds for a Taskwire server it
//! connects to over Socket.IO (`/worker` namespace), as `taskwire
//! remote-worker`. Jobs run on the same `Handler`s the local pool uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::{Task, TaskId, WorkerHello, events};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::kinds::{Class, Ctx, HandlerError, Registry};

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
    let kinds: Vec<String> = if config.kinds.is_empty() {
        registry.kinds()
    } else {
        config.kinds.clone()
    };
    if let Some(missing) = kinds.iter().find(|k| registry.get(k).is_none()) {
        return Err(RemoteError::NoKinds(vec![missing.clone()]));
    }
    let hello = WorkerHello {
        token: config.token.clone(),
        name: config.name.clone(),
        kinds,
        concurrency: config.concurrency,
    };
    let (tx, mut incoming) = mpsc::unbounded_channel();
    let (up_tx, up_rx) = oneshot::channel::<Result<(), String>>();
    let up = Arc::new(Mutex::new(Some(up_tx)));
    let refused = up.clone();
    let sio = ClientBuilder::new(config.url.as_str())
        .namespace(events::WORKER_NS)
        .transport_type(TransportType::Websocket)
        .reconnect(false)
        .auth(serde_json::to_value(&hello).unwrap_or(Value::Null))
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
    let wait = Duration::from_secs(30);
    tokio::time::timeout(wait, up_rx)
        .await
        .map_err(|_| RemoteError::Timeout(wait))?
        .map_err(|_| RemoteError::Closed)?
        .map_err(RemoteError::Refused)?;
    tracing::info!(name = %config.name, "connected to {}", config.url);

    let reports = Reporter::start(sio.clone());
    let running: Arc<Mutex<HashMap<TaskId, CancellationToken>>> = Arc::default();
    // The server never sends more than `concurrency` jobs; the semaphore only
    // bounds CPU-bound work's threads if it did.
    let cpu = Arc::new(Semaphore::new(config.concurrency as usize));
    while let Some(msg) = incoming.recv().await {
        match msg {
            Incoming::Job(task) => {
                let Some(handler) = registry.get(&task.kind).cloned() else {
                    reports.send(events::FAIL, json!({"task_id": task.id, "error": {"code": "task_failed", "message": format!("no kind {}", task.kind)}}));
                    continue;
                };
                let stop = CancellationToken::new();
                running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(task.id, stop.clone());
                let id = task.id;
                let progress = reports.clone();
                let ctx = Ctx::new(
                    stop,
                    Arc::new(move |done, total, message| {
                        progress.send(events::PROGRESS, json!({"task_id": id, "done": done, "total": total, "message": message}));
                    }),
                );
                let reports = reports.clone();
                let running = running.clone();
                let cpu = cpu.clone();
                tokio::spawn(async move {
                    let input = task.input;
                    let outcome = match handler.class() {
                        Class::Io => handler.run(input, ctx).await,
                        Class::Cpu => {
                            let _permit = cpu.acquire_owned().await;
                            let rt = tokio::runtime::Handle::current();
                            tokio::task::spawn_blocking(move || {
                                rt.block_on(handler.run(input, ctx))
                            })
                            .await
                            .unwrap_or_else(|_| {
                                Err(HandlerError::Failed("the handler panicked".into()))
                            })
                        }
                    };
                    running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    match outcome {
                        Ok(output) => reports.send(events::DONE, json!({"task_id": id, "output": output})),
                        Err(HandlerError::Failed(message)) => reports.send(
                            events::FAIL,
                            json!({"task_id": id, "error": {"code": "task_failed", "message": message}}),
                        ),
                        // Cancelled or timed out: the server has ended it already.
                        Err(HandlerError::Stopped) => {}
                    }
                });
            }
            Incoming::Cancel(id) => {
                if let Some(t) = running.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
                    t.cancel();
                }
            }
            Incoming::Closed => break,
        }
    }
    Err(RemoteError::Closed)
}

fn first(payload: Payload) -> Option<Value> {
    match payload {
        Payload::Text(values) => values.into_iter().next(),
        _ => None,
    }
}

/// Sends reports in order from one task. Each asks for an ack, as the
/// protocol wants, but the next report does not wait for it: a slow or lost
/// ack must not hold back a `done`. (rust_socketio matches acks by a random
/// id below 1000; with acks only logged, a mix-up is harmless.)
#[derive(Clone)]
struct Reporter(mpsc::UnboundedSender<(&'static str, Value)>);

impl Reporter {
    fn start(sio: SioClient) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, Value)>();
        tokio::spawn(async move {
            while let Some((event, payload)) = rx.recv().await {
                let sent = sio
                    .emit_with_ack(event, payload, Duration::from_secs(30), move |ack, _| {
                        if let Payload::Text(values) = &ack
                            && values
                                .iter()
                                .any(|v| v.to_string().contains("\"ok\":false"))
                        {
                            tracing::warn!(event, ?values, "report refused");
                        }
                        async {}.boxed()
                    })
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "report not sent");
                }
            }
        });
        Self(tx)
    }

    fn send(&self, event: &'static str, payload: Value) {
        let _ = self.0.send((event, payload));
    }
}
