//! The order saga end to end: sync and async modes, each failure path with its compensations
//! checked in the database and at the payment provider. Faults of the parts around it (a
//! killed worker, a NATS outage, a flaky provider, the breaker) are in `saga_faults`.

use std::time::Duration;

use fake_payments::{Behaviour, FakePayments};
use futures_util::future::join_all;
use orders::OrderMode;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

pub(crate) async fn provider(behaviour: Behaviour) -> FakePayments {
    FakePayments::start("127.0.0.1:0".parse().unwrap(), behaviour)
        .await
        .unwrap()
}

pub(crate) async fn app_with(provider: &FakePayments, mode: OrderMode) -> TestApp {
    let mut config = test_config(create_database().await);
    config.saga.order_mode = mode;
    config.payments = payments_config(&provider.url());
    spawn_app_with(config).await
}

/// The charges the provider recorded for order `id`.
pub(crate) async fn charges(provider: &FakePayments, id: i64) -> Vec<Value> {
    reqwest::get(format!("{}/charges?reference={id}", provider.url()))
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

pub(crate) async fn set_behaviour(provider: &FakePayments, behaviour: Value) {
    let response = reqwest::Client::new()
        .put(format!("{}/behaviour", provider.url()))
        .json(&behaviour)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

pub(crate) fn history(order: &Value) -> Vec<&str> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn sync_mode_runs_the_whole_saga_in_the_request() {
    let provider = provider(Behaviour::default()).await;
    let app = app_with(&provider, OrderMode::Sync).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 1500, 10).await;
    let customer = app.customer().await;

    let response = app.order(&customer, product, 2).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order = body(response).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(
        history(&order),
        [
            "placed",
            "stock_reserved",
            "payment_captured",
            "shipment_created",
            "confirmed"
        ]
    );
    let id = order["id"].as_i64().unwrap();
    assert_eq!(app.stock(product).await, 8);
    let charged = charges(&provider, id).await;
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0]["status"], "captured");
    assert_eq!(charged[0]["amount_cents"], 3000);
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM orders.shipments WHERE order_id = {id}"
        ))
        .await,
        1
    );
    // Every step's event is in the (partitioned) event log, written with the step.
    let client = app.db.write().await.unwrap();
    let subjects: Vec<String> = client
        .query("SELECT subject FROM bus.event_log ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        subjects,
        [
            "orders.placed",
            "orders.payment_captured",
            "orders.shipment_created",
            "orders.confirmed"
        ]
    );
}

#[tokio::test]
async fn a_client_hanging_up_does_not_stop_its_sync_order_half_way() {
    let provider = provider(Behaviour {
        latency: Duration::from_millis(1500),
        ..Behaviour::default()
    })
    .await;
    let mut config = test_config(create_database().await);
    config.saga.order_mode = OrderMode::Sync;
    config.payments = payments_config(&provider.url());
    config.payments.payments_timeout = Duration::from_secs(5);
    let app = spawn_app_with(config).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 900, 10).await;
    let customer = app.customer().await;
    let send = |timeout: Duration| {
        app.client
            .post(app.url("/orders"))
            .bearer_auth(&customer)
            .header("idempotency-key", "hang-up-1")
            .timeout(timeout)
            .json(&json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }))
            .send()
    };

    // The client gives up while the charge is in flight (the order committed long before).
    // No worker runs here, and the order's lease would keep one away for 30 s: only the
    // request's own task can finish it, and retries with the key replay the stored
    // response, which it brings up to date.
    assert!(send(Duration::from_millis(500)).await.is_err());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let order = loop {
        let response = send(Duration::from_secs(10)).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["idempotent-replayed"], "true");
        let order = body(response).await;
        if order["status"] == "confirmed" {
            break order;
        }
        assert!(std::time::Instant::now() < deadline, "cut off: {order}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = order["id"].as_i64().unwrap();
    assert_eq!(charges(&provider, id).await.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM orders.orders").await, 1);
    assert_eq!(app.stock(product).await, 9);
}

#[tokio::test]
async fn a_declined_payment_cancels_the_order_and_releases_its_stock() {
    let provider = provider(Behaviour {
        decline_over_cents: 10_000,
        ..Behaviour::default()
    })
    .await;
    let app = app_with(&provider, OrderMode::Sync).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 6000, 5).await;
    let customer = app.customer().await;

    let order = body(app.order(&customer, product, 2).await).await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert!(
        order["cancel_reason"]
            .as_str()
            .unwrap()
            .starts_with("payment declined"),
        "{order}"
    );
    assert_eq!(history(&order), ["placed", "stock_reserved", "cancelled"]);
    assert_eq!(
        app.stock(product).await,
        5,
        "the reservation is compensated"
    );
    let id = order["id"].as_i64().unwrap();
    let charged = charges(&provider, id).await;
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0]["status"], "declined");
    assert_eq!(app.count("SELECT count(*) FROM orders.shipments").await, 0);
    // The stock the cancellation released can be ordered again.
    let again = body(app.order(&customer, product, 1).await).await;
    assert_eq!(again["status"], "confirmed");
}

#[tokio::test]
async fn a_down_provider_fails_fast_in_sync_mode_and_the_worker_settles_it_later() {
    let provider = provider(Behaviour {
        error_rate: 1.0,
        ..Behaviour::default()
    })
    .await;
    let app = app_with(&provider, OrderMode::Sync).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 1000, 5).await;
    let customer = app.customer().await;

    let response = app.order(&customer, product, 1).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order = body(response).await;
    let id = order["id"].as_i64().unwrap();
    // The charge's outcome is unknown, so the cancellation must refund first; the provider
    // is down, so the order waits with its cancellation recorded.
    assert_eq!(order["status"], "stock_reserved", "{order}");
    assert!(
        order["cancel_reason"]
            .as_str()
            .unwrap()
            .starts_with("payment provider unavailable"),
        "{order}"
    );

    set_behaviour(&provider, json!({})).await;
    let prefix = nats_prefix();
    let worker = spawn_worker(worker_config(&app.config, &nats_url(), &prefix)).await;
    let order = app
        .wait_for_final(&customer, id, Duration::from_secs(30))
        .await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(app.stock(product).await, 5);
    assert!(
        charges(&provider, id).await.is_empty(),
        "nothing was charged"
    );
    worker.stop().await;
}

#[tokio::test]
async fn async_mode_answers_202_and_the_worker_confirms_every_order() {
    let provider = provider(Behaviour {
        latency: Duration::from_millis(20),
        ..Behaviour::default()
    })
    .await;
    let app = app_with(&provider, OrderMode::Async).await;
    let worker = spawn_worker(worker_config(&app.config, &nats_url(), &nats_prefix())).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 250, 100).await;
    let customer = app.customer().await;

    let placed = join_all((0..20).map(|_| app.order(&customer, product, 1))).await;
    let mut ids = Vec::new();
    for response in placed {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(
            response.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/orders/")
        );
        let order = body(response).await;
        assert_eq!(order["status"], "stock_reserved");
        ids.push(order["id"].as_i64().unwrap());
    }
    for &id in &ids {
        let order = app
            .wait_for_final(&customer, id, Duration::from_secs(30))
            .await;
        assert_eq!(order["status"], "confirmed", "{order}");
        assert_eq!(charges(&provider, id).await.len(), 1);
    }
    assert_eq!(app.stock(product).await, 80);
    // Every placed order's event was processed by the saga consumer once.
    assert_eq!(
        app.count("SELECT count(*) FROM bus.processed_messages WHERE consumer = 'order-saga'")
            .await,
        20
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_customer_cancelling_after_payment_gets_a_refund_and_the_stock_back() {
    let provider = provider(Behaviour {
        latency: Duration::from_millis(300),
        ..Behaviour::default()
    })
    .await;
    let app = app_with(&provider, OrderMode::Async).await;
    let worker = spawn_worker(worker_config(&app.config, &nats_url(), &nats_prefix())).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 1200, 3).await;
    let customer = app.customer().await;

    let order = body(app.order(&customer, product, 2).await).await;
    let id = order["id"].as_i64().unwrap();
    // Wait until the charge is on its way, then cancel while it is in flight.
    let stats = format!("{}/stats", provider.url());
    eventually(
        "the charge on its way",
        Duration::from_secs(10),
        async || {
            reqwest::get(&stats)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["calls"]
                != 0
        },
    )
    .await;
    let cancel = app
        .post(&format!("/orders/{id}/cancel"), Some(&customer), &json!({}))
        .await;
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);

    let order = app
        .wait_for_final(&customer, id, Duration::from_secs(30))
        .await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert_eq!(order["cancel_reason"], orders::BY_CUSTOMER);
    assert_eq!(app.stock(product).await, 3);
    let charged = charges(&provider, id).await;
    assert_eq!(charged.len(), 1);
    assert_eq!(
        charged[0]["status"], "refunded",
        "the captured charge is given back"
    );

    // A confirmed order cannot be cancelled; someone else's is not found.
    let shipped = body(app.order(&customer, product, 1).await).await;
    let shipped_id = shipped["id"].as_i64().unwrap();
    app.wait_for_final(&customer, shipped_id, Duration::from_secs(30))
        .await;
    let path = format!("/orders/{shipped_id}/cancel");
    problem(
        app.post(&path, Some(&customer), &json!({})).await,
        StatusCode::CONFLICT,
    )
    .await;
    let stranger = app.customer().await;
    problem(
        app.post(&path, Some(&stranger), &json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    worker.stop().await;
}
