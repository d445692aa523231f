//! `echo`: returns its input unchanged (keys in the same order).

use app::InputError;
use async_trait::async_trait;
use serde_json::Value;

use super::{Class, Ctx, Handler, HandlerError};

/// The `echo` kind.
pub struct Echo;

#[async_trait]
impl Handler for Echo {
    fn kind(&self) -> &str {
        app::builtin::ECHO
    }

    fn class(&self) -> Class {
        Class::Io
    }

    fn validate(&self, _input: &Value) -> Result<(), InputError> {
        Ok(())
    }

    async fn run(&self, input: Value, _ctx: Ctx) -> Result<Value, HandlerError> {
        Ok(input)
    }
}
