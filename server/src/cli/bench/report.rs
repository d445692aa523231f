//! Counting and reporting: each socket's [`Tally`], the latency histograms
//! all sockets feed ([`Latencies`], through a [`Samples`] buffer each), and
//! the final [`Report`], as a summary or as one JSON object.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency recorded, in microseconds (an hour); longer ones
/// are recorded as this.
const MAX_MICROS: u64 = 3_600_000_000;
/// Samples a socket buffers before it takes the histograms' lock.
const SAMPLES_PER_FLUSH: usize = 1024;

/// How the tasks ended. Every task given to a socket ends in exactly one of
/// `ok`, `wrong`, `errors`, `lost` or `unsent`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Outcomes {
    pub ok: u64,
    pub wrong: u64,
    pub errors: u64,
    pub lost: u64,
    pub unsent: u64,
    /// Results for no task this socket waits for (duplicates, or late
    /// results of tasks already counted lost).
    pub stray: u64,
    /// Sockets the server closed (or that broke) before their tasks were done.
    pub disconnects: u64,
    pub error_codes: BTreeMap<String, u64>,
}

impl Outcomes {
    /// Counts `n` errors under `code`.
    pub fn error(&mut self, code: &str, n: u64) {
        self.errors += n;
        *self.error_codes.entry(code.to_owned()).or_default() += n;
    }

    /// Adds `other` into this one.
    fn merge(&mut self, other: Outcomes) {
        self.ok += other.ok;
        self.wrong += other.wrong;
        self.errors += other.errors;
        self.lost += other.lost;
        self.unsent += other.unsent;
        self.stray += other.stray;
        self.disconnects += other.disconnects;
        for (code, n) in other.error_codes {
            *self.error_codes.entry(code).or_default() += n;
        }
    }
}

/// What one socket counted.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    pub outcomes: Outcomes,
    /// When the last task was settled (result or error ack).
    pub last_done: Option<Instant>,
}

impl Tally {
    /// Adds `other` into this one.
    pub fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.outcomes.merge(other.outcomes);
        self.last_done = self.last_done.max(other.last_done);
    }
}

/// Ack and result latencies of every socket, in microseconds, and with
/// `--rate`, how late after its scheduled time each task went out.
pub struct Latencies {
    ack: Histogram<u64>,
    result: Histogram<u64>,
    lag: Histogram<u64>,
}

impl Latencies {
    pub fn new() -> Self {
        let histogram = || {
            // 3 significant digits from 1 µs to an hour: valid bounds.
            Histogram::new_with_bounds(1, MAX_MICROS, 3).unwrap_or_else(|_| unreachable!())
        };
        Self {
            ack: histogram(),
            result: histogram(),
            lag: histogram(),
        }
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

/// One socket's buffer of latency samples, flushed into the shared
/// [`Latencies`] every [`SAMPLES_PER_FLUSH`] and when dropped.
pub struct Samples {
    ack: Vec<u64>,
    result: Vec<u64>,
    lag: Vec<u64>,
    // std mutex: taken briefly, never across an await.
    shared: Arc<Mutex<Latencies>>,
}

impl Samples {
    pub fn new(shared: Arc<Mutex<Latencies>>) -> Self {
        Self {
            ack: Vec::with_capacity(SAMPLES_PER_FLUSH),
            result: Vec::with_capacity(SAMPLES_PER_FLUSH),
            lag: Vec::new(),
            shared,
        }
    }

    pub fn ack(&mut self, latency: Duration) {
        self.ack.push(micros(latency));
        if self.ack.len() >= SAMPLES_PER_FLUSH {
            self.flush();
        }
    }

    pub fn result(&mut self, latency: Duration) {
        self.result.push(micros(latency));
        if self.result.len() >= SAMPLES_PER_FLUSH {
            self.flush();
        }
    }

    /// `count` tasks sent `lateness` after they were due.
    pub fn lag(&mut self, lateness: Duration, count: u64) {
        let v = micros(lateness);
        self.lag.extend(std::iter::repeat_n(v, count as usize));
        if self.lag.len() >= SAMPLES_PER_FLUSH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        for v in self.ack.drain(..) {
            shared.ack.saturating_record(v);
        }
        for v in self.result.drain(..) {
            shared.result.saturating_record(v);
        }
        for v in self.lag.drain(..) {
            shared.lag.saturating_record(v);
        }
    }
}

impl Drop for Samples {
    fn drop(&mut self) {
        self.flush();
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(MAX_MICROS)
        .clamp(1, MAX_MICROS)
}

/// The outcome of a run. Its JSON form is what `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Tasks sent, plus those that could not be sent.
    pub tasks: u64,
    #[serde(flatten)]
    pub outcomes: Outcomes,
    /// From the first task sent to the last one settled.
    pub duration_s: f64,
    /// `ok` per second of `duration_s`.
    pub throughput_per_s: u64,
    pub ack_p50_ms: Option<f64>,
    pub ack_p90_ms: Option<f64>,
    pub ack_p99_ms: Option<f64>,
    pub ack_max_ms: Option<f64>,
    pub result_p50_ms: Option<f64>,
    pub result_p90_ms: Option<f64>,
    pub result_p99_ms: Option<f64>,
    pub result_max_ms: Option<f64>,
    /// `--rate`, the target: tasks per second across all sockets (absent
    /// from closed-loop runs, as are the `send_lag` fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<f64>,
    /// How long after its scheduled time a task was sent: the generator's
    /// timer and a full window (`--inflight`) make it late.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_max_ms: Option<f64>,
    pub kind: String,
    pub clients: usize,
    pub connected: usize,
    pub connect_errors: usize,
    pub inflight: usize,
    pub batch: usize,
    pub source_addrs: usize,
}

/// What the run was, for the report.
#[derive(Debug, Clone)]
pub struct Shape {
    pub kind: String,
    pub clients: usize,
    pub connected: usize,
    pub inflight: usize,
    pub batch: usize,
    pub source_addrs: usize,
    /// `--rate`, if given.
    pub rate: Option<f64>,
}

impl Report {
    /// The report of `tally` and `latencies` for a run that began sending at `start`.
    pub fn new(shape: Shape, tally: Tally, latencies: &Latencies, start: Instant) -> Self {
        let end = tally.last_done.unwrap_or(start).max(start);
        let secs = (end - start).as_secs_f64();
        let at = |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| ms(h.value_at_quantile(q)));
        let max = |h: &Histogram<u64>| (!h.is_empty()).then(|| ms(h.max()));
        let (ack, result, lag) = (&latencies.ack, &latencies.result, &latencies.lag);
        let paced = |v: Option<f64>| shape.rate.and(v);
        Self {
            tasks: tally.sent + tally.outcomes.unsent,
            duration_s: (secs * 1000.0).round() / 1000.0,
            throughput_per_s: if secs > 0.0 {
                (tally.outcomes.ok as f64 / secs).round() as u64
            } else {
                0
            },
            ack_p50_ms: at(ack, 0.5),
            ack_p90_ms: at(ack, 0.9),
            ack_p99_ms: at(ack, 0.99),
            ack_max_ms: max(ack),
            result_p50_ms: at(result, 0.5),
            result_p90_ms: at(result, 0.9),
            result_p99_ms: at(result, 0.99),
            result_max_ms: max(result),
            rate_per_s: shape.rate,
            send_lag_p50_ms: paced(at(lag, 0.5)),
            send_lag_p99_ms: paced(at(lag, 0.99)),
            send_lag_max_ms: paced(max(lag)),
            outcomes: tally.outcomes,
            kind: shape.kind,
            clients: shape.clients,
            connected: shape.connected,
            connect_errors: shape.clients - shape.connected,
            inflight: shape.inflight,
            batch: shape.batch,
            source_addrs: shape.source_addrs,
        }
    }

    /// Whether every task came back as expected.
    pub fn all_ok(&self) -> bool {
        self.outcomes.ok == self.tasks
    }
}

/// Microseconds as milliseconds, to the microsecond.
fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} tasks over {} sockets ({} connected) x {} in flight, batch {}",
            self.tasks, self.kind, self.clients, self.connected, self.inflight, self.batch
        )?;
        let o = &self.outcomes;
        writeln!(
            f,
            "  ok {}  wrong {}  errors {}  lost {}  unsent {}",
            o.ok, o.wrong, o.errors, o.lost, o.unsent
        )?;
        writeln!(
            f,
            "  throughput {} tasks/s over {:.3} s",
            self.throughput_per_s, self.duration_s
        )?;
        if let Some(rate) = self.rate_per_s {
            writeln!(
                f,
                "  open loop at {rate} tasks/s: latency from each task's scheduled send"
            )?;
        }
        writeln!(
            f,
            "  latency ms {:>9} {:>9} {:>9} {:>9}",
            "p50", "p90", "p99", "max"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, v: [Option<f64>; 4]| {
            write!(f, "  {name:<10}")?;
            for x in v {
                match x {
                    Some(x) => write!(f, " {x:>9.3}")?,
                    None => write!(f, " {:>9}", "-")?,
                }
            }
            writeln!(f)
        };
        row(
            f,
            "ack",
            [
                self.ack_p50_ms,
                self.ack_p90_ms,
                self.ack_p99_ms,
                self.ack_max_ms,
            ],
        )?;
        row(
            f,
            "result",
            [
                self.result_p50_ms,
                self.result_p90_ms,
                self.result_p99_ms,
                self.result_max_ms,
            ],
        )?;
        if self.rate_per_s.is_some() {
            row(
                f,
                "send lag",
                [
                    self.send_lag_p50_ms,
                    None,
                    self.send_lag_p99_ms,
                    self.send_lag_max_ms,
                ],
            )?;
        }
        if !o.error_codes.is_empty() {
            let codes: Vec<String> = o
                .error_codes
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            writeln!(f, "  errors by code: {}", codes.join(", "))?;
        }
        if o.disconnects > 0 {
            writeln!(f, "  sockets disconnected early: {}", o.disconnects)?;
        }
        if o.stray > 0 {
            writeln!(f, "  stray results (duplicate or late): {}", o.stray)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_every_sockets_samples() {
        let shared = Arc::new(Mutex::new(Latencies::new()));
        for socket in 0..2u64 {
            let mut samples = Samples::new(shared.clone());
            for i in 1..=1000u64 {
                samples.ack(Duration::from_micros(i + socket * 1000));
                samples.result(Duration::from_millis(2));
            }
        }
        let mut tally = Tally {
            sent: 2000,
            ..Tally::default()
        };
        tally.outcomes.ok = 1999;
        tally.outcomes.error("queue_full", 1);
        let start = Instant::now();
        tally.last_done = Some(start + Duration::from_secs(2));
        let shape = Shape {
            kind: "echo".into(),
            clients: 2,
            connected: 2,
            inflight: 5,
            batch: 1,
            source_addrs: 0,
            rate: None,
        };
        let r = Report::new(shape, tally, &shared.lock().unwrap(), start);
        assert_eq!((r.tasks, r.outcomes.ok, r.outcomes.errors), (2000, 1999, 1));
        assert_eq!(r.throughput_per_s, 1000);
        let near = |got: Option<f64>, want: f64| (got.unwrap() - want).abs() <= want / 500.0;
        assert!(near(r.ack_p50_ms, 1.0), "{r:?}");
        assert!(near(r.ack_p99_ms, 1.98), "{r:?}");
        assert!(near(r.ack_max_ms, 2.0), "{r:?}");
        assert!(near(r.result_p50_ms, 2.0), "{r:?}");
        assert!(!r.all_ok());
        let text = r.to_string();
        assert!(text.contains("errors by code: queue_full 1"), "{text}");
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["error_codes"]["queue_full"], 1);
        // A closed-loop run's JSON has no open-loop fields.
        assert!(json.get("rate_per_s").is_none() && json.get("send_lag_p99_ms").is_none());
    }

    #[test]
    fn an_open_loop_run_reports_its_rate_and_send_lag() {
        let shared = Arc::new(Mutex::new(Latencies::new()));
        let mut samples = Samples::new(shared.clone());
        samples.lag(Duration::from_micros(500), 99);
        samples.lag(Duration::from_millis(40), 1);
        drop(samples);
        let shape = Shape {
            kind: "echo".into(),
            clients: 1,
            connected: 1,
            inflight: 1,
            batch: 1,
            source_addrs: 1,
            rate: Some(250.0),
        };
        let r = Report::new(
            shape,
            Tally::default(),
            &shared.lock().unwrap(),
            Instant::now(),
        );
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["rate_per_s"], 250.0);
        assert_eq!(json["send_lag_p50_ms"], 0.5);
        let p99 = json["send_lag_p99_ms"].as_f64().unwrap();
        assert!((0.5..0.51).contains(&p99), "{json}");
        let max = json["send_lag_max_ms"].as_f64().unwrap();
        assert!((40.0..40.1).contains(&max), "{json}");
        assert!(r.to_string().contains("open loop at 250 tasks/s"), "{r}");
    }
}
