//! `--find-max`: the highest arrival rate whose p99 stays under an SLO with no errors, found
//! by doubling until a rate fails, then bisecting between the last that held and the first
//! that did not.

/// Whether a rate held: its p99 in milliseconds and whether every request succeeded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub rate: f64,
    pub p99_ms: f64,
    pub clean: bool,
}

impl Trial {
    pub fn held(&self, slo_ms: f64) -> bool {
        self.clean && self.p99_ms <= slo_ms
    }
}

/// The search's next rate to try, or `None` when it has converged: `trials` so far, in
/// order, starting at `start`. Stops when the bracket is within `precision` (a fraction of
/// the rate that held, e.g. 0.05).
pub fn next_rate(trials: &[Trial], start: f64, slo_ms: f64, precision: f64) -> Option<f64> {
    let Some(last) = trials.last() else {
        return Some(start);
    };
    let held = trials.iter().filter(|t| t.held(slo_ms)).map(|t| t.rate);
    let failed = trials.iter().filter(|t| !t.held(slo_ms)).map(|t| t.rate);
    let best = held.fold(None, |best: Option<f64>, rate| {
        Some(best.map_or(rate, |b| b.max(rate)))
    });
    let worst = failed.fold(None, |low: Option<f64>, rate| {
        Some(low.map_or(rate, |l| l.min(rate)))
    });
    match (best, worst) {
        // Nothing failed yet: double.
        (Some(_), None) => Some(last.rate * 2.0),
        // Even the first rate failed: halve, down to one arrival a second.
        (None, Some(low)) => (low > 1.0).then_some(low / 2.0),
        (Some(best), Some(low)) => {
            if low - best <= best * precision {
                None
            } else {
                Some((best + low) / 2.0)
            }
        }
        (None, None) => Some(start),
    }
}

/// The rate found: the highest that held.
pub fn found(trials: &[Trial], slo_ms: f64) -> Option<f64> {
    trials
        .iter()
        .filter(|t| t.held(slo_ms))
        .map(|t| t.rate)
        .fold(None, |best, rate| {
            Some(best.map_or(rate, |b: f64| b.max(rate)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose p99 stays at 5 ms up to `capacity` and explodes past it.
    fn trial(rate: f64, capacity: f64) -> Trial {
        Trial {
            rate,
            p99_ms: if rate <= capacity { 5.0 } else { 500.0 },
            clean: true,
        }
    }

    #[test]
    fn the_search_converges_on_the_capacity() {
        for capacity in [730.0, 5_000.0, 42_000.0] {
            let mut trials = Vec::new();
            while let Some(rate) = next_rate(&trials, 100.0, 50.0, 0.05) {
                trials.push(trial(rate, capacity));
                assert!(trials.len() < 40, "it converges");
            }
            let rate = found(&trials, 50.0).unwrap();
            assert!(
                rate <= capacity && rate >= capacity * 0.95,
                "{capacity}: {rate}"
            );
        }
    }

    #[test]
    fn errors_fail_a_rate_whatever_its_latency() {
        let failing = Trial {
            rate: 100.0,
            p99_ms: 1.0,
            clean: false,
        };
        assert!(!failing.held(50.0));
        assert_eq!(next_rate(&[failing], 100.0, 50.0, 0.05), Some(50.0));
        assert_eq!(found(&[failing], 50.0), None);
    }
}
