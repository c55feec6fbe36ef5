//! The order saga under faults of the parts around it: NATS down while orders are placed,
//! the broker losing messages, a message dead-lettered and replayed, a slow provider that
//! errors and hangs, and the payment breaker opening, failing fast and closing. (A worker
//! killed or stopped mid-saga: `worker_signals`.)

use std::time::Duration;

use fake_payments::Behaviour;
use futures_util::future::join_all;
use orders::{
    OrderMode,
    payments::{ChargeOutcome, PaymentClient},
};
use platform::breaker::BreakerState;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::*,
    nats_server::NatsServer,
    saga::{app_with, charges, provider, set_behaviour},
};

#[tokio::test]
async fn orders_placed_while_nats_is_down_are_all_processed_when_it_returns() {
    let _busy = crate::helpers::MACHINE.read().await;
    let provider = provider(Behaviour::default()).await;
    let app = app_with(&provider, OrderMode::Async).await;
    let mut nats = NatsServer::start().await;
    let worker = spawn_worker(worker_config(&app.config, &nats.url(), "outage")).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 100).await;
    let customer = app.customer().await;
    let mut set = OrderSet::new(&[(product, 100)]);

    let first = body(app.order(&customer, product, 1).await).await["id"]
        .as_i64()
        .unwrap();
    app.wait_for_final(&customer, first, Duration::from_secs(30))
        .await;
    // The order's last event is written as it ends: let the relay publish it before NATS
    // goes, or it would be counted among the outage's.
    eventually("the outbox drained", Duration::from_secs(10), async || {
        app.count("SELECT count(*) FROM bus.outbox").await == 0
    })
    .await;

    nats.kill().await;
    let mut ids = vec![first];
    for _ in 0..10 {
        let response = app.order(&customer, product, 1).await;
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "orders are accepted without NATS"
        );
        ids.push(body(response).await["id"].as_i64().unwrap());
    }
    // Half a second is many relay polls: had any event been published, it would have left.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.count("SELECT count(*) FROM bus.outbox").await,
        10,
        "the events wait in the outbox"
    );

    nats.restart().await;
    for &id in &ids {
        set.acknowledged(id);
    }
    let verdict = set
        .check(
            app.database_url(),
            Some(&provider.url()),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(verdict.confirmed, 11);
    // The last steps' events leave the outbox just after their orders end.
    eventually("the outbox drained", Duration::from_secs(20), async || {
        app.count("SELECT count(*) FROM bus.outbox").await == 0
    })
    .await;
    worker.stop().await;
}

#[tokio::test]
async fn a_flaky_slow_provider_never_charges_an_order_twice() {
    let _busy = crate::helpers::MACHINE.read().await;
    let provider = provider(Behaviour {
        latency: Duration::from_millis(30),
        error_rate: 0.3,
        hang_rate: 0.1,
        ..Behaviour::default()
    })
    .await;
    let mut config = test_config(create_database().await);
    config.payments = payments_config(&provider.url());
    config.payments.payments_timeout = Duration::from_millis(200);
    let app = spawn_app_with(config).await;
    let worker = spawn_worker(worker_config(&app.config, &nats_url(), &nats_prefix())).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 1000).await;
    let customer = app.customer().await;

    let placed = join_all((0..40).map(|_| app.order(&customer, product, 1))).await;
    let mut set = OrderSet::new(&[(product, 1000)]);
    for response in placed {
        set.acknowledged(body(response).await["id"].as_i64().unwrap());
    }
    let verdict = set
        .check(
            app.database_url(),
            Some(&provider.url()),
            Duration::from_secs(90),
        )
        .await;
    assert!(
        verdict.confirmed > 0,
        "retries get most orders through: {verdict:?}"
    );
    // The provider's own ledger: one charge per order, however often a call was retried.
    for charge in reqwest::get(format!("{}/charges", provider.url()))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
    {
        assert_eq!(
            charges(
                &provider,
                charge["reference"].as_str().unwrap().parse().unwrap()
            )
            .await
            .len(),
            1,
            "{charge}"
        );
    }
    worker.stop().await;
}

#[tokio::test]
async fn the_breaker_opens_on_failures_fails_fast_and_closes_after_a_good_probe() {
    let _busy = crate::helpers::MACHINE.read().await;
    let provider = provider(Behaviour {
        error_rate: 1.0,
        ..Behaviour::default()
    })
    .await;
    let mut config = payments_config(&provider.url());
    config.payments_retries = 0;
    config.payments_breaker_failures = 3;
    config.payments_breaker_cool_down = Duration::from_millis(300);
    let client = PaymentClient::new(&config);
    let calls = || async {
        reqwest::get(format!("{}/stats", provider.url()))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["calls"]
            .as_u64()
            .unwrap()
    };

    for n in 0..3 {
        assert!(matches!(
            client.charge(&format!("k{n}"), 100, "1").await,
            ChargeOutcome::Unavailable { .. }
        ));
    }
    assert_eq!(client.breaker_state(), BreakerState::Open);
    let before = calls().await;
    assert_eq!(
        client.charge("k3", 100, "1").await,
        ChargeOutcome::Unavailable {
            reason: "circuit open".into()
        }
    );
    assert_eq!(
        calls().await,
        before,
        "an open circuit does not call the provider"
    );

    set_behaviour(&provider, json!({})).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(
        client.charge("k4", 100, "1").await,
        ChargeOutcome::Captured { .. }
    ));
    assert_eq!(client.breaker_state(), BreakerState::Closed);
}

/// The broker loses acknowledged messages (a node's unflushed writes, a purged stream): the
/// orders' `OrderPlaced` events are gone from the outbox and never reach a consumer. The
/// worker's sweep re-drives the sagas from PostgreSQL and the read models reconcile from the
/// event log, so every order still ends confirmed and the reports count it.
#[tokio::test]
async fn orders_whose_events_the_broker_lost_still_end_and_are_reported() {
    let provider = provider(Behaviour::default()).await;
    let app = app_with(&provider, OrderMode::Async).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 300, 50).await;
    let customer = app.customer().await;
    let placed = join_all((0..8).map(|_| app.order(&customer, product, 2))).await;
    let mut set = OrderSet::new(&[(product, 50)]);
    for response in placed {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        set.acknowledged(body(response).await["id"].as_i64().unwrap());
    }
    // Published, acknowledged, and lost: no relay will ever send these.
    let lost = app
        .count("WITH d AS (DELETE FROM bus.outbox RETURNING 1) SELECT count(*) FROM d")
        .await;
    assert_eq!(lost, 8);

    let mut config = worker_config(&app.config, &nats_url(), &nats_prefix());
    config.sweep.sweep_after = Duration::from_secs(1);
    config.sweep.sweep_every = Duration::from_millis(200);
    let worker = spawn_worker(config).await;
    let verdict = set
        .check(
            app.database_url(),
            Some(&provider.url()),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(verdict.confirmed, 8);
    // The saga's own events were relayed and projected; OrderPlaced came from the log.
    eventually(
        "the read models to count every order",
        Duration::from_secs(20),
        async || {
            let stats = body(app.get("/reports/my-stats", Some(&customer)).await).await;
            stats["orders_placed"] == 8 && stats["orders_confirmed"] == 8
        },
    )
    .await;
    let stats = body(app.get("/reports/my-stats", Some(&customer)).await).await;
    assert_eq!(stats["spent_cents"], 8 * 2 * 300);
    let history = body(app.get("/reports/my-orders", Some(&customer)).await).await;
    let statuses: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["confirmed"; 8]);
    worker.stop().await;
}

/// An order whose `OrderPlaced` ran out of deliveries (another runner held its lease all
/// along) waits in the dead-letter stream; `keel dlq list` shows it with its reason, and
/// `keel dlq replay` puts it back: the order completes, charged once, and the stream is empty.
#[tokio::test]
async fn a_dead_lettered_order_replayed_completes() {
    use keel::dead_letters::{Action, run};
    use platform::bus::dlq::Filter;

    let provider = provider(Behaviour::default()).await;
    let app = app_with(&provider, OrderMode::Async).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 400, 10).await;
    let customer = app.customer().await;
    let placed = app.order(&customer, product, 1).await;
    let id = body(placed).await["id"].as_i64().unwrap();
    // A runner that holds the order and never finishes: every delivery finds it busy.
    app.count(&format!(
        "WITH u AS (UPDATE orders.orders SET saga_lease_until = now() + interval '1 hour'
                     WHERE id = {id} RETURNING 1) SELECT count(*) FROM u"
    ))
    .await;
    let mut config = worker_config(&app.config, &nats_url(), &nats_prefix());
    config.bus.max_deliver = 2;
    let bus = config.bus.clone();
    let worker = spawn_worker(config).await;
    let sagas = Filter {
        consumer: Some("order-saga".into()),
        ..Filter::default()
    };
    eventually(
        "the order dead-lettered",
        Duration::from_secs(30),
        async || !run(&bus, &sagas, Action::List).await.unwrap().is_empty(),
    )
    .await;
    let letters = run(&bus, &sagas, Action::List).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].subject, "orders.placed");
    assert!(
        letters[0].reason.contains("still waiting"),
        "{}",
        letters[0].reason
    );
    let order = body(app.get(&format!("/orders/{id}"), Some(&customer)).await).await;
    assert_eq!(order["status"], "stock_reserved");

    // The runner is gone; an operator replays.
    app.count(&format!(
        "WITH u AS (UPDATE orders.orders SET saga_lease_until = NULL WHERE id = {id} RETURNING 1)
         SELECT count(*) FROM u"
    ))
    .await;
    assert_eq!(run(&bus, &sagas, Action::Replay).await.unwrap().len(), 1);
    let mut set = OrderSet::new(&[(product, 10)]);
    set.acknowledged(id);
    let verdict = set
        .check(
            app.database_url(),
            Some(&provider.url()),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(verdict.confirmed, 1);
    assert!(
        run(&bus, &Filter::default(), Action::List)
            .await
            .unwrap()
            .is_empty()
    );
    worker.stop().await;
}
