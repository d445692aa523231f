//! The socketioxide-redis driver of a node's adapter: fred's sharded
//! pub/sub, as socketioxide-redis's own fred driver does it, with two
//! changes.
//!
//! - **Fail fast.** While the connection is known down, a publish fails at
//!   once instead of queueing until the connection is back (or
//!   [`super::redis::COMMAND_TIMEOUT`]): the scheduler awaits every push.
//!   A failed broadcast is not delivered to this node's sockets either (the
//!   adapter delivers locally only after publishing); the publisher falls
//!   back to a local emit for them (see `RoomPublisher`).
//! - **This node's own requests are dropped as they arrive.** Redis sends
//!   every message of a channel to every subscriber, the publisher
//!   included, so each push this node broadcasts comes back to it. The
//!   adapter would decode it whole (its packet, its data) only to see its
//!   own node id and drop it: about a tenth of a node's CPU under load.
//!   Here it is recognised by its first bytes instead (see [`own_header`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::types::Message;
use socketioxide_redis::drivers::fred::FredError;
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::{broadcast, mpsc};

use super::redis::RedisHealth;

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// See the module's doc.
#[derive(Clone)]
pub struct NodeDriver {
    conn: SubscriberClient,
    handlers: Handlers,
    own: Own,
    health: RedisHealth,
}

/// How this node's own requests begin, once it has sent one.
#[derive(Clone)]
struct Own {
    /// Every request channel's name starts with this.
    requests: Arc<str>,
    header: Arc<OnceLock<Box<[u8]>>>,
}

impl Own {
    fn is_own(&self, chan: &str, data: &[u8]) -> bool {
        chan.starts_with(&*self.requests)
            && self
                .header
                .get()
                .is_some_and(|header| data.starts_with(header))
    }

    fn learn(&self, chan: &str, data: &[u8]) {
        if self.header.get().is_none()
            && chan.starts_with(&*self.requests)
            && let Some(header) = own_header(data)
        {
            let _ = self.header.set(header.into());
        }
    }
}

/// The bytes of a request that name the node sending it.
///
/// The adapter sends each request as a MessagePack array whose first item
/// is the sender's id, a string of 16 characters: the array's marker, then
/// the string's. `None` for anything else, which is then never dropped
/// here (the adapter still drops its own requests after decoding them).
fn own_header(request: &[u8]) -> Option<&[u8]> {
    match request {
        [0x91..=0x9f, str @ 0xa1..=0xbf, ..] => {
            let len = 2 + usize::from(str & 0x1f);
            request.get(..len)
        }
        _ => None,
    }
}

impl NodeDriver {
    /// A driver on `conn` (not connected yet: this connects it) for the
    /// adapter of channels prefixed `prefix`, failing fast while `health`
    /// says the connection is down.
    pub async fn new(
        conn: SubscriberClient,
        prefix: &str,
        health: RedisHealth,
    ) -> Result<Self, fred::error::Error> {
        let handlers = Handlers::default();
        let own = Own {
            requests: format!("{prefix}-request#").into(),
            header: Arc::default(),
        };
        tokio::spawn(dispatch(conn.message_rx(), handlers.clone(), own.clone()));
        conn.init().await?;
        Ok(Self {
            conn,
            handlers,
            own,
            health,
        })
    }

    fn ensure_connected(&self) -> Result<(), FredError> {
        if self.health.is_connected() {
            Ok(())
        } else {
            let down = fred::error::Error::new(fred::error::ErrorKind::IO, "Redis unreachable now");
            Err(FredError::from(down))
        }
    }
}

/// Hands each message to its channel's stream, but this node's own requests.
async fn dispatch(mut rx: broadcast::Receiver<Message>, handlers: Handlers, own: Own) {
    loop {
        let msg = match rx.recv().await {
            Ok(msg) => msg,
            Err(broadcast::error::RecvError::Closed) => return,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(messages = n, "the Redis adapter lagged: messages lost");
                continue;
            }
        };
        let Some(data) = msg.value.into_owned_bytes() else {
            continue;
        };
        let chan: &str = &msg.channel;
        if own.is_own(chan, &data) {
            continue;
        }
        let handlers = handlers.read().unwrap_or_else(|e| e.into_inner());
        match handlers.get(chan) {
            Some(tx) => {
                if let Err(e) = tx.try_send((chan.to_owned(), data)) {
                    tracing::warn!(chan, "the Redis adapter dropped a message: {e}");
                }
            }
            None => tracing::debug!(chan, "a message on a channel nobody listens to"),
        }
    }
}

impl Driver for NodeDriver {
    type Error = FredError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        self.ensure_connected()?;
        self.own.learn(&chan, &val);
        self.conn.spublish::<u16, _, _>(chan, val).await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        self.conn.ssubscribe(chan.as_str()).await?;
        let (tx, rx) = mpsc::channel(size);
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(chan, tx);
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&chan);
        self.conn.sunsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        self.ensure_connected()?;
        let (_, n): (String, u16) = self.conn.pubsub_shardnumsub(chan).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use socketioxide_core::Uid;
    use socketioxide_core::adapter::BroadcastOptions;
    use socketioxide_core::adapter::remote_packet::{RequestOut, RequestTypeOut};

    use super::*;

    /// The adapter's requests start with their sender's id, as
    /// [`own_header`] expects: if socketioxide changes its encoding, this
    /// fails, rather than nodes dropping each other's pushes.
    #[test]
    fn a_request_starts_with_its_senders_id() {
        let opts = BroadcastOptions::default();
        let (a, b) = (Uid::new(), Uid::new());
        let encode = |uid| {
            let req = RequestOut::new(uid, RequestTypeOut::DisconnectSockets, &opts);
            rmp_serde::to_vec(&req).unwrap()
        };
        let (a1, a2, b1) = (encode(a), encode(a), encode(b));
        let header = own_header(&a1).expect("a header");
        assert!(header.ends_with(a.to_string().as_bytes()), "{header:?}");
        assert!(a2.starts_with(header));
        assert!(!b1.starts_with(header));
        assert_eq!(own_header(b"\x92\x01\x02"), None);
        assert_eq!(own_header(b""), None);
    }

    #[test]
    fn only_requests_on_request_channels_are_own() {
        let own = Own {
            requests: "tw-request#".into(),
            header: Arc::default(),
        };
        let mine = b"\x95\xa3abc\x01";
        assert!(!own.is_own("tw-request#/#", mine), "nothing learnt yet");
        own.learn("tw-response#/#x#", mine);
        assert!(
            !own.is_own("tw-request#/#", mine),
            "a response teaches nothing"
        );
        own.learn("tw-request#/#", mine);
        assert!(own.is_own("tw-request#/#", mine));
        assert!(!own.is_own("tw-request#/#", b"\x95\xa3abd\x01"));
        assert!(!own.is_own("tw-response#/#x#", mine));
    }
}
