//! What a run saw, per operation: latencies in an HdrHistogram (microseconds, 3 significant
//! digits, up to a minute), answers by status, requests that got none (by why), and reads
//! sent again because a kept-alive connection closed under them.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency recorded exactly; longer ones are recorded as this.
const MAX_MICROS: u64 = 60_000_000;

/// One operation's record (`GET /products/{id}`, `POST /orders`, …).
#[derive(Debug, Clone)]
pub struct Record {
    latency: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    failed: u64,
    failures: BTreeMap<String, u64>,
    resent: u64,
}

impl Default for Record {
    fn default() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("bounds of 1 µs to a minute at 3 digits are valid"),
            statuses: BTreeMap::new(),
            failed: 0,
            failures: BTreeMap::new(),
            resent: 0,
        }
    }
}

/// A record's figures, for the table and the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub requests: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (refused, reset, timed out).
    pub failed: u64,
    /// The same by why: `timeout`, `connect` (refused or unreachable), `closed` or `reset`
    /// (the connection closed, or was reset, before an answer), or the innermost error's
    /// own words.
    pub failures: BTreeMap<String, u64>,
    /// Reads (GET) sent a second time because the kept-alive connection they went out on
    /// closed or was reset before any answer: the race every HTTP/1.1 client meets when a
    /// server or balancer closes an idle connection as a request leaves (nginx's old workers
    /// do on every reload), which RFC 9110 (9.2.2) lets a client retry for an idempotent
    /// method, as browsers do. Counted in its latency, not as a failure.
    pub resent: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Record {
    /// An answer with `status` after `latency` (from the request's intended send time).
    pub fn answered(&mut self, status: u16, latency: Duration) {
        *self.statuses.entry(status).or_default() += 1;
        self.latency_of(latency);
    }

    /// A request that got no answer after `latency`, for the reason `why`.
    pub fn failed(&mut self, why: &str, latency: Duration) {
        self.failed += 1;
        match self.failures.get_mut(why) {
            Some(count) => *count += 1,
            None => {
                self.failures.insert(why.to_owned(), 1);
            }
        }
        self.latency_of(latency);
    }

    /// A read sent again after its connection closed unanswered.
    pub fn resent(&mut self) {
        self.resent += 1;
    }

    /// A duration with no answer to it (how late an arrival was handed over).
    pub fn observe(&mut self, duration: Duration) {
        self.latency_of(duration);
    }

    fn latency_of(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        self.latency.saturating_record(micros);
    }

    /// Adds `other`'s requests to these (each connection keeps its own record).
    pub fn merge(&mut self, other: &Record) {
        for (status, count) in &other.statuses {
            *self.statuses.entry(*status).or_default() += count;
        }
        self.failed += other.failed;
        for (why, count) in &other.failures {
            *self.failures.entry(why.clone()).or_default() += count;
        }
        self.resent += other.resent;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// Requests recorded, answered or not.
    pub fn requests(&self) -> u64 {
        self.latency.len()
    }

    /// Answers with a 2xx status.
    pub fn succeeded(&self) -> u64 {
        self.statuses.range(200..300).map(|(_, count)| count).sum()
    }

    pub fn summary(&self) -> Summary {
        let ms = |quantile: f64| self.latency.value_at_quantile(quantile) as f64 / 1000.0;
        Summary {
            requests: self.requests(),
            statuses: self.statuses.clone(),
            failed: self.failed,
            failures: self.failures.clone(),
            resent: self.resent,
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.latency.max() as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_every_request() {
        let mut record = Record::default();
        for ms in 1..=1000 {
            record.answered(200, Duration::from_millis(ms));
        }
        let summary = record.summary();
        assert_eq!(summary.requests, 1000);
        // 3 significant digits: within 0.1 %.
        let near = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.001;
        assert!(near(summary.p50_ms, 500.0), "{}", summary.p50_ms);
        assert!(near(summary.p99_ms, 990.0), "{}", summary.p99_ms);
        assert!(near(summary.max_ms, 1000.0), "{}", summary.max_ms);
    }

    #[test]
    fn merged_records_count_each_request_once() {
        let (mut a, mut b) = (Record::default(), Record::default());
        a.answered(200, Duration::from_millis(1));
        a.answered(503, Duration::from_millis(2));
        b.answered(200, Duration::from_millis(3));
        b.failed("timeout", Duration::from_secs(5));
        b.resent();
        a.merge(&b);
        let summary = a.summary();
        assert_eq!(summary.requests, 4);
        assert_eq!(summary.statuses, BTreeMap::from([(200, 2), (503, 1)]));
        assert_eq!(summary.failed, 1);
        assert_eq!(
            summary.failures,
            BTreeMap::from([("timeout".to_owned(), 1)])
        );
        assert_eq!(summary.resent, 1);
        assert_eq!(a.succeeded(), 2);
        // The unanswered request's wait counts in the tail: it is what its client saw.
        assert!(summary.max_ms >= 4990.0);
    }

    #[test]
    fn a_latency_past_the_bound_is_kept_at_the_bound() {
        let mut record = Record::default();
        record.answered(200, Duration::from_secs(3600));
        record.answered(200, Duration::ZERO);
        assert_eq!(record.requests(), 2);
        assert!(record.summary().max_ms >= 59_900.0);
    }
}
