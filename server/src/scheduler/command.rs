//! Commands to the scheduler, their typed replies, and the `Dispatcher`
//! handle that sends them.

use super::*;

/// Where the answer to a command goes: a closure the caller built (a
/// Socket.IO ack in `api`, a channel for HTTP and tests). It runs on the
/// scheduler's task, so an ack is queued on its socket before any push
/// about the task.
pub struct Reply<T>(Box<dyn FnOnce(T) + Send>);

impl<T: Send + 'static> Reply<T> {
    pub fn new(f: impl FnOnce(T) + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    /// A reply that goes to the returned receiver.
    pub fn channel() -> (Self, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        (Self::new(move |v| drop(tx.send(v))), rx)
    }

    pub fn send(self, value: T) {
        (self.0)(value)
    }
}

/// A task's snapshot, or why there is none.
pub type TaskAnswer<'a> = Result<&'a Task, ErrorBody>;

/// Submitted tasks as acked, in order, or why none was.
pub type TasksAnswer<'a> = Result<Submitted<'a>, ErrorBody>;

/// A submission's tasks, in order, and for each whether its key named an
/// existing task (then it is that task) rather than a new one.
#[derive(Debug, Clone, Copy)]
pub struct Submitted<'a> {
    pub tasks: &'a [&'a Task],
    pub deduplicated: &'a [bool],
}

/// The answer with one task's snapshot (borrowed: an ack serializes it
/// without a copy).
pub struct TaskReply(Box<dyn for<'a> FnOnce(TaskAnswer<'a>) + Send>);

impl TaskReply {
    pub fn new(f: impl for<'a> FnOnce(TaskAnswer<'a>) + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    /// A reply that sends a copy of the task to the returned receiver.
    pub fn channel() -> (Self, oneshot::Receiver<Result<Task, ErrorBody>>) {
        let (tx, rx) = oneshot::channel();
        (Self::new(move |r| drop(tx.send(r.cloned()))), rx)
    }

    pub fn send(self, answer: Result<&Task, ErrorBody>) {
        (self.0)(answer)
    }

    pub(super) fn task(self, task: &Task) {
        self.send(Ok(task));
    }

    pub(super) fn error(self, error: ErrorBody) {
        self.send(Err(error));
    }
}

/// The answer to a submission: its tasks as queued, in order, or why none
/// was.
pub struct TasksReply(Box<dyn for<'a> FnOnce(TasksAnswer<'a>) + Send>);

impl TasksReply {
    pub fn new(f: impl for<'a> FnOnce(TasksAnswer<'a>) + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    pub fn send(self, answer: TasksAnswer<'_>) {
        (self.0)(answer)
    }

    pub(super) fn tasks(self, tasks: &[&Task], deduplicated: &[bool]) {
        self.send(Ok(Submitted {
            tasks,
            deduplicated,
        }));
    }

    /// Acks tasks held by value; none deduplicated if `deduplicated` is
    /// shorter.
    pub(super) fn owned(self, tasks: &[Task], deduplicated: &[bool]) {
        let refs: Vec<&Task> = tasks.iter().collect();
        let mut flags = deduplicated.to_vec();
        flags.resize(tasks.len(), false);
        self.tasks(&refs, &flags);
    }

    pub(super) fn error(self, error: ErrorBody) {
        self.send(Err(error));
    }
}

/// The answer to a command that only succeeds or fails.
pub type DoneReply = Reply<Result<(), ErrorBody>>;

/// The answer to `stats`.
pub type StatsReply = Reply<Result<Stats, ErrorBody>>;

/// A message to the scheduler.
pub enum Command {
    /// New tasks (validated), all queued or all refused. `batch` picks the
    /// ack shape (`tasks` rather than `task`); `socket` joins their rooms
    /// before any of them can start.
    Submit {
        tasks: Vec<(Task, Class)>,
        client: Option<Client>,
        reply: TasksReply,
    },
    /// A task's snapshot.
    Get { id: TaskId, reply: TaskReply },
    /// Snapshot, and join the room if the task is not finished.
    Subscribe {
        id: TaskId,
        client: Client,
        reply: TaskReply,
    },
    /// Leave a task's room.
    Unsubscribe {
        id: TaskId,
        client: Client,
        reply: DoneReply,
    },
    /// Cancel a task.
    Cancel { id: TaskId, reply: TaskReply },
    /// Counters and workers.
    Stats { reply: StatsReply },
    /// A page of `list` (in-memory server).
    List {
        query: app::ListQuery,
        reply: super::lookups::ListReply,
    },
    /// A task's attempts (in-memory server).
    Attempts {
        id: TaskId,
        reply: super::lookups::AttemptsReply,
    },
    /// A worker is ready for tasks.
    WorkerUp(WorkerLink),
    /// A worker is gone; what it ran goes back to the queue.
    WorkerDown { id: WorkerId, incarnation: u64 },
    /// Frames from a worker.
    FromWorker {
        id: WorkerId,
        incarnation: u64,
        reports: Vec<Report>,
    },
    /// A signal from another node of the cluster.
    Signal(crate::cluster::Signal),
    /// Pausing, resuming and listing kinds (see `kinds`).
    Kinds(KindsCommand),
    /// Graceful shutdown: refuse new tasks, start no more, let running ones
    /// finish within `grace`, then put the rest back in the queue (stored,
    /// attempt not counted) and answer `done`.
    Drain {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

impl Command {
    /// Answers the command with `error` instead of carrying it out.
    fn refuse(self, error: ErrorBody) {
        match self {
            Self::Submit { reply, .. } => reply.error(error),
            Self::Get { reply, .. }
            | Self::Subscribe { reply, .. }
            | Self::Cancel { reply, .. } => reply.error(error),
            Self::Unsubscribe { reply, .. } => reply.send(Err(error)),
            Self::Stats { reply } => reply.send(Err(error)),
            Self::List { reply, .. } => reply.send(Err(error)),
            Self::Attempts { reply, .. } => reply.send(Err(error)),
            Self::Kinds(cmd) => cmd.refuse(error),
            // Their senders see the closed channel themselves.
            Self::WorkerUp(_)
            | Self::WorkerDown { .. }
            | Self::FromWorker { .. }
            | Self::Signal(_)
            | Self::Drain { .. } => {}
        }
    }
}

/// Cheap-clone handle to the scheduler.
#[derive(Clone)]
pub struct Dispatcher {
    tx: mpsc::Sender<Command>,
}

impl Dispatcher {
    /// Sends a command; fails only when the scheduler has stopped, and
    /// then the command's reply gets that error too.
    pub async fn send(&self, cmd: Command) -> Result<(), ErrorBody> {
        let Err(mpsc::error::SendError(cmd)) = self.tx.send(cmd).await else {
            return Ok(());
        };
        cmd.refuse(stopped());
        Err(stopped())
    }

    async fn ask_task(&self, make: impl FnOnce(TaskReply) -> Command) -> Result<Task, ErrorBody> {
        let (reply, rx) = TaskReply::channel();
        self.send(make(reply)).await?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues one task without a client to follow it (HTTP, schedules);
    /// `true` with it when its key named an existing task.
    pub async fn submit(&self, task: Task, class: Class) -> Result<(Task, bool), ErrorBody> {
        let (tx, rx) = oneshot::channel();
        let reply = TasksReply::new(move |r| {
            let first = r.and_then(|s| {
                s.tasks
                    .first()
                    .map(|t| ((*t).clone(), s.deduplicated.first() == Some(&true)))
                    .ok_or_else(|| ErrorBody::invalid("no task"))
            });
            drop(tx.send(first));
        });
        self.send(Command::Submit {
            tasks: vec![(task, class)],
            client: None,
            reply,
        })
        .await?;
        rx.await.map_err(|_| stopped())?
    }

    /// A task's snapshot.
    pub async fn get(&self, id: TaskId) -> Result<Task, ErrorBody> {
        self.ask_task(|reply| Command::Get { id, reply }).await
    }

    /// Cancels a task.
    pub async fn cancel(&self, id: TaskId) -> Result<Task, ErrorBody> {
        self.ask_task(|reply| Command::Cancel { id, reply }).await
    }

    /// Graceful shutdown of the scheduler's work (see [`Command::Drain`]);
    /// resolves when nothing runs any more and that is stored.
    pub async fn drain(&self, grace: Duration) -> Result<(), ErrorBody> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Drain { grace, done }).await?;
        rx.await.map_err(|_| stopped())
    }

    /// Counters and workers.
    pub async fn stats(&self) -> Result<Stats, ErrorBody> {
        let (reply, rx) = Reply::channel();
        self.send(Command::Stats { reply }).await?;
        rx.await.map_err(|_| stopped())?
    }
}

pub(super) fn stopped() -> ErrorBody {
    ErrorBody::new(ErrorCode::Internal, "the scheduler has stopped")
}

/// The scheduler's mailbox, so handles can exist before the actor starts.
pub struct Mailbox(pub(super) mpsc::Receiver<Command>);

/// Commands that may wait in the mailbox; senders wait past it.
const MAILBOX_CAPACITY: usize = 64 * 1024;

/// A dispatcher and the mailbox its commands go to.
pub fn channel() -> (Dispatcher, Mailbox) {
    let (tx, rx) = mpsc::channel(MAILBOX_CAPACITY);
    (Dispatcher { tx }, Mailbox(rx))
}
