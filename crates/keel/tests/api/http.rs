//! The HTTP edge: problem+json for every error, limits, request ids, health, the OpenAPI
//! document, and graceful shutdown.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{body, eventually, problem, spawn_app};

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/accounts"))
        .header("content-type", "application/json")
        .body(r#"{"email": "a@example.com", "#)
        .send()
        .await
        .unwrap();
    let problem = problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["type"], "urn:keel:problem:malformed-json");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/accounts"))
        .header("content-type", "text/plain")
        .body("email=a@example.com")
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app().await;
    let name = "x".repeat(100 * 1024);
    let response = app
        .post(
            "/accounts",
            None,
            &json!({ "email": "a@example.com", "name": name, "password": "correct horse" }),
        )
        .await;
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(app.count("SELECT count(*) FROM accounts.users").await, 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = spawn_app().await;
    problem(app.get("/nowhere", None).await, StatusCode::NOT_FOUND).await;
    let response = app
        .client
        .delete(app.url("/products"))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let generated = app.get("/livez", None).await;
    let first = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let second = app.get("/livez", None).await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(first.len() >= 18 && first != second, "{first} {second}");
    let given = app
        .client
        .get(app.url("/products/1"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn health_checks_report_dependencies() {
    let app = spawn_app().await;
    assert_eq!(body(app.get("/livez", None).await).await["status"], "ok");
    let ready = body(app.get("/readyz", None).await).await;
    assert_eq!(ready["checks"], json!({ "postgres": "ok", "redis": "ok" }));
}

/// `/readyz` of the router alone, with Redis and PostgreSQL where `config` says.
async fn readiness_with(config: &keel::Config) -> reqwest::Response {
    let db = platform::db::Db::connect(&config.db).unwrap();
    let redis = platform::redis::Redis::connect(&config.redis).unwrap();
    let cache = platform::cache::Cache::new(redis.clone(), config.cache.clone());
    let router = keel::router(db, redis, cache, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    reqwest::get(format!("http://{address}/readyz"))
        .await
        .unwrap()
}

#[tokio::test]
async fn without_redis_an_instance_stays_ready_but_degraded() {
    // Only the readiness check runs: the server's `postgres` database is enough.
    let mut config =
        crate::helpers::test_config(format!("{}/postgres", crate::helpers::server_url()));
    config.redis.url = format!("redis://127.0.0.1:{}", crate::helpers::free_port());
    let response = readiness_with(&config).await;
    assert_eq!(response.status(), StatusCode::OK);
    let ready = body(response).await;
    assert_eq!(ready["status"], "degraded");
    assert_eq!(
        ready["checks"],
        json!({ "postgres": "ok", "redis": "unreachable" })
    );
}

#[tokio::test]
async fn without_postgres_an_instance_is_not_ready() {
    let dead = format!(
        "postgres://keel:keel@127.0.0.1:{}",
        crate::helpers::free_port()
    );
    let mut config = crate::helpers::test_config(format!("{dead}/keel"));
    config.db.acquire_timeout = std::time::Duration::from_millis(300);
    let response = readiness_with(&config).await;
    let problem = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["detail"], "unreachable: postgres");
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let app = spawn_app().await;
    let doc = body(app.get("/openapi.json", None).await).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/orders"]["post"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let mut app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 5).await;
    let customer = app.customer().await;

    // Hold the stock row so an order is in flight when the shutdown starts.
    let lock = app.lock_stock(product).await;
    let in_flight = tokio::spawn({
        let (client, url, token) = (app.client.clone(), app.url("/orders"), customer.clone());
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    eventually(
        "the order waiting on the lock",
        std::time::Duration::from_secs(5),
        async || app.lock_waiters().await == 1,
    )
    .await;
    app.shut_down();
    eventually(
        "the listener closed",
        std::time::Duration::from_secs(5),
        async || reqwest::get(app.url("/livez")).await.is_err(),
    )
    .await;
    lock.release().await;

    assert_eq!(in_flight.await.unwrap(), StatusCode::ACCEPTED);
    app.served.take().unwrap().await.unwrap().unwrap();
    assert!(
        reqwest::get(app.url("/livez")).await.is_err(),
        "no longer accepting"
    );
    assert_eq!(app.stock(product).await, 4);
}

#[tokio::test]
async fn a_request_past_its_timeout_is_a_503_and_writes_nothing() {
    let mut config = crate::helpers::test_config(crate::helpers::create_database().await);
    // Long enough for the set-up requests on a loaded machine, short against the lock.
    config.http.request_timeout = std::time::Duration::from_millis(1000);
    let app = crate::helpers::spawn_app_with(config).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 5).await;
    let customer = app.customer().await;

    let lock = app.lock_stock(product).await;
    let response = app
        .post(
            "/orders",
            Some(&customer),
            &json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }),
        )
        .await;
    let problem = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "urn:keel:problem:timeout");
    lock.release().await;

    // Once no session of the app's is running anything, nothing can write any more.
    eventually(
        "the timed-out statement gone",
        std::time::Duration::from_secs(5),
        async || app.busy_sessions().await == 0,
    )
    .await;
    assert_eq!(
        app.stock(product).await,
        5,
        "the abandoned transaction rolled back"
    );
    assert_eq!(app.count("SELECT count(*) FROM orders.orders").await, 0);
    // The app still serves.
    let ok = app
        .post(
            "/orders",
            Some(&customer),
            &json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn nothing_a_client_sends_causes_a_5xx() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 5).await;
    let bodies = [
        "null",
        "[]",
        "{}",
        "0",
        "\"\"",
        "{\"lines\":null}",
        "{\"lines\":[null]}",
        "{\"lines\":[{\"product_id\":1e400,\"quantity\":1}]}",
        "{\"lines\":[{\"product_id\":-9223372036854775808,\"quantity\":1}]}",
        "{\"lines\":[{\"product_id\":9223372036854775807,\"quantity\":1}]}",
        "{\"lines\":[{\"product_id\":1,\"quantity\":2147483648}]}",
        "{\"email\":\"\\u0000@x.io\",\"name\":\"\\u0000\",\"password\":\"\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\"}",
        "{\"sku\":\"A\",\"name\":\"\u{1F600}\",\"category\":\"a\",\"price_cents\":100000001}",
        "{\"on_hand\":99999999999}",
        "{\"price_cents\":null}",
        "{\"name\":\"x\",\"name\":\"y\"}",
        &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
    ];
    let targets = [
        (reqwest::Method::POST, "/accounts".to_owned()),
        (reqwest::Method::POST, "/sessions".to_owned()),
        (reqwest::Method::POST, "/orders".to_owned()),
        (reqwest::Method::POST, "/products".to_owned()),
        (reqwest::Method::PATCH, format!("/products/{product}")),
        (reqwest::Method::PUT, format!("/products/{product}/stock")),
    ];
    for (method, path) in &targets {
        for body in &bodies {
            let response = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(
                status.is_client_error() || status.is_success(),
                "{method} {path} {body} -> {status}"
            );
            if status.is_client_error() {
                assert_eq!(
                    response.headers()["content-type"],
                    "application/problem+json"
                );
            }
        }
    }
    for path in [
        "/products/99999999999999999999",
        "/products?after=-1",
        "/orders/0",
        "/orders?limit=-5",
        "/products/%00",
    ] {
        let status = app.get(path, Some(&admin)).await.status();
        assert!(
            status.is_client_error() || status.is_success(),
            "GET {path} -> {status}"
        );
    }
}

/// With every write connection taken, a write waits `KEEL_DB_ACQUIRE_TIMEOUT` for one, then
/// is shed with a 503 problem and `Retry-After` instead of queueing forever; and it wrote
/// nothing.
#[tokio::test]
async fn an_exhausted_pool_sheds_with_503_and_retry_after() {
    let mut config = crate::helpers::test_config(crate::helpers::create_database().await);
    config.db.write_pool = 1;
    config.db.acquire_timeout = std::time::Duration::from_millis(300);
    let app = crate::helpers::spawn_app_with(config).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 10).await;
    let other = app.product(&admin, 100, 10).await;
    let customer = app.customer().await;
    // The only write connection, held by an order waiting on this row.
    let lock = app.lock_stock(product).await;
    let holding = tokio::spawn(
        app.client
            .post(app.url("/orders"))
            .bearer_auth(&customer)
            .json(&json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }))
            .send(),
    );
    eventually("the order holding the connection", std::time::Duration::from_secs(5), async || {
        app.count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").await >= 1
    })
    .await;
    let shed = app.order(&customer, other, 1).await;
    assert_eq!(shed.headers()["retry-after"], "1");
    let problem = problem(shed, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "urn:keel:problem:unavailable");
    lock.release().await;
    assert_eq!(
        holding.await.unwrap().unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(app.stock(other).await, 10, "the shed order took nothing");
    assert_eq!(app.count("SELECT count(*) FROM orders.orders").await, 1);
}
