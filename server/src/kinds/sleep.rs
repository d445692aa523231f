//! `sleep`: waits `ms` milliseconds, stopping at once when cancelled.

use std::time::Duration;

use app::InputError;
use app::builtin::SleepInput;
use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Class, Ctx, Handler, HandlerError};

/// The `sleep` kind.
pub struct Sleep;

#[async_trait]
impl Handler for Sleep {
    fn kind(&self) -> &str {
        app::builtin::SLEEP
    }

    fn class(&self) -> Class {
        Class::Io
    }

    fn validate(&self, input: &Value) -> Result<(), InputError> {
        SleepInput::parse(input).map(drop)
    }

    async fn run(&self, input: Value, ctx: Ctx) -> Result<Value, HandlerError> {
        let SleepInput { ms } = SleepInput::parse(&input)?;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({ "slept_ms": ms })),
            () = ctx.stopped() => Err(HandlerError::Stopped),
        }
    }
}
