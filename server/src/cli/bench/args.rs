//! `taskwire bench`'s flags, checked once into a [`Config`].

use std::time::Duration;

use app::MAX_BATCH;
use serde_json::Value;

use super::BenchError;
use crate::cli::Server;

/// Tasks of a run given neither `--tasks` nor `--duration-s`.
const DEFAULT_TASKS: u64 = 10_000;

/// Drive a server with many sockets and tasks in flight, verify every
/// result and report throughput and latency.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub server: Server,
    /// Sockets to open.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub clients: u32,
    /// Tasks each socket keeps in flight (with --batch B, at least B).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub inflight: u32,
    /// Tasks in all, shared among the sockets [default: 10000].
    #[arg(long, conflicts_with = "duration_s", value_parser = clap::value_parser!(u64).range(1..))]
    pub tasks: Option<u64>,
    /// Keep sending for this many seconds instead (then wait for the tasks in flight).
    #[arg(long, value_parser = seconds)]
    pub duration_s: Option<Duration>,
    /// Open loop: send this many tasks per second across all sockets on a
    /// fixed schedule (task n at n/RATE s), whether or not results came
    /// back, instead of a new task whenever one settles. Ack and result
    /// latency are then measured from each task's scheduled send time, not
    /// from when it went out, so a server that falls behind shows as
    /// queueing delay rather than being hidden by a generator that waited
    /// for it (coordinated omission). --inflight still caps each socket:
    /// past it, sends are late and the lateness is counted in the latency.
    /// With --duration-s, tasks due after it are not sent; with --batch B,
    /// an event is due when its last task is.
    #[arg(long, value_parser = rate)]
    pub rate: Option<f64>,
    /// Kind of every task.
    #[arg(long, default_value = app::builtin::ECHO)]
    pub kind: String,
    /// Input of every task as JSON [default per kind: echo {"seq":N,"text":"hello"},
    /// unique per task; sleep {"ms":10}; primes {"limit":1000000};
    /// sha256 {"data":"taskwire","rounds":1000}; fail {"message":"boom"}; others null].
    #[arg(long)]
    pub input: Option<String>,
    /// Send `tasks` events of this many tasks instead of one `task` event each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH as i64))]
    pub batch: u32,
    /// A task without a result this long after it was sent is counted lost.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline_ms: u64,
    /// Spread the sockets over the source addresses 127.0.0.1..=127.0.0.K
    /// (IPv4 loopback servers only) [default: one per 10000 sockets].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub source_addrs: Option<u8>,
    /// Threads driving the sockets [default: one per CPU].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Give every task its own idempotency key (`bench-<run>-<task>`), to
    /// see what keys cost.
    #[arg(long)]
    pub keys: bool,
    /// Print the summary as one JSON object (the last line of stdout).
    #[arg(long)]
    pub json: bool,
}

/// How much to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// This many tasks in all.
    Tasks(u64),
    /// As many as fit in this time.
    For(Duration),
}

/// A checked `taskwire bench` command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: String,
    pub token: Option<String>,
    pub clients: usize,
    /// `--inflight` as given (reported).
    pub inflight: usize,
    /// Tasks a socket may have in flight: `--inflight`, at least `--batch`.
    pub window: usize,
    pub batch: usize,
    pub amount: Amount,
    pub kind: String,
    pub input: Option<Value>,
    pub deadline: Duration,
    /// `--rate`: tasks per second across all sockets, if given.
    pub rate: Option<f64>,
    /// `--source-addrs`, if given.
    pub source_addrs: Option<u8>,
    /// `--keys`.
    pub keys: bool,
    pub json: bool,
}

impl BenchArgs {
    /// Runtime threads for the run.
    pub fn threads(&self) -> usize {
        self.threads
            .map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Checks what clap could not.
    pub fn into_config(self) -> Result<Config, BenchError> {
        let input = self
            .input
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(BenchError::InputJson)?;
        let amount = match (self.tasks, self.duration_s) {
            (_, Some(d)) => Amount::For(d),
            (n, None) => Amount::Tasks(n.unwrap_or(DEFAULT_TASKS)),
        };
        let (inflight, batch) = (self.inflight as usize, self.batch as usize);
        Ok(Config {
            url: self.server.url,
            token: self.server.token,
            clients: self.clients as usize,
            inflight,
            window: inflight.max(batch),
            batch,
            amount,
            kind: self.kind,
            input,
            deadline: Duration::from_millis(self.deadline_ms),
            rate: self.rate,
            source_addrs: self.source_addrs,
            keys: self.keys,
            json: self.json,
        })
    }
}

/// A positive number of seconds, fractions allowed.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
    // NaN is refused here too.
    if secs.is_nan() || secs <= 0.0 {
        return Err("must be more than 0".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// A finite rate above 0 tasks per second.
fn rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if !rate.is_finite() || rate <= 0.0 {
        return Err("must be a number of tasks per second above 0".into());
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cmd = Cmd::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cmd.args.into_config().map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_command_line() {
        let c = parse(&[
            "--url",
            "http://127.0.0.1:9",
            "--clients",
            "20",
            "--inflight",
            "50",
            "--tasks",
            "200000",
            "--kind",
            "echo",
            "--json",
        ])
        .unwrap();
        assert_eq!((c.clients, c.inflight, c.window, c.batch), (20, 50, 50, 1));
        assert_eq!(c.amount, Amount::Tasks(200_000));
        assert!(c.json && c.input.is_none() && c.rate.is_none());
        let c = parse(&["--rate", "2500.5", "--duration-s", "10"]).unwrap();
        assert_eq!(c.rate, Some(2500.5));

        let c = parse(&[
            "--duration-s",
            "1.5",
            "--batch",
            "100",
            "--input",
            r#"{"a":1}"#,
        ])
        .unwrap();
        assert_eq!(c.amount, Amount::For(Duration::from_millis(1500)));
        assert_eq!((c.inflight, c.window), (10, 100));
        assert_eq!(c.input, Some(serde_json::json!({"a": 1})));
        assert_eq!(parse(&[]).unwrap().amount, Amount::Tasks(DEFAULT_TASKS));

        let threads = |args: &[&str]| {
            Cmd::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
                .unwrap()
                .args
                .threads()
        };
        assert_eq!(threads(&["--threads", "1"]), 1);
        assert!(threads(&[]) >= 1);
    }

    #[test]
    fn refuses_what_cannot_run() {
        for bad in [
            &["--tasks", "1", "--duration-s", "1"][..],
            &["--duration-s", "0"],
            &["--duration-s", "-1"],
            &["--clients", "0"],
            &["--inflight", "0"],
            &["--batch", "1001"],
            &["--tasks", "0"],
            &["--source-addrs", "255"],
            &["--threads", "0"],
            &["--input", "{bad"],
            &["--rate", "0"],
            &["--rate", "-5"],
            &["--rate", "inf"],
            &["--rate", "NaN"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
