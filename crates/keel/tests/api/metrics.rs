//! `/metrics` on the API and on the worker: every layer a request or an event crosses shows
//! up under its name; and traces, joined from the caller and exported over OTLP. The recorder is one per process, shared by the tests running in it,
//! so values are checked as lower bounds.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use fake_payments::{Behaviour, FakePayments};
use orders::OrderMode;
use reqwest::StatusCode;

use crate::{helpers::*, keel_process::KeelProcess};

/// The value of the sample named exactly `series` (name and labels) in a scrape.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

pub(crate) async fn scrape(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_api_reports_red_per_route_and_its_layers() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 700, 3).await;
    for _ in 0..3 {
        assert_eq!(
            app.get(&format!("/products/{product}"), None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let made_up = app.get("/no/such/path/zyxwvu", None).await;
    assert_eq!(made_up.status(), StatusCode::NOT_FOUND);

    let text = scrape(&app.address).await;
    let ok = sample(
        &text,
        r#"keel_http_requests_total{method="GET",route="/products/{id}",status="2xx"}"#,
    );
    assert!(ok >= Some(3.0), "{ok:?}");
    assert!(
        sample(
            &text,
            r#"keel_http_requests_total{method="GET",route="unmatched",status="4xx"}"#
        ) >= Some(1.0)
    );
    // Letters, not digits: a number could appear in any sample value.
    assert!(!text.contains("zyxwvu"), "a made-up path is not a label");
    assert!(text.contains(
        r#"keel_http_request_duration_seconds_bucket{method="GET",route="/products/{id}",le="0.005"}"#
    ));
    assert!(
        sample(&text, r#"keel_cache_hits_total{layer="l1"}"#) >= Some(2.0),
        "{text}"
    );
    assert!(sample(&text, "keel_cache_loads_total") >= Some(1.0));
    assert!(text.contains(r#"keel_db_pool_acquire_seconds_count{pool="read"}"#));
    assert!(
        sample(
            &text,
            r#"keel_db_query_seconds_count{statement="catalog.product_by_id"}"#
        ) >= Some(1.0)
    );
    assert!(text.contains("keel_http_requests_in_flight"));
    assert!(sample(&text, r#"keel_redis_seconds_count{operation="cache_get"}"#) >= Some(1.0));
    assert!(text.contains(r#"keel_breaker_state{dependency="redis"}"#));
    // How statements reach PostgreSQL, as configured (the suite runs once each way).
    let pooling: &str = app.config.db.pooling.into();
    assert_eq!(
        sample(&text, &format!(r#"keel_db_pooling{{mode="{pooling}"}}"#)),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_worker_reports_the_outbox_consumers_sagas_and_the_payment_breaker() {
    let provider = FakePayments::start("127.0.0.1:0".parse().unwrap(), Behaviour::default())
        .await
        .unwrap();
    let mut config = test_config(create_database().await);
    config.saga.order_mode = OrderMode::Async;
    config.payments = payments_config(&provider.url());
    let app = spawn_app_with(config).await;
    let worker = spawn_worker(worker_config(&app.config, &nats_url(), &nats_prefix())).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 400, 10).await;
    let customer = app.customer().await;
    for _ in 0..3 {
        let order = body(app.order(&customer, product, 1).await).await;
        let id = order["id"].as_i64().unwrap();
        app.wait_for_final(&customer, id, Duration::from_secs(30))
            .await;
    }

    let livez = reqwest::get(format!("{}/livez", worker.address))
        .await
        .unwrap();
    assert_eq!(livez.status(), StatusCode::OK);
    let text = scrape(&worker.address).await;
    assert!(sample(&text, "keel_outbox_published_total") >= Some(3.0));
    assert!(
        sample(
            &text,
            r#"keel_bus_deliveries_total{consumer="order-saga",outcome="done"}"#
        ) >= Some(3.0)
    );
    assert!(sample(&text, r#"keel_saga_finished_total{outcome="confirmed"}"#) >= Some(3.0));
    assert!(text.contains(r#"keel_saga_duration_seconds_bucket{outcome="confirmed",le="10"}"#));
    assert!(
        text.contains(r#"keel_payments_call_seconds_count{operation="charge",outcome="answered"}"#)
    );
    assert!(text.contains(r#"keel_breaker_state{dependency="payments"}"#));
    worker.stop().await;
}

/// Starts a bare OTLP/HTTP receiver (what a collector does first: accept
/// `POST /v1/traces`); returns its endpoint and the bodies it received.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body.to_vec());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (endpoint, received)
}

#[tokio::test]
async fn a_request_joins_the_callers_trace_in_logs_header_and_exported_spans() {
    let (endpoint, received) = otlp_receiver().await;
    let keel = KeelProcess::start(
        10,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("KEEL_LOG", "info"),
        ],
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = reqwest::Client::new()
        .get(format!("{}/products/3", keel.base))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-trace-id"], trace_id);

    let bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let exported = received
            .lock()
            .unwrap()
            .iter()
            .any(|body| body.windows(16).any(|w| w == bytes.as_slice()));
        let logged = keel
            .logs
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(trace_id) && line.contains("request finished"));
        if exported && logged {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exported {exported}, logged {logged}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Without a traceparent, a new trace: its id in the header and the log.
    let response = reqwest::get(format!("{}/products/4", keel.base))
        .await
        .unwrap();
    let fresh = response.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(fresh.len(), 32);
    assert_ne!(fresh, trace_id);
}
