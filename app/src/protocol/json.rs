//! [`Json`]: a JSON value held as its text, for the payloads a task carries
//! (input and output) but the server never looks into once it has checked
//! them.
//!
//! A parsed `serde_json::Value` object costs a map, a node per entry and a
//! string per key: about 300 bytes for `{"seq":1,"text":"hello"}`, ten times
//! its 24 bytes of text. A server holding a million queued tasks holds a
//! million inputs, and sends each one on (to a worker, in a snapshot, to the
//! store) as text anyway, so it keeps the text: written out as is, parsed
//! only where a value is needed.

use super::*;

use serde_json::value::RawValue;

/// A JSON value kept as its (valid) text. It is written out verbatim and
/// read from any serde_json input; compare with `==` (same JSON value,
/// whatever the spacing) or [`Json::to_value`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(Box<RawValue>);

impl Json {
    /// `null`.
    pub fn null() -> Self {
        Self(RawValue::NULL.to_owned())
    }

    /// The compact text of `value`.
    pub fn from_value(value: &Value) -> Self {
        // A `Value` always serializes: the `null` fallback is never taken.
        serde_json::value::to_raw_value(value).map_or_else(|_| Self::null(), Self)
    }

    /// `text` as it is, if it is one valid JSON value.
    pub fn from_text(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// The text, as received or as written by [`Json::from_value`].
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The value, parsed.
    pub fn to_value(&self) -> Value {
        // Valid JSON by construction: the `null` fallback is never taken.
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }

    /// Parses the value as a `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }

    pub fn is_null(&self) -> bool {
        self.get() == "null"
    }

    /// Bytes held: the text (its box holds nothing else).
    pub fn heap_bytes(&self) -> usize {
        self.get().len()
    }
}

impl Default for Json {
    fn default() -> Self {
        Self::null()
    }
}

impl From<Value> for Json {
    fn from(value: Value) -> Self {
        Self::from_value(&value)
    }
}

impl From<&Value> for Json {
    fn from(value: &Value) -> Self {
        Self::from_value(value)
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// The same JSON value: equal text, or equal once parsed (a store may
/// space it differently).
impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

impl PartialEq<Value> for Json {
    fn eq(&self, other: &Value) -> bool {
        self.to_value() == *other
    }
}

impl PartialEq<Json> for Value {
    fn eq(&self, other: &Json) -> bool {
        other == self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_text_and_compares_values() {
        let a = Json::from_value(&json!({"seq": 1, "text": "hello"}));
        assert_eq!(a.get(), r#"{"seq":1,"text":"hello"}"#);
        let spaced: Json = serde_json::from_str(r#"{"seq": 1, "text": "hello"}"#).unwrap();
        assert_eq!(spaced.get(), r#"{"seq": 1, "text": "hello"}"#);
        assert_eq!(a, spaced);
        assert_eq!(a, json!({"text": "hello", "seq": 1}));
        assert_ne!(a, Json::null());
        assert!(Json::default().is_null());
        assert!(Json::from_text("{oops".to_owned()).is_err());
    }

    #[test]
    fn written_verbatim_inside_other_values() {
        #[derive(Serialize, Deserialize)]
        struct Holder {
            input: Json,
        }
        let h: Holder = serde_json::from_str(r#"{"input":[1, {"a":null}]}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"input":[1, {"a":null}]}"#
        );
        // Through a `Value` both ways, as acks and stores do.
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v, json!({"input": [1, {"a": null}]}));
        let back: Holder = serde_json::from_value(v).unwrap();
        assert_eq!(back.input, json!([1, {"a": null}]));
    }
}
