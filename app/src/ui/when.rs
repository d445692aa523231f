//! Times as the pages show them: how long until something (a scheduled
//! task's `run_at`, a schedule's next run), ticking with [`super::Live::now`],
//! and points in time in UTC, the same on the server and in every browser.

use crate::protocol::Timestamp;

/// How long until a time `ms` milliseconds away, rounded up to the second
/// (it never says "in 0 s" before the time has come): `in 4 s`,
/// `in 2 m 05 s`, `in 3 h 07 m`, `in 2 d 05 h`; `now` once it is due.
pub fn countdown(ms: i64) -> String {
    if ms <= 0 {
        return "now".to_owned();
    }
    let s = ms / 1000 + i64::from(ms % 1000 != 0);
    match s {
        0..60 => format!("in {s} s"),
        60..3_600 => format!("in {} m {:02} s", s / 60, s % 60),
        3_600..86_400 => format!("in {} h {:02} m", s / 3_600, (s / 60) % 60),
        _ => format!("in {} d {:02} h", s / 86_400, (s / 3_600) % 24),
    }
}

/// How long ago a time `ms` milliseconds back was, in whole seconds at
/// most: `4 s ago`, `2 m 05 s ago`, `3 h 07 m ago`, `2 d 05 h ago`.
pub fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3_600 => format!("{} m {:02} s ago", s / 60, s % 60),
        3_600..86_400 => format!("{} h {:02} m ago", s / 3_600, (s / 60) % 60),
        _ => format!("{} d {:02} h ago", s / 86_400, (s / 3_600) % 24),
    }
}

/// `2026-12-05 01:00:00 UTC`.
pub fn utc_time(t: &Timestamp) -> String {
    t.0.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn countdowns_round_up_to_the_second() {
        assert_eq!(countdown(-5), "now");
        assert_eq!(countdown(0), "now");
        assert_eq!(countdown(1), "in 1 s");
        assert_eq!(countdown(4_000), "in 4 s");
        assert_eq!(countdown(4_001), "in 5 s");
        assert_eq!(countdown(59_000), "in 59 s");
        assert_eq!(countdown(59_001), "in 1 m 00 s");
        assert_eq!(countdown(125_000), "in 2 m 05 s");
        assert_eq!(countdown(3_599_000), "in 59 m 59 s");
        assert_eq!(countdown(3_600_000), "in 1 h 00 m");
        assert_eq!(countdown(11_220_000), "in 3 h 07 m");
        assert_eq!(countdown(86_400_000 * 2 + 5 * 3_600_000), "in 2 d 05 h");
    }

    #[test]
    fn a_countdown_ticks_down_each_second() {
        let run_at = 10_000;
        let shown: Vec<_> = (7_500..=10_500)
            .step_by(1_000)
            .map(|now| countdown(run_at - now))
            .collect();
        assert_eq!(shown, ["in 3 s", "in 2 s", "in 1 s", "now"]);
    }

    #[test]
    fn times_ago_and_in_utc() {
        assert_eq!(ago(-1), "0 s ago");
        assert_eq!(ago(4_999), "4 s ago");
        assert_eq!(ago(125_000), "2 m 05 s ago");
        assert_eq!(ago(11_220_000), "3 h 07 m ago");
        let t = Timestamp(Utc.with_ymd_and_hms(2026, 12, 5, 1, 2, 3).unwrap());
        assert_eq!(utc_time(&t), "2026-12-05 01:02:03 UTC");
    }
}
