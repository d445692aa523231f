//! Commands to the scheduler, their typed replies, and the `Dispatcher`
//! handle that sends them.

use super::*;

/// Where the answer to a command goes: straight into a Socket.IO ack (so
/// the ack is queued on the socket before any push about the task), or
/// back to an awaiting caller.
pub enum Reply {
    Ack(AckSender),
    Task(oneshot::Sender<Result<Task, ErrorBody>>),
    Stats(oneshot::Sender<Stats>),
}

pub(super) fn send_ack<T: Serialize + ?Sized>(ack: AckSender, body: &T) {
    if let Err(e) = ack.send(body) {
        tracing::debug!(error = %e, "ack not sent");
    }
}

impl Reply {
    pub(super) fn task(self, task: &Task) {
        match self {
            Self::Ack(ack) => send_ack(ack, &TaskAck::new(task)),
            Self::Task(tx) => drop(tx.send(Ok(task.clone()))),
            Self::Stats(_) => {}
        }
    }

    pub(super) fn tasks(self, tasks: Vec<&Task>) {
        match self {
            Self::Ack(ack) => send_ack(ack, &TasksAck { ok: true, tasks }),
            Self::Task(tx) => match tasks.first() {
                Some(t) => drop(tx.send(Ok((*t).clone()))),
                None => drop(tx.send(Err(ErrorBody::invalid("no task")))),
            },
            Self::Stats(_) => {}
        }
    }

    pub(super) fn ok(self) {
        if let Self::Ack(ack) = self {
            send_ack(ack, &Ack::ok());
        }
    }

    pub(super) fn stats(self, stats: Stats) {
        match self {
            Self::Ack(ack) => send_ack(ack, &Ack::stats(stats)),
            Self::Stats(tx) => drop(tx.send(stats)),
            Self::Task(_) => {}
        }
    }

    pub(super) fn error(self, error: ErrorBody) {
        match self {
            Self::Ack(ack) => send_ack(ack, &Ack::error(error)),
            Self::Task(tx) => drop(tx.send(Err(error))),
            Self::Stats(_) => {}
        }
    }
}

/// A message to the scheduler.
pub enum Command {
    /// New tasks (validated), all queued or all refused. `batch` picks the
    /// ack shape (`tasks` rather than `task`); `socket` joins their rooms
    /// before any of them can start.
    Submit {
        tasks: Vec<(Task, Class)>,
        socket: Option<SocketRef>,
        batch: bool,
        reply: Reply,
    },
    /// A task's snapshot.
    Get { id: TaskId, reply: Reply },
    /// Snapshot, and join the room if the task is not finished.
    Subscribe {
        id: TaskId,
        socket: SocketRef,
        reply: Reply,
    },
    /// Leave a task's room.
    Unsubscribe {
        id: TaskId,
        socket: SocketRef,
        reply: Reply,
    },
    /// Cancel a task.
    Cancel { id: TaskId, reply: Reply },
    /// Counters and workers.
    Stats { reply: Reply },
    /// A worker is ready for tasks.
    WorkerUp(WorkerLink),
    /// A worker is gone; what it ran goes back to the queue.
    WorkerDown { id: WorkerId, incarnation: u64 },
    /// Frames from a worker.
    FromWorker {
        id: WorkerId,
        incarnation: u64,
        frames: Vec<FromWorker>,
    },
    /// Graceful shutdown: refuse new tasks, start no more, let running ones
    /// finish within `grace`, then put the rest back in the queue (stored,
    /// attempt not counted) and answer `done`.
    Drain {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

impl Command {
    fn into_reply(self) -> Option<Reply> {
        match self {
            Self::Submit { reply, .. }
            | Self::Get { reply, .. }
            | Self::Subscribe { reply, .. }
            | Self::Unsubscribe { reply, .. }
            | Self::Cancel { reply, .. }
            | Self::Stats { reply } => Some(reply),
            Self::WorkerUp(_)
            | Self::WorkerDown { .. }
            | Self::FromWorker { .. }
            | Self::Drain { .. } => None,
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
        let error = ErrorBody::new(ErrorCode::Internal, "the scheduler has stopped");
        if let Some(reply) = cmd.into_reply() {
            reply.error(error.clone());
        }
        Err(error)
    }

    async fn ask_task(&self, make: impl FnOnce(Reply) -> Command) -> Result<Task, ErrorBody> {
        let (tx, rx) = oneshot::channel();
        self.send(make(Reply::Task(tx))).await?;
        rx.await
            .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the scheduler has stopped"))?
    }

    /// Queues one task (HTTP).
    pub async fn submit(&self, task: Task, class: Class) -> Result<Task, ErrorBody> {
        self.ask_task(|reply| Command::Submit {
            tasks: vec![(task, class)],
            socket: None,
            batch: false,
            reply,
        })
        .await
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
        rx.await
            .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the scheduler has stopped"))
    }

    /// Counters and workers.
    pub async fn stats(&self) -> Result<Stats, ErrorBody> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats {
            reply: Reply::Stats(tx),
        })
        .await?;
        rx.await
            .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the scheduler has stopped"))
    }
}

/// The scheduler's mailbox, so handles can exist before the actor starts.
pub struct Mailbox(pub(super) mpsc::Receiver<Command>);

/// A dispatcher and the mailbox its commands go to.
pub fn channel() -> (Dispatcher, Mailbox) {
    let (tx, rx) = mpsc::channel(64 * 1024);
    (Dispatcher { tx }, Mailbox(rx))
}

/// Acks a submission with its tasks: `{ok, tasks}` for a batch, else `{ok, task}`.
pub(super) fn reply_submitted<'a>(
    reply: Reply,
    mut tasks: impl Iterator<Item = &'a Task>,
    batch: bool,
) {
    if batch {
        reply.tasks(tasks.collect());
    } else if let Some(task) = tasks.next() {
        reply.task(task);
    }
}
