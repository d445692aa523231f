//! Ids and times: `TaskId`, `WorkerId`, `Timestamp`.

use super::*;

/// A task's id: a UUID v7 assigned by the server, so ids sort by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub Uuid);

impl From<Uuid> for TaskId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl TaskId {
    /// The id as the room name its subscribers join.
    pub fn room(&self) -> String {
        // What `Display` writes, without the formatting machinery: every
        // push to a task's room names it.
        let mut buf = Uuid::encode_buffer();
        self.0.hyphenated().encode_lower(&mut buf).to_owned()
    }

    /// Reads the `task_id` field of a client payload.
    ///
    /// A missing or non-string id is `invalid_payload`; a string that is not
    /// a UUID is `not_found` (no task can have it).
    pub fn from_payload(payload: &Value) -> Result<Self, ErrorBody> {
        let raw = match payload.get("task_id") {
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(
                    ErrorBody::invalid("task_id must be a string").with_field(Field::TaskId)
                );
            }
            None => {
                return Err(ErrorBody::invalid("missing field task_id").with_field(Field::TaskId));
            }
        };
        raw.parse()
            .map_err(|_| ErrorBody::new(ErrorCode::NotFound, format!("no task {raw}")))
    }
}

/// `{task_id}`: the payload of `subscribe`, `unsubscribe` and `cancel`, and
/// of the `cancel` a remote worker gets. The server reads it with
/// [`TaskId::from_payload`] instead, to tell a bad id from an unknown one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    pub task_id: TaskId,
}

impl From<TaskId> for TaskRef {
    fn from(task_id: TaskId) -> Self {
        Self { task_id }
    }
}

/// A worker's id: `local-N` for the server's own processes, the connect
/// name for remote ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub Arc<str>);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WorkerId {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

impl From<String> for WorkerId {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

/// A point in time, on the wire as RFC 3339 UTC with milliseconds
/// (`2026-11-25T19:00:00.000Z`), the format `Date.toISOString()` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now())
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The time `ms` milliseconds after this one (saturating).
    pub fn plus_millis(&self, ms: u64) -> Self {
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        Self(
            self.0
                .checked_add_signed(chrono::TimeDelta::milliseconds(ms))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// The time `ms` milliseconds since the Unix epoch, if representable.
    pub fn from_millis(ms: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(ms).map(Self)
    }
}

impl Timestamp {
    /// The wire text written into `buf`, without chrono's formatter or an
    /// allocation: every task push carries up to four timestamps. `None`
    /// for a year outside 0–9999 or a leap second, which chrono writes.
    fn write_wire<'b>(&self, buf: &'b mut [u8; 24]) -> Option<&'b str> {
        use chrono::{Datelike, Timelike};
        let (t, year) = (&self.0, self.0.year());
        let nanos = t.nanosecond();
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return None;
        }
        let digits = |buf: &mut [u8; 24], at: usize, width: u32, value: u32| {
            for i in 0..width {
                let place = 10u32.pow(width - 1 - i);
                // A digit: always below 10, so the cast cannot truncate.
                buf[at + i as usize] = b'0' + (value / place % 10) as u8;
            }
        };
        *buf = *b"0000-00-00T00:00:00.000Z";
        digits(buf, 0, 4, year.unsigned_abs());
        digits(buf, 5, 2, t.month());
        digits(buf, 8, 2, t.day());
        digits(buf, 11, 2, t.hour());
        digits(buf, 14, 2, t.minute());
        digits(buf, 17, 2, t.second());
        digits(buf, 20, 3, nanos / 1_000_000);
        std::str::from_utf8(buf).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.write_wire(&mut [0; 24]) {
            Some(text) => f.write_str(text),
            None => f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.write_wire(&mut [0; 24]) {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Self(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}
