//! Unit tests of the protocol types.

use super::*;
use serde_json::json;

/// The field a refusal of `raw` names: from the envelope's parsing, or
/// (for a built-in kind) from its input check, as the server words it.
fn refused_field(raw: Value) -> Option<Field> {
    let err = match TaskSpec::parse(raw) {
        Err(e) => e,
        Ok(spec) => builtin::validate(&spec.kind, &spec.input)
            .expect("a built-in kind")
            .expect_err("a bad input")
            .into_refusal(&spec.kind),
    };
    assert_eq!(err.code, ErrorCode::InvalidPayload, "{err}");
    err.field
}

#[test]
fn envelope_refusals_name_their_field() {
    use Field::*;
    for (raw, field) in [
        (json!({"input": 1}), Some(Kind)),
        (json!({"kind": 3}), Some(Kind)),
        (json!({"kind": ""}), Some(Kind)),
        (json!({"kind": "echo", "priority": "x"}), Some(Priority)),
        (json!({"kind": "echo", "timeout_ms": 0}), Some(TimeoutMs)),
        (
            json!({"kind": "echo", "max_attempts": 0}),
            Some(MaxAttempts),
        ),
        // The payload as a whole: no one field is wrong.
        (json!([1]), None),
    ] {
        assert_eq!(refused_field(raw.clone()), field, "{raw}");
    }
}

#[test]
fn input_refusals_name_the_input_key() {
    let key = |k: &str| Some(Field::InputKey(k.to_owned()));
    for (raw, field) in [
        (
            json!({"kind": "primes", "input": {"limit": -1}}),
            key("limit"),
        ),
        (json!({"kind": "sleep", "input": {}}), key("ms")),
        (
            json!({"kind": "sha256", "input": {"data": "a", "rounds": 0}}),
            key("rounds"),
        ),
        (
            json!({"kind": "sha256", "input": {"rounds": 1}}),
            key("data"),
        ),
        (
            json!({"kind": "fail", "input": {"message": 1}}),
            key("message"),
        ),
        // Not an object: the input as a whole.
        (json!({"kind": "fail", "input": []}), Some(Field::Input)),
    ] {
        assert_eq!(refused_field(raw.clone()), field, "{raw}");
    }
    let err = builtin::PrimesInput::parse(&json!({"limit": -1}))
        .unwrap_err()
        .into_refusal(builtin::PRIMES);
    assert_eq!(
        err.message,
        "primes: limit must be an integer 0..=10000000000"
    );
}

#[test]
fn batch_and_id_refusals_name_their_field() {
    let bad_item =
        parse_batch(json!({"tasks": [{"kind": "echo"}, {"kind": "echo", "priority": 0.5}]}))
            .unwrap_err();
    assert_eq!(
        bad_item.field,
        Some(Field::Priority),
        "the item's own field"
    );
    assert_eq!(
        bad_item.message,
        "tasks[1]: priority must be a 32-bit integer"
    );
    let not_array = parse_batch(json!({"tasks": 1})).unwrap_err();
    assert_eq!(not_array.field, Some(Field::Tasks));
    let too_many = parse_batch(json!({"tasks": vec![json!({"kind": "echo"}); MAX_BATCH + 1]}));
    assert_eq!(too_many.unwrap_err().field, Some(Field::Tasks));
    assert_eq!(parse_batch(json!([])).unwrap_err().field, None);

    for payload in [json!({}), json!({"task_id": 5})] {
        let err = TaskId::from_payload(&payload).unwrap_err();
        assert_eq!(
            (err.code, err.field),
            (ErrorCode::InvalidPayload, Some(Field::TaskId))
        );
    }
    // A string that is no UUID is an unknown task, like any other.
    let unknown = TaskId::from_payload(&json!({"task_id": "x"})).unwrap_err();
    assert_eq!((unknown.code, unknown.field), (ErrorCode::NotFound, None));
}

#[test]
fn the_field_is_on_the_wire_only_when_known() {
    let plain = ErrorBody::new(ErrorCode::QueueFull, "full");
    assert_eq!(
        serde_json::to_string(&plain).unwrap(),
        r#"{"code":"queue_full","message":"full"}"#
    );
    let limit =
        ErrorBody::invalid("primes: limit must be ...").with_field(Field::InputKey("limit".into()));
    let wire = serde_json::to_value(&limit).unwrap();
    assert_eq!(wire["field"], "input.limit");
    assert_eq!(serde_json::from_value::<ErrorBody>(wire).unwrap(), limit);
    for field in [
        Field::Kind,
        Field::Input,
        Field::Priority,
        Field::TimeoutMs,
        Field::MaxAttempts,
        Field::Tasks,
        Field::TaskId,
        Field::InputKey("a.b".into()),
    ] {
        let back: Field = serde_json::from_value(serde_json::to_value(&field).unwrap()).unwrap();
        assert_eq!(back, field);
    }
    // A newer server's field name still reads, and an error without one too.
    let newer: ErrorBody = serde_json::from_value(
        json!({"code": "invalid_payload", "message": "m", "field": "delay_ms"}),
    )
    .unwrap();
    assert_eq!(newer.field, Some(Field::Other("delay_ms".into())));
    let old: ErrorBody =
        serde_json::from_value(json!({"code": "task_failed", "message": "m"})).unwrap();
    assert_eq!(old.field, None);
}

#[test]
fn typed_payloads_are_the_documented_json() {
    let id: TaskId = "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40".parse().unwrap();
    assert_eq!(
        serde_json::to_value(TaskRef::from(id)).unwrap(),
        json!({"task_id": "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40"})
    );
    let spec = TaskSpec::new("echo", json!(1));
    assert_eq!(
        serde_json::to_value(Batch {
            tasks: std::slice::from_ref(&spec)
        })
        .unwrap(),
        json!({"tasks": [{"kind": "echo", "input": 1, "priority": 0, "max_attempts": 3}]})
    );
    assert_eq!(
        serde_json::to_value(WorkerFail::task_failed(id, "boom")).unwrap(),
        json!({"task_id": id, "error": {"code": "task_failed", "message": "boom"}})
    );
    assert_eq!(
        serde_json::to_value(WorkerDone {
            task_id: id,
            output: json!({"n": 1}).into()
        })
        .unwrap(),
        json!({"task_id": id, "output": {"n": 1}})
    );
}

#[test]
fn worker_state_names_are_the_wire_names() {
    use WorkerState::*;
    for state in [Starting, Idle, Busy, Stopping] {
        assert_eq!(serde_json::to_value(state).unwrap(), json!(state.as_str()));
    }
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
        r#"{"id":"0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40","kind":"primes","input":{"limit":10},"priority":0,"status":"queued","attempt":0,"max_attempts":3,"timeout_ms":null,"progress":null,"output":null,"error":null,"worker":null,"created_at":"2026-11-25T19:00:00.000Z","started_at":null,"finished_at":null,"run_at":null,"key":null,"after":[],"retry_on_failure":false,"backoff_ms":1000,"concurrency_key":null,"concurrency_limit":1,"retry_of":null}"#
    );
    let back: Task = serde_json::from_str(&text).unwrap();
    assert_eq!(back, task);
    // A task's room is its id as the wire writes it.
    assert_eq!(id.room(), "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40");
    assert_eq!(id.room(), id.to_string());
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

#[test]
fn v1_1_fields_parse_with_their_defaults_and_limits() {
    let spec = TaskSpec::parse(json!({"kind": "echo"})).unwrap();
    assert_eq!(
        (
            spec.delay_ms,
            spec.run_at,
            spec.key.clone(),
            spec.after.len()
        ),
        (None, None, None, 0)
    );
    assert_eq!((spec.retry_on_failure, spec.backoff_ms), (false, 1000));
    assert_eq!((spec.concurrency_key, spec.concurrency_limit), (None, 1));

    let id = "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40";
    let spec = TaskSpec::parse(json!({
        "kind": "echo", "delay_ms": 600000, "key": "charge-42", "after": [id, "#0"],
        "retry_on_failure": true, "backoff_ms": 0, "concurrency_key": "c",
        "concurrency_limit": 10000,
    }))
    .unwrap();
    assert_eq!(spec.delay_ms, Some(600_000));
    assert_eq!(
        spec.after,
        vec![After::Id(id.parse().unwrap()), After::Index(0)]
    );
    let created = Timestamp::from_millis(1_000_000).unwrap();
    let task = Task::new(id.parse().unwrap(), spec.clone(), created);
    assert_eq!(task.run_at, Timestamp::from_millis(1_600_000));
    assert_eq!(task.after.len(), 1, "indexes are resolved before Task::new");

    let at =
        TaskSpec::parse(json!({"kind": "echo", "run_at": "2026-12-05T01:00:00.000Z"})).unwrap();
    assert_eq!(at.run_at.unwrap().to_string(), "2026-12-05T01:00:00.000Z");

    for (raw, field) in [
        (json!({"kind": "echo", "delay_ms": -1}), "delay_ms"),
        (
            json!({"kind": "echo", "delay_ms": 31_536_000_001_u64}),
            "delay_ms",
        ),
        (json!({"kind": "echo", "run_at": "tomorrow"}), "run_at"),
        (
            json!({"kind": "echo", "run_at": "2026-12-05T01:00:00Z", "delay_ms": 5}),
            "run_at",
        ),
        (json!({"kind": "echo", "key": ""}), "key"),
        (json!({"kind": "echo", "key": "k".repeat(257)}), "key"),
        (json!({"kind": "echo", "after": "x"}), "after"),
        (json!({"kind": "echo", "after": [1]}), "after"),
        (json!({"kind": "echo", "after": ["#x"]}), "after"),
        (json!({"kind": "echo", "after": vec![id; 101]}), "after"),
        (
            json!({"kind": "echo", "retry_on_failure": 1}),
            "retry_on_failure",
        ),
        (
            json!({"kind": "echo", "backoff_ms": 3_600_001}),
            "backoff_ms",
        ),
        (
            json!({"kind": "echo", "concurrency_key": 5}),
            "concurrency_key",
        ),
        (
            json!({"kind": "echo", "concurrency_limit": 0}),
            "concurrency_limit",
        ),
        (
            json!({"kind": "echo", "concurrency_limit": 10_001}),
            "concurrency_limit",
        ),
    ] {
        let err = TaskSpec::parse(raw.clone()).expect_err("refused");
        assert_eq!(err.code, ErrorCode::InvalidPayload, "{raw}");
        assert_eq!(
            err.field.map(|f| f.to_string()).as_deref(),
            Some(field),
            "{raw}"
        );
    }
    // A key of 256 characters (not bytes) is fine.
    assert!(TaskSpec::parse(json!({"kind": "echo", "key": "é".repeat(256)})).is_ok());
    // A string that is no id names no task.
    let err = TaskSpec::parse(json!({"kind": "echo", "after": ["nope"]})).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
}

#[test]
fn batch_indexes_in_after_name_only_earlier_items() {
    let ids: Vec<TaskId> = (1..=3).map(|n| TaskId::from(Uuid::from_u128(n))).collect();
    let mut spec = TaskSpec::parse(json!({"kind": "echo", "after": ["#0", "#1"]})).unwrap();
    spec.resolve_after(2, &ids[..2]).unwrap();
    assert_eq!(spec.after, vec![After::Id(ids[0]), After::Id(ids[1])]);
    let mut itself = TaskSpec::parse(json!({"kind": "echo", "after": ["#1"]})).unwrap();
    assert_eq!(
        itself.resolve_after(1, &ids[..1]).unwrap_err().code,
        ErrorCode::InvalidPayload
    );
    let mut outside = TaskSpec::parse(json!({"kind": "echo", "after": ["#0"]})).unwrap();
    assert!(outside.resolve_after(0, &[]).is_err());
}

#[test]
fn schedule_names_and_firing_keys() {
    assert!(valid_schedule_name("nightly-report_v2.1"));
    assert!(!valid_schedule_name(""));
    assert!(!valid_schedule_name("a b"));
    assert!(!valid_schedule_name(&"a".repeat(129)));
    let at = Timestamp(
        DateTime::parse_from_rfc3339("2026-12-05T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    );
    assert_eq!(
        Schedule::firing_key("nightly", at),
        "schedule:nightly:2026-12-05T01:00:00.000Z"
    );
}

#[test]
fn every_status_is_read_back_from_its_wire_name() {
    for status in TaskStatus::ALL {
        let wire = serde_json::to_value(status).unwrap();
        assert_eq!(wire, json!(status.as_str()));
        assert_eq!(TaskStatus::from_name(status.as_str()), Some(status));
    }
    assert_eq!(TaskStatus::from_name("done"), None);
}

#[test]
fn timestamps_are_written_as_chrono_writes_them() {
    let chrono_text = |t: &Timestamp| t.0.to_rfc3339_opts(SecondsFormat::Millis, true);
    // A spread of instants over years 0-9999 (step prime to every unit),
    // the ends of that range, and instants past it in both directions.
    let first = DateTime::parse_from_rfc3339("0000-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    let last = DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999Z")
        .unwrap()
        .timestamp_millis();
    let step = (last - first) / 9_973 + 7;
    let mut checked = 0;
    for ms in (first..=last)
        .step_by(usize::try_from(step).unwrap())
        .chain([first, last, first - 1, last + 1, 0, -1, 1_764_097_200_123])
    {
        let t = Timestamp::from_millis(ms).unwrap();
        let wire = serde_json::to_string(&t).unwrap();
        assert_eq!(wire, format!("\"{}\"", chrono_text(&t)), "at {ms} ms");
        assert_eq!(t.to_string(), chrono_text(&t));
        // RFC 3339 has no years outside 0-9999: those are written only.
        if (first..=last).contains(&ms) {
            assert_eq!(serde_json::from_str::<Timestamp>(&wire).unwrap(), t);
        }
        checked += 1;
    }
    assert!(checked > 9_973);
    // Sub-millisecond digits are cut, not rounded, as chrono does.
    let t = Timestamp(
        DateTime::parse_from_rfc3339("2026-12-07T08:00:00.999999Z")
            .unwrap()
            .with_timezone(&Utc),
    );
    assert_eq!(t.to_string(), "2026-12-07T08:00:00.999Z");
    // A leap second is left to chrono.
    let leap = Timestamp(
        chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .unwrap()
            .and_utc(),
    );
    assert_eq!(leap.to_string(), chrono_text(&leap));
}
