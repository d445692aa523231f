//! Unit tests of the protocol types.

use super::*;
use serde_json::json;

#[test]
fn refusals_name_their_field() {
    let field = |raw: Value, kind_check: bool| {
        let err = match TaskSpec::parse(raw) {
            Err(e) => e,
            Ok(spec) if kind_check => {
                let msg = builtin::validate(&spec.kind, &spec.input)
                    .expect("built-in kind")
                    .expect_err("bad input");
                ErrorBody::invalid(format!("{}: {msg}", spec.kind))
            }
            Ok(_) => panic!("accepted"),
        };
        err.field().map(str::to_owned)
    };
    let f = |s: &str| Some(s.to_owned());
    assert_eq!(field(json!({"input": 1}), false), f("kind"));
    assert_eq!(field(json!({"kind": 3}), false), f("kind"));
    assert_eq!(
        field(json!({"kind": "echo", "priority": "x"}), false),
        f("priority")
    );
    assert_eq!(
        field(json!({"kind": "echo", "timeout_ms": 0}), false),
        f("timeout_ms")
    );
    assert_eq!(
        field(json!({"kind": "echo", "max_attempts": 0}), false),
        f("max_attempts")
    );
    assert_eq!(
        field(json!({"kind": "primes", "input": {"limit": -1}}), true),
        f("limit")
    );
    assert_eq!(field(json!({"kind": "sleep", "input": {}}), true), f("ms"));
    assert_eq!(
        field(
            json!({"kind": "sha256", "input": {"data": "a", "rounds": 0}}),
            true
        ),
        f("rounds")
    );
    assert_eq!(
        field(json!({"kind": "fail", "input": []}), true),
        f("input")
    );
    let unknown = ErrorBody::new(ErrorCode::UnknownKind, "unknown kind \"zzz\"");
    assert_eq!(unknown.field(), Some("kind"));
    assert_eq!(ErrorBody::new(ErrorCode::QueueFull, "full").field(), None);
}

#[test]
fn worker_state_names_are_the_wire_names() {
    use WorkerState::*;
    for state in [Starting, Idle, Busy, Stopping] {
        assert_eq!(serde_json::to_value(state).unwrap(), json!(state.as_str()));
    }
}

#[test]
fn builtin_fields_make_valid_inputs() {
    for kind in builtin::KINDS {
        let Some(fields) = builtin::fields(kind) else {
            assert_eq!(kind, builtin::ECHO, "only echo is free JSON");
            continue;
        };
        let input = builtin::input_from_fields(fields, |f| f.default.to_owned()).unwrap();
        assert_eq!(
            builtin::validate(kind, &input),
            Some(Ok(())),
            "{kind}: {input}"
        );
    }
    let primes = builtin::fields(builtin::PRIMES).unwrap();
    assert_eq!(
        builtin::input_from_fields(primes, |_| "12x".into()),
        Err(("limit", "limit must be an integer 0..=10000000000".into()))
    );
}

#[test]
fn spec_defaults_and_fields() {
    let spec = TaskSpec::parse(json!({"kind": "echo", "input": {"b": 1, "a": 2}})).unwrap();
    assert_eq!(spec.kind, "echo");
    assert_eq!(spec.priority, 0);
    assert_eq!(spec.timeout_ms, None);
    assert_eq!(spec.max_attempts, DEFAULT_MAX_ATTEMPTS);
    // Key order survives (preserve_order), so echo returns the same text.
    assert_eq!(
        serde_json::to_string(&spec.input).unwrap(),
        r#"{"b":1,"a":2}"#
    );

    let spec = TaskSpec::parse(
        json!({"kind": "sleep", "input": {"ms": 5}, "priority": -3, "timeout_ms": 10, "max_attempts": 1}),
    )
    .unwrap();
    assert_eq!(
        (spec.priority, spec.timeout_ms, spec.max_attempts),
        (-3, Some(10), 1)
    );
    let spec =
        TaskSpec::parse(json!({"kind": "echo", "timeout_ms": null, "priority": null})).unwrap();
    assert_eq!((spec.input, spec.timeout_ms), (Value::Null, None));
}

#[test]
fn spec_rejects_bad_envelopes() {
    for bad in [
        json!(null),
        json!("echo"),
        json!([1]),
        json!({}),
        json!({"kind": 1}),
        json!({"kind": ""}),
        json!({"kind": "x".repeat(MAX_KIND_LEN + 1)}),
        json!({"kind": "echo", "priority": "high"}),
        json!({"kind": "echo", "priority": 1.5}),
        json!({"kind": "echo", "priority": 1u64 << 40}),
        json!({"kind": "echo", "timeout_ms": 0}),
        json!({"kind": "echo", "timeout_ms": -5}),
        json!({"kind": "echo", "timeout_ms": MAX_TIMEOUT_MS + 1}),
        json!({"kind": "echo", "max_attempts": 0}),
        json!({"kind": "echo", "max_attempts": 101}),
    ] {
        let err = TaskSpec::parse(bad.clone()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPayload, "{bad}");
    }
}

#[test]
fn batch_limits() {
    let one = json!({"kind": "echo", "input": 1});
    assert_eq!(
        parse_batch(json!({"tasks": vec![one.clone(); MAX_BATCH]}))
            .unwrap()
            .len(),
        MAX_BATCH
    );
    assert!(parse_batch(json!({"tasks": vec![one.clone(); MAX_BATCH + 1]})).is_err());
    assert!(parse_batch(json!({"tasks": [one, {"kind": 5}]})).is_err());
    assert!(parse_batch(json!({"tasks": {}})).is_err());
    assert!(parse_batch(json!([])).is_err());
    assert_eq!(parse_batch(json!({"tasks": []})).unwrap().len(), 0);
}

#[test]
fn builtin_inputs() {
    use builtin::*;
    assert_eq!(validate(ECHO, &json!([1, "x"])), Some(Ok(())));
    assert_eq!(validate("nope", &json!({})), None);
    assert!(validate(SLEEP, &json!({"ms": 0})).unwrap().is_ok());
    assert!(
        validate(SLEEP, &json!({"ms": MAX_SLEEP_MS}))
            .unwrap()
            .is_ok()
    );
    for bad in [
        json!({"ms": MAX_SLEEP_MS + 1}),
        json!({"ms": -1}),
        json!({"ms": 1.5}),
        json!({"ms": "1"}),
        json!({}),
        json!(5),
    ] {
        assert!(validate(SLEEP, &bad).unwrap().is_err(), "{bad}");
    }
    assert!(
        validate(PRIMES, &json!({"limit": MAX_PRIMES_LIMIT}))
            .unwrap()
            .is_ok()
    );
    assert!(
        validate(PRIMES, &json!({"limit": MAX_PRIMES_LIMIT + 1}))
            .unwrap()
            .is_err()
    );
    assert!(
        validate(SHA256, &json!({"data": "", "rounds": 1}))
            .unwrap()
            .is_ok()
    );
    assert!(
        validate(SHA256, &json!({"data": "a", "rounds": 0}))
            .unwrap()
            .is_err()
    );
    assert!(
        validate(SHA256, &json!({"data": 1, "rounds": 1}))
            .unwrap()
            .is_err()
    );
    assert!(validate(FAIL, &json!({"message": "boom"})).unwrap().is_ok());
    assert!(validate(FAIL, &json!({})).unwrap().is_err());
}

#[test]
fn task_wire_shape() {
    let id: TaskId = "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40".parse().unwrap();
    let at = Timestamp(
        DateTime::parse_from_rfc3339("2026-11-25T19:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    );
    let task = Task::new(id, TaskSpec::new("primes", json!({"limit": 10})), at);
    let text = serde_json::to_string(&task).unwrap();
    assert_eq!(
        text,
        r#"{"id":"0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40","kind":"primes","input":{"limit":10},"priority":0,"status":"queued","attempt":0,"max_attempts":3,"timeout_ms":null,"progress":null,"output":null,"error":null,"worker":null,"created_at":"2026-11-25T19:00:00.000Z","started_at":null,"finished_at":null}"#
    );
    let back: Task = serde_json::from_str(&text).unwrap();
    assert_eq!(back, task);
}

#[test]
fn task_id_from_payload() {
    assert_eq!(
        TaskId::from_payload(&json!({"task_id": 5}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidPayload
    );
    assert_eq!(
        TaskId::from_payload(&json!({})).unwrap_err().code,
        ErrorCode::InvalidPayload
    );
    assert_eq!(
        TaskId::from_payload(&json!({"task_id": "zz"}))
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    assert!(
        TaskId::from_payload(&json!({"task_id": "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40"})).is_ok()
    );
}

#[test]
fn acks() {
    assert_eq!(
        serde_json::to_value(Ack::ok()).unwrap(),
        json!({"ok": true})
    );
    assert_eq!(
        serde_json::to_value(Ack::error(ErrorBody::invalid("x"))).unwrap(),
        json!({"ok": false, "error": {"code": "invalid_payload", "message": "x"}})
    );
}

#[test]
fn worker_kinds_are_safe_names_and_few() {
    let hello = |kinds: Value| WorkerHello::parse(Some(json!({"name": "w", "kinds": kinds})));
    let ok = [
        "echo",
        "a",
        "Report.v2",
        "ns:thumb-nail_3",
        &"k".repeat(MAX_KIND_LEN),
    ];
    for kind in ok {
        assert!(is_safe_kind_name(kind), "{kind}");
        assert!(hello(json!([kind])).is_ok(), "{kind}");
    }
    let long = "k".repeat(MAX_KIND_LEN + 1);
    let bad = [
        "",
        "</title><img src=x onerror=alert(1)>",
        "a b",
        "a\"b",
        "é",
        "tab\t",
        "new\nline",
        "a/b",
        "<",
        "&amp;",
        long.as_str(),
    ];
    for kind in bad {
        assert!(!is_safe_kind_name(kind), "{kind:?}");
        let err = hello(json!(["echo2", kind])).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPayload, "{kind:?}");
        assert!(err.message.starts_with("kind "), "{}", err.message);
    }
    let many: Vec<String> = (0..=MAX_WORKER_KINDS).map(|i| format!("k{i}")).collect();
    let err = hello(json!(many)).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidPayload);
    assert!(err.message.contains("at most 64 kinds"), "{}", err.message);
    assert!(hello(json!(many[..MAX_WORKER_KINDS])).is_ok());
    assert!(hello(json!([])).is_err());
}
