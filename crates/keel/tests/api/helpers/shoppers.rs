//! Shoppers through a balancer, for the fault tests that keep clients going while parts
//! fail: each reads a product and every fourth turn places an order with an
//! `Idempotency-Key` and reads it back, sending a failed POST again with its key (as a client
//! of an idempotent API does) and giving a GET one try. What they saw is kept in [`Seen`].

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;

/// What the clients saw.
pub struct Seen {
    started: Instant,
    pub reads: AtomicUsize,
    pub orders: AtomicUsize,
    /// POSTs sent again with their key after an error or no answer.
    pub retried: AtomicUsize,
    pub acknowledged: Mutex<Vec<i64>>,
    pub failures: Mutex<Vec<String>>,
    /// Each request's (start, latency) in seconds since `started`; a POST's from its first
    /// try to its acknowledgement.
    timings: Mutex<Vec<(f64, f64)>>,
    /// Each acknowledged POST's first try and acknowledgement, in seconds since `started`.
    acknowledged_at: Mutex<Vec<(f64, f64)>>,
}

impl Seen {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            reads: AtomicUsize::default(),
            orders: AtomicUsize::default(),
            retried: AtomicUsize::default(),
            acknowledged: Mutex::default(),
            failures: Mutex::default(),
            timings: Mutex::default(),
            acknowledged_at: Mutex::default(),
        }
    }

    pub fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn took(&self, since: Instant) {
        let start = since.duration_since(self.started).as_secs_f64();
        let latency = since.elapsed().as_secs_f64();
        self.timings.lock().unwrap().push((start, latency));
    }

    /// What clients saw of the requests started in `[from, to)`: how many, the slowest and
    /// how many took over 250 ms.
    pub fn impact(&self, from: f64, to: f64) -> String {
        let timings = self.timings.lock().unwrap();
        let window: Vec<f64> = timings
            .iter()
            .filter(|(start, _)| (from..to).contains(start))
            .map(|(_, latency)| *latency)
            .collect();
        let slowest = window.iter().copied().fold(0.0, f64::max);
        let slow = window.iter().filter(|latency| **latency > 0.25).count();
        format!(
            "{} requests, slowest {:.0} ms, {slow} over 250 ms",
            window.len(),
            slowest * 1000.0
        )
    }

    /// When (seconds since the clients started) the first order sent after `at` was
    /// acknowledged, counting a POST from its first try: the end of a write outage.
    pub fn first_acknowledged_after(&self, at: f64) -> Option<f64> {
        self.acknowledged_at
            .lock()
            .unwrap()
            .iter()
            .filter(|(first_try, _)| *first_try >= at)
            .map(|(_, done)| *done)
            .reduce(f64::min)
    }

    /// Seconds since the clients started, to place a failure among the faults.
    pub fn at(&self) -> String {
        format!("{:.1}s", self.started.elapsed().as_secs_f64())
    }

    pub fn failed(&self, what: String) {
        let at = self.at();
        self.failures.lock().unwrap().push(format!("{at} {what}"));
    }
}

/// One client: reads a product, and every fourth turn places an order and reads it back.
pub async fn client(
    base: String,
    token: String,
    n: u64,
    seen: Arc<Seen>,
    running: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    let mut i = 0u64;
    while running.load(Relaxed) {
        i += 1;
        let product = (i + n) % 5 + 1;
        let sent = Instant::now();
        match http.get(format!("{base}/products/{product}")).send().await {
            Ok(response) if response.status() == StatusCode::OK => {
                seen.took(sent);
                seen.reads.fetch_add(1, Relaxed);
            }
            Ok(response) => seen.failed(format!("GET /products: {}", response.status())),
            Err(e) => seen.failed(format!("GET /products: {e}")),
        }
        if i % 4 != 0 {
            continue;
        }
        let Some(id) = place(&http, &base, &token, product, &seen).await else {
            continue;
        };
        let sent = Instant::now();
        match http
            .get(format!("{base}/orders/{id}"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Ok(response) if response.status() == StatusCode::OK => {
                seen.took(sent);
                seen.reads.fetch_add(1, Relaxed);
            }
            Ok(response) => seen.failed(format!("GET /orders/{id}: {}", response.status())),
            Err(e) => seen.failed(format!("GET /orders/{id}: {e}")),
        }
    }
}

/// Places an order with a fresh key, sending it again with the same key after a 5xx or no
/// answer, for up to 30 s. The order's id once acknowledged.
async fn place(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    product: u64,
    seen: &Seen,
) -> Option<i64> {
    let key = uuid::Uuid::new_v4().to_string();
    let first = Instant::now();
    let deadline = first + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        let sent = http
            .post(format!("{base}/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", &key)
            .json(&json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                last = e.to_string();
                seen.retried.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = response.status();
        if status == StatusCode::ACCEPTED {
            let order: serde_json::Value = response.json().await.ok()?;
            let id = order["id"].as_i64()?;
            seen.took(first);
            let started = |t: Instant| t.duration_since(seen.started).as_secs_f64();
            seen.acknowledged_at
                .lock()
                .unwrap()
                .push((started(first), seen.secs()));
            seen.acknowledged.lock().unwrap().push(id);
            seen.orders.fetch_add(1, Relaxed);
            return Some(id);
        }
        let body = response.text().await.unwrap_or_default();
        // A 5xx, or the key still held by a try that an instance's death cut short (free
        // again once that try's deadline has passed): the same key again.
        if !status.is_server_error() && !body.contains("idempotency-key-in-flight") {
            seen.failed(format!("POST /orders: {status} {body}"));
            return None;
        }
        last = format!("{status} {body}");
        seen.retried.fetch_add(1, Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen.failed(format!("POST /orders never acknowledged: {last}"));
    None
}
