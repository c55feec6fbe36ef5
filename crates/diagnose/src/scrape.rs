//! Reading Keel's `/metrics`: the Prometheus text format parsed into samples, and the
//! difference between two scrapes (counters and histogram sums over the window).

use std::collections::BTreeMap;

/// One sample: a metric name, its labels (sorted), and its value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sample {
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) value: f64,
}

impl Sample {
    pub(super) fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// All the samples of one or more scrapes.
#[derive(Debug, Clone, Default)]
pub(super) struct Scrape {
    pub(super) samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text format; comment lines and lines it cannot read are skipped.
    pub(super) fn parse(text: &str) -> Self {
        Self {
            samples: text.lines().filter_map(parse_line).collect(),
        }
    }

    /// Adds another instance's scrape (instances are summed: they share routes and names).
    pub(super) fn extend(&mut self, other: Scrape) {
        self.samples.extend(other.samples);
    }

    /// The sum of every sample named `name` whose labels include all of `matching`.
    pub(super) fn sum(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        // A fold from +0.0: an empty `sum()` of floats is -0.0, which prints as "-0".
        self.select(name, matching)
            .fold(0.0, |total, s| total + s.value)
    }

    pub(super) fn select<'a>(
        &'a self,
        name: &'a str,
        matching: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && matching.iter().all(|(k, v)| s.label(k) == *v))
    }

    /// `later - self` per series (same name and labels), for counters and histogram parts;
    /// a series that went down (a restarted instance) counts from zero.
    pub(super) fn delta(&self, later: &Scrape) -> Scrape {
        let mut before: BTreeMap<(String, &BTreeMap<String, String>), f64> = BTreeMap::new();
        for s in &self.samples {
            *before.entry((s.name.clone(), &s.labels)).or_default() += s.value;
        }
        let mut after: BTreeMap<(String, &BTreeMap<String, String>), f64> = BTreeMap::new();
        for s in &later.samples {
            *after.entry((s.name.clone(), &s.labels)).or_default() += s.value;
        }
        let samples = after
            .into_iter()
            .map(|((name, labels), value)| {
                let start = before.get(&(name.clone(), labels)).copied().unwrap_or(0.0);
                Sample {
                    name,
                    labels: labels.clone(),
                    value: if value >= start { value - start } else { value },
                }
            })
            .collect();
        Scrape { samples }
    }

    /// The `q` quantile of histogram `name` (over series matching `matching`), from its
    /// `_bucket` samples, interpolated within the bucket as Prometheus does.
    pub(super) fn quantile(&self, name: &str, matching: &[(&str, &str)], q: f64) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        let mut bounds: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.select(&bucket, matching) {
            let le = match s.label("le") {
                "+Inf" => f64::INFINITY,
                le => le.parse().ok()?,
            };
            bounds.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
        }
        let mut buckets: Vec<(f64, f64)> = bounds.into_values().collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for (le, count) in buckets {
            if count >= rank {
                if le.is_infinite() {
                    return Some(lower);
                }
                let inside = count - below;
                let share = if inside > 0.0 {
                    (rank - below) / inside
                } else {
                    1.0
                };
                return Some(lower + (le - lower) * share);
            }
            (lower, below) = (le, count);
        }
        Some(lower)
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, BTreeMap::new()),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y \"quoted\""` into a map.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"
# TYPE keel_http_requests_total counter
keel_http_requests_total{method="GET",route="/products/{id}",status="2xx"} 100
keel_http_request_duration_seconds_sum{method="GET",route="/products/{id}"} 1.5
keel_http_request_duration_seconds_bucket{method="GET",route="/products/{id}",le="0.01"} 90
keel_http_request_duration_seconds_bucket{method="GET",route="/products/{id}",le="0.1"} 100
keel_http_request_duration_seconds_bucket{method="GET",route="/products/{id}",le="+Inf"} 100
keel_breaker_state{dependency="payments"} 0
"#;
    const AFTER: &str = r#"
keel_http_requests_total{method="GET",route="/products/{id}",status="2xx"} 300
keel_http_request_duration_seconds_sum{method="GET",route="/products/{id}"} 3.5
keel_http_request_duration_seconds_bucket{method="GET",route="/products/{id}",le="0.01"} 190
keel_http_request_duration_seconds_bucket{method="GET",route="/products/{id}",le="0.1"} 300
keel_http_request_duration_seconds_bucket{method="GET",route="/products/{id}",le="+Inf"} 300
keel_breaker_state{dependency="payments"} 2
"#;

    #[test]
    fn parses_names_labels_and_values() {
        let scrape = Scrape::parse(BEFORE);
        assert_eq!(scrape.samples.len(), 6);
        let first = &scrape.samples[0];
        assert_eq!(first.name, "keel_http_requests_total");
        assert_eq!(first.label("route"), "/products/{id}");
        assert_eq!(first.value, 100.0);
        assert_eq!(
            scrape.sum("keel_breaker_state", &[("dependency", "payments")]),
            0.0
        );
    }

    #[test]
    fn escaped_label_values() {
        let s = parse_line(r#"m{a="x \"y\", z",b="w"} 1"#).unwrap();
        assert_eq!(s.label("a"), "x \"y\", z");
        assert_eq!(s.label("b"), "w");
    }

    #[test]
    fn deltas_and_quantiles_over_the_window() {
        let window = Scrape::parse(BEFORE).delta(&Scrape::parse(AFTER));
        assert_eq!(window.sum("keel_http_requests_total", &[]), 200.0);
        assert_eq!(
            window.sum("keel_http_request_duration_seconds_sum", &[]),
            2.0
        );
        // 100 of the 200 window requests under 10 ms, the rest under 100 ms.
        let p50 = window
            .quantile("keel_http_request_duration_seconds", &[], 0.5)
            .unwrap();
        assert!((p50 - 0.01).abs() < 1e-9, "{p50}");
        let p99 = window
            .quantile("keel_http_request_duration_seconds", &[], 0.99)
            .unwrap();
        assert!(p99 > 0.09 && p99 <= 0.1, "{p99}");
    }

    #[test]
    fn a_restarted_instance_counts_from_zero() {
        let window = Scrape::parse("c 100").delta(&Scrape::parse("c 7"));
        assert_eq!(window.sum("c", &[]), 7.0);
    }
}
