//! RED metrics per route — `keel_http_requests_total{method, route, status}`,
//! `keel_http_request_duration_seconds{method, route}` and `keel_http_requests_in_flight` —
//! counted in plain atomics that each route's edge finds without a lookup, and rendered into
//! `/metrics` when it is scraped.
//!
//! Not through the `metrics` recorder, as the other families are: every request records
//! these, and the recorder's histogram takes a timestamp and pins an epoch for each sample,
//! its counters and gauges pay two atomics per change — ~250 ns a request; counting here
//! (five atomic adds) saved 4 % of a cached read's CPU (docs/benchmarks.md).

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{
        OnceLock, RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use axum::http::Method;

use crate::metrics::{LATENCY_BUCKETS, STATUS_CLASSES, status_class_index};

/// Methods as static labels; anything unusual is `OTHER`.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER",
];

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The bucket bounds in nanoseconds, so a request's bucket is found without floats.
const BOUNDS_NANOS: [u64; LATENCY_BUCKETS.len()] = {
    let mut nanos = [0; LATENCY_BUCKETS.len()];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = (LATENCY_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    nanos
};

/// The series of every (method, route) seen so far, for the whole process (apps in one test
/// process share it, as they share the recorder). Routes are a fixed set (a path that
/// matched none is the one route `unmatched`), so each route's series live as long as the
/// process, and a request holds them by a plain reference.
struct Registry {
    by_method: [RwLock<HashMap<Box<str>, &'static RouteRed>>; METHODS.len()],
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        by_method: Default::default(),
    })
}

/// One route's series.
#[derive(Debug)]
struct RouteRed {
    method: usize,
    route: Box<str>,
    by_class: [AtomicU64; STATUS_CLASSES.len()],
    /// Requests per duration bucket (not cumulative; the last is past every bound).
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    nanos: AtomicU64,
    /// This route's part of `keel_http_requests_in_flight`.
    in_flight: AtomicI64,
}

/// Where a route's edge keeps its series after its first request (axum layers every route
/// and method separately), so its requests skip the map, its lock and the hashing.
#[derive(Debug, Default)]
pub(super) struct RouteSlot(OnceLock<&'static RouteRed>);

/// Counts a request in flight until the returned guard is finished or dropped. `slot` is
/// the route's own: it answers for the route it first saw (a fallback sees many).
pub(super) fn start(slot: &RouteSlot, method: &Method, route: &str) -> InFlight {
    let index = method_index(method);
    let red = match slot.0.get() {
        Some(red) if red.method == index && *red.route == *route => red,
        _ => {
            let red = lookup(index, route);
            let _first = slot.0.set(red);
            red
        }
    };
    red.in_flight.fetch_add(1, Relaxed);
    InFlight { red }
}

fn lookup(index: usize, route: &str) -> &'static RouteRed {
    let known = registry().by_method[index]
        .read()
        .ok()
        .and_then(|routes| routes.get(route).copied());
    known.unwrap_or_else(|| register(index, route))
}

#[cold]
fn register(index: usize, route: &str) -> &'static RouteRed {
    let make = || -> &'static RouteRed {
        Box::leak(Box::new(RouteRed {
            method: index,
            route: route.into(),
            by_class: Default::default(),
            buckets: Default::default(),
            nanos: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
        }))
    };
    match registry().by_method[index].write() {
        Ok(mut routes) => routes.entry(route.into()).or_insert_with(make),
        // A panic elsewhere poisoned the map: count without remembering.
        Err(_) => make(),
    }
}

/// A request being served, counted in `keel_http_requests_in_flight` until it finishes or
/// is dropped (a client that hangs up).
pub(super) struct InFlight {
    red: &'static RouteRed,
}

impl InFlight {
    /// Counts the request in `keel_http_requests_total` (status by class) and in the
    /// duration histogram.
    pub(super) fn finish(self, status: u16, took: Duration) {
        let red = self.red;
        red.by_class[status_class_index(status)].fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        red.buckets[bucket].fetch_add(1, Relaxed);
        red.nanos.fetch_add(nanos, Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.red.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Appends the three families to a scrape, in the Prometheus text format.
pub(crate) fn render(out: &mut String) {
    let mut routes: Vec<&'static RouteRed> = Vec::new();
    for by_route in &registry().by_method {
        if let Ok(by_route) = by_route.read() {
            routes.extend(by_route.values());
        }
    }
    // A process that serves no routes through the edge (the worker) shows no families.
    if routes.is_empty() {
        return;
    }
    routes.sort_by(|a, b| (&a.route, a.method).cmp(&(&b.route, b.method)));
    // Writing to a String cannot fail.
    let _ = write_families(out, &routes);
}

fn write_families(out: &mut String, routes: &[&RouteRed]) -> std::fmt::Result {
    writeln!(out, "# TYPE keel_http_requests_total counter")?;
    for red in routes {
        for (class, count) in STATUS_CLASSES.iter().zip(&red.by_class) {
            let count = count.load(Relaxed);
            // Like the recorder's counters: a series appears with its first request.
            if count > 0 {
                let labels = Labels(red);
                writeln!(
                    out,
                    "keel_http_requests_total{{{labels},status=\"{class}\"}} {count}"
                )?;
            }
        }
    }
    writeln!(out, "# TYPE keel_http_request_duration_seconds histogram")?;
    for red in routes {
        // A route whose first request is still running (the scrape itself) has no sample yet.
        if red.buckets.iter().all(|count| count.load(Relaxed) == 0) {
            continue;
        }
        let labels = Labels(red);
        let mut cumulative = 0;
        for (i, count) in red.buckets.iter().enumerate() {
            cumulative += count.load(Relaxed);
            let le: &dyn std::fmt::Display = match LATENCY_BUCKETS.get(i) {
                Some(bound) => bound,
                None => &"+Inf",
            };
            writeln!(
                out,
                "keel_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            )?;
        }
        let seconds = red.nanos.load(Relaxed) as f64 / 1e9;
        writeln!(
            out,
            "keel_http_request_duration_seconds_sum{{{labels}}} {seconds}"
        )?;
        writeln!(
            out,
            "keel_http_request_duration_seconds_count{{{labels}}} {cumulative}"
        )?;
    }
    writeln!(out, "# TYPE keel_http_requests_in_flight gauge")?;
    let in_flight: i64 = routes.iter().map(|red| red.in_flight.load(Relaxed)).sum();
    writeln!(out, "keel_http_requests_in_flight {in_flight}")
}

/// `method="GET",route="/products/{id}"`, the route escaped as the text format asks.
struct Labels<'a>(&'a RouteRed);

impl std::fmt::Display for Labels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "method=\"{}\",route=\"", METHODS[self.0.method])?;
        for c in self.0.route.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routes_slot_serves_only_the_route_and_method_it_first_saw() {
        let slot = RouteSlot::default();
        let first = start(&slot, &Method::GET, "/test/red/{id}");
        let again = start(&slot, &Method::GET, "/test/red/{id}");
        assert!(std::ptr::eq(first.red, again.red));
        // A fallback's edge sees other methods and paths: each keeps its own series.
        let other_method = start(&slot, &Method::PATCH, "/test/red/{id}");
        let other_route = start(&slot, &Method::GET, "/test/red/other");
        for other in [&other_method, &other_route] {
            assert!(!std::ptr::eq(first.red, other.red));
        }
        assert_eq!(METHODS[other_method.red.method], "PATCH");
        assert_eq!(&*other_route.red.route, "/test/red/other");
        // The series are the process's, so another slot finds the same ones.
        let elsewhere = start(&RouteSlot::default(), &Method::PATCH, "/test/red/{id}");
        assert!(std::ptr::eq(other_method.red, elsewhere.red));
    }

    #[test]
    fn finished_requests_are_rendered_as_counters_and_a_cumulative_histogram() {
        let slot = RouteSlot::default();
        for (status, took) in [(200, 300_000), (201, 2_000_000), (404, 20_000_000_000)] {
            start(&slot, &Method::POST, "/test/render/\"quoted\"")
                .finish(status, Duration::from_nanos(took));
        }
        let unfinished = start(
            &RouteSlot::default(),
            &Method::GET,
            "/test/render/unfinished",
        );
        let mut text = String::new();
        render(&mut text);
        drop(unfinished);
        assert!(
            !text.contains("/test/render/unfinished"),
            "no sample yet, no series"
        );
        let labels = r#"method="POST",route="/test/render/\"quoted\"""#;
        for line in [
            format!(r#"keel_http_requests_total{{{labels},status="2xx"}} 2"#),
            format!(r#"keel_http_requests_total{{{labels},status="4xx"}} 1"#),
            format!(r#"keel_http_request_duration_seconds_bucket{{{labels},le="0.0005"}} 1"#),
            format!(r#"keel_http_request_duration_seconds_bucket{{{labels},le="0.001"}} 1"#),
            format!(r#"keel_http_request_duration_seconds_bucket{{{labels},le="0.0025"}} 2"#),
            format!(r#"keel_http_request_duration_seconds_bucket{{{labels},le="10"}} 2"#),
            format!(r#"keel_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} 3"#),
            format!(r#"keel_http_request_duration_seconds_sum{{{labels}}} 20.0023"#),
            format!(r#"keel_http_request_duration_seconds_count{{{labels}}} 3"#),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains(&format!(r#"{{{labels},status="5xx"}}"#)));
        assert!(text.contains("\nkeel_http_requests_in_flight "));
    }

    #[test]
    fn a_request_is_in_flight_until_finished_or_dropped() {
        let slot = RouteSlot::default();
        let finished = start(&slot, &Method::GET, "/test/in-flight");
        let dropped = start(&slot, &Method::GET, "/test/in-flight");
        let red = finished.red;
        assert_eq!(red.in_flight.load(Relaxed), 2);
        finished.finish(200, Duration::ZERO);
        assert_eq!(red.in_flight.load(Relaxed), 1);
        drop(dropped);
        assert_eq!(red.in_flight.load(Relaxed), 0);
        assert_eq!(red.by_class[1].load(Relaxed), 1);
    }
}
