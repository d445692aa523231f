//! Opening the bench's sockets: TCP (from a chosen loopback source address
//! when there are many), the websocket upgrade, Engine.IO's `open` and
//! joining namespace `/` with the access token.
//!
//! The bench speaks Engine.IO/Socket.IO itself instead of going through
//! [`crate::client`]: rust_socketio opens its TCP connection inside
//! `tokio_tungstenite::connect_async(url)`, with no way to bind a source
//! address, and it draws ack ids at random below 1000, which cannot keep
//! dozens of acks apart on one socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::http::Uri;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};

use super::BenchError;
use super::wire::{self, Incoming, WireError};

/// One bench socket.
pub type Ws = WebSocketStream<TcpStream>;

/// How long one socket may take from TCP connect to joining `/`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sockets per loopback source address by default: well under the ~28,000
/// ephemeral ports Linux gives each source address.
const SOCKETS_PER_SOURCE: usize = 10_000;

/// Read buffers of all sockets together, at most: tungstenite allocates
/// each socket's eagerly.
const READ_BUFFERS_TOTAL: usize = 16 << 20;
/// The read buffer of one socket. tungstenite zeroes the free part of it
/// before every read, the reads that find nothing included: at its default
/// of 128 KiB that memset was 15% of the bench's CPU. 16 KiB still takes
/// dozens of results per read.
const READ_BUFFER_RANGE: (usize, usize) = (4 << 10, 16 << 10);

/// Why one socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] Box<tungstenite::Error>),
    #[error("refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("closed by the server during the handshake")]
    Closed,
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
}

impl From<tungstenite::Error> for ConnectError {
    fn from(e: tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(e))
    }
}

/// Where and how the sockets connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's addresses, tried in order until one connects.
    addrs: Vec<SocketAddr>,
    ws_url: String,
    join: String,
    sources: Vec<IpAddr>,
    config: WebSocketConfig,
}

impl Target {
    /// Resolves `url` (`http://` or `ws://`) for `clients` sockets.
    pub async fn resolve(
        url: &str,
        token: Option<&str>,
        clients: usize,
    ) -> Result<Self, BenchError> {
        let bad = |reason: &str| BenchError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http" | "ws") => {}
            Some("https" | "wss") => return Err(bad("TLS is not supported by the bench")),
            _ => return Err(bad("the scheme must be http")),
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| BenchError::Resolve {
                host: host.to_owned(),
                source: e,
            })?
            .collect();
        let read =
            (READ_BUFFERS_TOTAL / clients.max(1)).clamp(READ_BUFFER_RANGE.0, READ_BUFFER_RANGE.1);
        let auth = token.map(|t| serde_json::json!({ "token": t }).to_string());
        Ok(Self {
            addrs,
            ws_url: format!("ws://{host}:{port}/socket.io/?EIO=4&transport=websocket"),
            join: wire::join(auth.as_deref()),
            sources: Vec::new(),
            config: WebSocketConfig::default()
                .read_buffer_size(read)
                .write_buffer_size(read),
        })
    }

    /// Keeps only `addr` (the one that answered) and spreads `clients`
    /// sockets over `source_addrs` loopback addresses, or by default one
    /// per [`SOCKETS_PER_SOURCE`] when the server is on IPv4 loopback.
    pub fn pin(
        &mut self,
        addr: SocketAddr,
        clients: usize,
        source_addrs: Option<u8>,
    ) -> Result<(), BenchError> {
        self.addrs = vec![addr];
        let loopback = matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
        let count = match source_addrs {
            Some(n) if n > 1 && !loopback => {
                return Err(BenchError::SourcesNeedLoopback(addr.ip()));
            }
            Some(n) => usize::from(n),
            None if loopback => clients.div_ceil(SOCKETS_PER_SOURCE).min(254),
            None => 1,
        };
        // One source is whatever the kernel picks: no bind needed.
        self.sources = if count > 1 {
            (1..=count as u8)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(())
    }

    /// The source addresses in use (empty: the kernel's choice).
    pub fn sources(&self) -> &[IpAddr] {
        &self.sources
    }

    /// Opens socket `index` and joins `/`; returns it with the server
    /// address it reached.
    pub async fn connect(&self, index: usize) -> Result<(Ws, SocketAddr), ConnectError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_now(index))
            .await
            .map_err(|_| ConnectError::Timeout(CONNECT_TIMEOUT))?
    }

    async fn connect_now(&self, index: usize) -> Result<(Ws, SocketAddr), ConnectError> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        for &addr in &self.addrs {
            match self.tcp(addr, index).await {
                Ok(tcp) => return Ok((self.handshake(tcp).await?, addr)),
                Err(e) => last = e,
            }
        }
        Err(ConnectError::Io(last))
    }

    async fn tcp(&self, addr: SocketAddr, index: usize) -> io::Result<TcpStream> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if !self.sources.is_empty() {
            socket.bind(SocketAddr::new(self.sources[index % self.sources.len()], 0))?;
        }
        let tcp = socket.connect(addr).await?;
        // Every write is a whole batch of packets, flushed on purpose.
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Ws, ConnectError> {
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(
            self.ws_url.as_str(),
            tcp,
            Some(self.config),
        )
        .await?;
        match next(&mut ws).await? {
            Incoming::Open => {}
            _ => return Err(ConnectError::Closed),
        }
        ws.send(Message::text(self.join.clone())).await?;
        loop {
            match next(&mut ws).await? {
                Incoming::Joined => return Ok(ws),
                Incoming::Refused(message) => return Err(ConnectError::Refused(message)),
                Incoming::Closed => return Err(ConnectError::Closed),
                _ => {}
            }
        }
    }
}

/// The next packet during the handshake, answering pings.
async fn next(ws: &mut Ws) -> Result<Incoming<'static>, ConnectError> {
    loop {
        let text = match ws.next().await.ok_or(ConnectError::Closed)?? {
            Message::Text(text) => text,
            Message::Close(_) => return Err(ConnectError::Closed),
            _ => continue,
        };
        // Owned variants only: the handshake never needs a borrowed one.
        match wire::decode(&text)? {
            Incoming::Ping => ws.send(Message::text(wire::PONG)).await?,
            Incoming::Open => return Ok(Incoming::Open),
            Incoming::Joined => return Ok(Incoming::Joined),
            Incoming::Closed => return Ok(Incoming::Closed),
            Incoming::Refused(m) => return Ok(Incoming::Refused(m)),
            _ => {}
        }
    }
}
