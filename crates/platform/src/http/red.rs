//! RED metrics per route — `keel_http_requests_total{method, route, status}`,
//! `keel_http_request_duration_seconds{method, route}` and `keel_http_requests_in_flight` —
//! with each route's handles registered once: a request pays a map lookup under a read lock
//! and a few atomic adds, not the recorder's label hashing and allocations three times over.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use axum::http::Method;
use metrics::{Counter, Gauge, Histogram};

/// The handles of every (method, route) seen so far. Routes are a fixed set (a path that
/// matched none is the one route `unmatched`), so this stays small.
#[derive(Debug)]
pub(super) struct RedMetrics {
    by_method: [RwLock<HashMap<Box<str>, Arc<RouteRed>>>; METHODS.len()],
    in_flight: Gauge,
}

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

/// One route's handles; the requests counter of a status class is registered when the
/// route first answers with it, so no empty series appear.
#[derive(Debug)]
struct RouteRed {
    method: usize,
    route: Box<str>,
    by_class: [OnceLock<Counter>; 5],
    duration: Histogram,
    in_flight: Gauge,
}

/// Where a route's edge keeps its handles after its first request (axum layers every route
/// and method separately), so its requests skip the map, its lock and the hashing.
#[derive(Debug, Default)]
pub(super) struct RouteSlot(OnceLock<Arc<RouteRed>>);

impl RedMetrics {
    pub(super) fn new() -> Self {
        // Handles taken before a recorder exists record nothing.
        crate::metrics::handle();
        Self {
            by_method: Default::default(),
            in_flight: metrics::gauge!("keel_http_requests_in_flight"),
        }
    }

    /// Counts a request in flight until the returned guard is finished or dropped. `slot`
    /// is the route's own: it answers for the route it first saw (a fallback sees many).
    pub(super) fn start(&self, slot: &RouteSlot, method: &Method, route: &str) -> InFlight {
        let index = method_index(method);
        let red = match slot.0.get() {
            Some(red) if red.method == index && *red.route == *route => red.clone(),
            _ => {
                let red = self.lookup(index, route);
                let _first = slot.0.set(red.clone());
                red
            }
        };
        red.in_flight.increment(1.0);
        InFlight { red }
    }

    fn lookup(&self, index: usize, route: &str) -> Arc<RouteRed> {
        let known = self.by_method[index]
            .read()
            .ok()
            .and_then(|routes| routes.get(route).cloned());
        known.unwrap_or_else(|| self.register(index, route))
    }

    #[cold]
    fn register(&self, index: usize, route: &str) -> Arc<RouteRed> {
        let method = METHODS[index];
        let red = Arc::new(RouteRed {
            method: index,
            route: route.into(),
            by_class: Default::default(),
            duration: metrics::histogram!("keel_http_request_duration_seconds",
                "method" => method, "route" => route.to_owned()),
            in_flight: self.in_flight.clone(),
        });
        match self.by_method[index].write() {
            Ok(mut routes) => routes.entry(route.into()).or_insert(red).clone(),
            // A panic elsewhere poisoned the map: record without remembering.
            Err(_) => red,
        }
    }
}

/// A request being served, counted in `keel_http_requests_in_flight` until it finishes or
/// is dropped (a client that hangs up).
pub(super) struct InFlight {
    red: Arc<RouteRed>,
}

impl InFlight {
    /// Records the request in `keel_http_requests_total` (status by class) and in the
    /// duration histogram.
    pub(super) fn finish(self, status: u16, took: Duration) {
        let index = crate::metrics::status_class_index(status);
        let class = crate::metrics::STATUS_CLASSES[index];
        let red = &self.red;
        red.by_class[index]
            .get_or_init(|| {
                metrics::counter!("keel_http_requests_total",
                    "method" => METHODS[red.method], "route" => red.route.to_string(), "status" => class)
            })
            .increment(1);
        red.duration.record(took);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.red.in_flight.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routes_slot_serves_only_the_route_and_method_it_first_saw() {
        let red = RedMetrics::new();
        let slot = RouteSlot::default();
        let first = red.start(&slot, &Method::GET, "/products/{id}");
        let again = red.start(&slot, &Method::GET, "/products/{id}");
        assert!(Arc::ptr_eq(&first.red, &again.red));
        // A fallback's edge sees other methods and paths: each keeps its own handles.
        let other_method = red.start(&slot, &Method::PATCH, "/products/{id}");
        let other_route = red.start(&slot, &Method::GET, "/orders/{id}");
        for other in [&other_method, &other_route] {
            assert!(!Arc::ptr_eq(&first.red, &other.red));
        }
        assert_eq!(METHODS[other_method.red.method], "PATCH");
        assert_eq!(&*other_route.red.route, "/orders/{id}");
        // Handles are shared with the routes' map, so another slot finds the same ones.
        let elsewhere = red.start(&RouteSlot::default(), &Method::PATCH, "/products/{id}");
        assert!(Arc::ptr_eq(&other_method.red, &elsewhere.red));
    }
}
