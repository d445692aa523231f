//! `taskwire schedule add|list|rm`: a server's recurring schedules. An
//! error is one line on stderr and a non-zero exit.

use std::process::ExitCode;

use anyhow::Context as _;
use app::{Schedule, TaskSpec};
use clap::Subcommand;
use serde_json::Value;

use super::{Server, connect};

#[derive(Debug, clap::Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Create or replace a schedule; print it as JSON.
    Add(AddArgs),
    /// List the schedules, by name.
    List(ListArgs),
    /// Delete a schedule.
    Rm(RmArgs),
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub server: Server,
    /// Name: 1 to 128 of A-Z a-z 0-9 _ . -
    pub name: String,
    /// Cron pattern: 5 fields (minute hour day-of-month month day-of-week),
    /// or 6 with a leading seconds field.
    #[arg(long)]
    pub cron: String,
    /// IANA time zone the pattern is read in [default: UTC].
    #[arg(long)]
    pub timezone: Option<String>,
    /// Kind of each firing's task.
    #[arg(long)]
    pub kind: String,
    /// Input of each firing's task, as JSON text.
    #[arg(long, default_value = "null")]
    pub input: String,
    /// Create it paused: it does not fire until replaced unpaused.
    #[arg(long)]
    pub paused: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub server: Server,
    /// Print the schedules as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    #[command(flatten)]
    pub server: Server,
    pub name: String,
}

/// Runs `taskwire schedule ...`.
pub async fn run(args: ScheduleArgs) -> ExitCode {
    let done = match args.action {
        Action::Add(args) => add(args).await,
        Action::List(args) => list(args).await,
        Action::Rm(args) => rm(args).await,
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("taskwire: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn add(args: AddArgs) -> anyhow::Result<()> {
    let input: Value = serde_json::from_str(&args.input).context("--input is not valid JSON")?;
    let task = TaskSpec::new(args.kind, input);
    let client = connect(&args.server).await?;
    let schedule = client
        .schedule(
            &args.name,
            &args.cron,
            args.timezone.as_deref(),
            &task,
            args.paused,
        )
        .await
        .context("schedule refused")?;
    println!("{}", serde_json::to_string_pretty(&schedule)?);
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = connect(&args.server).await?;
    let schedules = client.schedules().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&schedules)?);
    } else {
        print!("{}", table(&schedules));
    }
    Ok(())
}

async fn rm(args: RmArgs) -> anyhow::Result<()> {
    let client = connect(&args.server).await?;
    client.unschedule(&args.name).await?;
    Ok(())
}

/// One line per schedule under a header, in aligned columns.
fn table(schedules: &[Schedule]) -> String {
    let time = |t: Option<app::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
    let mut rows = vec![[
        "NAME".to_owned(),
        "CRON".to_owned(),
        "TIMEZONE".to_owned(),
        "NEXT RUN".to_owned(),
        "LAST RUN".to_owned(),
        "STATE".to_owned(),
    ]];
    rows.extend(schedules.iter().map(|s| {
        [
            s.name.clone(),
            s.cron.clone(),
            s.timezone.clone(),
            time(s.next_run_at),
            time(s.last_run_at),
            if s.paused { "paused" } else { "active" }.to_owned(),
        ]
    }));
    super::table::aligned(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_aligns_its_columns() {
        let s = Schedule {
            name: "nightly".into(),
            cron: "0 1 * * *".into(),
            timezone: "Europe/Paris".into(),
            task: json!({"kind": "echo"}),
            paused: true,
            next_run_at: Some(app::Timestamp("2026-12-06T00:00:00Z".parse().unwrap())),
            last_run_at: None,
            last_task_id: None,
        };
        assert_eq!(
            table(&[s]),
            "NAME     CRON       TIMEZONE      NEXT RUN                  LAST RUN  STATE\n\
             nightly  0 1 * * *  Europe/Paris  2026-12-06T00:00:00.000Z  -         paused\n"
        );
    }
}
