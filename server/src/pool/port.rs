//! The scheduler's port to a local worker process: tasks and stops are
//! encoded as frames and written to its stdin once per round; a broken
//! encoding or pipe ends the process (its supervisor reports it down).

use std::borrow::Cow;

use app::{Json, Task, TaskId};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::frame::{FromWorker, ToWorker, encode};
use crate::scheduler::{PortError, Report, Stopping, WorkerPort};

pub struct LocalPort {
    /// To the task writing the child's stdin.
    tx: mpsc::UnboundedSender<Bytes>,
    /// Ends the child.
    kill: CancellationToken,
    /// Frames of this round, written at `flush`.
    out: BytesMut,
}

impl LocalPort {
    pub fn new(tx: mpsc::UnboundedSender<Bytes>, kill: CancellationToken) -> Self {
        Self {
            tx,
            kill,
            out: BytesMut::new(),
        }
    }
}

impl WorkerPort for LocalPort {
    fn run(&mut self, task: &Task) -> Result<(), PortError> {
        let frame = ToWorker::Run {
            id: task.id,
            kind: Cow::Borrowed(&task.kind),
            input: &task.input,
        };
        encode(&frame, &mut self.out).map_err(|e| PortError(e.to_string()))
    }

    /// The child answers `Stopped` once the handler is gone.
    fn stop(&mut self, id: TaskId) -> Stopping {
        let stop: ToWorker<&Json> = ToWorker::Stop { id };
        if let Err(e) = encode(&stop, &mut self.out) {
            tracing::error!(task = %id, error = %e, "cannot send stop");
        }
        Stopping::Confirmed
    }

    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if self.tx.send(self.out.split().freeze()).is_err() {
            // The process is gone; its supervisor reports it down.
            self.out.clear();
        }
    }

    fn kill(&self) {
        self.kill.cancel();
    }

    fn is_remote(&self) -> bool {
        false
    }
}

impl From<FromWorker> for Report {
    fn from(frame: FromWorker) -> Self {
        match frame {
            FromWorker::Progress {
                id,
                done,
                total,
                message,
            } => Self::Progress {
                id,
                done,
                total,
                message,
            },
            FromWorker::Done { id, output } => Self::Done { id, output },
            FromWorker::Failed { id, message } => Self::Failed { id, message },
            FromWorker::Stopped { id } => Self::Stopped { id },
        }
    }
}
