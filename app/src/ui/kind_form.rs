//! The submit form's fields for each built-in kind's input: what they hold,
//! their defaults and hints, and the input object they make. Only the UI
//! uses them; the rules they mirror are in [`builtin`].

use serde_json::{Map, Value};

use crate::protocol::builtin::{self, MAX_PRIMES_LIMIT, MAX_SHA256_ROUNDS, MAX_SLEEP_MS};

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
pub struct FormField {
    /// The key in the input object.
    pub name: &'static str,
    pub ty: FieldType,
    /// What a new form starts with.
    pub default: &'static str,
    /// One line of help.
    pub hint: &'static str,
}

const SLEEP_FIELDS: [FormField; 1] = [FormField {
    name: "ms",
    ty: FieldType::Integer {
        min: 0,
        max: MAX_SLEEP_MS,
    },
    default: "2000",
    hint: "How long to sleep, in milliseconds.",
}];
const PRIMES_FIELDS: [FormField; 1] = [FormField {
    name: "limit",
    ty: FieldType::Integer {
        min: 0,
        max: MAX_PRIMES_LIMIT,
    },
    default: "1000000",
    hint: "Counts the primes up to this number.",
}];
const SHA256_FIELDS: [FormField; 2] = [
    FormField {
        name: "data",
        ty: FieldType::Text,
        default: "hello",
        hint: "Text hashed first, as UTF-8.",
    },
    FormField {
        name: "rounds",
        ty: FieldType::Integer {
            min: 1,
            max: MAX_SHA256_ROUNDS,
        },
        default: "1",
        hint: "How many times SHA-256 is applied.",
    },
];
const FAIL_FIELDS: [FormField; 1] = [FormField {
    name: "message",
    ty: FieldType::Text,
    default: "it failed on purpose",
    hint: "The error message the task fails with.",
}];

/// The input fields of a built-in kind, or `None` when its input is free
/// JSON (`echo`) or the kind is not built in: edit those as raw JSON.
pub fn fields(kind: &str) -> Option<&'static [FormField]> {
    Some(match kind {
        builtin::SLEEP => &SLEEP_FIELDS,
        builtin::PRIMES => &PRIMES_FIELDS,
        builtin::SHA256 => &SHA256_FIELDS,
        builtin::FAIL => &FAIL_FIELDS,
        _ => return None,
    })
}

/// Builds an input object from the form's text for each of a kind's
/// [`fields`]; a field's own problem is reported as `(name, message)`.
pub fn input_from_fields(
    fields: &[FormField],
    text_of: impl Fn(&FormField) -> String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_fields_make_valid_inputs() {
        for kind in builtin::KINDS {
            let Some(fields) = fields(kind) else {
                assert_eq!(kind, builtin::ECHO, "only echo is free JSON");
                continue;
            };
            let input = input_from_fields(fields, |f| f.default.to_owned()).unwrap();
            assert_eq!(
                builtin::validate(kind, &input),
                Some(Ok(())),
                "{kind}: {input}"
            );
        }
        let primes = fields(builtin::PRIMES).unwrap();
        assert_eq!(
            input_from_fields(primes, |_| "12x".into()),
            Err(("limit", "limit must be an integer 0..=10000000000".into()))
        );
    }
}
