//! One supervisor per worker: spawn the child, link it to the scheduler,
//! pump frames both ways, and when it dies report it down (the scheduler
//! requeues its tasks) and spawn a new one, within a second.

use std::io;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use app::WorkerId;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::PoolConfig;
use super::frame::{FrameCodec, FromWorker};
use super::port::LocalPort;
use super::spawn::spawn_worker;
use crate::scheduler::{Command, Dispatcher, WorkerLink};

/// First wait before respawning a worker that crashed soon after its start.
const MIN_BACKOFF: Duration = Duration::from_millis(25);
/// Longest wait before respawning a worker that keeps crashing.
const MAX_BACKOFF: Duration = Duration::from_millis(800);
/// A worker that lived this long is healthy: respawn it at once.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);

/// Keeps worker `<prefix>local-<index>` alive until `shutdown`.
pub async fn supervise(
    index: usize,
    config: PoolConfig,
    dispatcher: Dispatcher,
    shutdown: CancellationToken,
) {
    let id = WorkerId::from(format!("{}local-{index}", config.id_prefix));
    let mut backoff = Duration::ZERO;
    let mut incarnation = 0;
    while !shutdown.is_cancelled() {
        incarnation += 1;
        let started = Instant::now();
        match run_once(&id, incarnation, &config, &dispatcher, &shutdown).await {
            Ok(status) if shutdown.is_cancelled() => {
                tracing::debug!(worker = %id, %status, "worker stopped");
            }
            Ok(status) => tracing::warn!(worker = %id, %status, "worker exited"),
            Err(e) => tracing::error!(worker = %id, error = %e, "worker failed to run"),
        }
        let down = Command::WorkerDown {
            id: id.clone(),
            incarnation,
        };
        if dispatcher.send(down).await.is_err() {
            return;
        }
        backoff = if started.elapsed() >= HEALTHY_AFTER {
            Duration::ZERO
        } else {
            (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF)
        };
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        config.metrics.worker_restarted();
    }
}

async fn run_once(
    id: &WorkerId,
    incarnation: u64,
    config: &PoolConfig,
    dispatcher: &Dispatcher,
    shutdown: &CancellationToken,
) -> io::Result<ExitStatus> {
    let mut child = spawn_worker(&config.exe)?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(io::Error::other("worker spawned without pipes"));
    };
    tracing::debug!(worker = %id, pid = child.id(), "worker spawned");
    let (tx, rx) = mpsc::unbounded_channel();
    let kill = CancellationToken::new();
    let link = WorkerLink {
        id: id.clone(),
        incarnation,
        slots: config.slots,
        port: Box::new(LocalPort::new(tx, kill.clone())),
        kinds: Some(config.kinds.clone()),
        pid: child.id(),
    };
    if dispatcher.send(Command::WorkerUp(link)).await.is_err() {
        child.start_kill()?;
        return child.wait().await;
    }
    let writer = tokio::spawn(write_frames(rx, stdin));
    let reader = tokio::spawn(read_frames(
        stdout,
        id.clone(),
        incarnation,
        dispatcher.clone(),
        kill.clone(),
    ));
    let status = tokio::select! {
        status = child.wait() => status,
        () = kill.cancelled() => {
            child.start_kill()?;
            child.wait().await
        }
        () = shutdown.cancelled() => {
            child.start_kill()?;
            child.wait().await
        }
    };
    writer.abort();
    // Deliver every frame the child wrote before it died, then report it down.
    if let Err(e) = reader.await {
        tracing::error!(worker = %id, error = %e, "frame reader failed");
    }
    status
}

/// Writes the scheduler's batches to the child's stdin, all that are
/// ready in one write: a write each would cost a system call, and a wake
/// of the child, per batch, far more than copying a few frames.
async fn write_frames(mut rx: mpsc::UnboundedReceiver<Bytes>, mut stdin: ChildStdin) {
    let mut batch = Vec::with_capacity(16);
    let mut joined = Vec::new();
    while rx.recv_many(&mut batch, 16).await > 0 {
        let bytes: &[u8] = match batch.as_slice() {
            [one] => one,
            many => {
                joined.clear();
                many.iter().for_each(|b| joined.extend_from_slice(b));
                &joined
            }
        };
        if let Err(e) = stdin.write_all(bytes).await {
            tracing::debug!(error = %e, "worker stdin closed");
            return;
        }
        batch.clear();
        // Large inputs passed through: give the memory back.
        if joined.capacity() > JOINED_KEPT {
            joined = Vec::new();
        }
    }
}

/// Most bytes `write_frames` keeps allocated between writes.
const JOINED_KEPT: usize = 1 << 20;

/// Reads the child's frames and hands them to the scheduler, as many per
/// command as one read delivered.
async fn read_frames(
    stdout: ChildStdout,
    id: WorkerId,
    incarnation: u64,
    dispatcher: Dispatcher,
    kill: CancellationToken,
) {
    let mut frames = FramedRead::new(stdout, FrameCodec::<FromWorker>::default()).ready_chunks(512);
    while let Some(chunk) = frames.next().await {
        let mut ok = Vec::with_capacity(chunk.len());
        let mut broken = None;
        for frame in chunk {
            match frame {
                Ok(f) => ok.push(f.into()),
                Err(e) => broken = Some(e),
            }
        }
        if !ok.is_empty() {
            let cmd = Command::FromWorker {
                id: id.clone(),
                incarnation,
                reports: ok,
            };
            if dispatcher.send(cmd).await.is_err() {
                return;
            }
        }
        if let Some(e) = broken {
            tracing::error!(worker = %id, error = %e, "bad frame from worker; replacing it");
            kill.cancel();
            return;
        }
    }
}
