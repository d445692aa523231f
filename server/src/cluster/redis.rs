//! Cluster mode's Redis connections: the socketioxide adapter that carries
//! pushes to rooms between nodes ([`adapter`]), the connection the nodes'
//! signals travel on ([`super::bus`] builds on it), and whether Redis is
//! reachable now ([`RedisHealth`], for `GET /healthz`).
//!
//! Every connection is a fred subscriber client speaking RESP3 (the
//! adapter needs it: it publishes and subscribes on one connection), with
//! - a reconnect policy: exponential backoff from 100 ms to 5 s, attempts
//!   unlimited, so a node outlives any Redis outage;
//! - resubscription after every reconnect (`manage_subscriptions`): a
//!   new connection has no subscriptions, and a node that forgot them would
//!   stay deaf to every other node while looking healthy (socket.io #4845);
//! - a heartbeat, so a Redis that stops answering (frozen, or a network that
//!   drops packets silently) counts as a lost connection too.
//!
//! While a connection is known lost, publishing on it fails at once
//! ([`NodeDriver`], [`super::bus::Bus::publish`]) instead of waiting for
//! the reconnection: the scheduler awaits every push and must not stall on
//! Redis. Such a push still reaches this node's own sockets.
//!
//! Pub/sub is at most once: whatever is published while a connection is
//! down, or before it has resubscribed, is lost to it. A push lost that way
//! is recovered by the client (`subscribe` again returns the snapshot or the
//! result); each signal has its own fallback (see [`super::Signal`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::interfaces::{ClientInterface, ClientLike, EventInterface, PubsubInterface};
use fred::prelude::{Builder, Config, ConnectionConfig, PerformanceConfig, ReconnectPolicy};
use fred::types::config::UnresponsiveConfig;
use fred::types::{Key, RespVersion};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

pub use super::driver::NodeDriver;

/// `--redis-prefix`'s default. Clusters sharing one Redis use different
/// prefixes: every channel name starts with it.
pub const DEFAULT_PREFIX: &str = "taskwire";

/// The adapter of a node's Socket.IO server in cluster mode (socketioxide's
/// `FredAdapter`, on [`NodeDriver`]).
pub type Adapter = CustomRedisAdapter<socketioxide::adapter::Emitter, NodeDriver>;

/// What `SocketIo::builder().with_adapter::<Adapter>(..)` takes.
pub type AdapterCtr = RedisAdapterCtr<NodeDriver>;

/// Messages one adapter channel holds between the task that reads the
/// connection and the namespace's task that delivers them to local sockets;
/// past it the adapter drops them (with only a `warn`).
///
/// Sized for the worst stall of that delivery task we want to survive, not
/// for the average: every node receives every push of the whole cluster on
/// one channel (a task's `status`, `progress`, `result` and the closing of
/// its room: about 4 per task), so at 3 nodes × 10,000 tasks/s it takes in
/// some 120,000 messages/s, and 65,536 of them is half a second of that.
/// The channel allocates as it fills (blocks of 32 messages), so the bound
/// costs nothing while nodes keep up; full, it holds about 200 bytes per
/// message, some 13 MB.
pub const STREAM_BUFFER: usize = 1 << 16;

/// Capacity of each of fred's event channels on the adapter's connection,
/// one of which carries every pub/sub message from the connection's reader
/// to the adapter's dispatcher. fred's default, 32, is overrun by any burst
/// of pushes (the dispatcher then skips what it lagged behind). Unlike
/// [`STREAM_BUFFER`] it is allocated up front, for each of fred's event
/// kinds (10.5 MB measured for the connection), so it covers a shorter
/// stall: the dispatcher does a map lookup and a channel send per message,
/// and 16,384 messages is some 130 ms of the load above.
pub const EVENT_CAPACITY: usize = 1 << 14;

/// Longest wait for any Redis command's answer. A push awaits its publish
/// in the scheduler, so a connection that hangs without being known down
/// (see [`HEARTBEAT`]) stalls it at most this long per push; a connection
/// known down fails at once (see [`NodeDriver`]).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How often an idle connection is pinged. A ping (or any command) that
/// waits longer than [`UNRESPONSIVE`] makes fred drop the connection and
/// reconnect, which [`RedisHealth`] reports.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a command may wait for its answer before its connection counts
/// as dead.
pub const UNRESPONSIVE: Duration = Duration::from_secs(3);

/// Reconnect backoff: the first retry after this, doubling each time...
const RECONNECT_MIN_MS: u32 = 100;
/// ... up to this; attempts are unlimited.
const RECONNECT_MAX_MS: u32 = 5_000;

/// Why a Redis connection could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("invalid --redis-prefix {0:?}: 1 to 64 printable ASCII characters, without '#'")]
    Prefix(String),
    #[error("invalid --redis-url {url}: {source}")]
    Url {
        url: String,
        #[source]
        source: fred::error::Error,
    },
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: fred::error::Error,
    },
    /// The connection is down now (it is being re-established).
    #[error("Redis is unreachable ({0})")]
    Unavailable(String),
    #[error("Redis command failed: {0}")]
    Command(#[source] fred::error::Error),
    #[error("cannot encode a signal: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Checks a `--redis-prefix`: channel names are built from it, and the
/// adapter's use `#` as a separator.
pub fn check_prefix(prefix: &str) -> Result<(), RedisError> {
    let ok = (1..=64).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if ok {
        Ok(())
    } else {
        Err(RedisError::Prefix(prefix.to_owned()))
    }
}

/// The rooms' adapter, connected: pass the constructor to
/// `SocketIo::builder().with_adapter::<Adapter>(ctr)`, and await the
/// result of every `io.ns(..)` (that subscribes to the namespace's
/// channels). Fails if Redis cannot be reached now; later outages are
/// survived (see the module's doc).
pub async fn adapter(url: &str, prefix: &str) -> Result<(AdapterCtr, RedisHealth), RedisError> {
    check_prefix(prefix)?;
    let client = client(url, EVENT_CAPACITY)?;
    let health = RedisHealth::default();
    let watch = health.watch("rooms", &client);
    let driver = NodeDriver::new(client.clone(), prefix, health.clone())
        .await
        .map_err(|source| RedisError::Connect {
            url: redacted(url),
            source,
        })?;
    watch.start();
    let config = RedisAdapterConfig::new()
        .with_prefix(prefix.to_owned())
        .with_stream_buffer(STREAM_BUFFER);
    Ok((RedisAdapterCtr::new_with_driver(driver, config), health))
}

/// A subscriber client for `url`, connected, watched by a [`RedisHealth`]
/// of its own (named `role` in its reports) that also resubscribes it after
/// every reconnect. Its messages are on `client.message_rx()`, a channel of
/// `capacity` messages (fred's event channels are allocated up front:
/// about 670 bytes per unit of capacity in all): take that receiver before
/// subscribing.
pub(crate) async fn connect(
    url: &str,
    role: &'static str,
    capacity: usize,
) -> Result<(SubscriberClient, RedisHealth), RedisError> {
    let client = client(url, capacity)?;
    let health = RedisHealth::default();
    let watch = health.watch(role, &client);
    client.init().await.map_err(|source| RedisError::Connect {
        url: redacted(url),
        source,
    })?;
    watch.start();
    Ok((client, health))
}

/// A subscriber client for `url`, not connected yet, with event channels of
/// `capacity`. The first connection fails fast (a node that cannot reach
/// Redis at start says so); after it, the reconnect policy applies.
fn client(url: &str, capacity: usize) -> Result<SubscriberClient, RedisError> {
    let mut config = Config::from_url(url).map_err(|source| RedisError::Url {
        url: redacted(url),
        source,
    })?;
    // fred does not read `?protocol=resp3` from the URL.
    config.version = RespVersion::RESP3;
    config.fail_fast = true;
    let performance = PerformanceConfig {
        default_command_timeout: COMMAND_TIMEOUT,
        broadcast_channel_capacity: capacity,
        ..PerformanceConfig::default()
    };
    let connection = ConnectionConfig {
        unresponsive: UnresponsiveConfig {
            max_timeout: Some(UNRESPONSIVE),
            interval: HEARTBEAT / 2,
        },
        // Every command is a request awaiting its answer: no Nagle delay
        // on a small write while another one is in flight.
        tcp: fred::types::config::TcpConfig {
            nodelay: Some(true),
            ..Default::default()
        },
        ..ConnectionConfig::default()
    };
    let policy = ReconnectPolicy::new_exponential(0, RECONNECT_MIN_MS, RECONNECT_MAX_MS, 2);
    Builder::from_config(config)
        .set_performance_config(performance)
        .set_connection_config(connection)
        .set_policy(policy)
        .build_subscriber_client()
        .map_err(|source| RedisError::Url {
            url: redacted(url),
            source,
        })
}

/// `url` without its password, for messages.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Whether Redis is reachable now, over every connection it watches (the
/// adapter's, the bus's: see [`RedisHealth::and`]). A cheap-clone handle.
///
/// A connection is up once it is connected and its subscriptions are
/// restored; it is down from the moment fred reports it lost (a read error,
/// a closed socket, a command unanswered for [`UNRESPONSIVE`]) until then.
#[derive(Clone, Default)]
pub struct RedisHealth(Arc<Mutex<Vec<Arc<Conn>>>>);

/// One watched connection.
///
/// Std locks: held to copy or replace a value, never across an `.await`.
struct Conn {
    role: &'static str,
    client: SubscriberClient,
    /// `None` once connected and resubscribed; else why not.
    problem: Mutex<Option<String>>,
    /// Set when fred reports the connection lost, cleared when it is made
    /// again. fred's own state says `Connected` until its first reconnect
    /// attempt (a backoff delay later); what is sent meanwhile waits for
    /// the reconnection.
    lost: AtomicBool,
    /// Connections made so far (the first one included).
    connections: AtomicU64,
    /// Stops the watcher and the heartbeat.
    closed: CancellationToken,
}

impl Conn {
    /// Whether commands can be sent now (subscriptions restored or not).
    fn is_connected(&self) -> bool {
        !self.lost.load(Ordering::Acquire) && self.client.is_connected()
    }

    fn set(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }

    fn problem(&self) -> Option<String> {
        if let Some(problem) = self
            .problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Some(problem);
        }
        // Also what fred knows now: its state can turn before its events
        // are handled here.
        (!self.is_connected()).then(|| "connection lost; reconnecting".to_owned())
    }
}

impl RedisHealth {
    /// Why Redis counts as unreachable now, or `None` when every watched
    /// connection is up.
    pub fn problem(&self) -> Option<String> {
        self.conns().iter().find_map(|conn| {
            conn.problem()
                .map(|p| format!("Redis unreachable ({}): {p}", conn.role))
        })
    }

    pub fn is_up(&self) -> bool {
        self.problem().is_none()
    }

    /// Whether commands can be sent on every watched connection now (even
    /// if a connection's subscriptions are not restored yet).
    pub fn is_connected(&self) -> bool {
        self.conns().iter().all(|c| c.is_connected())
    }

    /// How many times the watched connections were made, first connections
    /// included: it grows by one at each reconnection.
    pub fn connections(&self) -> u64 {
        self.conns()
            .iter()
            .map(|c| c.connections.load(Ordering::Relaxed))
            .sum()
    }

    /// Redis's ids of the watched connections (`CLIENT LIST`'s `id`), for
    /// operators and tests.
    pub fn connection_ids(&self) -> Vec<i64> {
        self.conns()
            .iter()
            .flat_map(|c| c.client.connection_ids().into_values())
            .collect()
    }

    /// One handle over the connections of both.
    pub fn and(&self, other: &RedisHealth) -> RedisHealth {
        let mut conns = self.conns();
        conns.extend(other.conns());
        RedisHealth(Arc::new(Mutex::new(conns)))
    }

    /// Closes the watched connections (at shutdown).
    pub async fn close(&self) {
        for conn in self.conns() {
            conn.closed.cancel();
            if let Err(e) = conn.client.quit().await {
                tracing::debug!(role = conn.role, error = %e, "closing a Redis connection");
            }
        }
    }

    fn conns(&self) -> Vec<Arc<Conn>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Watches `client`, which is not connected yet: call [`Watch::start`]
    /// once its first connection is made.
    fn watch(&self, role: &'static str, client: &SubscriberClient) -> Watch {
        let conn = Arc::new(Conn {
            role,
            client: client.clone(),
            problem: Mutex::new(Some("connecting".to_owned())),
            lost: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            closed: CancellationToken::new(),
        });
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn.clone());
        // Taken before the first connection, so that no event is missed.
        Watch {
            errors: client.error_rx(),
            reconnects: client.reconnect_rx(),
            conn,
        }
    }
}

/// A connection's events, from before its first connection.
struct Watch {
    conn: Arc<Conn>,
    errors: broadcast::Receiver<(fred::error::Error, Option<fred::types::config::Server>)>,
    reconnects: broadcast::Receiver<fred::types::config::Server>,
}

impl Watch {
    /// Counts the first connection (just made: fred announces it before
    /// `init` returns) and marks the connection up, then follows it: its
    /// events, its heartbeat, its subscriptions after each reconnect.
    fn start(mut self) {
        while self.reconnects.try_recv().is_ok() {
            self.conn.connections.fetch_add(1, Ordering::Relaxed);
        }
        while self.errors.try_recv().is_ok() {}
        self.conn.set(None);
        tokio::spawn(heartbeat(self.conn.clone()));
        tokio::spawn(manage_subscriptions(
            self.conn,
            self.errors,
            self.reconnects,
        ));
    }
}

/// Follows one connection's events: down on an error, and on each
/// (re)connection its subscriptions restored, then up.
///
/// Without it a reconnected node hears nothing (checked: a new connection
/// has no subscriptions). Not fred's own `manage_subscriptions`: that one
/// logs a failed resubscription and leaves the connection deaf until the
/// next reconnect, and tells no one when it is done; here the connection
/// counts as down until its subscriptions are back, and a failure is
/// retried.
async fn manage_subscriptions(
    conn: Arc<Conn>,
    mut errors: broadcast::Receiver<(fred::error::Error, Option<fred::types::config::Server>)>,
    mut reconnects: broadcast::Receiver<fred::types::config::Server>,
) {
    loop {
        tokio::select! {
            () = conn.closed.cancelled() => return,
            error = errors.recv() => match error {
                Ok((error, _)) => {
                    tracing::warn!(role = conn.role, error = %error, "Redis connection lost; reconnecting");
                    conn.lost.store(true, Ordering::Release);
                    conn.set(Some(error.to_string()));
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            up = reconnects.recv() => match up {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    conn.connections.fetch_add(1, Ordering::Relaxed);
                    conn.lost.store(false, Ordering::Release);
                    tracing::info!(role = conn.role, "Redis connection back; resubscribing");
                    resubscribe(&conn).await;
                }
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// Restores the subscriptions `conn`'s client tracks, retrying with
/// backoff until that works (or the connection is closed).
async fn resubscribe(conn: &Conn) {
    let mut delay = Duration::from_millis(RECONNECT_MIN_MS.into());
    loop {
        match resubscribe_all(&conn.client).await {
            Ok(()) => {
                tracing::info!(role = conn.role, "Redis subscriptions restored");
                conn.set(None);
                return;
            }
            Err(e) => {
                tracing::error!(role = conn.role, error = %e, "cannot restore Redis subscriptions; retrying");
                conn.set(Some(format!("subscriptions not restored: {e}")));
            }
        }
        tokio::select! {
            () = conn.closed.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_millis(RECONNECT_MAX_MS.into()));
    }
}

/// Subscribes again to every channel, pattern and sharded channel the
/// client tracks, skipping the kinds it has none of. Sharded channels one
/// at a time: on a Redis Cluster one `SSUBSCRIBE` takes one slot only.
async fn resubscribe_all(client: &SubscriberClient) -> Result<(), fred::error::Error> {
    fn keys<T: Into<Key>>(set: impl IntoIterator<Item = T>) -> Vec<Key> {
        set.into_iter().map(Into::into).collect()
    }
    let channels = keys(client.tracked_channels());
    if !channels.is_empty() {
        client.subscribe(channels).await?;
    }
    let patterns = keys(client.tracked_patterns());
    if !patterns.is_empty() {
        client.psubscribe(patterns).await?;
    }
    for channel in keys(client.tracked_shard_channels()) {
        client.ssubscribe(channel).await?;
    }
    Ok(())
}

/// Pings the connection every [`HEARTBEAT`]: an idle subscriber sends
/// nothing, so without it a Redis that stopped answering would go unnoticed.
/// A ping unanswered for [`UNRESPONSIVE`] makes fred reconnect.
async fn heartbeat(conn: Arc<Conn>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = conn.closed.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Nothing to ping while (re)connecting: fred's own retries run.
        if conn.is_connected()
            && let Err(e) = conn.client.ping::<()>(None).await
        {
            tracing::debug!(role = conn.role, error = %e, "Redis heartbeat failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        check_prefix(DEFAULT_PREFIX).unwrap();
        check_prefix("team-a.prod_1").unwrap();
        for bad in ["", "a#b", "with space", "é", &"x".repeat(65)] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redacted("redis://user:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
    }
}
