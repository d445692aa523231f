//! Built-in kinds: their names, inputs and validation, shared by the
//! server (which runs them) and the browser (whose forms build their inputs).

use super::*;

pub const ECHO: &str = "echo";
pub const SLEEP: &str = "sleep";
pub const PRIMES: &str = "primes";
pub const SHA256: &str = "sha256";
pub const FAIL: &str = "fail";
/// Every built-in kind.
pub const KINDS: [&str; 5] = [ECHO, SLEEP, PRIMES, SHA256, FAIL];

pub const MAX_SLEEP_MS: u64 = 3_600_000;
pub const MAX_PRIMES_LIMIT: u64 = 10_000_000_000;
pub const MAX_SHA256_ROUNDS: u64 = 10_000_000;

/// `sleep` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SleepInput {
    pub ms: u64,
}

/// `primes` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimesInput {
    pub limit: u64,
}

/// `sha256` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256Input {
    pub data: String,
    pub rounds: u64,
}

/// `fail` input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailInput {
    pub message: String,
}

fn object<'a>(kind: &str, input: &'a Value) -> Result<&'a Map<String, Value>, InputError> {
    input
        .as_object()
        .ok_or_else(|| InputError::new(format!("{kind} input must be a JSON object")))
}

fn integer(
    obj: &Map<String, Value>,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, InputError> {
    obj.get(key)
        .and_then(Value::as_u64)
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            InputError::at(
                key,
                format!(
                    "{key} must be an integer {}..={}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

fn string(obj: &Map<String, Value>, key: &str) -> Result<String, InputError> {
    obj.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| InputError::at(key, format!("{key} must be a string")))
}

impl SleepInput {
    pub fn parse(input: &Value) -> Result<Self, InputError> {
        let obj = object(SLEEP, input)?;
        Ok(Self {
            ms: integer(obj, "ms", 0..=MAX_SLEEP_MS)?,
        })
    }
}

impl PrimesInput {
    pub fn parse(input: &Value) -> Result<Self, InputError> {
        let obj = object(PRIMES, input)?;
        Ok(Self {
            limit: integer(obj, "limit", 0..=MAX_PRIMES_LIMIT)?,
        })
    }
}

impl Sha256Input {
    pub fn parse(input: &Value) -> Result<Self, InputError> {
        let obj = object(SHA256, input)?;
        Ok(Self {
            data: string(obj, "data")?,
            rounds: integer(obj, "rounds", 1..=MAX_SHA256_ROUNDS)?,
        })
    }
}

impl FailInput {
    pub fn parse(input: &Value) -> Result<Self, InputError> {
        let obj = object(FAIL, input)?;
        Ok(Self {
            message: string(obj, "message")?,
        })
    }
}

/// Checks the input of a built-in kind; `None` when `kind` is not one.
pub fn validate(kind: &str, input: &Value) -> Option<Result<(), InputError>> {
    Some(match kind {
        ECHO => Ok(()),
        SLEEP => SleepInput::parse(input).map(drop),
        PRIMES => PrimesInput::parse(input).map(drop),
        SHA256 => Sha256Input::parse(input).map(drop),
        FAIL => FailInput::parse(input).map(drop),
        _ => return None,
    })
}
