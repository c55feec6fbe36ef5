//! A circuit breaker: after `threshold` consecutive failures a dependency is skipped for
//! `cool_down`, then one call probes it (half-open) while the others still skip it; the
//! probe's success closes it, its failure reopens it. A probe that never reports (its caller
//! went away) is replaced by another after a further `cool_down`.
//! It turns a dead or hung dependency from a timeout on every request into a fast skip.
//! Its state is the gauge `keel_breaker_state{dependency}` (0 closed, 1 half-open, 2 open),
//! and each opening counts in `keel_breaker_opened_total`.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// What the breaker lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    threshold: u32,
    cool_down: Duration,
    state: Mutex<Inner>,
    /// Closed with no failure counted: the state of nearly every call, answered without
    /// the lock (a Redis call asks twice, once before and once after).
    healthy: AtomicBool,
    gauge: metrics::Gauge,
}

#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; another may go once `until` has passed without its answer.
    HalfOpen {
        until: Instant,
    },
}

impl Breaker {
    pub fn new(name: &'static str, threshold: u32, cool_down: Duration) -> Self {
        // Handles taken before a recorder exists record nothing.
        crate::metrics::handle();
        let gauge = metrics::gauge!("keel_breaker_state", "dependency" => name);
        gauge.set(0.0);
        Self {
            name,
            threshold: threshold.max(1),
            cool_down,
            state: Mutex::new(Inner::Closed { failures: 0 }),
            healthy: AtomicBool::new(true),
            gauge,
        }
    }

    /// Whether to call the dependency now.
    pub fn allow(&self) -> bool {
        if self.healthy.load(Ordering::Acquire) {
            return true;
        }
        let mut state = self.lock();
        match *state {
            Inner::Closed { .. } => true,
            Inner::Open { until } | Inner::HalfOpen { until } if Instant::now() >= until => {
                *state = Inner::HalfOpen {
                    until: Instant::now() + self.cool_down,
                };
                self.gauge.set(1.0);
                true
            }
            // Under load a dead dependency's probe would otherwise be every request that
            // arrives before the first answer, each waiting for its timeout.
            Inner::Open { .. } | Inner::HalfOpen { .. } => false,
        }
    }

    pub fn record_success(&self) {
        if self.healthy.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.lock();
        if !matches!(*state, Inner::Closed { failures: 0 }) {
            if !matches!(*state, Inner::Closed { .. }) {
                tracing::info!(dependency = self.name, "circuit closed");
                self.gauge.set(0.0);
            }
            *state = Inner::Closed { failures: 0 };
            self.healthy.store(true, Ordering::Release);
        }
    }

    pub fn record_failure(&self) {
        let mut state = self.lock();
        self.healthy.store(false, Ordering::Release);
        let failures = match *state {
            Inner::Closed { failures } => failures + 1,
            Inner::HalfOpen { .. } => self.threshold,
            Inner::Open { .. } => return,
        };
        if failures >= self.threshold {
            tracing::warn!(dependency = self.name, cool_down = ?self.cool_down, "circuit opened");
            self.gauge.set(2.0);
            metrics::counter!("keel_breaker_opened_total", "dependency" => self.name).increment(1);
            *state = Inner::Open {
                until: Instant::now() + self.cool_down,
            };
        } else {
            *state = Inner::Closed { failures };
        }
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is a plain enum: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_after_a_good_probe() {
        let breaker = Breaker::new("test", 3, Duration::from_millis(30));
        for _ in 0..2 {
            breaker.record_failure();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow());

        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow(), "a probe goes through after the cool-down");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(!breaker.allow(), "one probe at a time");
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let breaker = Breaker::new("test", 1, Duration::from_millis(10));
        breaker.record_failure();
        std::thread::sleep(Duration::from_millis(15));
        assert!(breaker.allow());
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn its_state_is_a_gauge() {
        let state = || {
            let text = crate::metrics::handle().render();
            let line = text
                .lines()
                .find(|l| l.starts_with("keel_breaker_state{dependency=\"gauge-test\"}"))
                .map(str::to_owned);
            line.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        let breaker = Breaker::new("gauge-test", 1, Duration::from_millis(10));
        assert_eq!(state(), Some(0.0));
        breaker.record_failure();
        assert_eq!(state(), Some(2.0), "open");
        std::thread::sleep(Duration::from_millis(15));
        assert!(breaker.allow());
        assert_eq!(state(), Some(1.0), "half-open");
        breaker.record_success();
        assert_eq!(state(), Some(0.0), "closed");
    }

    #[test]
    fn a_probe_that_never_answers_is_replaced_after_the_cool_down() {
        let breaker = Breaker::new("test", 1, Duration::from_millis(20));
        breaker.record_failure();
        std::thread::sleep(Duration::from_millis(25));
        assert!(breaker.allow(), "the probe");
        assert!(!breaker.allow());
        std::thread::sleep(Duration::from_millis(25));
        assert!(
            breaker.allow(),
            "the first probe's caller went away: another"
        );
        assert!(!breaker.allow());
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new("test", 2, Duration::from_secs(1));
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
