//! How the command line ends on an error: one line on stderr,
//! `taskwire: <what failed>: <why>`, each cause once (an error whose text
//! already holds its cause's is not followed by it again), and the
//! backtrace only when `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asks.

use std::backtrace::BacktraceStatus;
use std::process::ExitCode;

use crate::kinds::Registry;

/// Runs the command line (see [`super::main_with`]) and turns an error
/// into its line and a failing exit status.
pub fn main_or_report(registry: Registry) -> ExitCode {
    match super::main_with(registry) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("taskwire: {}", one_line(&e));
            if e.backtrace().status() == BacktraceStatus::Captured {
                eprintln!("{}", e.backtrace());
            }
            ExitCode::FAILURE
        }
    }
}

/// `e` and its causes on one line, joined by `: `, leaving out a cause
/// whose text the line already holds and line breaks inside a message.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[derive(Debug, thiserror::Error)]
    #[error("socket.io: {0}")]
    struct Wrapper(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused (os error 111)")]
    struct Inner;

    #[test]
    fn causes_are_joined_once_each() {
        let e = Err::<(), _>(Wrapper(Inner))
            .context("cannot connect to http://127.0.0.1:9")
            .unwrap_err();
        assert_eq!(
            one_line(&e),
            "cannot connect to http://127.0.0.1:9: socket.io: connection refused (os error 111)"
        );
        let e = anyhow::anyhow!("first\nsecond").context("outer");
        assert_eq!(one_line(&e), "outer: first second");
    }
}
