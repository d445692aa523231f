//! Engine.IO v4 / Socket.IO v5 text frames on a websocket, as the bench
//! needs them: namespace `/`, JSON only, one packet per websocket message.
//!
//! Decoding borrows from the message: an ack or a `result` is read into a
//! few fields (id, status, output as raw JSON text, error) and the rest of
//! the task object is skipped, not built.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use app::events;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Engine.IO `pong`, the answer to a `ping` (`2`).
pub const PONG: &str = "3";

/// A message from the server, borrowed from its text.
#[derive(Debug, PartialEq)]
pub enum Incoming<'a> {
    /// Engine.IO `open` (`0{sid, pingInterval, ...}`).
    Open,
    /// Engine.IO `ping`: answer [`PONG`].
    Ping,
    /// Engine.IO `close`, or the namespace was left (`41`).
    Closed,
    /// The namespace was joined (`40{sid}`).
    Joined,
    /// The namespace refused us (`44{message}`): the message.
    Refused(String),
    /// An ack (`43<id>[...]`).
    Ack(u64, AckBody<'a>),
    /// A `result` push (`42["result", task]`).
    Result(Finished<'a>),
    /// Anything the bench does not use: other pushes, other namespaces.
    Other,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed packet {packet:?}: {reason}")]
    Malformed { packet: String, reason: String },
}

impl WireError {
    fn new(text: &str, reason: impl fmt::Display) -> Self {
        // Enough of the packet to recognise it, not a megabyte of it.
        let packet = text.chars().take(120).collect();
        Self::Malformed {
            packet,
            reason: reason.to_string(),
        }
    }
}

/// An ack: `{ok: true, task | tasks}` or `{ok: false, error}`.
#[derive(Debug, PartialEq, Deserialize)]
pub struct AckBody<'a> {
    pub ok: bool,
    #[serde(borrow, default)]
    pub task: Option<Submitted<'a>>,
    #[serde(borrow, default)]
    pub tasks: Option<Vec<Submitted<'a>>>,
    #[serde(borrow, default)]
    pub error: Option<ErrorRef<'a>>,
}

/// A task in an ack: only its id matters here.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Submitted<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

/// A finished task as the bench checks it.
#[derive(Debug, Deserialize)]
pub struct Finished<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub status: Cow<'a, str>,
    #[serde(borrow, default)]
    pub output: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub error: Option<ErrorRef<'a>>,
}

impl PartialEq for Finished<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.status == other.status
            && self.output.map(RawValue::get) == other.output.map(RawValue::get)
            && self.error == other.error
    }
}

/// `{code, message}`.
#[derive(Debug, PartialEq, Deserialize)]
pub struct ErrorRef<'a> {
    #[serde(borrow)]
    pub code: Cow<'a, str>,
    #[serde(borrow, default)]
    pub message: Cow<'a, str>,
}

/// Reads one text message from the server.
pub fn decode(text: &str) -> Result<Incoming<'_>, WireError> {
    // The first byte is the packet type; slicing after an ASCII byte is safe.
    match text.as_bytes().first() {
        Some(b'0') => Ok(Incoming::Open),
        Some(b'1') => Ok(Incoming::Closed),
        Some(b'2') => Ok(Incoming::Ping),
        // `3` (pong to a probe) and `6` (noop) carry nothing for us.
        Some(b'4') => decode_socket_io(text, &text[1..]),
        _ => Ok(Incoming::Other),
    }
}

/// A Socket.IO packet (`packet` is the message without its Engine.IO `4`).
fn decode_socket_io<'a>(text: &str, packet: &'a str) -> Result<Incoming<'a>, WireError> {
    let Some(&kind) = packet.as_bytes().first() else {
        return Err(WireError::new(text, "empty packet"));
    };
    if !kind.is_ascii() {
        return Err(WireError::new(text, "unexpected packet type"));
    }
    let rest = &packet[1..];
    // Namespace `/` is written without a prefix; other namespaces are not ours.
    if rest.starts_with('/') {
        return Ok(Incoming::Other);
    }
    match kind {
        b'0' => Ok(Incoming::Joined),
        b'1' => Ok(Incoming::Closed),
        b'4' => Ok(Incoming::Refused(refusal(rest))),
        b'2' => {
            let args = skip_ack_id(rest).1;
            let push: Push<'_> = serde_json::from_str(args).map_err(|e| WireError::new(text, e))?;
            Ok(match push {
                Push::Result(task) => Incoming::Result(task),
                Push::Other => Incoming::Other,
            })
        }
        b'3' => {
            let (id, args) = skip_ack_id(rest);
            let id = id.ok_or_else(|| WireError::new(text, "ack without an id"))?;
            let (body,): (AckBody<'_>,) =
                serde_json::from_str(args).map_err(|e| WireError::new(text, e))?;
            Ok(Incoming::Ack(id, body))
        }
        // Binary packets (5, 6): the protocol is JSON only.
        _ => Err(WireError::new(text, "unexpected packet type")),
    }
}

/// Splits a leading ack id off `rest`.
fn skip_ack_id(rest: &str) -> (Option<u64>, &str) {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (rest[..digits].parse().ok(), &rest[digits..])
}

/// The message of a `connect_error` (`{"message": ...}`), else its text.
fn refusal(data: &str) -> String {
    #[derive(Deserialize)]
    struct Refusal {
        message: String,
    }
    serde_json::from_str::<Refusal>(data)
        .map(|r| r.message)
        .unwrap_or_else(|_| data.to_owned())
}

/// The arguments of an event: `result` and its task, or anything else.
enum Push<'a> {
    Result(Finished<'a>),
    Other,
}

impl<'de> Deserialize<'de> for Push<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PushVisitor;
        impl<'de> Visitor<'de> for PushVisitor {
            type Value = Push<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event [name, ...args]")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Push<'de>, A::Error> {
                let name: Cow<'de, str> = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let push = if name == events::RESULT {
                    let task = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                    Push::Result(task)
                } else {
                    Push::Other
                };
                // The rest is skipped, not built.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(push)
            }
        }
        d.deserialize_seq(PushVisitor)
    }
}

/// Joining namespace `/`, with `auth` (a JSON object) if any.
pub fn join(auth: Option<&str>) -> String {
    format!("40{}", auth.unwrap_or(""))
}

/// Appends to `out` a `task` event with ack id `ack`, for one task of kind
/// `kind_json` (a JSON string) and input `input_json`, then `tail` (more
/// fields of the spec, each after a comma, or nothing).
pub fn task(out: &mut String, ack: u64, kind_json: &str, input_json: &str, tail: &str) {
    let _ = write!(out, "42{ack}[\"{}\",", events::TASK);
    spec(out, kind_json, input_json, tail);
    out.push(']');
}

/// Appends to `out` a `tasks` event with ack id `ack`, one spec per
/// (input, tail).
pub fn tasks<'a>(
    out: &mut String,
    ack: u64,
    kind_json: &str,
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let _ = write!(out, "42{ack}[\"{}\",{{\"tasks\":[", events::TASKS);
    for (i, (input, tail)) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        spec(out, kind_json, input, tail);
    }
    out.push_str("]}]");
}

fn spec(out: &mut String, kind_json: &str, input_json: &str, tail: &str) {
    let _ = write!(out, "{{\"kind\":{kind_json},\"input\":{input_json}{tail}}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn engine_io_packets() {
        assert_eq!(
            decode(r#"0{"sid":"x","pingInterval":25000}"#).unwrap(),
            Incoming::Open
        );
        assert_eq!(decode("2").unwrap(), Incoming::Ping);
        assert_eq!(decode("1").unwrap(), Incoming::Closed);
        assert_eq!(decode("6").unwrap(), Incoming::Other);
    }

    #[test]
    fn namespace_packets() {
        assert_eq!(decode(r#"40{"sid":"abc"}"#).unwrap(), Incoming::Joined);
        assert_eq!(decode("41").unwrap(), Incoming::Closed);
        assert_eq!(
            decode(r#"44{"message":"unauthorized: a token is required"}"#).unwrap(),
            Incoming::Refused("unauthorized: a token is required".into())
        );
        assert_eq!(decode("44oops").unwrap(), Incoming::Refused("oops".into()));
        assert_eq!(decode(r#"40/worker,{"sid":"a"}"#).unwrap(), Incoming::Other);
    }

    #[test]
    fn acks() {
        let Incoming::Ack(7, ack) =
            decode(r#"437[{"ok":true,"task":{"id":"a-b","kind":"echo","input":{"x":[1]}}}]"#)
                .unwrap()
        else {
            panic!("not an ack");
        };
        assert!(ack.ok);
        assert_eq!(ack.task.unwrap().id, "a-b");

        let Incoming::Ack(12, ack) =
            decode(r#"4312[{"ok":true,"tasks":[{"id":"1"},{"id":"2"}]}]"#).unwrap()
        else {
            panic!("not an ack");
        };
        let ids: Vec<_> = ack.tasks.unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(ids, ["1", "2"]);

        let Incoming::Ack(3, ack) =
            decode(r#"433[{"ok":false,"error":{"code":"queue_full","message":"full"}}]"#).unwrap()
        else {
            panic!("not an ack");
        };
        assert!(!ack.ok);
        assert_eq!(ack.error.unwrap().code, "queue_full");
        assert!(decode(r#"43[{"ok":true}]"#).is_err(), "an ack needs its id");
        assert!(decode("431[not json").is_err());
    }

    #[test]
    fn results_and_other_pushes() {
        let text = r#"42["result",{"id":"t1","status":"succeeded","input":{"a":1},"output":{"a": 1},"error":null}]"#;
        let Incoming::Result(task) = decode(text).unwrap() else {
            panic!("not a result");
        };
        assert_eq!((&*task.id, &*task.status), ("t1", "succeeded"));
        assert_eq!(task.output.map(RawValue::get), Some(r#"{"a": 1}"#));
        assert_eq!(task.error, None);

        let text = r#"42["result",{"id":"t2","status":"failed","output":null,"error":{"code":"task_failed","message":"boom"}}]"#;
        let Incoming::Result(task) = decode(text).unwrap() else {
            panic!("not a result");
        };
        assert!(task.output.is_none());
        assert_eq!(task.error.unwrap().message, "boom");

        let status = r#"42["status",{"task_id":"t1","status":"running","attempt":1,"worker":"w"}]"#;
        assert_eq!(decode(status).unwrap(), Incoming::Other);
        assert!(decode(r#"42["result"]"#).is_err());
    }

    #[test]
    fn encodes_what_the_server_reads() {
        assert_eq!(join(None), "40");
        assert_eq!(join(Some(r#"{"token":"t"}"#)), r#"40{"token":"t"}"#);

        let mut out = String::new();
        task(&mut out, 5, r#""echo""#, r#"{"seq":1}"#, "");
        assert_eq!(out, r#"425["task",{"kind":"echo","input":{"seq":1}}]"#);
        let args: Value = serde_json::from_str(&out[3..]).unwrap();
        assert_eq!(args, json!(["task", {"kind": "echo", "input": {"seq": 1}}]));

        out.clear();
        tasks(
            &mut out,
            6,
            r#""echo""#,
            [("1", ""), ("2", r#","key":"k2""#)],
        );
        let args: Value = serde_json::from_str(&out[3..]).unwrap();
        assert_eq!(
            args,
            json!(["tasks", {"tasks": [{"kind": "echo", "input": 1}, {"kind": "echo", "input": 2, "key": "k2"}]}])
        );
    }
}
