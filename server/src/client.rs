//! A Rust client of the Taskwire protocol over Socket.IO (rust_socketio),
//! used by the CLI and the tests.
//!
//! rust_socketio picks ack ids at random below 1000 and matches acks by id
//! alone, so two acks in flight on one socket can be confused: this client
//! keeps one request in flight per socket. It also waits for the namespace
//! to be joined before the first emit, which rust_socketio does not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::{
    Ack, Batch, ErrorBody, ListPage, ProgressEvent, Schedule, SchedulesEvent, Stats, StatusEvent,
    Task, TaskId, TaskRef, TaskSpec, events,
};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// Why a request did not get a successful answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // Boxed: rust_socketio's error is large and every result carries it.
    #[error("socket.io: {0}")]
    Socket(#[from] Box<rust_socketio::Error>),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed message from the server: {0}")]
    Malformed(String),
    #[error("{0}")]
    Server(#[from] ErrorBody),
    /// The server refused the connection (`connect_error`), e.g.
    /// `unauthorized: ...` without the right access token.
    #[error("connection refused: {0}")]
    Refused(String),
}

/// A push from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    Status(StatusEvent),
    Progress(ProgressEvent),
    Result(Box<Task>),
    Stats(Box<Stats>),
    /// Every schedule, after one changed or fired (dashboard room).
    Schedules(Vec<Schedule>),
}

/// One Socket.IO connection to a Taskwire server's `/` namespace.
pub struct Client {
    sio: SioClient,
    pushes: mpsc::UnboundedReceiver<Push>,
    in_flight: tokio::sync::Mutex<()>,
    timeout: Duration,
}

type Slot<T> = Arc<Mutex<Option<oneshot::Sender<T>>>>;

fn fire<T>(slot: &Slot<T>, value: T) {
    if let Some(tx) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = tx.send(value);
    }
}

/// The first JSON value of a payload (acks arrive wrapped in one more array).
fn first_value(payload: Payload, unwrap_array: bool) -> Option<Value> {
    let Payload::Text(values) = payload else {
        return None;
    };
    let first = values.into_iter().next()?;
    match first {
        Value::Array(inner) if unwrap_array => inner.into_iter().next(),
        v => Some(v),
    }
}

impl From<rust_socketio::Error> for ClientError {
    fn from(e: rust_socketio::Error) -> Self {
        Self::Socket(Box::new(e))
    }
}

/// How long [`Client::connect`] waits to connect, and for each answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// Connects and waits until the namespace is joined.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, DEFAULT_TIMEOUT).await
    }

    /// Like [`Client::connect`], with a timeout for connecting and each request.
    pub async fn connect_with(url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::connect_with_token(url, None, timeout).await
    }

    /// Like [`Client::connect_with`], sending the server's access token (if
    /// any) in the handshake auth `{token}`. A refused connection is
    /// [`ClientError::Refused`].
    pub async fn connect_with_token(
        url: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let (push_tx, pushes) = mpsc::unbounded_channel();
        let (up_tx, up_rx) = oneshot::channel();
        let up: Slot<Result<(), String>> = Arc::new(Mutex::new(Some(up_tx)));
        let refused = up.clone();
        let mut builder = ClientBuilder::new(url)
            .namespace(events::CLIENT_NS)
            // Straight to websocket: no polling round trips before an upgrade.
            .transport_type(TransportType::Websocket)
            .reconnect(false)
            .on(Event::Connect, move |_, _| {
                fire(&up, Ok(()));
                async {}.boxed()
            })
            .on(Event::Error, move |payload, _| {
                if let Some(message) = connect_error(payload) {
                    fire(&refused, Err(message));
                }
                async {}.boxed()
            });
        if let Some(token) = token {
            builder = builder.auth(json!({ "token": token }));
        }
        builder = on_push(builder, events::STATUS, &push_tx, Push::Status);
        builder = on_push(builder, events::PROGRESS, &push_tx, Push::Progress);
        builder = on_push(builder, events::RESULT, &push_tx, |t| {
            Push::Result(Box::new(t))
        });
        builder = on_push(builder, events::STATS, &push_tx, |s| {
            Push::Stats(Box::new(s))
        });
        builder = on_push(builder, events::SCHEDULES, &push_tx, |s: SchedulesEvent| {
            Push::Schedules(s.schedules)
        });
        let sio = tokio::time::timeout(timeout, builder.connect())
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        tokio::time::timeout(timeout, up_rx)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|_| ClientError::Malformed("connection closed before connect".into()))?
            .map_err(ClientError::Refused)?;
        Ok(Self {
            sio,
            pushes,
            in_flight: tokio::sync::Mutex::new(()),
            timeout,
        })
    }

    /// Emits `event` with `payload` and returns the raw ack.
    pub async fn request(&self, event: &str, payload: Value) -> Result<Value, ClientError> {
        let _one_at_a_time = self.in_flight.lock().await;
        let (tx, rx) = oneshot::channel();
        let slot: Slot<Payload> = Arc::new(Mutex::new(Some(tx)));
        self.sio
            .emit_with_ack(event, payload, self.timeout, move |p, _| {
                fire(&slot, p);
                async {}.boxed()
            })
            .await?;
        let payload = tokio::time::timeout(self.timeout, rx)
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))?
            .map_err(|_| ClientError::Malformed("ack dropped".into()))?;
        first_value(payload, true).ok_or_else(|| ClientError::Malformed("empty ack".into()))
    }

    /// Emits and decodes the ack; an error ack is [`ClientError::Server`].
    pub async fn ack(&self, event: &str, payload: Value) -> Result<Ack, ClientError> {
        let raw = self.request(event, payload).await?;
        let ack: Ack = decode(raw)?;
        Ok(ack.into_result()?)
    }

    /// Like [`Client::ack`], with a payload of the protocol's types.
    async fn ack_typed(&self, event: &str, payload: &impl Serialize) -> Result<Ack, ClientError> {
        let payload =
            serde_json::to_value(payload).map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.ack(event, payload).await
    }

    /// `task`.
    pub async fn submit(&self, spec: &TaskSpec) -> Result<Task, ClientError> {
        task_of(self.ack_typed(events::TASK, spec).await?)
    }

    /// `tasks`.
    pub async fn submit_batch(&self, specs: &[TaskSpec]) -> Result<Vec<Task>, ClientError> {
        self.ack_typed(events::TASKS, &Batch { tasks: specs })
            .await?
            .tasks
            .ok_or_else(|| ClientError::Malformed("ack without tasks".into()))
    }

    /// `subscribe`.
    pub async fn subscribe(&self, id: TaskId) -> Result<Task, ClientError> {
        task_of(
            self.ack_typed(events::SUBSCRIBE, &TaskRef::from(id))
                .await?,
        )
    }

    /// `unsubscribe`.
    pub async fn unsubscribe(&self, id: TaskId) -> Result<(), ClientError> {
        self.ack_typed(events::UNSUBSCRIBE, &TaskRef::from(id))
            .await
            .map(drop)
    }

    /// `cancel`.
    pub async fn cancel(&self, id: TaskId) -> Result<Task, ClientError> {
        task_of(self.ack_typed(events::CANCEL, &TaskRef::from(id)).await?)
    }

    /// `dashboard`.
    pub async fn dashboard(&self) -> Result<Stats, ClientError> {
        self.ack(events::DASHBOARD, json!({}))
            .await?
            .stats
            .ok_or_else(|| ClientError::Malformed("ack without stats".into()))
    }

    /// `schedule`: creates or replaces the schedule `name`.
    pub async fn schedule(
        &self,
        name: &str,
        cron: &str,
        timezone: Option<&str>,
        task: &TaskSpec,
        paused: bool,
    ) -> Result<Schedule, ClientError> {
        let mut payload = json!({"name": name, "cron": cron, "task": task, "paused": paused});
        if let Some(tz) = timezone {
            payload["timezone"] = json!(tz);
        }
        self.ack(events::SCHEDULE, payload)
            .await?
            .schedule
            .ok_or_else(|| ClientError::Malformed("ack without schedule".into()))
    }

    /// `schedules`: every schedule, sorted by name.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, ClientError> {
        self.ack(events::SCHEDULES, json!({}))
            .await?
            .schedules
            .ok_or_else(|| ClientError::Malformed("ack without schedules".into()))
    }

    /// `unschedule`.
    pub async fn unschedule(&self, name: &str) -> Result<(), ClientError> {
        self.ack(events::UNSCHEDULE, json!({ "name": name }))
            .await
            .map(drop)
    }

    /// `list`: one page of every client's tasks, newest first.
    pub async fn list(&self, query: Value) -> Result<ListPage, ClientError> {
        let raw = self.request(events::LIST, query).await?;
        if raw.get("ok") == Some(&Value::Bool(true)) {
            return decode(raw);
        }
        decode::<Ack>(raw)?.into_result()?;
        Err(ClientError::Malformed("list ack without ok".into()))
    }

    /// The next push, or `None` once the connection is gone.
    pub async fn next_push(&mut self) -> Option<Push> {
        self.pushes.recv().await
    }

    /// The next push within `wait`.
    pub async fn next_push_within(&mut self, wait: Duration) -> Option<Push> {
        tokio::time::timeout(wait, self.pushes.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the `result` of `id`, passing its progress to `on_progress`.
    pub async fn wait_result(
        &mut self,
        id: TaskId,
        mut on_progress: impl FnMut(&ProgressEvent),
    ) -> Result<Task, ClientError> {
        loop {
            match self.next_push().await {
                Some(Push::Result(task)) if task.id == id => return Ok(*task),
                Some(Push::Progress(p)) if p.task_id == id => on_progress(&p),
                Some(_) => {}
                None => return Err(ClientError::Malformed("connection closed".into())),
            }
        }
    }

    /// Closes the connection.
    pub async fn disconnect(self) -> Result<(), ClientError> {
        Ok(self.sio.disconnect().await?)
    }
}

/// The message of a `connect_error`, which rust_socketio reports as an
/// error event "Received an ConnectError frame: {"message": "..."}".
/// The server's message in a refused connection's error event.
pub(crate) fn connect_error(payload: Payload) -> Option<String> {
    let text = first_value(payload, false)?;
    let data = text
        .as_str()?
        .strip_prefix("Received an ConnectError frame: ")?;
    Some(
        serde_json::from_str::<Value>(data)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| data.to_owned()),
    )
}

fn decode<T: DeserializeOwned>(v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| ClientError::Malformed(e.to_string()))
}

fn task_of(ack: Ack) -> Result<Task, ClientError> {
    ack.task
        .ok_or_else(|| ClientError::Malformed("ack without task".into()))
}

fn on_push<T: DeserializeOwned + 'static>(
    builder: ClientBuilder,
    event: &str,
    tx: &mpsc::UnboundedSender<Push>,
    wrap: fn(T) -> Push,
) -> ClientBuilder {
    let tx = tx.clone();
    let name = event.to_owned();
    builder.on(event, move |payload, _| {
        match first_value(payload, false).map(serde_json::from_value::<T>) {
            Some(Ok(v)) => {
                let _ = tx.send(wrap(v));
            }
            Some(Err(e)) => tracing::warn!(event = ?name, error = %e, "malformed push"),
            None => tracing::warn!(event = ?name, "empty push"),
        }
        async {}.boxed()
    })
}
