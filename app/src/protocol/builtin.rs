//! Built-in kinds: their inputs, validation and outputs, shared by the
//! server (which runs them) and the browser (which builds their forms).

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

fn object<'a>(kind: &str, input: &'a Value) -> Result<&'a Map<String, Value>, String> {
    input
        .as_object()
        .ok_or_else(|| format!("{kind} input must be a JSON object"))
}

fn integer(
    obj: &Map<String, Value>,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, String> {
    obj.get(key)
        .and_then(Value::as_u64)
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "{key} must be an integer {}..={}",
                range.start(),
                range.end()
            )
        })
}

fn string(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    obj.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{key} must be a string"))
}

impl SleepInput {
    pub fn parse(input: &Value) -> Result<Self, String> {
        let obj = object(SLEEP, input)?;
        Ok(Self {
            ms: integer(obj, "ms", 0..=MAX_SLEEP_MS)?,
        })
    }
}

impl PrimesInput {
    pub fn parse(input: &Value) -> Result<Self, String> {
        let obj = object(PRIMES, input)?;
        Ok(Self {
            limit: integer(obj, "limit", 0..=MAX_PRIMES_LIMIT)?,
        })
    }
}

impl Sha256Input {
    pub fn parse(input: &Value) -> Result<Self, String> {
        let obj = object(SHA256, input)?;
        Ok(Self {
            data: string(obj, "data")?,
            rounds: integer(obj, "rounds", 1..=MAX_SHA256_ROUNDS)?,
        })
    }
}

impl FailInput {
    pub fn parse(input: &Value) -> Result<Self, String> {
        let obj = object(FAIL, input)?;
        Ok(Self {
            message: string(obj, "message")?,
        })
    }
}

/// Checks the input of a built-in kind; `None` when `kind` is not one.
pub fn validate(kind: &str, input: &Value) -> Option<Result<(), String>> {
    Some(match kind {
        ECHO => Ok(()),
        SLEEP => SleepInput::parse(input).map(drop),
        PRIMES => PrimesInput::parse(input).map(drop),
        SHA256 => Sha256Input::parse(input).map(drop),
        FAIL => FailInput::parse(input).map(drop),
        _ => return None,
    })
}

/// What a form field of a built-in kind's input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A JSON integer within `min..=max`.
    Integer { min: u64, max: u64 },
    /// A JSON string.
    Text,
}

/// One field of a built-in kind's input, for forms (the web UI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The key in the input object.
    pub name: &'static str,
    pub ty: FieldType,
    /// What a new form starts with.
    pub default: &'static str,
    /// One line of help.
    pub hint: &'static str,
}

const SLEEP_FIELDS: [Field; 1] = [Field {
    name: "ms",
    ty: FieldType::Integer {
        min: 0,
        max: MAX_SLEEP_MS,
    },
    default: "2000",
    hint: "How long to sleep, in milliseconds.",
}];
const PRIMES_FIELDS: [Field; 1] = [Field {
    name: "limit",
    ty: FieldType::Integer {
        min: 0,
        max: MAX_PRIMES_LIMIT,
    },
    default: "1000000",
    hint: "Counts the primes up to this number.",
}];
const SHA256_FIELDS: [Field; 2] = [
    Field {
        name: "data",
        ty: FieldType::Text,
        default: "hello",
        hint: "Text hashed first, as UTF-8.",
    },
    Field {
        name: "rounds",
        ty: FieldType::Integer {
            min: 1,
            max: MAX_SHA256_ROUNDS,
        },
        default: "1",
        hint: "How many times SHA-256 is applied.",
    },
];
const FAIL_FIELDS: [Field; 1] = [Field {
    name: "message",
    ty: FieldType::Text,
    default: "it failed on purpose",
    hint: "The error message the task fails with.",
}];

/// The input fields of a built-in kind, or `None` when its input is free
/// JSON (`echo`) or the kind is not built in: edit those as raw JSON.
pub fn fields(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        SLEEP => &SLEEP_FIELDS,
        PRIMES => &PRIMES_FIELDS,
        SHA256 => &SHA256_FIELDS,
        FAIL => &FAIL_FIELDS,
        _ => return None,
    })
}

/// Builds an input object from the form's text for each of a kind's
/// [`fields`]; a field's own problem is reported as `(name, message)`.
pub fn input_from_fields(
    fields: &[Field],
    text_of: impl Fn(&Field) -> String,
) -> Result<Value, (&'static str, String)> {
    let mut obj = Map::new();
    for field in fields {
        let text = text_of(field);
        let value = match field.ty {
            FieldType::Text => Value::String(text),
            FieldType::Integer { min, max } => match text.trim().parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    return Err((
                        field.name,
                        format!("{} must be an integer {min}..={max}", field.name),
                    ));
                }
            },
        };
        obj.insert(field.name.to_owned(), value);
    }
    Ok(Value::Object(obj))
}
