//! `fail`: always fails with `task_failed` and the given message.

use app::InputError;
use app::builtin::FailInput;
use async_trait::async_trait;
use serde_json::Value;

use super::{Class, Ctx, Handler, HandlerError};

/// The `fail` kind.
pub struct Fail;

#[async_trait]
impl Handler for Fail {
    fn kind(&self) -> &str {
        app::builtin::FAIL
    }

    fn class(&self) -> Class {
        Class::Io
    }

    fn validate(&self, input: &Value) -> Result<(), InputError> {
        FailInput::parse(input).map(drop)
    }

    async fn run(&self, input: Value, _ctx: Ctx) -> Result<Value, HandlerError> {
        let input = FailInput::parse(&input)?;
        Err(HandlerError::Failed(input.message))
    }
}
