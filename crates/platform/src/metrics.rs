//! Prometheus metrics: the process's one recorder (`/metrics` renders it: `http::scrape`).
//!
//! Every layer records with the `metrics` macros under a `keel_` name, as it happens; this
//! module only installs the recorder (histograms named `*_seconds` get latency buckets, so
//! instances can be summed and quantiles taken in Prometheus) and serves the text format.
//! Names and what they mean are listed in docs/observability.md.

use std::{
    collections::HashMap,
    sync::{OnceLock, RwLock},
    time::Duration,
};

use metrics::Histogram;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds, in seconds, of every `*_seconds` histogram: 0.5 ms to 10 s.
pub(crate) const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (several apps in one test process share
/// it, as they share the process).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Refused only for an empty bucket list, which LATENCY_BUCKETS is not.
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "another metrics recorder is installed; /metrics stays empty");
        }
        let upkeep = handle.clone();
        // Histograms buffer samples until upkeep folds them in; without it memory grows
        // between scrapes. A thread, because this may first run outside a runtime.
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no metrics upkeep thread; upkeep runs at each scrape only");
        }
        handle
    })
}

/// A histogram with one label whose values are static names (a statement, a Redis
/// operation), each value's handle registered on first use: `metrics::histogram!` with a
/// label builds the key (a `Vec` of labels), hashes it and looks it up in the recorder on
/// every call, which on a request's path adds up.
#[derive(Debug)]
pub struct HistogramFamily {
    name: &'static str,
    label: &'static str,
    handles: OnceLock<RwLock<HashMap<&'static str, Histogram, foldhash::fast::RandomState>>>,
}

impl HistogramFamily {
    pub const fn new(name: &'static str, label: &'static str) -> Self {
        Self {
            name,
            label,
            handles: OnceLock::new(),
        }
    }

    /// Records `took` in the series whose label is `value`.
    pub fn record(&self, value: &'static str, took: Duration) {
        let handles = self.handles.get_or_init(|| {
            // Handles taken before the recorder exists would record nothing.
            handle();
            RwLock::default()
        });
        if let Ok(known) = handles.read()
            && let Some(histogram) = known.get(value)
        {
            histogram.record(took);
            return;
        }
        let histogram = metrics::histogram!(self.name, self.label => value);
        histogram.record(took);
        if let Ok(mut known) = handles.write() {
            known.insert(value, histogram);
        }
    }
}

/// Status code classes, the label errors are counted by.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Where a status code's class is in [`STATUS_CLASSES`] (anything unusual counts as `5xx`).
pub fn status_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_are_rendered_with_buckets() {
        handle();
        metrics::counter!("keel_test_events_total", "kind" => "a").increment(3);
        metrics::histogram!("keel_test_wait_seconds").record(0.003);
        let text = handle().render();
        assert!(
            text.contains("keel_test_events_total{kind=\"a\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("keel_test_wait_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("keel_test_wait_seconds_bucket{le=\"0.0025\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn a_family_records_each_label_value_in_its_own_series() {
        static FAMILY: HistogramFamily = HistogramFamily::new("keel_test_family_seconds", "step");
        for _ in 0..3 {
            FAMILY.record("first", Duration::from_millis(3));
        }
        FAMILY.record("second", Duration::from_secs(2));
        let text = handle().render();
        assert!(
            text.contains("keel_test_family_seconds_count{step=\"first\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("keel_test_family_seconds_bucket{step=\"second\",le=\"2.5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("keel_test_family_seconds_bucket{step=\"second\",le=\"1\"} 0"),
            "{text}"
        );
    }

    fn status_class(status: u16) -> &'static str {
        STATUS_CLASSES[status_class_index(status)]
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
