//! When each request of an open-loop run is due: a constant arrival rate, fixed in advance.
//!
//! A closed-loop client (wrk) sends the next request when the last one answers, so a server
//! that stalls for a second is sent nothing during that second and its stall hides in one
//! sample: coordinated omission. Here every request has an intended send time, whatever the
//! server does, and its latency is measured from that time — a stall shows in every request
//! that was due during it.

use std::time::Duration;

/// The intended send times of a run, as offsets from its start.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    interval: Duration,
    total: u64,
}

impl Schedule {
    /// `rate` requests a second for `duration`. A rate of zero sends nothing.
    pub fn new(rate: f64, duration: Duration) -> Self {
        if rate <= 0.0 || !rate.is_finite() {
            return Self {
                interval: Duration::ZERO,
                total: 0,
            };
        }
        // Whole nanoseconds between sends: rounding each gap would drift over a long run,
        // so the n-th send is computed from n, not summed.
        let total = (rate * duration.as_secs_f64()).floor() as u64;
        Self {
            interval: Duration::from_secs_f64(1.0 / rate),
            total,
        }
    }

    /// How many requests the run sends.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// When request `n` (0-based) is due, after the start.
    pub fn due(&self, n: u64) -> Duration {
        self.interval.mul_f64(n as f64)
    }

    /// Every send time, in order.
    pub fn iter(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..self.total).map(|n| self.due(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_spreads_its_requests_evenly_over_the_run() {
        let schedule = Schedule::new(1000.0, Duration::from_secs(2));
        assert_eq!(schedule.len(), 2000);
        let times: Vec<Duration> = schedule.iter().collect();
        assert_eq!(times[0], Duration::ZERO);
        assert_eq!(times[1], Duration::from_millis(1));
        // No drift: the last send is where n × interval puts it, not a sum of rounded gaps.
        assert_eq!(times[1999], Duration::from_millis(1999));
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn an_awkward_rate_does_not_drift() {
        let schedule = Schedule::new(3.0, Duration::from_secs(1000));
        assert_eq!(schedule.len(), 3000);
        let last = schedule.due(2999).as_secs_f64();
        assert!((last - 2999.0 / 3.0).abs() < 1e-6, "{last}");
    }

    #[test]
    fn no_rate_sends_nothing() {
        assert!(Schedule::new(0.0, Duration::from_secs(5)).is_empty());
        assert!(Schedule::new(f64::NAN, Duration::from_secs(5)).is_empty());
        assert!(Schedule::new(-1.0, Duration::from_secs(5)).is_empty());
    }
}
