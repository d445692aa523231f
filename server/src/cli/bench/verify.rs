//! What the bench sends and what it accepts back: the input of each task,
//! and the outcome the server's own kind code says that input must have.
//!
//! `echo` must return its input; `primes`, `sha256` and `sleep` must return
//! exactly what [`crate::kinds`] computes for the input; `fail` must fail
//! with `task_failed` and the input's message. Of a kind this binary does not
//! know, only the status (`succeeded`) is checked.

use app::builtin::{self, FailInput, PrimesInput, Sha256Input, SleepInput};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::fmt::Write as _;

use super::wire::Finished;
use crate::kinds::{Ctx, count_primes, iterated_sha256};

/// The `text` of the default `echo` input, as in the Node load generator.
const ECHO_TEXT: &str = "hello";

/// Why a workload cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("invalid --input for {kind}: {message}")]
    Input { kind: String, message: String },
    #[error("the expected output of {kind} could not be computed")]
    Expected { kind: String },
}

/// The tasks of a run: one kind, their inputs, what their outcome must be.
#[derive(Debug)]
pub struct Workload {
    kind: String,
    kind_json: String,
    inputs: Inputs,
    expect: Expect,
    /// With `--keys`: the run whose tasks each get a key.
    keys: Option<u64>,
}

#[derive(Debug)]
enum Inputs {
    /// `{"seq":N,"text":"hello"}`: unique per task, so a result handed to
    /// the wrong task is caught.
    Numbered,
    /// The same input for every task.
    Fixed { text: String, value: Value },
}

#[derive(Debug)]
enum Expect {
    /// Succeeded, with the task's own input as output.
    Echo,
    /// Succeeded with exactly this output.
    Output { text: String, value: Value },
    /// Failed with `task_failed` and this message.
    Failure { message: String },
    /// Succeeded; the output is not checked.
    Success,
}

/// How one finished task compares with what was expected.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The expected status with the wrong output (or message).
    Wrong,
    /// Another status: the error's code, or `status_<status>`.
    Error(String),
}

impl Workload {
    /// The workload for `kind`, with `input` for every task, or the kind's
    /// default input. May compute for a while (a large `primes` limit).
    pub fn new(kind: &str, input: Option<Value>) -> Result<Self, WorkloadError> {
        let inputs = match input {
            None if kind == builtin::ECHO => Inputs::Numbered,
            input => {
                let value = input.unwrap_or_else(|| default_input(kind));
                Inputs::Fixed {
                    text: value.to_string(),
                    value,
                }
            }
        };
        let expect = match &inputs {
            Inputs::Numbered => Expect::Echo,
            Inputs::Fixed { value, .. } => expect_for(kind, value)?,
        };
        Ok(Self {
            kind: kind.to_owned(),
            kind_json: Value::from(kind).to_string(),
            inputs,
            expect,
            keys: None,
        })
    }

    /// Gives every task of the run an idempotency key of its own.
    pub fn key_every_task(&mut self, run: u64) {
        self.keys = Some(run);
    }

    /// What follows task `seq`'s input in its spec, as JSON text: its
    /// `key` with `--keys`, else nothing.
    pub fn spec_tail<'a>(&self, seq: u64, buf: &'a mut String) -> &'a str {
        buf.clear();
        if let Some(run) = self.keys {
            let _ = write!(buf, r#","key":"bench-{run:x}-{seq}""#);
        }
        buf
    }

    /// The kind's name.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The kind as a JSON string.
    pub fn kind_json(&self) -> &str {
        &self.kind_json
    }

    /// The input of task `seq` as JSON text (written into `buf` if it is
    /// made per task).
    pub fn input<'a>(&'a self, seq: u64, buf: &'a mut String) -> &'a str {
        match &self.inputs {
            Inputs::Fixed { text, .. } => text,
            Inputs::Numbered => {
                buf.clear();
                let _ = write!(buf, r#"{{"seq":{seq},"text":"{ECHO_TEXT}"}}"#);
                buf
            }
        }
    }

    /// Checks the finished task `seq`; `scratch` is reused between calls.
    pub fn verify(&self, seq: u64, task: &Finished<'_>, scratch: &mut String) -> Verdict {
        let wanted = match self.expect {
            Expect::Failure { .. } => "failed",
            _ => "succeeded",
        };
        if task.status != wanted {
            return Verdict::Error(error_code(task));
        }
        let ok = match &self.expect {
            Expect::Success => true,
            Expect::Output { text, value } => same_json(task.output, text, || value.clone()),
            Expect::Echo => {
                let text = self.input(seq, scratch);
                same_json(task.output, text, || json!({"seq": seq, "text": ECHO_TEXT}))
            }
            Expect::Failure { message } => match &task.error {
                Some(e) if e.code == app::ErrorCode::TaskFailed.as_str() => e.message == *message,
                _ => return Verdict::Error(error_code(task)),
            },
        };
        if ok { Verdict::Ok } else { Verdict::Wrong }
    }
}

/// Whether `output` is the JSON `text` (whose value is `value()`): the same
/// text, or else the same value (the server may space or order keys its
/// own way).
fn same_json(output: Option<&RawValue>, text: &str, value: impl FnOnce() -> Value) -> bool {
    let Some(output) = output else {
        return false;
    };
    output.get() == text
        || serde_json::from_str::<Value>(output.get()).is_ok_and(|got| got == value())
}

/// The code an unexpected outcome is counted under.
fn error_code(task: &Finished<'_>) -> String {
    match &task.error {
        Some(e) => e.code.clone().into_owned(),
        None => format!("status_{}", task.status),
    }
}

/// The input the Node load generator uses for each kind.
fn default_input(kind: &str) -> Value {
    match kind {
        builtin::SLEEP => json!({"ms": 10}),
        builtin::PRIMES => json!({"limit": 1_000_000}),
        builtin::SHA256 => json!({"data": "taskwire", "rounds": 1000}),
        builtin::FAIL => json!({"message": "boom"}),
        _ => Value::Null,
    }
}

/// The expected outcome of `kind` for `input`, by the server's own code.
fn expect_for(kind: &str, input: &Value) -> Result<Expect, WorkloadError> {
    let invalid = |e: app::InputError| WorkloadError::Input {
        kind: kind.to_owned(),
        message: e.message,
    };
    let output = |value: Value| Expect::Output {
        text: value.to_string(),
        value,
    };
    Ok(match kind {
        builtin::ECHO => output(input.clone()),
        builtin::SLEEP => {
            output(json!({"slept_ms": SleepInput::parse(input).map_err(invalid)?.ms}))
        }
        builtin::PRIMES => {
            let limit = PrimesInput::parse(input).map_err(invalid)?.limit;
            let count = count_primes(limit, &Ctx::detached()).map_err(|_| expected(kind))?;
            output(json!({"count": count}))
        }
        builtin::SHA256 => {
            let input = Sha256Input::parse(input).map_err(invalid)?;
            let hex = iterated_sha256(input.data.as_bytes(), input.rounds, &Ctx::detached())
                .map_err(|_| expected(kind))?;
            output(json!({"hex": hex}))
        }
        builtin::FAIL => Expect::Failure {
            message: FailInput::parse(input).map_err(invalid)?.message,
        },
        _ => Expect::Success,
    })
}

fn expected(kind: &str) -> WorkloadError {
    WorkloadError::Expected {
        kind: kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::cli::bench::wire::ErrorRef;

    fn finished<'a>(status: &'a str, output: Option<&'a RawValue>) -> Finished<'a> {
        Finished {
            id: Cow::Borrowed("t"),
            status: Cow::Borrowed(status),
            output,
            error: None,
        }
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn check(w: &Workload, seq: u64, status: &str, output: &str) -> Verdict {
        let output = raw(output);
        w.verify(seq, &finished(status, Some(&output)), &mut String::new())
    }

    #[test]
    fn keys_are_per_run_and_per_task() {
        let mut w = Workload::new("echo", None).unwrap();
        let mut buf = String::new();
        assert_eq!(w.spec_tail(7, &mut buf), "");
        w.key_every_task(0xab);
        assert_eq!(w.spec_tail(7, &mut buf), r#","key":"bench-ab-7""#);
    }

    #[test]
    fn echo_must_return_this_tasks_input() {
        let w = Workload::new("echo", None).unwrap();
        let mut buf = String::new();
        assert_eq!(w.input(7, &mut buf), r#"{"seq":7,"text":"hello"}"#);
        assert_eq!(
            check(&w, 7, "succeeded", r#"{"seq":7,"text":"hello"}"#),
            Verdict::Ok
        );
        // Spaced and reordered is the same JSON.
        assert_eq!(
            check(&w, 7, "succeeded", r#"{ "text": "hello", "seq": 7 }"#),
            Verdict::Ok
        );
        // Another task's output, or a changed one, is wrong.
        assert_eq!(
            check(&w, 7, "succeeded", r#"{"seq":8,"text":"hello"}"#),
            Verdict::Wrong
        );
        assert_eq!(
            check(&w, 7, "succeeded", r#"{"seq":7,"text":"hellO"}"#),
            Verdict::Wrong
        );
        assert_eq!(check(&w, 7, "succeeded", "null"), Verdict::Wrong);
        assert_eq!(
            w.verify(7, &finished("succeeded", None), &mut buf),
            Verdict::Wrong
        );
        assert_eq!(
            check(&w, 7, "cancelled", "null"),
            Verdict::Error("status_cancelled".into())
        );
    }

    #[test]
    fn echo_of_a_fixed_input() {
        let w = Workload::new("echo", Some(json!({"a": [1, 2], "b": null}))).unwrap();
        assert_eq!(w.input(1, &mut String::new()), r#"{"a":[1,2],"b":null}"#);
        assert_eq!(
            check(&w, 1, "succeeded", r#"{"b":null,"a":[1,2]}"#),
            Verdict::Ok
        );
        assert_eq!(
            check(&w, 1, "succeeded", r#"{"a":[2,1],"b":null}"#),
            Verdict::Wrong
        );
    }

    #[test]
    fn computed_kinds_use_the_servers_code() {
        let w = Workload::new("primes", Some(json!({"limit": 1000}))).unwrap();
        assert_eq!(check(&w, 0, "succeeded", r#"{"count":168}"#), Verdict::Ok);
        assert_eq!(
            check(&w, 0, "succeeded", r#"{"count":169}"#),
            Verdict::Wrong
        );

        let w = Workload::new("sha256", Some(json!({"data": "abc", "rounds": 1}))).unwrap();
        let abc = r#"{"hex":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}"#;
        assert_eq!(check(&w, 0, "succeeded", abc), Verdict::Ok);
        let w = Workload::new("sha256", Some(json!({"data": "abc", "rounds": 2}))).unwrap();
        assert_eq!(check(&w, 0, "succeeded", abc), Verdict::Wrong);

        let w = Workload::new("sleep", None).unwrap();
        assert_eq!(check(&w, 0, "succeeded", r#"{"slept_ms":10}"#), Verdict::Ok);
        assert_eq!(
            check(&w, 0, "succeeded", r#"{"slept_ms":9}"#),
            Verdict::Wrong
        );
    }

    #[test]
    fn fail_must_fail_with_its_message() {
        let w = Workload::new("fail", None).unwrap();
        let failed = |code: &'static str, message: &'static str| Finished {
            error: Some(ErrorRef {
                code: code.into(),
                message: message.into(),
            }),
            ..finished("failed", None)
        };
        let mut s = String::new();
        assert_eq!(
            w.verify(0, &failed("task_failed", "boom"), &mut s),
            Verdict::Ok
        );
        assert_eq!(
            w.verify(0, &failed("task_failed", "bam"), &mut s),
            Verdict::Wrong
        );
        assert_eq!(
            w.verify(0, &failed("worker_lost", "gone"), &mut s),
            Verdict::Error("worker_lost".into())
        );
        assert_eq!(
            check(&w, 0, "succeeded", "null"),
            Verdict::Error("status_succeeded".into())
        );
    }

    #[test]
    fn unknown_kinds_only_need_to_succeed() {
        let w = Workload::new("resize", Some(json!({"w": 10}))).unwrap();
        assert_eq!(w.kind_json(), r#""resize""#);
        assert_eq!(
            check(&w, 0, "succeeded", r#"{"anything":true}"#),
            Verdict::Ok
        );
        assert_eq!(
            check(&w, 0, "timed_out", "null"),
            Verdict::Error("status_timed_out".into())
        );
    }

    #[test]
    fn invalid_inputs_are_refused_before_the_run() {
        let err = Workload::new("primes", Some(json!({"limit": -1}))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid --input for primes: limit"),
            "{err}"
        );
        assert!(Workload::new("sha256", Some(json!("x"))).is_err());
    }
}
