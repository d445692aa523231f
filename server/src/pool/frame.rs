//! The framed codec between the server and its worker processes: each frame
//! is a 4-byte big-endian length and a JSON message. Many frames are written
//! with one `write` so a busy pool costs one system call per batch.

use std::borrow::Cow;
use std::io;
use std::marker::PhantomData;

use app::{Json, TaskId};
use bytes::{BufMut, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// Largest frame either side accepts: a task input or output is bounded by
/// the message size limit, which is far below this.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Server → worker. The server sends a task's input as the text it holds
/// (`ToWorker<&Json>`, borrowed from its own copy); the worker reads it as
/// the `Value` its handler takes (`ToWorker<Value>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker<'a, I = Value> {
    /// Start a task in a free slot.
    Run {
        id: TaskId,
        kind: Cow<'a, str>,
        input: I,
    },
    /// Stop a running task (cancelled or timed out).
    Stop { id: TaskId },
}

/// Worker → server. Every `Run` is answered by exactly one of `Done`,
/// `Failed` or `Stopped`, which frees its slot. The worker writes its
/// handler's `Value` (`FromWorker<Value>`); the server reads the output as
/// text (`FromWorker<Json>`), which it keeps and sends on without a tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker<O = Json> {
    Progress {
        id: TaskId,
        done: u64,
        total: u64,
        message: Option<String>,
    },
    Done {
        id: TaskId,
        output: O,
    },
    Failed {
        id: TaskId,
        message: String,
    },
    Stopped {
        id: TaskId,
    },
}

/// Appends one frame holding `msg` to `buf`.
pub fn encode<T: Serialize>(msg: &T, buf: &mut BytesMut) -> io::Result<()> {
    let start = buf.len();
    buf.put_u32(0);
    serde_json::to_writer((&mut *buf).writer(), msg).map_err(io::Error::other)?;
    let len = buf.len() - start - 4;
    if len > MAX_FRAME {
        buf.truncate(start);
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {len} bytes is over {MAX_FRAME}"),
        ));
    }
    let len = u32::try_from(len).map_err(io::Error::other)?;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Decodes frames of `T`; a frame that is not a valid `T` is an
/// `InvalidData` error, which ends the stream.
pub struct FrameCodec<T> {
    frames: LengthDelimitedCodec,
    _msg: PhantomData<fn() -> T>,
}

impl<T> Default for FrameCodec<T> {
    fn default() -> Self {
        Self {
            frames: LengthDelimitedCodec::builder()
                .length_field_length(4)
                .max_frame_length(MAX_FRAME)
                .new_codec(),
            _msg: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Decoder for FrameCodec<T> {
    type Item = T;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<T>> {
        match self.frames.decode(src)? {
            Some(frame) => serde_json::from_slice(&frame)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> TaskId {
        uuid::Uuid::now_v7().into()
    }

    #[test]
    fn round_trip_many_frames_in_one_buffer() {
        let msgs = vec![
            ToWorker::Run {
                id: id(),
                kind: "echo".into(),
                input: json!({"z": 1, "a": [true, null]}),
            },
            ToWorker::Stop { id: id() },
        ];
        let mut buf = BytesMut::new();
        for m in &msgs {
            encode(m, &mut buf).unwrap();
        }
        let mut codec = FrameCodec::<ToWorker>::default();
        let mut got = Vec::new();
        while let Some(m) = codec.decode(&mut buf).unwrap() {
            got.push(m);
        }
        assert_eq!(got, msgs);
        assert!(buf.is_empty());
    }

    #[test]
    fn payloads_cross_as_text_on_the_server_and_values_in_the_worker() {
        let input = Json::from_value(&json!({"z": 1, "a": [true, null]}));
        let run = ToWorker::Run {
            id: id(),
            kind: "echo".into(),
            input: &input,
        };
        let mut buf = BytesMut::new();
        encode(&run, &mut buf).unwrap();
        let got = FrameCodec::<ToWorker>::default().decode(&mut buf).unwrap();
        let Some(ToWorker::Run { input: value, .. }) = got else {
            panic!("{got:?}");
        };
        assert_eq!(value, json!({"z": 1, "a": [true, null]}));

        let done = FromWorker::Done {
            id: id(),
            output: json!({"count": 4, "text": "é"}),
        };
        encode(&done, &mut buf).unwrap();
        let got = FrameCodec::<FromWorker>::default()
            .decode(&mut buf)
            .unwrap();
        let Some(FromWorker::Done { output, .. }) = got else {
            panic!("{got:?}");
        };
        assert_eq!(output.get(), r#"{"count":4,"text":"é"}"#);
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let msg = FromWorker::<Value>::Done {
            id: id(),
            output: json!({"count": 4}),
        };
        let mut full = BytesMut::new();
        encode(&msg, &mut full).unwrap();
        let mut codec = FrameCodec::<FromWorker>::default();
        let mut buf = BytesMut::new();
        for (i, byte) in full.iter().enumerate() {
            buf.put_u8(*byte);
            let got = codec.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i + 1 == full.len());
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut codec = FrameCodec::<FromWorker>::default();
        let mut buf = BytesMut::new();
        buf.put_u32(3);
        buf.put_slice(b"{x}");
        assert_eq!(
            codec.decode(&mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut buf = BytesMut::new();
        buf.put_u32(u32::MAX);
        assert!(codec.decode(&mut buf).is_err());
    }
}
