//! The node bus: [`Signal`]s between the nodes of one cluster, as JSON on
//! the Redis pub/sub channel `<prefix>:signals`.
//!
//! Every node hears every signal, its own included: a node that needs to
//! tell its own apart compares the ids a signal carries (a `Cancel`'s
//! `owner`). Delivery is at most once: a signal published while a node's
//! connection is down, or before it has resubscribed after a reconnect, is
//! lost to that node, and a node that falls behind by more than
//! [`SIGNAL_BUFFER`] signals loses the excess. Callers must have a
//! fallback for each signal (claims also run on a timer, cancels are also in
//! the database); the bus only makes the common case fast.

use fred::clients::SubscriberClient;
use fred::interfaces::{EventInterface, PubsubInterface};
use fred::types::Message;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::Signal;
use super::redis::{self, RedisError, RedisHealth};

/// Signals held for a consumer that has not taken them yet; past it, new
/// ones are dropped (and logged). Signals come at most a few per task
/// (a wake per submission batch, a cancel, its answer), so this is seconds
/// of a busy cluster; the channel allocates only as it fills.
pub const SIGNAL_BUFFER: usize = 1 << 14;

/// Capacity of fred's event channels on the bus's connection (see
/// [`redis::EVENT_CAPACITY`]): signals are far fewer than pushes, and the
/// forwarder that drains them only decodes and hands them on.
const EVENT_CAPACITY: usize = 1 << 10;

/// A node's connection to the bus. Cheap to clone (one connection).
#[derive(Clone)]
pub struct Bus {
    client: SubscriberClient,
    channel: String,
    health: RedisHealth,
}

/// The channel signals travel on, for `prefix`.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}:signals")
}

impl Bus {
    /// Connects to Redis at `url` and subscribes to `prefix`'s signals:
    /// every signal any node publishes from now on (this one's too) comes
    /// out of the returned receiver, until the bus is closed. The
    /// subscription is restored after every reconnect.
    pub async fn connect(
        url: &str,
        prefix: &str,
    ) -> Result<(Self, mpsc::Receiver<Signal>), RedisError> {
        redis::check_prefix(prefix)?;
        let (client, health) = redis::connect(url, "signals", EVENT_CAPACITY).await?;
        let channel = channel(prefix);
        let (tx, rx) = mpsc::channel(SIGNAL_BUFFER);
        // Taken before subscribing, so that nothing published after the
        // subscription is missed.
        let messages = client.message_rx();
        tokio::spawn(forward(messages, channel.clone(), tx));
        client
            .subscribe(channel.as_str())
            .await
            .map_err(RedisError::Command)?;
        let bus = Self {
            client,
            channel,
            health,
        };
        Ok((bus, rx))
    }

    /// Publishes `signal` to every node (this one included). Fails at once
    /// while the connection is down ([`RedisError::Unavailable`]); a publish
    /// that succeeded reached the nodes subscribed at that moment.
    pub async fn publish(&self, signal: &Signal) -> Result<(), RedisError> {
        if !self.health.is_connected() {
            return Err(RedisError::Unavailable(
                "the bus's connection is down".into(),
            ));
        }
        let json = serde_json::to_string(signal).map_err(RedisError::Encode)?;
        self.client
            .publish::<i64, _, _>(self.channel.as_str(), json)
            .await
            .map_err(RedisError::Command)?;
        Ok(())
    }

    /// The health of the bus's connection.
    pub fn health(&self) -> &RedisHealth {
        &self.health
    }

    /// Closes the connection: the receiver of [`Bus::connect`] ends.
    pub async fn close(&self) {
        self.health.close().await;
    }
}

/// Hands every signal on `channel` to `tx`, in order, until `tx`'s receiver
/// is dropped or the connection is closed. Malformed messages (another
/// version, a stray publisher) are logged and skipped.
async fn forward(
    mut messages: tokio::sync::broadcast::Receiver<Message>,
    channel: String,
    tx: mpsc::Sender<Signal>,
) {
    loop {
        let message = match messages.recv().await {
            Ok(message) => message,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "the bus fell behind; signals lost");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if *message.channel != *channel {
            continue;
        }
        let Some(bytes) = message.value.as_bytes() else {
            tracing::warn!(value = ?message.value, "a signal that is not a string; skipped");
            continue;
        };
        let signal = match serde_json::from_slice::<Signal>(bytes) {
            Ok(signal) => signal,
            Err(e) => {
                let text = String::from_utf8_lossy(bytes);
                let text: String = text.chars().take(200).collect();
                tracing::warn!(error = %e, signal = ?text, "a malformed signal; skipped");
                continue;
            }
        };
        match tx.try_send(signal) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(signal)) => {
                tracing::warn!(?signal, "signals not taken in time; one dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
