//! `taskwire list`: every client's tasks, newest first, a page at a time
//! (or `--all`), as a table or JSON. An error is one line on stderr and a
//! non-zero exit.

use std::process::ExitCode;

use app::{Cursor, ListPage, Task};
use serde_json::{Value, json};

use super::{Server, connect};

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub server: Server,
    /// Only tasks in this status (scheduled, waiting, queued, running,
    /// succeeded, failed, cancelled, timed_out).
    #[arg(long)]
    pub status: Option<String>,
    /// Only tasks of this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only tasks with this idempotency key, or with a key starting with
    /// it when it ends in `*` (quote it from the shell).
    #[arg(long)]
    pub key: Option<String>,
    /// Tasks per page, 1 to 500.
    #[arg(long, default_value_t = app::DEFAULT_LIST_LIMIT)]
    pub limit: u32,
    /// Start after this cursor (printed after a page that has more).
    #[arg(long, conflicts_with = "all")]
    pub before: Option<Cursor>,
    /// Every page, to the oldest task.
    #[arg(long)]
    pub all: bool,
    /// Print JSON (`{tasks, next}`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `taskwire list`.
pub async fn run(args: ListArgs) -> ExitCode {
    match list(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("taskwire: {line}");
            ExitCode::FAILURE
        }
    }
}

fn query(args: &ListArgs, before: Option<Cursor>) -> Value {
    let mut q = json!({"limit": args.limit});
    if let Some(status) = &args.status {
        q["status"] = json!(status);
    }
    if let Some(kind) = &args.kind {
        q["kind"] = json!(kind);
    }
    if let Some(key) = &args.key {
        q["key"] = json!(key);
    }
    if let Some(before) = before {
        q["before"] = json!(before);
    }
    q
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = connect(&args.server).await?;
    let mut page = client.list(query(&args, args.before)).await?;
    if args.all {
        let mut tasks = std::mem::take(&mut page.tasks);
        while let Some(next) = page.next {
            page = client.list(query(&args, Some(next))).await?;
            tasks.append(&mut page.tasks);
        }
        page.tasks = tasks;
    }
    if args.json {
        let ListPage { tasks, next, .. } = page;
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"tasks": tasks, "next": next}))?
        );
        return Ok(());
    }
    print!("{}", table(&page.tasks));
    if let Some(next) = page.next {
        eprintln!("more: --before {next}");
    }
    Ok(())
}

/// One line per task under a header, in aligned columns.
fn table(tasks: &[Task]) -> String {
    let time = |t: Option<app::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
    let mut rows = vec![[
        "ID".to_owned(),
        "KIND".to_owned(),
        "STATUS".to_owned(),
        "ATTEMPT".to_owned(),
        "KEY".to_owned(),
        "CREATED".to_owned(),
        "FINISHED".to_owned(),
    ]];
    rows.extend(tasks.iter().map(|t| {
        [
            t.id.to_string(),
            t.kind.clone(),
            t.status.to_string(),
            format!("{}/{}", t.attempt, t.max_attempts),
            t.key.clone().unwrap_or_else(|| "-".to_owned()),
            t.created_at.to_string(),
            time(t.finished_at),
        ]
    }));
    super::table::aligned(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::{TaskSpec, TaskStatus, Timestamp};

    #[test]
    fn the_table_aligns_its_columns() {
        let at = Timestamp("2026-12-06T00:00:00Z".parse().unwrap());
        let mut t = Task::new(
            "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40".parse().unwrap(),
            TaskSpec {
                key: Some("nightly".into()),
                ..TaskSpec::new("echo", json!(1))
            },
            at,
        );
        t.status = TaskStatus::TimedOut;
        t.attempt = 1;
        assert_eq!(
            table(&[t]),
            "ID                                    KIND  STATUS     ATTEMPT  KEY      CREATED                   FINISHED\n\
             0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40  echo  timed_out  1/3      nightly  2026-12-06T00:00:00.000Z  -\n"
        );
    }
}
