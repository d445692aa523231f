//! The worker side of the pool (`taskwire worker`): reads `Run`/`Stop`
//! frames on stdin, runs handlers, writes progress and results on stdout.
//!
//! CPU-bound handlers run on blocking threads, I/O-bound ones on this
//! process's async runtime; the scheduler never hands over more than the
//! slots allow. Every `Run` gets exactly one answer (`Done`, `Failed` or
//! `Stopped`), even when the handler panics, so no slot is ever stuck.

use std::collections::HashMap;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use app::TaskId;
use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::frame::{FrameCodec, FromWorker, ToWorker, encode};
use crate::kinds::{Class, Ctx, HandlerError, Registry};

type Running = Arc<Mutex<HashMap<TaskId, CancellationToken>>>;

/// Serves frames from `input` until it closes (the server is gone).
pub async fn serve<R, W>(registry: Registry, input: R, output: W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_frames(rx, output));
    let running: Running = Arc::default();
    let mut frames = FramedRead::new(input, FrameCodec::<ToWorker<'static>>::default());
    while let Some(frame) = frames.next().await {
        match frame? {
            ToWorker::Run { id, kind, input } => {
                run(&registry, id, &kind, input, &running, &tx);
            }
            ToWorker::Stop { id } => {
                let token = running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .cloned();
                if let Some(token) = token {
                    token.cancel();
                }
            }
        }
    }
    drop(tx);
    // Input closed: nothing more will be asked; pending answers are moot.
    writer.abort();
    Ok(())
}

fn run(
    registry: &Registry,
    id: TaskId,
    kind: &str,
    input: Value,
    running: &Running,
    tx: &mpsc::UnboundedSender<FromWorker<Value>>,
) {
    let Some(handler) = registry.get(kind).cloned() else {
        let message = format!("this worker has no kind {kind:?}");
        let _ = tx.send(FromWorker::Failed { id, message });
        return;
    };
    let stop = CancellationToken::new();
    running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, stop.clone());
    let progress_tx = tx.clone();
    let ctx = Ctx::new(
        stop,
        Arc::new(move |done, total, message| {
            let _ = progress_tx.send(FromWorker::Progress {
                id,
                done,
                total,
                message,
            });
        }),
    );
    let class = handler.class();
    let work = async move {
        AssertUnwindSafe(handler.run(input, ctx))
            .catch_unwind()
            .await
    };
    let tx = tx.clone();
    let running = running.clone();
    let answer = move |outcome: std::thread::Result<Result<Value, HandlerError>>| {
        running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let frame = match outcome {
            Ok(Ok(output)) => FromWorker::Done { id, output },
            Ok(Err(HandlerError::Stopped)) => FromWorker::Stopped { id },
            Ok(Err(HandlerError::Failed(message))) => FromWorker::Failed { id, message },
            Err(_) => FromWorker::Failed {
                id,
                message: "the handler panicked".into(),
            },
        };
        let _ = tx.send(frame);
    };
    match class {
        Class::Io => {
            tokio::spawn(async move { answer(work.await) });
        }
        Class::Cpu => {
            let rt = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || answer(rt.block_on(work)));
        }
    }
}

/// Most answers gathered into one write.
const MAX_FRAMES_PER_WRITE: usize = 1024;
/// Initial size of the write buffer (it grows for larger frames).
const WRITE_BUFFER: usize = 64 * 1024;

/// Writes answers to `output`, every frame that is ready in one write.
async fn write_frames<W: AsyncWrite + Unpin>(
    mut rx: mpsc::UnboundedReceiver<FromWorker<Value>>,
    mut output: W,
) {
    let mut batch = Vec::with_capacity(256);
    let mut buf = BytesMut::with_capacity(WRITE_BUFFER);
    while rx.recv_many(&mut batch, MAX_FRAMES_PER_WRITE).await > 0 {
        for frame in batch.drain(..) {
            if let Err(e) = encode(&frame, &mut buf) {
                // An output too large to send fails the task instead.
                let id = match frame {
                    FromWorker::Done { id, .. }
                    | FromWorker::Failed { id, .. }
                    | FromWorker::Stopped { id }
                    | FromWorker::Progress { id, .. } => id,
                };
                let message = format!("output cannot be sent: {e}");
                if encode(&FromWorker::<Value>::Failed { id, message }, &mut buf).is_err() {
                    return;
                }
            }
        }
        if output.write_all(&buf).await.is_err() || output.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::borrow::Cow;
    use tokio::io::AsyncReadExt;
    use tokio_util::codec::Decoder;

    /// Runs `serve` over in-memory pipes: returns a frame sender and an
    /// answer reader.
    async fn worker() -> (
        mpsc::UnboundedSender<ToWorker<'static>>,
        mpsc::UnboundedReceiver<FromWorker<Value>>,
    ) {
        let (to_child, child_in) = tokio::io::duplex(1 << 16);
        let (child_out, mut from_child) = tokio::io::duplex(1 << 16);
        tokio::spawn(serve(Registry::builtin(), child_in, child_out));
        let (tx, mut rx) = mpsc::unbounded_channel::<ToWorker<'static>>();
        tokio::spawn(async move {
            let mut to_child = to_child;
            while let Some(msg) = rx.recv().await {
                let mut buf = BytesMut::new();
                encode(&msg, &mut buf).unwrap();
                to_child.write_all(&buf).await.unwrap();
            }
        });
        let (atx, arx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut codec = FrameCodec::<FromWorker<Value>>::default();
            let mut buf = BytesMut::new();
            loop {
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    let _ = atx.send(f);
                }
                if from_child.read_buf(&mut buf).await.unwrap() == 0 {
                    return;
                }
            }
        });
        (tx, arx)
    }

    fn run(id: TaskId, kind: &'static str, input: Value) -> ToWorker<'static> {
        ToWorker::Run {
            id,
            kind: Cow::Borrowed(kind),
            input,
        }
    }

    #[tokio::test]
    async fn answers_every_run_once() {
        let (tx, mut rx) = worker().await;
        let (a, b, c) = (
            TaskId::from(uuid::Uuid::now_v7()),
            TaskId::from(uuid::Uuid::now_v7()),
            TaskId::from(uuid::Uuid::now_v7()),
        );
        tx.send(run(a, "echo", json!({"b": 1, "a": 2}))).unwrap();
        tx.send(run(b, "fail", json!({"message": "boom"}))).unwrap();
        tx.send(run(c, "nope", json!(null))).unwrap();
        let mut got = HashMap::new();
        while got.len() < 3 {
            let f = rx.recv().await.unwrap();
            match &f {
                FromWorker::Done { id, .. } | FromWorker::Failed { id, .. } => {
                    got.insert(*id, f.clone());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            got[&a],
            FromWorker::Done {
                id: a,
                output: json!({"b": 1, "a": 2})
            }
        );
        assert_eq!(
            got[&b],
            FromWorker::Failed {
                id: b,
                message: "boom".into()
            }
        );
        assert!(matches!(&got[&c], FromWorker::Failed { .. }));
    }

    #[tokio::test]
    async fn stop_ends_a_running_cpu_task() {
        let (tx, mut rx) = worker().await;
        let id = TaskId::from(uuid::Uuid::now_v7());
        tx.send(run(id, "primes", json!({"limit": 10_000_000_000u64})))
            .unwrap();
        // Wait until it reports progress, so it is really computing.
        loop {
            if let FromWorker::Progress { .. } = rx.recv().await.unwrap() {
                break;
            }
        }
        tx.send(ToWorker::Stop { id }).unwrap();
        loop {
            match rx.recv().await.unwrap() {
                FromWorker::Progress { .. } => continue,
                f => {
                    assert_eq!(f, FromWorker::Stopped { id });
                    break;
                }
            }
        }
    }
}
