//! Volume: a 1000-task batch, many sockets with many tasks; nothing lost,
//! nothing duplicated, every output checked.

use std::collections::HashMap;

use app::{TaskId, TaskStatus};
use serde_json::json;
use taskwire::client::Push;

use crate::helpers::*;

#[tokio::test]
async fn a_batch_of_1000_gets_all_1000_results() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    let specs: Vec<_> = (0..1000).map(|i| spec("echo", json!({"i": i}))).collect();
    let tasks = c.submit_batch(&specs).await.unwrap();
    assert_eq!(tasks.len(), 1000);
    // Acked in submission order.
    for (i, t) in tasks.iter().enumerate() {
        assert_eq!(t.input, json!({"i": i}));
        assert_eq!(t.status, TaskStatus::Queued);
    }
    let expected: HashMap<TaskId, usize> =
        tasks.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let mut results: HashMap<TaskId, usize> = HashMap::new();
    while results.len() < 1000 {
        match c.next_push_within(WAIT).await.expect("all results in time") {
            Push::Result(t) => {
                let i = expected[&t.id];
                assert_eq!(t.output, Some(app::Json::from(json!({"i": i}))));
                assert!(results.insert(t.id, i).is_none(), "duplicate result");
            }
            Push::Status(_) | Push::Progress(_) => {}
            Push::Stats(_) | Push::Schedules(_) => panic!("not in the dashboard"),
        }
    }
    assert_eq!(server.stats().await.succeeded, 1000);
}

#[tokio::test]
async fn fifty_sockets_times_a_hundred_tasks_none_lost_or_duplicated() {
    let server = TestServer::start(&[]).await;
    let mut handles = Vec::new();
    for s in 0..50 {
        let mut c = server.client().await;
        handles.push(tokio::spawn(async move {
            let mut mine = HashMap::new();
            for i in 0..100 {
                let t = c.submit(&spec("echo", json!([s, i]))).await.unwrap();
                mine.insert(t.id, i);
            }
            let mut got = HashMap::new();
            while got.len() < 100 {
                if let Push::Result(t) = c.next_push_within(WAIT).await.expect("results in time") {
                    let i = *mine.get(&t.id).expect("a result for another socket's task");
                    assert_eq!(t.output, Some(app::Json::from(json!([s, i]))));
                    assert!(got.insert(t.id, ()).is_none(), "duplicate result");
                }
            }
            got.len()
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    assert_eq!(total, 5000);
    let stats = server.stats().await;
    assert_eq!((stats.succeeded, stats.queued, stats.running), (5000, 0, 0));
}
