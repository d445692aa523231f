//! Pausing a kind in cluster mode (see `cluster` for the services): a
//! pause on one node holds the tasks every other node would claim, until
//! a resume on any node; `stats.kinds` is the cluster's.

use app::TaskStatus;
use reqwest::StatusCode;
use serde_json::json;

use crate::cluster::Cluster;
use crate::helpers::{result_of, spec};
use crate::pauses::{get_task, kind_line_where, kinds, set_kind};

#[tokio::test]
async fn a_pause_on_one_node_holds_what_another_would_claim() {
    let cluster = Cluster::new().await;
    // The front node runs nothing: every task is claimed by the back one.
    let front = cluster.node(&["--workers", "0"]).await;
    let back = cluster.node(&["--workers", "1"]).await;
    let mut c = front.client().await;
    c.dashboard().await.unwrap();

    let (status, body) = set_kind(&front, "echo", "pause").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"kind": "echo", "paused": true}));
    let held = c.submit(&spec("echo", json!("held"))).await.unwrap();
    // The back node claims other kinds meanwhile: a task submitted after
    // the held one runs, and the held one is still queued after it.
    let other = c
        .submit(&spec("sha256", json!({"data": "x", "rounds": 1})))
        .await
        .unwrap();
    assert_eq!(
        result_of(&mut c, other.id).await.status,
        TaskStatus::Succeeded
    );
    assert_eq!(get_task(&front, held.id).await.status, TaskStatus::Queued);
    // Both nodes list it paused, and the dashboard counts it queued.
    for node in [&front, &back] {
        let echo = kinds(node)
            .await
            .into_iter()
            .find(|k| k.kind == "echo")
            .unwrap();
        assert!(echo.paused);
    }
    let line = kind_line_where(&mut c, "echo", |k| k.queued == 1).await;
    assert!(line.paused);

    // A resume on the other node releases it.
    let (status, body) = set_kind(&back, "echo", "resume").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"kind": "echo", "paused": false}));
    let done = result_of(&mut c, held.id).await;
    assert_eq!(done.output, Some(app::Json::from(json!("held"))));
    // The front node's dashboard shows the back node's latencies (its
    // heartbeat carries them).
    let line = kind_line_where(&mut c, "echo", |k| k.run_ms.count == 1).await;
    assert_eq!(
        (line.paused, line.queued, line.wait_ms.count),
        (false, 0, 1)
    );
    let (status, body) = set_kind(&front, "nope", "pause").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], json!("unknown_kind"));
    drop((c, front, back));
    cluster.drop().await;
}
