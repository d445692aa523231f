//! The schedules' clock: wall-clock time that follows tokio's clock.

use app::Timestamp;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

/// UTC time as `base` plus the time tokio's clock has moved since `at`.
///
/// The actor sleeps on tokio's timer and reads the time from this clock,
/// so both agree: a test that pauses tokio's clock (`start_paused`) moves
/// schedules' time too, and a firing due in a day takes no real time. On a
/// server the base is the system time at start; a later step of the system
/// clock (a manual change, a suspend) is not followed until the next start,
/// while NTP's gradual corrections slew tokio's monotonic clock as well.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: DateTime<Utc>,
    at: Instant,
}

impl Clock {
    /// A clock reading the system time now.
    pub fn system() -> Self {
        Self::starting_at(Timestamp::now())
    }

    /// A clock that reads `base` now (tests pick their day).
    pub fn starting_at(base: Timestamp) -> Self {
        Self {
            base: base.0,
            at: Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        let elapsed = TimeDelta::from_std(self.at.elapsed()).unwrap_or(TimeDelta::MAX);
        Timestamp(
            self.base
                .checked_add_signed(elapsed)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// The instant of tokio's clock at which this clock reads `t` (now,
    /// if `t` has passed).
    pub fn instant_of(&self, t: Timestamp) -> Instant {
        let since_base = (t.0 - self.base).to_std().unwrap_or_default();
        let target = self.at.checked_add(since_base);
        // Beyond what an `Instant` holds: far enough, wake in a year.
        let far = || Instant::now() + std::time::Duration::from_secs(365 * 86_400);
        target.unwrap_or_else(far).max(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: &str) -> Timestamp {
        Timestamp(s.parse().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock() {
        let clock = Clock::starting_at(at("2026-03-29T00:59:00Z"));
        assert_eq!(clock.now(), at("2026-03-29T00:59:00Z"));
        tokio::time::sleep(Duration::from_millis(61_500)).await;
        assert_eq!(clock.now().to_string(), "2026-03-29T01:00:01.500Z");
        let target = at("2026-03-29T02:00:00Z");
        tokio::time::sleep_until(clock.instant_of(target)).await;
        assert_eq!(clock.now(), target);
        // A time gone by is now.
        assert_eq!(clock.instant_of(at("2026-03-29T00:00:00Z")), Instant::now());
    }
}
