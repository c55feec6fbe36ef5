//! The HA topology under load while its parts fail in turn: PgBouncer in transaction mode,
//! Redis with a replica and three Sentinels, NATS as three nodes, two `keel serve` behind
//! the shipped nginx and two `keel worker`. Clients read products, place keyed orders
//! (retrying a failed POST with its key, as a client of an idempotent API does) and read
//! them back, while one NATS node, the Redis master, an instance and a worker are killed,
//! PgBouncer is restarted and every instance is restarted with SIGTERM.
//!
//! After healing: no GET failed, every acknowledged order exists once and is final, stock is
//! conserved to the unit and no order was charged twice. `KEEL_CHAOS_SECONDS` (default 2)
//! is the load between faults; the long variant is the same test with more.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use fake_payments::Behaviour;
use platform::bus::{Bus, BusConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::*,
    keel_process::{KeelProcess, keel_worker, login, seeded_database},
    load_balancer::Nginx,
    nats_cluster::leader,
    nats_server::NatsCluster,
    pgbouncer::PgBouncer,
    redis_sentinel::RedisHa,
    rolling_restart::{back_in_rotation, port, stop},
    saga::provider,
};

/// What the clients saw.
struct Seen {
    started: Instant,
    reads: AtomicUsize,
    orders: AtomicUsize,
    /// POSTs sent again with their key after an error or no answer.
    retried: AtomicUsize,
    acknowledged: Mutex<Vec<i64>>,
    failures: Mutex<Vec<String>>,
    /// Each request's (start, latency) in seconds since `started`; a POST's from its first
    /// try to its acknowledgement.
    timings: Mutex<Vec<(f64, f64)>>,
}

impl Seen {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            reads: AtomicUsize::default(),
            orders: AtomicUsize::default(),
            retried: AtomicUsize::default(),
            acknowledged: Mutex::default(),
            failures: Mutex::default(),
            timings: Mutex::default(),
        }
    }

    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn took(&self, since: Instant) {
        let start = since.duration_since(self.started).as_secs_f64();
        let latency = since.elapsed().as_secs_f64();
        self.timings.lock().unwrap().push((start, latency));
    }

    /// What clients saw of the requests started in `[from, to)`: how many, the slowest and
    /// how many took over 250 ms.
    fn impact(&self, from: f64, to: f64) -> String {
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

    /// Seconds since the clients started, to place a failure among the faults.
    fn at(&self) -> String {
        format!("{:.1}s", self.started.elapsed().as_secs_f64())
    }

    fn failed(&self, what: String) {
        let at = self.at();
        self.failures.lock().unwrap().push(format!("{at} {what}"));
    }
}

/// One client: reads a product, and every fourth turn places an order and reads it back.
async fn client(base: String, token: String, n: u64, seen: Arc<Seen>, running: Arc<AtomicBool>) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ha_topology_loses_no_order_and_fails_no_read_while_its_parts_fail() {
    let _busy = MACHINE.read().await;
    let phase = Duration::from_secs(
        std::env::var("KEEL_CHAOS_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2),
    );
    let database_url = seeded_database(20).await;
    let mut pgbouncer = PgBouncer::start().await;
    let mut redis = RedisHa::start().await;
    let mut nats = NatsCluster::start().await;
    let payments = provider(Behaviour::default()).await;
    let prefix = format!("chaos{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    let (pooled, master) = (
        pgbouncer.url_for(&database_url),
        format!("redis://127.0.0.1:{}", redis.master.port),
    );
    let (sentinels, nats_urls, provider_url) =
        (redis.sentinel_urls().join(","), nats.urls(), payments.url());
    let env = [
        ("KEEL_DATABASE_URL", pooled.as_str()),
        ("KEEL_DATABASE_POOLING", "transaction"),
        ("KEEL_DATABASE_DIRECT_URL", database_url.as_str()),
        ("KEEL_REDIS_URL", master.as_str()),
        ("KEEL_REDIS_SENTINELS", sentinels.as_str()),
        ("KEEL_REDIS_PREFIX", prefix.as_str()),
        ("KEEL_NATS_URL", nats_urls.as_str()),
        ("KEEL_NATS_PREFIX", prefix.as_str()),
        ("KEEL_ORDER_MODE", "async"),
        ("KEEL_PAYMENTS_URL", provider_url.as_str()),
        ("KEEL_SHUTDOWN_DELAY", "2s"),
        ("KEEL_LOG", "warn"),
        // Limits on, through Redis and its failover, high enough never to refuse.
        ("KEEL_RATE_LIMIT_OFF", "false"),
        ("KEEL_RATE_READ", "1000000/60s"),
        ("KEEL_RATE_WRITE", "1000000/60s"),
        ("KEEL_RATE_LOGIN", "1000000/60s"),
    ];
    let mut instances = vec![
        KeelProcess::start_at(database_url.clone(), free_port(), &env).await,
        KeelProcess::start_at(database_url.clone(), free_port(), &env).await,
    ];
    // Every instance's log, the replaced ones' too, to explain a failure.
    let mut logs: Vec<_> = instances.iter().map(|k| k.logs.clone()).collect();
    let mut workers = vec![keel_worker(&env), keel_worker(&env)];
    let bases: Vec<&str> = instances.iter().map(|k| k.base.as_str()).collect();
    let nginx = Nginx::start(&bases, "1s").await;

    let direct = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(direct.1);
    direct
        .0
        .batch_execute("UPDATE catalog.stock SET on_hand = 100000 WHERE product_id <= 5")
        .await
        .unwrap();
    let mut set = OrderSet::new(&(1..=5).map(|p| (p, 100_000)).collect::<Vec<_>>());

    let seen = Arc::new(Seen::new());
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for n in 0..6 {
        let token = login(&nginx.url(""), &format!("user{}@demo.keel", n + 1)).await;
        clients.push(tokio::spawn(client(
            nginx.url(""),
            token,
            n,
            seen.clone(),
            running.clone(),
        )));
    }
    let mut log = Vec::new();
    tokio::time::sleep(phase).await;

    // One NATS node: the one leading the events stream.
    let bus = Bus::connect(&BusConfig {
        nats_url: nats.urls(),
        nats_replicas: 0,
        nats_prefix: prefix.clone(),
        ack_wait: Duration::from_secs(2),
        max_deliver: 10,
        concurrency: 1,
    })
    .await
    .unwrap();
    eventually("a stream leader", Duration::from_secs(30), async || {
        leader(&bus).await.is_some()
    })
    .await;
    let led_by = leader(&bus).await.unwrap();
    let node: usize = led_by.rsplit('-').next().unwrap().parse().unwrap();
    let at = seen.secs();
    nats.nodes[node].kill().await;
    let killed = Instant::now();
    eventually("a new leader", Duration::from_secs(30), async || {
        leader(&bus).await.is_some_and(|now| now != led_by)
    })
    .await;
    log.push((
        at,
        format!("NATS leader killed: new leader in {:?}", killed.elapsed()),
    ));
    tokio::time::sleep(phase).await;
    nats.nodes[node].restart().await;

    // The Redis master: the Sentinels promote the replica.
    redis.replicated().await;
    let at = seen.secs();
    redis.kill_master().await;
    let killed = Instant::now();
    redis.promoted().await;
    log.push((
        at,
        format!("Redis master killed: promoted in {:?}", killed.elapsed()),
    ));
    tokio::time::sleep(phase).await;

    // One API instance, SIGKILLed, then replaced on its port.
    log.push((seen.secs(), "instance SIGKILLed, replaced".into()));
    instances[0].child.kill().await.unwrap();
    tokio::time::sleep(phase).await;
    let on = port(&instances[0]);
    instances[0] = KeelProcess::start_at(database_url.clone(), on, &env).await;
    logs.push(instances[0].logs.clone());
    back_in_rotation(&nginx, &instances[0]).await;

    // One worker, SIGKILLed mid-saga, then replaced.
    log.push((seen.secs(), "worker SIGKILLed, replaced".into()));
    workers[0].kill().await.unwrap();
    tokio::time::sleep(phase).await;
    workers[0] = keel_worker(&env);

    // PgBouncer, restarted.
    let at = seen.secs();
    let away = pgbouncer.restart().await;
    log.push((at, format!("PgBouncer restarted: away {away:?}")));
    tokio::time::sleep(phase).await;

    // Every instance, one by one, with SIGTERM.
    for keel in &mut instances {
        let at = seen.secs();
        let drained = stop(keel).await;
        let on = port(keel);
        *keel = KeelProcess::start_at(database_url.clone(), on, &env).await;
        logs.push(keel.logs.clone());
        back_in_rotation(&nginx, keel).await;
        log.push((
            at,
            format!("instance restarted with SIGTERM: drained in {drained:?}"),
        ));
    }
    tokio::time::sleep(phase).await;
    running.store(false, Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let (reads, orders, retried) = (
        seen.reads.load(Relaxed),
        seen.orders.load(Relaxed),
        seen.retried.load(Relaxed),
    );
    let failures = seen.failures.lock().unwrap().clone();
    eprintln!(
        "HA chaos: {reads} reads, {orders} acknowledged orders ({retried} POSTs sent again with \
         their key), {} failed",
        failures.len()
    );
    let end = seen.secs();
    eprintln!(
        "  {:>5.1}s before any fault: {}",
        0.0,
        seen.impact(0.0, log[0].0)
    );
    for (n, (at, what)) in log.iter().enumerate() {
        let until = log.get(n + 1).map_or(end, |next| next.0);
        eprintln!("  {at:>5.1}s {what}: {}", seen.impact(*at, until));
    }
    if !failures.is_empty() {
        for line in logs.iter().flat_map(|log| log.lock().unwrap().clone()) {
            eprintln!("{line}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(reads > 200 && orders > 50, "{reads} reads, {orders} orders");
    for id in seen.acknowledged.lock().unwrap().iter() {
        set.acknowledged(*id);
    }
    // A retried POST whose first try was placed is answered with that order (checked: no
    // order exists that no client was told of). The provider approves every charge, so an
    // order cancelled here would be a saga a fault made give up.
    let verdict = set
        .check(
            &database_url,
            Some(&payments.url()),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(verdict.confirmed, verdict.orders, "{verdict:?}");
    drop((workers, instances, nginx));
}
