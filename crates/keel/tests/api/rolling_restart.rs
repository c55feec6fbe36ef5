//! A deploy as an operator runs one: two `keel serve` processes behind the shipped nginx,
//! restarted one by one with SIGTERM while clients read products and place keyed orders.
//! No request may fail — not a read, not a POST — and no order may be lost or doubled.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Mutex;

use crate::{
    helpers::*,
    keel_process::{KeelProcess, login},
    load_balancer::{Nginx, instance},
};

/// What the clients saw.
#[derive(Default)]
struct Seen {
    reads: AtomicUsize,
    orders: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// Sends SIGTERM and waits for the process to leave on its own.
pub(crate) async fn stop(keel: &mut KeelProcess) -> Duration {
    let pid = keel.child.id().unwrap().to_string();
    let sent = Instant::now();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    let exited = tokio::time::timeout(Duration::from_secs(30), keel.child.wait())
        .await
        .expect("it drains and exits")
        .unwrap();
    assert!(exited.success(), "{exited:?}");
    sent.elapsed()
}

/// Waits until nginx sends requests to `keel` again: it retries an instance it found down
/// after `fail_timeout` (5 s).
pub(crate) async fn back_in_rotation(nginx: &Nginx, keel: &KeelProcess) {
    let http = reqwest::Client::new();
    let back = instance(
        &http
            .get(format!("{}/livez", keel.base))
            .send()
            .await
            .unwrap(),
    );
    eventually(
        "nginx to send to the restarted instance",
        Duration::from_secs(15),
        async || instance(&http.get(nginx.url("/livez")).send().await.unwrap()) == back,
    )
    .await;
}

/// The port an instance listens on, for its replacement.
pub(crate) fn port(keel: &KeelProcess) -> u16 {
    keel.base.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn restarting_instances_one_by_one_behind_nginx_fails_no_request() {
    let _busy = MACHINE.read().await;
    // The balancer lets idle connections go after 1 s; each instance drains for 2 s, so no
    // connection nginx holds is closed under it.
    let prefix = format!("rolling-{}:", uuid::Uuid::new_v4());
    let env = [
        ("KEEL_SHUTDOWN_DELAY", "2s"),
        ("KEEL_REDIS_PREFIX", prefix.as_str()),
    ];
    let mut first = KeelProcess::start(20, &env).await;
    let database_url = first.database_url.clone();
    let mut second = KeelProcess::start_on(database_url.clone(), &env).await;
    let nginx = Nginx::start(&[&first.base, &second.base], "1s").await;
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    db.batch_execute("UPDATE catalog.stock SET on_hand = 100000 WHERE product_id <= 5")
        .await
        .unwrap();
    let mut set = OrderSet::new(&(1..=5).map(|p| (p, 100_000)).collect::<Vec<_>>());

    let seen = Arc::new(Seen::default());
    let running = Arc::new(AtomicBool::new(true));
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for n in 0..6 {
        let token = login(&nginx.url(""), &format!("user{}@demo.keel", n + 1)).await;
        let (base, seen, running, acknowledged) = (
            nginx.url(""),
            seen.clone(),
            running.clone(),
            acknowledged.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = 0u64;
            while running.load(Relaxed) {
                i += 1;
                let product = (i + n) % 5 + 1;
                if i % 4 == 0 {
                    let key = uuid::Uuid::new_v4().to_string();
                    let sent = http
                        .post(format!("{base}/orders"))
                        .bearer_auth(&token)
                        .header("Idempotency-Key", &key)
                        .json(&json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == StatusCode::ACCEPTED => {
                            let order: serde_json::Value = response.json().await.unwrap();
                            acknowledged
                                .lock()
                                .unwrap()
                                .push(order["id"].as_i64().unwrap());
                            seen.orders.fetch_add(1, Relaxed);
                        }
                        Ok(response) => seen.failures.lock().await.push(format!(
                            "POST /orders: {} {}",
                            response.status(),
                            response.text().await.unwrap_or_default()
                        )),
                        Err(e) => seen
                            .failures
                            .lock()
                            .await
                            .push(format!("POST /orders: {e}")),
                    }
                } else {
                    match http.get(format!("{base}/products/{product}")).send().await {
                        Ok(response) if response.status() == StatusCode::OK => {
                            seen.reads.fetch_add(1, Relaxed);
                        }
                        Ok(response) => seen
                            .failures
                            .lock()
                            .await
                            .push(format!("GET /products: {}", response.status())),
                        Err(e) => seen
                            .failures
                            .lock()
                            .await
                            .push(format!("GET /products: {e}")),
                    }
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut drains = Vec::new();
    for keel in [&mut first, &mut second] {
        let before = seen.orders.load(Relaxed);
        drains.push(stop(keel).await);
        let restarted = KeelProcess::start_at(database_url.clone(), port(keel), &env).await;
        *keel = restarted;
        // Orders flowed through the other instance while this one was away.
        assert!(
            seen.orders.load(Relaxed) > before,
            "no orders while one instance restarted"
        );
        // As an operator's rollout does (a readiness gate), the next instance waits until
        // this one is back in the balancer's rotation.
        back_in_rotation(&nginx, keel).await;
    }
    running.store(false, Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let failures = seen.failures.lock().await;
    let (reads, orders) = (seen.reads.load(Relaxed), seen.orders.load(Relaxed));
    eprintln!(
        "rolling restart: {reads} reads and {orders} keyed orders, {} failed; drains took {drains:?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(reads > 100 && orders > 30, "{reads} reads, {orders} orders");
    for id in acknowledged.lock().unwrap().iter() {
        set.acknowledged(*id);
    }
    let verdict = set.check_placed(&database_url).await;
    assert_eq!(verdict.orders, orders);
}
