//! PostgreSQL silent rather than gone (packets unanswered, nothing refused): a request that
//! needs it waits at most its deadline, then none waits while the pool's breaker is open,
//! cached reads go on, and the pools heal on their own once the network does.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use tokio_postgres::config::Host;

use crate::helpers::{
    MACHINE, create_database, relay::Relay, server_url, spawn_app_with, test_config,
};

/// The test server's address, for the relay to forward to.
fn upstream() -> SocketAddr {
    let config: tokio_postgres::Config = server_url().parse().unwrap();
    let Some(Host::Tcp(host)) = config.get_hosts().first() else {
        panic!("KEEL_TEST_POSTGRES must name a TCP host");
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}").parse().unwrap()
}

#[tokio::test]
async fn a_silent_postgres_costs_a_request_its_deadline_then_nothing_and_heals() {
    let _shared = MACHINE.read().await;
    let database = create_database().await;
    let upstream = upstream();
    let relay = Relay::start(upstream).await;
    let mut config = test_config(database.clone());
    config.db.url = database.replacen(&upstream.to_string(), &relay.addr.to_string(), 1);
    assert_ne!(config.db.url, database, "the app goes through the relay");
    config.db.direct_url = None;
    config.db.pooling = platform::db::Pooling::Direct;
    config.db.statement_timeout = Duration::from_secs(1);
    config.db.acquire_timeout = Duration::from_secs(1);
    let budget = config.db.statement_deadline() + Duration::from_millis(700);
    let app = spawn_app_with(config).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let mut products = Vec::new();
    for _ in 0..10 {
        products.push(app.product(&admin, 500, 100).await);
    }
    let cached = products[0];
    assert_eq!(
        app.get(&format!("/products/{cached}"), None).await.status(),
        StatusCode::OK
    );

    relay.silence();
    // Reads of products nobody has read yet need PostgreSQL: each gets its answer, a 503
    // saying when to come back, within its deadline, not after the request timeout.
    let reads = products[1..7].iter().map(|id| timed_get(&app, *id));
    let order = async {
        let started = Instant::now();
        let order = app.order(&customer, products[0], 1).await;
        (order.status(), started.elapsed())
    };
    let (reads, (order, ordering_took)) =
        tokio::join!(futures_util::future::join_all(reads), order);
    for (status, retry_after, took) in reads {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry_after, "a 503 says when to retry");
        assert!(took < budget, "a read waited {took:?}, past {budget:?}");
    }
    assert_eq!(order, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ordering_took < budget, "an order waited {ordering_took:?}");

    // The read pool's breaker is open now: the next read is refused without waiting.
    let (status, _, took) = timed_get(&app, products[7]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(took < Duration::from_millis(300), "refused after {took:?}");
    // What the instance holds in its cache is served as usual.
    for _ in 0..5 {
        let started = Instant::now();
        let response = app.get(&format!("/products/{cached}"), None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_millis(300));
    }

    relay.heal();
    let healed = Instant::now();
    loop {
        let (status, _, _) = timed_get(&app, products[8]).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "reads still fail {:?} after the network healed: {status}",
            healed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let placed = app.order(&customer, products[9], 1).await;
    assert!(placed.status().is_success(), "{}", placed.status());
    eprintln!("reads served again {:?} after healing", healed.elapsed());
}

/// GETs a product: its status, whether it said `Retry-After`, and how long it took.
async fn timed_get(app: &crate::helpers::TestApp, id: i64) -> (StatusCode, bool, Duration) {
    let started = Instant::now();
    let response = app.get(&format!("/products/{id}"), None).await;
    (
        response.status(),
        response.headers().contains_key("retry-after"),
        started.elapsed(),
    )
}
