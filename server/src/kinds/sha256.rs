//! `sha256`: SHA-256 applied `rounds` times, first to the UTF-8 bytes of
//! `data`, then to the previous 32-byte digest.

use app::InputError;
use app::builtin::Sha256Input;
use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256 as Hasher};

use super::{Ctx, Handler, HandlerError};

/// Rounds between two cancellation checks (about a millisecond of work).
const CHECK_EVERY: u64 = 4096;

/// The `sha256` kind.
pub struct Sha256;

/// The iterated digest as lowercase hex; `Err(Stopped)` if `ctx` stops first.
pub fn iterated_sha256(data: &[u8], rounds: u64, ctx: &Ctx) -> Result<String, HandlerError> {
    let mut digest = Hasher::digest(data);
    for round in 1..rounds {
        if round % CHECK_EVERY == 0 {
            ctx.check()?;
            ctx.progress(round, rounds, None);
        }
        digest = Hasher::digest(digest);
    }
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

#[async_trait]
impl Handler for Sha256 {
    fn kind(&self) -> &str {
        app::builtin::SHA256
    }

    fn validate(&self, input: &Value) -> Result<(), InputError> {
        Sha256Input::parse(input).map(drop)
    }

    async fn run(&self, input: Value, ctx: Ctx) -> Result<Value, HandlerError> {
        let input = Sha256Input::parse(&input)?;
        let hex = iterated_sha256(input.data.as_bytes(), input.rounds, &ctx)?;
        Ok(json!({ "hex": hex }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let ctx = Ctx::detached();
        assert_eq!(
            iterated_sha256(b"abc", 1, &ctx).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            iterated_sha256(b"", 1, &ctx).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Two rounds: the digest of the first 32-byte digest, not of its hex.
        let once = Hasher::digest(b"abc");
        let twice: String = Hasher::digest(once)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(iterated_sha256(b"abc", 2, &ctx).unwrap(), twice);
    }

    #[test]
    fn stops_when_cancelled() {
        let stop = tokio_util::sync::CancellationToken::new();
        stop.cancel();
        let ctx = Ctx::new(stop, std::sync::Arc::new(|_, _, _| {}));
        assert_eq!(
            iterated_sha256(b"x", 1_000_000, &ctx),
            Err(HandlerError::Stopped)
        );
    }
}
