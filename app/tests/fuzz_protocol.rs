//! Property-based fuzzing of the protocol's validators: whatever JSON a
//! client sends, parsing never panics, an accepted value respects the
//! documented ranges, and a refusal is always `invalid_payload` (or
//! `not_found` for a task id that is a string but not a UUID).
#![cfg(not(target_arch = "wasm32"))]

use app::builtin::{
    self, FailInput, MAX_PRIMES_LIMIT, MAX_SHA256_ROUNDS, MAX_SLEEP_MS, PrimesInput, Sha256Input,
    SleepInput,
};
use app::{
    DEFAULT_MAX_ATTEMPTS, ErrorBody, ErrorCode, MAX_ATTEMPTS_LIMIT, MAX_BACKOFF_MS, MAX_BATCH,
    MAX_CONCURRENCY_LIMIT, MAX_DELAY_MS, MAX_KIND_LEN, MAX_TIMEOUT_MS, MAX_WORKER_CONCURRENCY,
    MAX_WORKER_NAME_LEN, TaskId, TaskSpec, WorkerHello, parse_batch,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Number, Value};

/// Bounded so the whole file runs in a few seconds in a debug build; no
/// regression files are written into the repository.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every field name the validators look at.
const FIELDS: [&str; 16] = [
    "kind",
    "input",
    "priority",
    "timeout_ms",
    "max_attempts",
    "tasks",
    "task_id",
    "ms",
    "limit",
    "data",
    "rounds",
    "message",
    "name",
    "kinds",
    "concurrency",
    "token",
];

/// A UUID every property may use as a real task id.
const UUID: &str = "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40";

// ---------------------------------------------------------------- strategies

fn f64_value(f: f64) -> Value {
    // NaN and infinities are not JSON; serde_json turns them into null too.
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Integers and floats, biased to the edges of every range in the protocol.
fn number() -> impl Strategy<Value = Value> {
    let edges_i64 = prop::sample::select(vec![
        i64::MIN,
        i64::from(i32::MIN) - 1,
        i64::from(i32::MIN),
        -1,
        0,
        1,
        2,
        3,
        64,
        65,
        100,
        101,
        1024,
        1025,
        i64::from(i32::MAX),
        i64::from(i32::MAX) + 1,
        86_400_000,
        86_400_001,
        3_600_000,
        3_600_001,
        10_000_000,
        10_000_001,
        i64::MAX,
    ]);
    let edges_u64 = prop::sample::select(vec![
        10_000_000_000,
        10_000_000_001,
        u64::from(u32::MAX),
        u64::from(u32::MAX) + 1,
        i64::MAX as u64 + 1,
        u64::MAX - 1,
        u64::MAX,
    ]);
    let edges_f64 = prop::sample::select(vec![
        0.0,
        -0.0,
        0.5,
        1.0,
        1.5,
        -1.0,
        100.0,
        1e19,
        1e300,
        -1e300,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        f64::NAN,
        f64::INFINITY,
    ]);
    prop_oneof![
        4 => edges_i64.prop_map(Value::from),
        2 => edges_u64.prop_map(Value::from),
        2 => edges_f64.prop_map(f64_value),
        2 => (0i64..2000).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(f64_value),
    ]
}

/// Strings: empty, at and past the length limits, multi-byte, control
/// characters, kind names, UUIDs in every spelling `uuid` knows, random.
fn string() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        String::new(),
        " ".into(),
        "x".repeat(MAX_KIND_LEN),
        "x".repeat(MAX_KIND_LEN + 1),
        "é".repeat(MAX_KIND_LEN / 2),
        "é".repeat(MAX_KIND_LEN / 2 + 1),
        "🦀".repeat(16),
        "🦀".repeat(17),
        "\u{0}".into(),
        "\u{202e}rtl".into(),
        "x".repeat(10_000),
        "echo".into(),
        "sleep".into(),
        "primes".into(),
        "sha256".into(),
        "fail".into(),
        "-1".into(),
        "1".into(),
        "null".into(),
        UUID.into(),
        UUID.to_uppercase(),
        UUID.replace('-', ""),
        format!("{{{UUID}}}"),
        format!("urn:uuid:{UUID}"),
        "00000000-0000-0000-0000-000000000000".into(),
        "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a4".into(),
        "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a400".into(),
        "zz".into(),
    ]);
    prop_oneof![
        3 => fixed,
        2 => "[a-z0-9_]{0,70}",
        2 => any::<String>(),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => "\\PC{0,80}",
    ]
}

/// An object key: mostly a real field name, sometimes anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS.to_vec()).prop_map(String::from),
        1 => string(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        3 => string().prop_map(Value::String),
    ]
}

/// Arbitrary JSON trees whose objects mostly use the protocol's own keys.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A name the validators accept as a kind: a built-in one or 1 to 64
/// bytes of anything.
fn kind_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(builtin::KINDS.to_vec()).prop_map(String::from),
        1 => "[a-z0-9_.-]{1,64}",
        // Multi-byte names: 16 characters of at most 4 bytes each.
        1 => "\\PC{1,16}",
    ]
}

/// A value for field `key`: often in its valid range, else an edge number,
/// a string, null, or any JSON at all.
fn field_value(key: &str) -> BoxedStrategy<Value> {
    let any_value = prop_oneof![
        3 => number(),
        1 => string().prop_map(Value::String),
        1 => Just(Value::Null),
        2 => json(),
    ];
    let range = |r: std::ops::RangeInclusive<u64>| r.prop_map(Value::from).boxed();
    let valid = match key {
        "kind" => kind_name().prop_map(Value::String).boxed(),
        "name" | "data" | "message" | "token" => string().prop_map(Value::String).boxed(),
        "kinds" => prop::collection::vec(
            prop_oneof![3 => kind_name(), 1 => string()].prop_map(Value::String),
            0..4,
        )
        .prop_map(Value::Array)
        .boxed(),
        "input" => json().boxed(),
        "priority" => any::<i32>().prop_map(Value::from).boxed(),
        "timeout_ms" => range(1..=MAX_TIMEOUT_MS),
        "max_attempts" => range(1..=u64::from(MAX_ATTEMPTS_LIMIT)),
        "concurrency" => range(1..=u64::from(MAX_WORKER_CONCURRENCY)),
        "ms" => range(0..=MAX_SLEEP_MS),
        "limit" => range(0..=MAX_PRIMES_LIMIT),
        "rounds" => range(1..=MAX_SHA256_ROUNDS),
        _ => return any_value.boxed(),
    };
    prop_oneof![3 => valid, 1 => any_value].boxed()
}

/// An object with each of `keys` usually present, plus a few random fields,
/// so both the "everything valid" path and each single refusal are reached.
fn object_with(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let fields: Vec<_> = keys
        .iter()
        .map(|k| {
            prop::option::weighted(0.85, field_value(k))
                .prop_map(move |v| v.map(|v| (k.to_string(), v)))
        })
        .collect();
    let extra = prop::collection::vec((key(), json()), 0..3);
    (prop::bool::weighted(0.3), extra, fields).prop_map(|(with_extra, extra, fields)| {
        let mut obj = Map::new();
        if with_extra {
            obj.extend(extra);
        }
        for (k, v) in fields.into_iter().flatten() {
            obj.insert(k, v);
        }
        Value::Object(obj)
    })
}

const SPEC_KEYS: &[&str] = &["kind", "input", "priority", "timeout_ms", "max_attempts"];
const HELLO_KEYS: &[&str] = &["token", "name", "kinds", "concurrency"];

/// A submission: usually shaped like one, sometimes anything.
fn spec_like() -> impl Strategy<Value = Value> {
    prop_oneof![3 => object_with(SPEC_KEYS), 1 => json()]
}

/// A built-in kind's input: usually shaped like one, sometimes anything.
fn input_like() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => object_with(&["ms"]),
        1 => object_with(&["limit"]),
        1 => object_with(&["data", "rounds"]),
        1 => object_with(&["message"]),
        1 => json(),
    ]
}

/// A submission that [`TaskSpec::parse`] must accept.
fn valid_spec() -> impl Strategy<Value = TaskSpec> {
    let v1 = (
        kind_name(),
        json(),
        any::<i32>(),
        prop::option::of(1..=MAX_TIMEOUT_MS),
        1..=MAX_ATTEMPTS_LIMIT,
    );
    let v1_1 = (
        prop::option::of(0..=MAX_DELAY_MS),
        prop::option::of("[a-z0-9:-]{1,40}"),
        any::<bool>(),
        0..=MAX_BACKOFF_MS,
        prop::option::of("[a-z0-9]{1,20}"),
        1..=MAX_CONCURRENCY_LIMIT,
    );
    (v1, v1_1).prop_map(
        |(
            (kind, input, priority, timeout_ms, max_attempts),
            (delay_ms, key, retry_on_failure, backoff_ms, concurrency_key, concurrency_limit),
        )| TaskSpec {
            kind,
            input,
            priority,
            timeout_ms,
            max_attempts,
            delay_ms,
            run_at: None,
            key,
            after: Vec::new(),
            retry_on_failure,
            backoff_ms,
            concurrency_key,
            concurrency_limit,
        },
    )
}

// ---------------------------------------------------------------- oracles

fn assert_invalid(err: &ErrorBody, raw: &Value) -> Result<(), TestCaseError> {
    prop_assert_eq!(err.code, ErrorCode::InvalidPayload, "{} for {}", err, raw);
    prop_assert!(!err.message.is_empty());
    Ok(())
}

/// An accepted spec respects every documented range and carries exactly
/// what the raw submission said (or the default).
fn check_spec(spec: &TaskSpec, raw: &Value) -> Result<(), TestCaseError> {
    prop_assert!(!spec.kind.is_empty());
    prop_assert!(spec.kind.chars().count() <= MAX_KIND_LEN);
    prop_assert!(spec.kind.len() <= MAX_KIND_LEN);
    if let Some(t) = spec.timeout_ms {
        prop_assert!((1..=MAX_TIMEOUT_MS).contains(&t), "timeout_ms {}", t);
    }
    prop_assert!(
        (1..=MAX_ATTEMPTS_LIMIT).contains(&spec.max_attempts),
        "max_attempts {}",
        spec.max_attempts
    );

    let obj = raw.as_object().expect("only an object is accepted");
    let field = |k: &str| obj.get(k).filter(|v| !v.is_null());
    prop_assert_eq!(obj.get("kind").and_then(Value::as_str), Some(&*spec.kind));
    prop_assert_eq!(obj.get("input").unwrap_or(&Value::Null), &spec.input);
    prop_assert_eq!(
        field("priority").map_or(Some(0), Value::as_i64),
        Some(i64::from(spec.priority))
    );
    prop_assert_eq!(field("timeout_ms").and_then(Value::as_u64), spec.timeout_ms);
    prop_assert_eq!(
        field("max_attempts").map_or(Some(u64::from(DEFAULT_MAX_ATTEMPTS)), Value::as_u64),
        Some(u64::from(spec.max_attempts))
    );
    Ok(())
}

fn check_parse(raw: Value) -> Result<(), TestCaseError> {
    match TaskSpec::parse(raw.clone()) {
        Ok(spec) => check_spec(&spec, &raw),
        Err(err) => assert_invalid(&err, &raw),
    }
}

fn check_batch(raw: Value) -> Result<(), TestCaseError> {
    match parse_batch(raw.clone()) {
        Ok(specs) => {
            let items = raw
                .get("tasks")
                .and_then(Value::as_array)
                .expect("only {tasks: [...]} is accepted");
            prop_assert!(specs.len() <= MAX_BATCH);
            prop_assert_eq!(specs.len(), items.len());
            for (spec, item) in specs.iter().zip(items) {
                check_spec(spec, item)?;
            }
        }
        Err(err) => assert_invalid(&err, &raw)?,
    }
    Ok(())
}

fn check_task_id(raw: &Value) -> Result<(), TestCaseError> {
    let field = raw.get("task_id");
    match (TaskId::from_payload(raw), field) {
        (Ok(id), Some(Value::String(s))) => {
            prop_assert_eq!(Some(id), s.parse::<uuid::Uuid>().ok().map(TaskId::from));
        }
        (Ok(id), other) => prop_assert!(false, "accepted {} from {:?}", id, other),
        (Err(err), Some(Value::String(s))) => {
            prop_assert_eq!(err.code, ErrorCode::NotFound, "{} for {:?}", err, s);
            prop_assert!(s.parse::<uuid::Uuid>().is_err(), "refused UUID {:?}", s);
        }
        (Err(err), _) => assert_invalid(&err, raw)?,
    }
    Ok(())
}

fn check_hello(raw: Option<Value>) -> Result<(), TestCaseError> {
    match WorkerHello::parse(raw.clone()) {
        Ok(hello) => {
            prop_assert!(!hello.name.is_empty() && hello.name.len() <= MAX_WORKER_NAME_LEN);
            prop_assert!(!hello.kinds.is_empty());
            for k in &hello.kinds {
                prop_assert!(!k.is_empty() && k.len() <= MAX_KIND_LEN, "kind {:?}", k);
            }
            prop_assert!((1..=MAX_WORKER_CONCURRENCY).contains(&hello.concurrency));
            let raw = raw.expect("no auth is refused");
            if raw.is_object() {
                prop_assert_eq!(raw.get("name").and_then(Value::as_str), Some(&*hello.name));
            }
        }
        Err(err) => {
            let shown = raw.unwrap_or(Value::Null);
            assert_invalid(&err, &shown)?;
        }
    }
    Ok(())
}

fn check_builtins(kind: &str, input: &Value) -> Result<(), TestCaseError> {
    let sleep = SleepInput::parse(input);
    if let Ok(s) = &sleep {
        prop_assert!(s.ms <= MAX_SLEEP_MS);
        prop_assert_eq!(input.get("ms").and_then(Value::as_u64), Some(s.ms));
    }
    let primes = PrimesInput::parse(input);
    if let Ok(p) = &primes {
        prop_assert!(p.limit <= MAX_PRIMES_LIMIT);
        prop_assert_eq!(input.get("limit").and_then(Value::as_u64), Some(p.limit));
    }
    let sha = Sha256Input::parse(input);
    if let Ok(s) = &sha {
        prop_assert!((1..=MAX_SHA256_ROUNDS).contains(&s.rounds));
        prop_assert_eq!(input.get("data").and_then(Value::as_str), Some(&*s.data));
    }
    let fail = FailInput::parse(input);
    if let Ok(f) = &fail {
        prop_assert_eq!(
            input.get("message").and_then(Value::as_str),
            Some(&*f.message)
        );
    }
    for err in [
        sleep.as_ref().err(),
        primes.as_ref().err(),
        sha.as_ref().err(),
        fail.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        prop_assert!(!err.message.is_empty());
    }

    let expected = match kind {
        builtin::ECHO => Some(true),
        builtin::SLEEP => Some(sleep.is_ok()),
        builtin::PRIMES => Some(primes.is_ok()),
        builtin::SHA256 => Some(sha.is_ok()),
        builtin::FAIL => Some(fail.is_ok()),
        _ => None,
    };
    let got = builtin::validate(kind, input);
    prop_assert_eq!(got.as_ref().map(Result::is_ok), expected, "{:?}", got);
    prop_assert_eq!(got.is_some(), builtin::KINDS.contains(&kind));
    Ok(())
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn task_spec_parse_any_json(raw in json()) {
        check_parse(raw)?;
    }

    #[test]
    fn task_spec_parse_spec_shaped(raw in object_with(SPEC_KEYS)) {
        check_parse(raw)?;
    }

    #[test]
    fn parse_batch_any_json(raw in json()) {
        check_batch(raw)?;
    }

    #[test]
    fn parse_batch_batch_shaped(
        items in prop::collection::vec(
            prop_oneof![6 => valid_spec().prop_map(|s| s.to_json()), 1 => spec_like()],
            0..6,
        ),
        extra in prop::collection::vec((key(), json()), 0..3),
    ) {
        let mut obj: Map<String, Value> = extra.into_iter().collect();
        obj.insert("tasks".into(), Value::Array(items));
        check_batch(Value::Object(obj))?;
    }

    #[test]
    fn task_id_from_payload_any_json(raw in json()) {
        check_task_id(&raw)?;
    }

    #[test]
    fn task_id_from_payload_id_shaped(id in json(), rest in json()) {
        let mut obj = match rest {
            Value::Object(obj) => obj,
            _ => Map::new(),
        };
        obj.insert("task_id".into(), id);
        check_task_id(&Value::Object(obj))?;
    }

    #[test]
    fn task_id_from_payload_any_string(s in string()) {
        let mut obj = Map::new();
        obj.insert("task_id".into(), Value::String(s));
        check_task_id(&Value::Object(obj))?;
    }

    #[test]
    fn worker_hello_any_json(raw in prop::option::of(json())) {
        check_hello(raw)?;
    }

    #[test]
    fn worker_hello_hello_shaped(raw in object_with(HELLO_KEYS)) {
        check_hello(Some(raw))?;
    }

    #[test]
    fn builtin_inputs_any_json(
        kind in prop_oneof![
            3 => prop::sample::select(builtin::KINDS.to_vec()).prop_map(String::from),
            1 => string(),
        ],
        input in input_like(),
    ) {
        check_builtins(&kind, &input)?;
    }

    #[test]
    fn valid_spec_round_trips(spec in valid_spec()) {
        let json = spec.to_json();
        prop_assert_eq!(TaskSpec::parse(json.clone()), Ok(spec.clone()));
        // And inside a batch.
        let mut obj = Map::new();
        obj.insert("tasks".into(), Value::Array(vec![json; 3]));
        prop_assert_eq!(parse_batch(Value::Object(obj)), Ok(vec![spec; 3]));
    }

    #[test]
    fn valid_spec_with_nulls_and_extras_parses(
        spec in valid_spec(),
        extra in prop::collection::vec(("[a-z_]{1,12}", json()), 0..4),
    ) {
        // Unknown fields are ignored and an explicit `null` means "default".
        let mut obj: Map<String, Value> = extra
            .into_iter()
            .filter(|(k, _)| !SPEC_KEYS.contains(&k.as_str()))
            .collect();
        let Value::Object(fields) = spec.to_json() else { unreachable!() };
        obj.extend(fields);
        if spec.timeout_ms.is_none() {
            obj.insert("timeout_ms".into(), Value::Null);
        }
        prop_assert_eq!(TaskSpec::parse(Value::Object(obj)), Ok(spec));
    }
}

proptest! {
    // Batches around the size limit are big; a few cases are enough.
    #![proptest_config(config(24))]

    #[test]
    fn parse_batch_size_limit(len in (MAX_BATCH - 3)..=(MAX_BATCH + 3), spec in valid_spec()) {
        let mut obj = Map::new();
        obj.insert("tasks".into(), Value::Array(vec![spec.to_json(); len]));
        let raw = Value::Object(obj);
        match parse_batch(raw.clone()) {
            Ok(specs) => {
                prop_assert!(len <= MAX_BATCH, "accepted {} tasks", len);
                prop_assert_eq!(specs.len(), len);
            }
            Err(err) => {
                prop_assert!(len > MAX_BATCH, "refused {} tasks: {}", len, err);
                assert_invalid(&err, &Value::Null)?;
            }
        }
    }
}
