//! `taskwire watch`: a live view of the queue in the terminal. It joins
//! the dashboard room and redraws on every `stats` push: per kind queued,
//! running, paused, queue wait and run time p50/p99; the workers; the
//! throughput. When stdout is not a terminal it prints one line per push
//! instead (for logs and pipes). It ends on Ctrl-C, on end of input when
//! stdin is a terminal (Ctrl-D), when stdout is closed, or after
//! `--count` pushes.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::Context as _;
use app::{Latency, Stats};
use tokio::io::AsyncBufReadExt as _;

use super::{Server, connect};
use crate::client::Push;

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub server: Server,
    /// Stop after this many updates (default: until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
}

/// Clears the screen and puts the cursor home.
const CLEAR: &str = "\x1b[H\x1b[2J";

pub async fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.server).await?;
    let first = client
        .dashboard()
        .await
        .context("cannot join the dashboard")?;
    let tty = std::io::stdout().is_terminal();
    let mut shown = 0u64;
    let done = |shown: u64| args.count.is_some_and(|n| shown >= n);
    if !show(&first, tty, &args.server.url)? {
        return Ok(ExitCode::SUCCESS);
    }
    shown += 1;
    let mut input = std::io::stdin()
        .is_terminal()
        .then(|| tokio::io::BufReader::new(tokio::io::stdin()).lines());
    while !done(shown) {
        let push = tokio::select! {
            push = client.next_push() => push,
            _ = tokio::signal::ctrl_c() => break,
            line = next_line(&mut input) => match line {
                Some(_) => continue,
                None => break,
            },
        };
        match push {
            Some(Push::Stats(stats)) => {
                if !show(&stats, tty, &args.server.url)? {
                    break;
                }
                shown += 1;
            }
            Some(_) => {}
            None => anyhow::bail!("the server closed the connection"),
        }
    }
    let _ = client.disconnect().await;
    Ok(ExitCode::SUCCESS)
}

/// The next line of a terminal's input; `None` at its end; never without
/// one.
async fn next_line(
    input: &mut Option<tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>>,
) -> Option<String> {
    match input {
        Some(lines) => lines.next_line().await.ok().flatten(),
        None => std::future::pending().await,
    }
}

/// Writes one update; `false` once stdout is closed (a pipe's reader
/// left).
fn show(stats: &Stats, tty: bool, url: &str) -> anyhow::Result<bool> {
    let text = match tty {
        true => format!("{CLEAR}{}", screen(stats, url)),
        false => format!("{}\n", line(stats)),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// `p50/p99` of a latency, in milliseconds, or `-`.
fn pct(l: &Latency) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    format!("{}/{}", ms(l.p50), ms(l.p99))
}

/// The one-line form: the time, the totals, then each kind.
pub fn line(s: &Stats) -> String {
    let mut out = format!(
        "{} queued={} running={} scheduled={} waiting={} succeeded={} failed={} workers={} throughput={:.1}/s",
        s.at,
        s.queued,
        s.running,
        s.scheduled,
        s.waiting,
        s.succeeded,
        s.failed,
        s.workers.len(),
        s.throughput_per_s
    );
    for k in &s.kinds {
        let _ = write!(
            out,
            " | {}{} queued={} running={} wait_ms={} run_ms={}",
            k.kind,
            if k.paused { " (paused)" } else { "" },
            k.queued,
            k.running,
            pct(&k.wait_ms),
            pct(&k.run_ms)
        );
    }
    out
}

/// The full-screen form.
fn screen(s: &Stats, url: &str) -> String {
    let mut out = format!(
        "taskwire watch {url}   {}   (Ctrl-C to quit)\n\n\
         queued {}  running {}  scheduled {}  waiting {}  succeeded {}  failed {}  cancelled {}  timed out {}\n\
         workers {}  throughput {:.1}/s\n\n",
        s.at,
        s.queued,
        s.running,
        s.scheduled,
        s.waiting,
        s.succeeded,
        s.failed,
        s.cancelled,
        s.timed_out,
        s.workers.len(),
        s.throughput_per_s
    );
    let _ = writeln!(
        out,
        "{:<20} {:>7} {:>8} {:>7}  {:>17}  {:>17}",
        "KIND", "PAUSED", "QUEUED", "RUNNING", "WAIT ms p50/p99", "RUN ms p50/p99"
    );
    for k in &s.kinds {
        let _ = writeln!(
            out,
            "{:<20} {:>7} {:>8} {:>7}  {:>17}  {:>17}",
            k.kind,
            if k.paused { "yes" } else { "" },
            k.queued,
            k.running,
            pct(&k.wait_ms),
            pct(&k.run_ms)
        );
    }
    out.push('\n');
    for w in &s.workers {
        let _ = writeln!(
            out,
            "worker {:<24} {:<9} running {:<4} done {}",
            w.id.to_string(),
            w.state.as_str(),
            w.running,
            w.tasks_done
        );
    }
    out
}
