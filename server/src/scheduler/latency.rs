//! The dashboard's latency per kind (`stats.kinds[].wait_ms` / `run_ms`):
//! how long tasks waited in the queue (`queued` until `running`) and ran
//! (`running` until final) over the last [`WINDOW`], as HDR histograms
//! kept in [`SLICES`] slices of time, so old observations leave the window
//! a slice at a time.
//!
//! Every observation is also recorded into `/metrics`' histograms at the
//! same point (see [`crate::metrics`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use app::Latency;
use hdrhistogram::Histogram;
use tokio::time::Instant;

/// How far back the percentiles look.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Slices the window is kept in.
const SLICES: u32 = 10;
/// Largest latency told apart, in microseconds (about 19 hours); longer
/// ones count as that.
const MAX_MICROS: u64 = 1 << 36;
/// Two significant digits: 1 % resolution. (Counts are `u32`: a slice
/// holds 30 s of one kind's tasks.)
const SIGFIG: u8 = 2;

/// A kind's two latencies.
#[derive(Clone)]
pub struct Pair {
    pub wait: Histogram<u32>,
    pub run: Histogram<u32>,
}

impl Pair {
    fn new() -> Self {
        Self {
            wait: histogram(),
            run: histogram(),
        }
    }

    /// Adds `other`'s observations to these.
    pub fn merge(&mut self, other: &Pair) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.wait.add(&other.wait);
        let _ = self.run.add(&other.run);
    }
}

fn histogram() -> Histogram<u32> {
    Histogram::new_with_max(MAX_MICROS, SIGFIG).expect("constant bounds are valid")
}

/// The latencies of the last [`WINDOW`], by kind.
#[derive(Default)]
pub struct Latencies {
    /// Newest last: when each slice started, and what it holds.
    slices: VecDeque<(Instant, HashMap<String, Pair>)>,
}

impl Latencies {
    fn slice(&mut self, kind: &str) -> &mut Pair {
        let now = Instant::now();
        let len = WINDOW / SLICES;
        if self
            .slices
            .back()
            .is_none_or(|(start, _)| now.duration_since(*start) >= len)
        {
            self.slices.push_back((now, HashMap::new()));
        }
        self.expire(now);
        let Some((_, kinds)) = self.slices.back_mut() else {
            unreachable!("a slice was just made")
        };
        kinds.entry(kind.to_owned()).or_insert_with(Pair::new)
    }

    /// Drops the slices that started a window ago: the figures cover
    /// between the last 4.5 and 5 minutes.
    fn expire(&mut self, now: Instant) {
        while self
            .slices
            .front()
            .is_some_and(|(start, _)| now.duration_since(*start) >= WINDOW)
        {
            self.slices.pop_front();
        }
    }

    /// A task of `kind` waited `wait` in the queue.
    pub fn waited(&mut self, kind: &str, wait: Duration) {
        self.slice(kind).wait.saturating_record(micros(wait));
    }

    /// A task of `kind` ran `run`.
    pub fn ran(&mut self, kind: &str, run: Duration) {
        self.slice(kind).run.saturating_record(micros(run));
    }

    /// Every kind's observations in the window, merged.
    pub fn snapshot(&self) -> BTreeMap<String, Pair> {
        let now = Instant::now();
        let mut all: BTreeMap<String, Pair> = BTreeMap::new();
        // Slices the window left are dropped at the next observation.
        let live = self
            .slices
            .iter()
            .filter(|(start, _)| now.duration_since(*start) < WINDOW);
        for (_, kinds) in live {
            for (kind, pair) in kinds {
                match all.get_mut(kind) {
                    Some(sum) => sum.merge(pair),
                    None => {
                        all.insert(kind.clone(), pair.clone());
                    }
                }
            }
        }
        all
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// p50/p95/p99 in milliseconds of what `h` holds.
pub fn summary(h: &Histogram<u32>) -> Latency {
    let count = h.len();
    let at = |q: f64| (count > 0).then(|| h.value_at_quantile(q) as f64 / 1000.0);
    Latency {
        count,
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    }
}

/// A histogram as `[value, count]` pairs of its recorded values (what a
/// cluster node publishes with its heartbeat).
pub fn to_pairs(h: &Histogram<u32>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), u64::from(v.count_at_value())))
        .collect()
}

/// The histogram `to_pairs` described.
pub fn from_pairs(pairs: &[(u64, u64)]) -> Histogram<u32> {
    let mut h = histogram();
    for &(value, count) in pairs {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let _ = h.record_n(value.min(MAX_MICROS), count);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn percentiles_cover_the_last_five_minutes_only() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.waited("echo", Duration::from_millis(ms));
        }
        l.ran("echo", Duration::from_millis(7));
        let snap = l.snapshot();
        let s = summary(&snap["echo"].wait);
        assert_eq!(s.count, 100);
        let p50 = s.p50.unwrap();
        assert!((49.5..=50.5).contains(&p50), "{p50}");
        let p99 = s.p99.unwrap();
        assert!((98.5..=99.5).contains(&p99), "{p99}");
        assert_eq!(summary(&snap["echo"].run).count, 1);

        tokio::time::advance(Duration::from_secs(4 * 60)).await;
        l.waited("echo", Duration::from_millis(500));
        assert_eq!(summary(&l.snapshot()["echo"].wait).count, 101);
        // Five minutes after the first ones, only the later one is left.
        tokio::time::advance(Duration::from_secs(61)).await;
        let snap = l.snapshot();
        let s = summary(&snap["echo"].wait);
        assert_eq!(s.count, 1);
        assert!((495.0..=505.0).contains(&s.p50.unwrap()));
        assert_eq!(summary(&snap["echo"].run), Latency::default());
        tokio::time::advance(WINDOW).await;
        assert!(l.snapshot().is_empty());
    }

    #[test]
    fn pairs_carry_a_histogram_across() {
        let mut h = histogram();
        for us in [10, 10, 2000, 3_000_000] {
            h.record(us).unwrap();
        }
        let back = from_pairs(&to_pairs(&h));
        assert_eq!(back.len(), 4);
        assert_eq!(summary(&back), summary(&h));
    }
}
