//! Serving connections: the accept loop and what each connection may cost.
//!
//! hyper serves HTTP/1.1 (with upgrades, for websockets) on every accepted
//! TCP connection. Around it this module enforces what `axum::serve` left
//! open: a request head must arrive within `--header-timeout-ms` (also the
//! longest a keep-alive connection may wait idle for its next request), a
//! request body within `--body-timeout-ms`, at most `--max-connections`
//! connections are served normally, and a websocket client that stops
//! reading is disconnected once `--max-queued-bytes` wait for it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use bytes::{Buf as _, Bytes, BytesMut};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// What one connection may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the moment a connection waits for a request (accepted, or done
    /// with its previous request) until that request's head is complete.
    pub header_timeout: Duration,
    /// For a request's whole body, from the start of the request.
    pub body_timeout: Duration,
    /// Connections served normally at once.
    pub max_connections: usize,
    /// Bytes that may wait for a websocket client that does not read.
    pub max_queued_bytes: usize,
}

/// Connections accepted past `max_connections` and served one short
/// request each (see [`serve`]); past this many more, a new connection is
/// closed as soon as it is accepted.
const OVERFLOW_CONNECTIONS: usize = 128;

/// The header timeout of a connection past the cap: a health check sends
/// its request at once, so this is long enough for it and short enough that
/// an idle connection gives its place back quickly.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Waits between failed `accept`s (e.g. out of file descriptors): doubled
/// at each failure in a row, from the first to the second.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(500));

/// Descriptors kept free under `RLIMIT_NOFILE` for what is not a client
/// connection (worker pipes, the store, the listener) and for the
/// connections served past the cap.
const FD_RESERVE: usize = 256;
/// The usual soft open-file limit, assumed when it cannot be read.
const COMMON_SOFT_LIMIT: usize = 1024;

/// The default `--max-connections`: the open-file limit less a reserve.
/// Raises the soft limit to the hard one first, as most servers do: the
/// soft default (often 1024) is meant for interactive programs.
pub fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return COMMON_SOFT_LIMIT - FD_RESERVE;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    soft.saturating_sub(FD_RESERVE).max(64)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then waits
/// for the HTTP connections to finish their requests (upgraded websockets
/// are closed by their owner, the Socket.IO layer).
///
/// At the connection cap the server keeps answering: a connection past it
/// is still accepted, but it gets one request only (`Connection: close`),
/// a one-second header timeout, and no Socket.IO (`503`, so clients retry
/// with their backoff). So `/healthz` keeps answering and sockets already
/// connected keep working, while nobody can hold more than the cap (plus a
/// short-lived overflow) open. Closing the oldest idle connection instead
/// would need a registry of connections and would let an attacker evict
/// real clients; refusing at `accept` would make the health check fail
/// exactly when it matters.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    // Each connection's task holds a clone; all gone = all connections done.
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let live = Arc::new(AtomicUsize::new(0));
    let overflow = Arc::new(AtomicUsize::new(0));
    let mut backoff = ACCEPT_BACKOFF.0;
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                if failing {
                    tracing::info!("accepting connections again");
                    failing = false;
                }
                backoff = ACCEPT_BACKOFF.0;
                accepted
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // EMFILE and the like: the pending connection stays in the
                // backlog, so retrying at once would spin. Wait, log once.
                if !failing {
                    tracing::warn!(error = %e, "cannot accept connections; retrying with backoff");
                    failing = true;
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        let Some((slot, past_cap)) = admit(&live, &overflow, limits.max_connections) else {
            tracing::debug!(%peer, "connection refused: over the connection cap and its overflow");
            continue;
        };
        // Pushes are small writes right after the ack: with Nagle on, they
        // would wait for the client's delayed ACK (~40 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let upgraded = Arc::new(AtomicBool::new(false));
        let io = Metered::new(tcp, peer, upgraded.clone(), limits.max_queued_bytes, slot);
        let router = router.clone();
        let body_timeout = limits.body_timeout;
        let service = hyper::service::service_fn(move |req| {
            handle(
                router.clone(),
                req,
                upgraded.clone(),
                past_cap,
                body_timeout,
            )
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(if past_cap {
                OVERFLOW_HEADER_TIMEOUT.min(limits.header_timeout)
            } else {
                limits.header_timeout
            })
            .keep_alive(!past_cap);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let (alive, stop) = (alive.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _alive = alive;
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = stop.cancelled() => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
    drop(listener);
    drop(alive);
    let _ = all_done.recv().await;
}

/// Errors of one incoming connection, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A place among the counted connections, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A place for a new connection: under the cap, or (`true`) in the
/// overflow past it; `None` when both are full.
fn admit(live: &Arc<AtomicUsize>, overflow: &Arc<AtomicUsize>, max: usize) -> Option<(Slot, bool)> {
    if live.fetch_add(1, Ordering::Relaxed) < max {
        return Some((Slot(live.clone()), false));
    }
    live.fetch_sub(1, Ordering::Relaxed);
    if overflow.fetch_add(1, Ordering::Relaxed) < OVERFLOW_CONNECTIONS {
        return Some((Slot(overflow.clone()), true));
    }
    overflow.fetch_sub(1, Ordering::Relaxed);
    None
}

/// One request of a connection.
async fn handle(
    router: Router,
    req: Request<Incoming>,
    upgraded: Arc<AtomicBool>,
    past_cap: bool,
    body_timeout: Duration,
) -> Result<Response<Body>, Infallible> {
    if past_cap && req.uri().path().starts_with("/socket.io") {
        let mut res = Response::new(Body::from("server at its connection limit; retry later\n"));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(res);
    }
    let req = req.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
    let res = router.oneshot(req).await?;
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        upgraded.store(true, Ordering::Release);
    }
    Ok(res)
}

/// The request body was not received in time.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {} ms", .0.as_millis())]
pub struct BodyTimeout(Duration);

/// A request body that fails once its deadline (from the start of the
/// request) has passed: a per-read timeout would let a client trickle one
/// byte at a time forever.
struct DeadlineBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
            sleep: None,
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        // The timer exists only for bodies that make us wait.
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout(this.timeout).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client's TCP stream, with the bytes waiting for it counted.
///
/// Until the connection is upgraded it is the plain stream: hyper applies
/// back-pressure to HTTP responses itself. Once upgraded to a websocket,
/// writes never wait: what the kernel does not take is queued here. The
/// websocket writer then always drains Socket.IO's per-socket channel (which
/// is bounded in packets, not bytes, and cannot be observed), so what a
/// client has not read piles up here instead, where it is counted; past
/// `max_queued` bytes the connection is closed and the socket disconnects.
/// The queue is flushed whenever the stream is polled, and the reading side
/// is always polled (the websocket reader waits on it), so a write that
/// could not finish wakes the reader, which flushes.
struct Metered {
    inner: TcpStream,
    peer: SocketAddr,
    upgraded: Arc<AtomicBool>,
    queued: BytesMut,
    max_queued: usize,
    reader: Option<Waker>,
    /// Set once the client was cut off for not reading.
    cut_off: bool,
    _slot: Slot,
}

impl Metered {
    fn new(
        inner: TcpStream,
        peer: SocketAddr,
        upgraded: Arc<AtomicBool>,
        max_queued: usize,
        slot: Slot,
    ) -> Self {
        Self {
            inner,
            peer,
            upgraded,
            queued: BytesMut::new(),
            max_queued,
            reader: None,
            cut_off: false,
            _slot: slot,
        }
    }

    fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    fn cut_off_error() -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            "connection closed: the client stopped reading",
        )
    }

    /// Writes what is queued; `Ready(Ok)` once nothing is left.
    fn flush_queue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.queued.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.queued) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.queued.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Give the memory back: most connections are idle most of the time.
        self.queued = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    /// A write that had to wait registered this task's waker on the
    /// stream, replacing the reader's: wake the reader so it registers
    /// again and flushes when the client reads.
    fn wake_reader(&self) {
        if let Some(reader) = &self.reader {
            reader.wake_by_ref();
        }
    }

    fn cut_off(&mut self) -> io::Error {
        tracing::warn!(
            peer = %self.peer,
            queued_bytes = self.queued.len(),
            limit = self.max_queued,
            "closing the connection of a websocket client that stopped reading",
        );
        self.cut_off = true;
        self.queued = BytesMut::new();
        self.wake_reader();
        Self::cut_off_error()
    }
}

impl AsyncRead for Metered {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.cut_off {
            return Poll::Ready(Err(Self::cut_off_error()));
        }
        if this.is_upgraded() {
            if !this
                .reader
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                this.reader = Some(cx.waker().clone());
            }
            if let Poll::Ready(Err(e)) = this.flush_queue(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.cut_off {
            return Poll::Ready(Err(Self::cut_off_error()));
        }
        if !this.is_upgraded() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        match this.flush_queue(cx) {
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => match Pin::new(&mut this.inner).poll_write(cx, buf) {
                Poll::Pending => {}
                done => return done,
            },
            Poll::Pending => {}
        }
        if this.queued.len().saturating_add(buf.len()) > this.max_queued {
            return Poll::Ready(Err(this.cut_off()));
        }
        this.queued.extend_from_slice(buf);
        this.wake_reader();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_upgraded() || self.cut_off {
            let buf = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return self.poll_write(cx, buf);
        }
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_upgraded() {
            // Never wait here: the websocket writer flushes after each batch
            // of packets and must get back to draining its channel.
            if let Poll::Ready(Err(e)) = this.flush_queue(cx) {
                return Poll::Ready(Err(e));
            }
            if !this.queued.is_empty() {
                this.wake_reader();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.cut_off {
            std::task::ready!(this.flush_queue(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
