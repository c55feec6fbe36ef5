//! `keel worker` as a real process stopped the two ways it is: SIGKILL mid-saga (nothing
//! lost, no step twice) and SIGTERM (the orders in hand finished, no lease left behind).

use std::time::Duration;

use fake_payments::{Behaviour, FakePayments};
use orders::OrderMode;

use crate::{
    helpers::*,
    keel_process::keel_worker,
    saga::{app_with, history, provider},
};

/// Starts `keel worker` as a real process that the test can signal; `env` comes last.
fn worker_process(
    app: &TestApp,
    nats_url: &str,
    prefix: &str,
    payments: &str,
    env: &[(&str, &str)],
) -> tokio::process::Child {
    let pooling = <&str>::from(app.config.db.pooling);
    let mut all = vec![
        ("KEEL_DATABASE_URL", app.config.db.url.as_str()),
        ("KEEL_DATABASE_POOLING", pooling),
        ("KEEL_DATABASE_DIRECT_URL", app.database_url()),
        ("KEEL_REDIS_URL", &app.config.redis.url),
        ("KEEL_REDIS_PREFIX", &app.config.redis.key_prefix),
        ("KEEL_NATS_URL", nats_url),
        ("KEEL_NATS_PREFIX", prefix),
        ("KEEL_PAYMENTS_URL", payments),
    ];
    all.extend_from_slice(env);
    keel_worker(&all)
}

/// A provider that answers after `latency`, an app in async mode, a product with 1000 units
/// and a customer: a shop whose sagas take long enough to be caught in the middle.
async fn slow_shop(latency: Duration) -> (FakePayments, TestApp, i64, String) {
    let provider = provider(Behaviour {
        latency,
        ..Behaviour::default()
    })
    .await;
    let app = app_with(&provider, OrderMode::Async).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 1000).await;
    let customer = app.customer().await;
    (provider, app, product, customer)
}

#[tokio::test]
async fn killing_the_worker_mid_saga_loses_no_order_and_repeats_no_step() {
    let _busy = crate::helpers::MACHINE.read().await;
    let (provider, app, product, customer) = slow_shop(Duration::from_millis(300)).await;
    let prefix = nats_prefix();

    // Three at a time: the 30 sagas then take ten provider calls' time one after another,
    // a window the kill lands in, where 64 at once would all end within one call's time.
    let few = [("KEEL_BUS_CONCURRENCY", "3")];
    let mut worker = worker_process(&app, &nats_url(), &prefix, &provider.url(), &few);
    let mut set = OrderSet::new(&[(product, 1000)]);
    let mut ids = Vec::new();
    for _ in 0..30 {
        let id = body(app.order(&customer, product, 1).await).await["id"]
            .as_i64()
            .unwrap();
        set.acknowledged(id);
        ids.push(id);
    }
    // Let some sagas get under way, then kill -9 in the middle of them.
    let in_flight =
        "SELECT count(*) FROM orders.orders WHERE status NOT IN ('confirmed', 'cancelled')";
    eventually("sagas under way", Duration::from_secs(20), async || {
        app.count(in_flight).await < 30
    })
    .await;
    worker.kill().await.unwrap();
    assert!(
        app.count(in_flight).await > 0,
        "the worker died with sagas unfinished"
    );

    let mut worker = worker_process(&app, &nats_url(), &prefix, &provider.url(), &[]);
    for &id in &ids {
        let order = app
            .wait_for_final(&customer, id, Duration::from_secs(60))
            .await;
        assert_eq!(order["status"], "confirmed", "{order}");
        let steps = history(&order);
        let mut unique = steps.clone();
        unique.dedup();
        assert_eq!(steps, unique, "no step recorded twice: {order}");
    }
    let verdict = set
        .check(
            app.database_url(),
            Some(&provider.url()),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(verdict.confirmed, 30);
    assert_eq!(app.count("SELECT count(*) FROM orders.shipments").await, 30);
    worker.kill().await.unwrap();
}

/// `keel worker` on SIGTERM takes no new message and finishes those in hand: every order it
/// was working on when the signal came is final when it exits, and none is left holding a
/// lease that would keep another worker off it. A new worker takes the rest, charging each
/// order once.
#[tokio::test]
async fn a_worker_sent_sigterm_finishes_the_orders_in_hand() {
    let _busy = crate::helpers::MACHINE.read().await;
    let (provider, app, product, customer) = slow_shop(Duration::from_millis(400)).await;
    let prefix = nats_prefix();
    // A lease far longer than the test: one left behind would show. Messages fetched and
    // not yet handed out come back to the next worker after the ack wait.
    // Four at a time: some in hand at SIGTERM, the rest not yet.
    let env = [
        ("KEEL_SAGA_LEASE", "60s"),
        ("KEEL_BUS_ACK_WAIT", "5s"),
        ("KEEL_BUS_CONCURRENCY", "4"),
    ];
    let mut worker = worker_process(&app, &nats_url(), &prefix, &provider.url(), &env);
    let mut set = OrderSet::new(&[(product, 1000)]);
    for _ in 0..20 {
        set.acknowledged(
            body(app.order(&customer, product, 1).await).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let (db, connection) = tokio_postgres::connect(app.database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let leased = "SELECT id FROM orders.orders WHERE saga_lease_until > now()";
    eventually("orders in hand", Duration::from_secs(20), async || {
        !db.query(leased, &[]).await.unwrap().is_empty()
    })
    .await;

    let pid = worker.id().unwrap().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    let in_hand: Vec<i64> = db
        .query(leased, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        !in_hand.is_empty(),
        "nothing in hand at SIGTERM: the test shows nothing"
    );
    let exited = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker exits once its messages are done")
        .unwrap();
    assert!(exited.success(), "{exited:?}");
    let left: Vec<(i64, String, f64)> = db
        .query(
            "SELECT id, status, extract(epoch FROM saga_lease_until - now())::float8
               FROM orders.orders WHERE saga_lease_until > now()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert!(
        left.is_empty(),
        "leases left behind: {left:?} (in hand: {in_hand:?})"
    );
    for id in &in_hand {
        let status: String = db
            .query_one("SELECT status FROM orders.orders WHERE id = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(status, "confirmed", "order {id}, in hand at SIGTERM");
    }
    let unfinished = app
        .count("SELECT count(*) FROM orders.orders WHERE status <> 'confirmed'")
        .await;
    assert!(
        unfinished > 0,
        "the worker took no new message after SIGTERM"
    );

    let mut worker = worker_process(&app, &nats_url(), &prefix, &provider.url(), &env);
    let verdict = set
        .check(
            app.database_url(),
            Some(&provider.url()),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(verdict.confirmed, 20);
    worker.kill().await.unwrap();
}
