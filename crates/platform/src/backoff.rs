//! Waits between retries: doubling from a first delay up to a cap, from backon. A loop that
//! retries for as long as the process runs (a consumer, the relay, a subscription) starts
//! over after each success; a redelivery's delay follows from its attempt number.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The delays of a loop that retries forever.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(first)
            .with_max_delay(cap)
            .without_max_times();
        Self {
            builder,
            delays: builder.build(),
        }
    }

    /// The wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        // Without a limit on times the iterator never ends; the cap is the fallback anyway.
        self.delays
            .next()
            .unwrap_or_else(|| self.builder.build().last().unwrap_or_default())
    }

    /// After a success: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

/// The delay before try `attempt` (1-based): `first`, then doubling, capped at `cap`.
pub fn doubling(attempt: i64, first: Duration, cap: Duration) -> Duration {
    let skip = usize::try_from(attempt.clamp(1, 64) - 1).unwrap_or(0);
    let mut backoff = Backoff::new(first, cap);
    backoff.delays.nth(skip).unwrap_or(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_start_over() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(500));
        // backon multiplies in f32: 200 ms comes out a few nanoseconds over.
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(100));
    }

    #[test]
    fn an_attempt_waits_its_doubling() {
        let s = Duration::from_secs;
        assert_eq!(doubling(1, s(2), s(60)), s(2));
        assert_eq!(doubling(2, s(2), s(60)), s(4));
        assert_eq!(doubling(5, s(2), s(60)), s(32));
        assert_eq!(doubling(6, s(2), s(60)), s(60));
        assert_eq!(doubling(0, s(2), s(60)), s(2));
        assert_eq!(doubling(i64::MAX, s(2), s(60)), s(60));
    }
}
