//! The one retry delay of vantage: exponential, capped, with full jitter.
//!
//! `backon` makes the capped exponential schedule; the delay actually slept
//! is a uniformly random part of it ("full jitter"), so thousands of nodes
//! that lost the hub together do not come back in step. Callers sleep
//! themselves (a thread, a tokio task, or a timeout that other events may
//! cut short), so the same type serves blocking and async code.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays between attempts: attempt `i` waits a uniformly random time in
/// `[0, min(min · 2^i, max)]`.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    schedule: ExponentialBackoff,
}

impl Backoff {
    /// A backoff starting at `min` and doubling up to `max` (a `max` below
    /// `min` is taken as `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(min)
            .with_max_delay(max.max(min))
            .without_max_times();
        Backoff {
            builder,
            schedule: builder.build(),
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        ceiling.mul_f64(fastrand::f64())
    }

    /// The delay before the next attempt when the server asked for one
    /// (`Retry-After` on a 503 or 429): what it asked plus this backoff's
    /// full-jitter delay, so nodes sent away together do not return together.
    pub fn next_delay_after(&mut self, asked: Option<Duration>) -> Duration {
        asked.unwrap_or_default() + self.next_delay()
    }

    /// Starts over from `min`: the last attempt succeeded.
    pub fn reset(&mut self) {
        self.schedule = self.builder.build();
    }

    /// The next step of the exponential schedule, before jitter.
    fn ceiling(&mut self) -> Duration {
        // The schedule is endless (`without_max_times`).
        self.schedule.next().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_starts_over() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let ceilings: Vec<u64> = (0..9).map(|_| b.ceiling().as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
        let mut swapped = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(swapped.ceiling(), Duration::from_secs(5));
        assert_eq!(swapped.ceiling(), Duration::from_secs(5));
    }

    #[test]
    fn a_server_asked_delay_is_a_floor_with_jitter_on_top() {
        let mut b = Backoff::new(Duration::from_secs(4), Duration::from_secs(4));
        let asked = Duration::from_secs(30);
        let delays: Vec<Duration> = (0..200).map(|_| b.next_delay_after(Some(asked))).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= asked && *d <= asked + Duration::from_secs(4))
        );
        assert!(delays.iter().any(|d| *d > asked + Duration::from_secs(2)));
        assert!(b.next_delay_after(None) <= Duration::from_secs(4));
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_step() {
        let mut b = Backoff::new(Duration::from_secs(100), Duration::from_secs(100));
        let delays: Vec<Duration> = (0..400).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(100)));
        // Uniform over [0, 100 s]: both quarters at the ends are hit.
        assert!(delays.iter().any(|d| *d < Duration::from_secs(25)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(75)));
    }
}
