//! Tasks the benches share: an echo task as bench (a) submits it, and the
//! same task finished.

use app::{Task, TaskSpec, TaskStatus, Timestamp};

/// Echo task `n`, its input naming `bench`.
pub fn echo(n: usize, bench: &str) -> Task {
    let input = serde_json::json!({"seq": n, "text": format!("hello from the {bench} bench")});
    Task::new(
        uuid::Uuid::now_v7().into(),
        TaskSpec::new("echo", input),
        Timestamp::now(),
    )
}

/// `task` as it ends: succeeded on a local worker, its input echoed.
pub fn finished(task: &Task) -> Task {
    let mut done = task.clone();
    done.status = TaskStatus::Succeeded;
    done.attempt = 1;
    done.worker = Some("local-1".into());
    done.started_at = Some(Timestamp::now());
    done.finished_at = Some(Timestamp::now());
    done.output = Some(done.input.clone());
    done
}
