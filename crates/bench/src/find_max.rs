//! `--find-max`: the highest arrival rate whose p99 stays under an SLO with no errors, found
//! by doubling until a rate fails, then bisecting between the last that held and the first
//! that did not.

use std::sync::Arc;

use crate::{
    report::Search,
    run::{Client, RunConfig, RunReport, Scenario, run},
};

/// Whether a rate held: its p99 in milliseconds and whether every request succeeded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub rate: f64,
    pub p99_ms: f64,
    pub clean: bool,
}

impl Trial {
    /// A run's worst p99 over its operations, and whether every request got a 2xx.
    pub fn of(run: &RunReport) -> Self {
        let p99_ms = run
            .operations
            .values()
            .map(|s| s.p99_ms)
            .fold(0.0, f64::max);
        let clean = run
            .operations
            .values()
            .all(|s| s.failed == 0 && s.statuses.keys().all(|status| (200..300).contains(status)));
        Self {
            rate: run.rate,
            p99_ms,
            clean,
        }
    }

    pub fn held(&self, slo_ms: f64) -> bool {
        self.clean && self.p99_ms <= slo_ms
    }
}

/// How a search runs.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The first rate tried.
    pub start: f64,
    /// The p99 a rate must stay under, in milliseconds.
    pub slo_ms: f64,
    /// No rate above this is tried: the search ends when it holds (a generator's or a
    /// test's limit).
    pub ceiling: f64,
    /// Done when the bracket is within this fraction of the rate that held (e.g. 0.05).
    pub precision: f64,
}

/// The search's next rate to try, or `None` when it has converged: `trials` so far, in order.
pub fn next_rate(trials: &[Trial], bounds: Bounds) -> Option<f64> {
    let Bounds {
        start,
        slo_ms,
        ceiling,
        precision,
    } = bounds;
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
        // Nothing failed yet: double, up to the ceiling.
        (Some(best), None) => (best < ceiling).then(|| (last.rate * 2.0).min(ceiling)),
        // Even the first rate failed: halve, down to one arrival a second.
        (None, Some(low)) => (low > 1.0).then_some(low / 2.0),
        (Some(best), Some(low)) => {
            if low - best <= best * precision {
                None
            } else {
                Some((best + low) / 2.0)
            }
        }
        (None, None) => Some(start.min(ceiling)),
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

/// Runs `scenario` at the rates the search picks, each for `config.duration`, until it
/// converges within `bounds.precision`; `before` is awaited with each rate before its run
/// (to show it, or to let the system settle), `tick` is told each arrival. Returns the
/// search and the run at the rate found (the first run when none held).
pub async fn search<S: Scenario + ?Sized>(
    scenario: Arc<S>,
    client: &Client,
    config: &RunConfig,
    bounds: Bounds,
    before: impl AsyncFn(f64),
    tick: impl Fn(u64),
) -> (Search, Option<RunReport>) {
    let slo_ms = bounds.slo_ms;
    let mut trials: Vec<Trial> = Vec::new();
    let mut runs = Vec::new();
    while let Some(rate) = next_rate(&trials, bounds) {
        before(rate).await;
        let config = RunConfig {
            rate,
            ..config.clone()
        };
        let report = run(Arc::clone(&scenario), client.clone(), &config, &tick).await;
        trials.push(Trial::of(&report));
        runs.push(report);
    }
    let max_rate = found(&trials, slo_ms);
    let best = runs
        .iter()
        .filter(|r| Some(r.rate) == max_rate)
        .chain(runs.first())
        .next()
        .cloned();
    let search = Search {
        slo_p99_ms: slo_ms,
        trials: runs,
        max_rate,
        at_ceiling: max_rate.is_some_and(|r| r >= bounds.ceiling),
    };
    (search, best)
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

    fn bounds(ceiling: f64) -> Bounds {
        Bounds {
            start: 100.0,
            slo_ms: 50.0,
            ceiling,
            precision: 0.05,
        }
    }

    #[test]
    fn a_ceiling_ends_the_search_where_it_holds() {
        let mut trials = Vec::new();
        while let Some(rate) = next_rate(&trials, bounds(300.0)) {
            trials.push(trial(rate, 1_000.0));
            assert!(trials.len() < 10, "it stops");
        }
        let rates: Vec<f64> = trials.iter().map(|t| t.rate).collect();
        assert_eq!(rates, [100.0, 200.0, 300.0]);
        // Below the ceiling the search bisects as before.
        let mut trials = Vec::new();
        while let Some(rate) = next_rate(&trials, bounds(300.0)) {
            trials.push(trial(rate, 250.0));
        }
        let rate = found(&trials, 50.0).unwrap();
        assert!((237.5..=250.0).contains(&rate), "{rate}");
    }

    #[test]
    fn the_search_converges_on_the_capacity() {
        for capacity in [730.0, 5_000.0, 42_000.0] {
            let mut trials = Vec::new();
            while let Some(rate) = next_rate(&trials, bounds(f64::INFINITY)) {
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
        assert_eq!(next_rate(&[failing], bounds(f64::INFINITY)), Some(50.0));
        assert_eq!(found(&[failing], 50.0), None);
    }
}
