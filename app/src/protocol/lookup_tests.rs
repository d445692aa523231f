//! Unit tests of the lookup types: `list` queries and pages.

use super::*;
use serde_json::json;

fn refused(raw: Value) -> Option<Field> {
    let err = ListQuery::parse(raw.clone()).expect_err(&raw.to_string());
    assert_eq!(err.code, ErrorCode::InvalidPayload, "{raw}");
    err.field
}

#[test]
fn no_query_lists_the_newest_fifty() {
    for raw in [
        Value::Null,
        json!({}),
        json!({"status": "", "kind": "", "key": "", "limit": "", "before": ""}),
        json!({"status": null, "limit": null, "other": [1]}),
    ] {
        assert_eq!(
            ListQuery::parse(raw.clone()).unwrap(),
            ListQuery::default(),
            "{raw}"
        );
    }
    assert_eq!(ListQuery::default().limit, DEFAULT_LIST_LIMIT);
}

#[test]
fn every_filter_is_parsed() {
    let q = ListQuery::parse(json!({
        "status": "timed_out", "kind": "primes", "key": "report:42:*",
        "limit": 500, "before": "1234"
    }))
    .unwrap();
    assert_eq!(
        q,
        ListQuery {
            status: Some(TaskStatus::TimedOut),
            kind: Some("primes".into()),
            key: Some(KeyMatch::Prefix("report:42:".into())),
            limit: 500,
            before: Some(Cursor(1234)),
        }
    );
    // A query string's values are strings: limit too.
    let q = ListQuery::parse(json!({"limit": "1", "key": "exact"})).unwrap();
    assert_eq!((q.limit, q.key), (1, Some(KeyMatch::Exact("exact".into()))));
    // `*` alone matches every key.
    let q = ListQuery::parse(json!({"key": "*"})).unwrap();
    assert_eq!(q.key, Some(KeyMatch::Prefix(String::new())));
}

#[test]
fn bad_queries_name_their_field() {
    let field = |f: &str| Some(Field::from_name(f));
    for (raw, want) in [
        (json!([1]), None),
        (json!("status"), None),
        (json!({"status": "done"}), field("status")),
        (json!({"status": 1}), field("status")),
        (json!({"kind": 3}), Some(Field::Kind)),
        (
            json!({"kind": "k".repeat(MAX_KIND_LEN + 1)}),
            Some(Field::Kind),
        ),
        (json!({"key": true}), field("key")),
        (json!({"key": "k".repeat(MAX_KEY_CHARS + 2)}), field("key")),
        (json!({"limit": 0}), field("limit")),
        (json!({"limit": 501}), field("limit")),
        (json!({"limit": -1}), field("limit")),
        (json!({"limit": 2.5}), field("limit")),
        (json!({"limit": "ten"}), field("limit")),
        (json!({"limit": [5]}), field("limit")),
        (json!({"before": "x"}), field("before")),
        (json!({"before": "-1"}), field("before")),
        (json!({"before": 12}), field("before")),
    ] {
        assert_eq!(refused(raw.clone()), want, "{raw}");
    }
}

#[test]
fn key_filters_match_exactly_or_by_prefix() {
    let exact = KeyMatch::parse("a:1");
    assert!(exact.matches(Some("a:1")));
    assert!(!exact.matches(Some("a:10")));
    assert!(!exact.matches(None));
    let prefix = KeyMatch::parse("a:1*");
    assert!(prefix.matches(Some("a:1")));
    assert!(prefix.matches(Some("a:10")));
    assert!(!prefix.matches(Some("b:1")));
    assert_eq!(prefix.to_string(), "a:1*");
}

#[test]
fn pages_and_cursors_on_the_wire() {
    let page = ListPage::new(Vec::new(), Some(Cursor(42)));
    assert_eq!(
        serde_json::to_value(&page).unwrap(),
        json!({"ok": true, "tasks": [], "next": "42"})
    );
    let back: ListPage =
        serde_json::from_value(json!({"ok": true, "tasks": [], "next": null})).unwrap();
    assert_eq!(back.next, None);
    let attempt = Attempt {
        attempt: 1,
        worker: None,
        started_at: Timestamp::now(),
        finished_at: None,
        outcome: AttemptOutcome::WorkerLost,
        error: None,
    };
    assert_eq!(
        serde_json::to_value(&attempt).unwrap()["outcome"],
        "worker_lost"
    );
}
