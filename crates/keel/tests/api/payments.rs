//! The payment provider as the saga meets it when it does not simply answer: refusing the
//! request itself, or down past the payment deadline.

use std::time::Duration;

use fake_payments::Behaviour;
use orders::{
    OrderMode,
    payments::{ChargeOutcome, PaymentClient},
};
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::*,
    saga::{charges, provider, set_behaviour},
};

#[tokio::test]
async fn a_request_the_provider_refuses_is_not_a_decline() {
    // A provider that rejects the call itself (bad credentials), not the card.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let refusing = axum::Router::new().route(
        "/charges",
        axum::routing::post(|| async { (axum::http::StatusCode::UNAUTHORIZED, "bad API key") }),
    );
    tokio::spawn(async move { axum::serve(listener, refusing).await });
    let client = PaymentClient::new(&payments_config(&url));
    match client.charge("k", 100, "1").await {
        ChargeOutcome::Refused { reason } => {
            assert!(
                reason.contains("401") && reason.contains("bad API key"),
                "{reason}"
            )
        }
        other => panic!("a refused request read as {other:?}"),
    }
}

/// A provider down for longer than `KEEL_PAYMENT_DEADLINE`: the worker keeps the order
/// waiting until the deadline, then decides to cancel it with that reason. A charge may
/// have gone through unanswered, so the cancellation waits for the refund by the order's key;
/// once the provider answers, the order ends cancelled, its stock back, nothing captured.
#[tokio::test]
async fn an_order_past_the_payment_deadline_is_cancelled_with_its_reason() {
    let provider = provider(Behaviour {
        error_rate: 1.0,
        ..Behaviour::default()
    })
    .await;
    let mut config = test_config(create_database().await);
    config.saga.order_mode = OrderMode::Async;
    config.saga.payment_deadline = Duration::from_secs(1);
    config.payments = payments_config(&provider.url());
    let app = spawn_app_with(config).await;
    let worker = spawn_worker(worker_config(&app.config, &nats_url(), &nats_prefix())).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 150, 5).await;
    let customer = app.customer().await;
    let placed = app.order(&customer, product, 2).await;
    assert_eq!(placed.status(), StatusCode::ACCEPTED);
    let id = body(placed).await["id"].as_i64().unwrap();
    eventually(
        "the deadline's cancellation decided",
        Duration::from_secs(30),
        async || {
            let order = body(app.get(&format!("/orders/{id}"), Some(&customer)).await).await;
            order["cancel_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("payment provider unavailable"))
        },
    )
    .await;
    let waiting = body(app.get(&format!("/orders/{id}"), Some(&customer)).await).await;
    assert_eq!(
        waiting["status"], "stock_reserved",
        "not cancelled before its refund"
    );

    set_behaviour(&provider, json!({})).await;
    let order = app
        .wait_for_final(&customer, id, Duration::from_secs(60))
        .await;
    assert_eq!(order["status"], "cancelled", "{order}");
    assert!(
        order["cancel_reason"]
            .as_str()
            .unwrap()
            .starts_with("payment provider unavailable"),
        "{order}"
    );
    assert_eq!(app.stock(product).await, 5, "the stock came back");
    assert!(
        charges(&provider, id)
            .await
            .iter()
            .all(|c| c["status"] != "captured"),
        "nothing stays captured"
    );
    worker.stop().await;
}

/// A provider that fails every call: each charge may retry three times, but retries as a
/// whole stay within the budget (20 % of calls, over a reserve of 10 a second for 10 s), so
/// an outage does not multiply the load on the provider by four.
#[tokio::test]
async fn the_retry_budget_caps_retries() {
    let provider = provider(Behaviour {
        error_rate: 1.0,
        ..Behaviour::default()
    })
    .await;
    let mut config = payments_config(&provider.url());
    config.payments_retries = 3;
    config.payments_backoff = Duration::from_millis(1);
    config.payments_backoff_max = Duration::from_millis(2);
    config.payments_retry_budget = 20.0;
    // Not the breaker: it would stop the calls before the budget does.
    config.payments_breaker_failures = u32::MAX;
    let client = PaymentClient::new(&config);
    let charges = 300;
    let keys: Vec<String> = (0..charges).map(|n| format!("budget-{n}")).collect();
    let outcomes =
        futures_util::future::join_all(keys.iter().map(|key| client.charge(key, 100, "1"))).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ChargeOutcome::Unavailable { .. })),
        "{outcomes:?}"
    );
    let stats: serde_json::Value = reqwest::get(format!("{}/stats", provider.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls = stats["calls"].as_u64().unwrap();
    let retries = calls - charges;
    // Unbounded, 300 charges would retry 900 times; the budget allows its reserve (100)
    // and a fifth of the calls (60).
    eprintln!("{retries} retries for {charges} failed charges");
    assert!(retries > 0, "no retry at all");
    assert!(
        retries <= 100 + 60 + 10,
        "{retries} retries for {charges} charges"
    );
}
