//! A Taskwire binary with one more kind, `upper`, next to the built-ins.
//!
//! ```sh
//! cargo run --example custom_kind -- serve
//! cargo run --example custom_kind -- submit --kind upper --input '"hello"' --wait
//! ```
//!
//! The worker processes are spawned from this same binary, so they run
//! `upper` too.

use std::process::ExitCode;

use serde_json::Value;
use taskwire::{Class, Ctx, Handler, HandlerError, InputError, Registry};

/// Upper-cases a string.
struct Upper;

#[async_trait::async_trait]
impl Handler for Upper {
    fn kind(&self) -> &str {
        "upper"
    }

    fn class(&self) -> Class {
        Class::Io
    }

    fn validate(&self, input: &Value) -> Result<(), InputError> {
        input
            .as_str()
            .map(drop)
            .ok_or_else(|| "input must be a string".into())
    }

    async fn run(&self, input: Value, ctx: Ctx) -> Result<Value, HandlerError> {
        ctx.check()?;
        let text = input
            .as_str()
            .ok_or_else(|| HandlerError::Failed("input must be a string".into()))?;
        Ok(Value::String(text.to_uppercase()))
    }
}

fn main() -> ExitCode {
    taskwire::cli::report::main_or_report(Registry::builtin().with(Upper))
}
