//! Task kinds: the [`Handler`] trait a kind implements, the [`Registry`] that
//! maps kind names to handlers, and the built-in kinds.
//!
//! The same registry is used on both sides of the pool: the server validates
//! submissions with [`Handler::validate`], the worker processes run them with
//! [`Handler::run`]. A custom kind is one more `impl Handler` registered with
//! [`Registry::with`] (see `examples/custom_kind.rs`).

mod echo;
mod fail;
mod primes;
mod sha256;
mod sleep;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::{ErrorBody, ErrorCode, Field, InputError, TaskSpec};
use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use echo::Echo;
pub use fail::Fail;
pub use primes::{Primes, count_primes};
pub use sha256::{Sha256, iterated_sha256};
pub use sleep::Sleep;

/// How a kind uses its worker, which decides how many run at once per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Burns a core: one at a time per worker process.
    Cpu,
    /// Mostly waits: many at once per worker process.
    Io,
}

/// Why a handler did not produce an output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// The task was cancelled or timed out and the handler stopped early.
    #[error("stopped")]
    Stopped,
    /// The handler's own failure: final, the task ends `failed`/`task_failed`.
    #[error("{0}")]
    Failed(String),
}

/// An input that passed `validate` but not `run`'s own parsing fails the
/// task with the same message.
impl From<InputError> for HandlerError {
    fn from(e: InputError) -> Self {
        Self::Failed(e.message)
    }
}

/// A task kind.
///
/// `run` is called in a worker process. [`Class::Cpu`] handlers run on a
/// thread of their own, so they may compute synchronously inside `run`, but
/// must call [`Ctx::check`] every few milliseconds so a cancel or timeout
/// really stops them. [`Class::Io`] handlers run on the worker's async
/// runtime and must not block it.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The kind's name, as in the `kind` field of a task.
    fn kind(&self) -> &str;

    /// How it uses the worker.
    fn class(&self) -> Class {
        Class::Cpu
    }

    /// Checks an input when the task is submitted; the refusal is sent back
    /// as `invalid_payload`, naming the input key it is about if it says
    /// ([`InputError::at`]); a plain message (`"...".into()`) is about the
    /// input as a whole.
    fn validate(&self, input: &Value) -> Result<(), InputError>;

    /// Runs the task to its output.
    async fn run(&self, input: Value, ctx: Ctx) -> Result<Value, HandlerError>;
}

/// The map of kind names to handlers, shared by the server and its workers.
/// A clone shares the map (every socket event clones the server's state).
#[derive(Clone)]
pub struct Registry {
    handlers: Arc<HashMap<String, Arc<dyn Handler>>>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Self {
            handlers: Arc::default(),
        }
    }

    /// The built-in kinds: `echo`, `sleep`, `primes`, `sha256`, `fail`.
    pub fn builtin() -> Self {
        Self::empty()
            .with(Echo)
            .with(Sleep)
            .with(Primes)
            .with(Sha256)
            .with(Fail)
    }

    /// Adds (or replaces) a kind.
    pub fn with(mut self, handler: impl Handler) -> Self {
        Arc::make_mut(&mut self.handlers).insert(handler.kind().to_owned(), Arc::new(handler));
        self
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(kind)
    }

    /// Every kind name, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort();
        kinds
    }

    /// Checks a submission against its kind: `unknown_kind` or
    /// `invalid_payload`, and the kind's class when it is fine.
    pub fn validate(&self, spec: &TaskSpec) -> Result<Class, ErrorBody> {
        let handler = self.get(&spec.kind).ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::UnknownKind,
                format!("unknown kind {:?}", spec.kind),
            )
            .with_field(Field::Kind)
        })?;
        handler
            .validate(&spec.input)
            .map_err(|e| e.into_refusal(&spec.kind))?;
        Ok(handler.class())
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

/// Progress reports are sent at most this often per task.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Where a running task's progress goes.
pub type ProgressSink = Arc<dyn Fn(u64, u64, Option<String>) + Send + Sync>;

/// What a running handler can see and do besides its input: whether it
/// should stop, and report progress.
#[derive(Clone)]
pub struct Ctx {
    stop: CancellationToken,
    sink: ProgressSink,
    last: Arc<Mutex<Option<Instant>>>,
}

impl Ctx {
    /// A context whose progress goes to `sink` and which stops when `stop`
    /// is cancelled.
    pub fn new(stop: CancellationToken, sink: ProgressSink) -> Self {
        Self {
            stop,
            sink,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// A context that never stops and drops progress (tests, benchmarks).
    pub fn detached() -> Self {
        Self::new(CancellationToken::new(), Arc::new(|_, _, _| {}))
    }

    /// Whether the task was cancelled or timed out.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// `Err(Stopped)` once the task was cancelled or timed out; CPU-bound
    /// handlers call it in their inner loop, at least every few ms.
    pub fn check(&self) -> Result<(), HandlerError> {
        if self.is_stopped() {
            Err(HandlerError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Resolves when the task is cancelled or timed out (for async handlers).
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Reports progress; calls closer than [`PROGRESS_INTERVAL`] are dropped,
    /// except the final `done == total`.
    pub fn progress(&self, done: u64, total: u64, message: Option<String>) {
        let now = Instant::now();
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| now.duration_since(t) >= PROGRESS_INTERVAL);
            if !due && done < total {
                return;
            }
            *last = Some(now);
        }
        (self.sink)(done, total, message);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refusal(kind: &str, input: Value) -> ErrorBody {
        Registry::builtin()
            .validate(&TaskSpec::new(kind, input))
            .expect_err("refused")
    }

    #[test]
    fn refusals_name_their_field() {
        let unknown = refusal("nope", Value::Null);
        assert_eq!(unknown.code, ErrorCode::UnknownKind);
        assert_eq!(unknown.message, r#"unknown kind "nope""#);
        assert_eq!(unknown.field, Some(Field::Kind));

        let limit = refusal("primes", json!({"limit": -1}));
        assert_eq!(limit.code, ErrorCode::InvalidPayload);
        assert_eq!(
            limit.message,
            "primes: limit must be an integer 0..=10000000000"
        );
        assert_eq!(limit.field, Some(Field::InputKey("limit".into())));

        let data = refusal("sha256", json!({"rounds": 1}));
        assert_eq!(data.field, Some(Field::InputKey("data".into())));

        let whole = refusal("sleep", json!([]));
        assert_eq!(whole.message, "sleep: sleep input must be a JSON object");
        assert_eq!(whole.field, Some(Field::Input));
    }

    /// A custom kind's plain message is about its input as a whole.
    #[test]
    fn a_plain_message_is_about_the_whole_input() {
        struct Picky;
        #[async_trait]
        impl Handler for Picky {
            fn kind(&self) -> &str {
                "picky"
            }
            fn validate(&self, _input: &Value) -> Result<(), InputError> {
                Err("input must be a string".into())
            }
            async fn run(&self, input: Value, _ctx: Ctx) -> Result<Value, HandlerError> {
                Ok(input)
            }
        }
        let err = Registry::empty()
            .with(Picky)
            .validate(&TaskSpec::new("picky", json!(1)))
            .unwrap_err();
        assert_eq!(err.message, "picky: input must be a string");
        assert_eq!(err.field, Some(Field::Input));
    }
}
