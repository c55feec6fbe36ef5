//! Idempotency keys on POST /orders: replay, mismatch, in-flight duplicates, expiry.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, body, problem, spawn_app};

async fn place(app: &TestApp, token: &str, key: &str, order: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/orders"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(order)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_response() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 700, 10).await;
    let customer = app.customer().await;
    let order = json!({ "lines": [ { "product_id": product, "quantity": 2 } ] });

    let first = place(&app, &customer, "order-1", &order).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let location = first.headers()["location"].clone();
    let first = first.text().await.unwrap();
    // Same JSON with keys in another order and other white space: the same request.
    let reordered: Value =
        serde_json::from_str(r#"{ "lines": [ { "quantity": 2, "product_id": 0 } ] }"#).unwrap();
    let mut reordered = reordered;
    reordered["lines"][0]["product_id"] = json!(product);
    let again = place(&app, &customer, "order-1", &reordered).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.text().await.unwrap(), first);

    assert_eq!(app.count("SELECT count(*) FROM orders.orders").await, 1);
    assert_eq!(app.stock(product).await, 8);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 700, 10).await;
    let customer = app.customer().await;
    let one = json!({ "lines": [ { "product_id": product, "quantity": 1 } ] });
    let two = json!({ "lines": [ { "product_id": product, "quantity": 2 } ] });
    assert_eq!(
        place(&app, &customer, "k", &one).await.status(),
        StatusCode::ACCEPTED
    );
    problem(
        place(&app, &customer, "k", &two).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(app.stock(product).await, 9);
}

#[tokio::test]
async fn a_duplicate_while_the_first_runs_is_409() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 700, 10).await;
    let customer = app.customer().await;
    let order = json!({ "lines": [ { "product_id": product, "quantity": 1 } ] });

    // Hold the stock row so the first request waits inside its transaction.
    let lock = app.lock_stock(product).await;

    let first = tokio::spawn({
        let (client, url, token, order) = (
            app.client.clone(),
            app.url("/orders"),
            customer.clone(),
            order.clone(),
        );
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "slow")
                .json(&order)
                .send()
                .await
                .unwrap()
        }
    });
    crate::helpers::eventually(
        "the first request holding the key",
        std::time::Duration::from_secs(5),
        async || {
            app.count("SELECT count(*) FROM platform.idempotency_keys")
                .await
                == 1
        },
    )
    .await;
    let duplicate = place(&app, &customer, "slow", &order).await;
    let conflict = problem(duplicate, StatusCode::CONFLICT).await;
    assert_eq!(
        conflict["type"],
        "urn:keel:problem:idempotency-key-in-flight"
    );

    lock.release().await;
    let first = first.await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let replay = place(&app, &customer, "slow", &order).await;
    assert_eq!(replay.status(), StatusCode::ACCEPTED);
    assert_eq!(app.count("SELECT count(*) FROM orders.orders").await, 1);
}

#[tokio::test]
async fn keys_are_scoped_per_user_and_expire() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 700, 10).await;
    let (alice, bob) = (app.customer().await, app.customer().await);
    let one = json!({ "lines": [ { "product_id": product, "quantity": 1 } ] });
    let two = json!({ "lines": [ { "product_id": product, "quantity": 2 } ] });

    assert_eq!(
        place(&app, &alice, "shared", &one).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        place(&app, &bob, "shared", &two).await.status(),
        StatusCode::ACCEPTED
    );

    let kept_hours = app
        .count("SELECT min(extract(epoch FROM expires_at - locked_at))::bigint / 3600 FROM platform.idempotency_keys")
        .await;
    assert!(kept_hours >= 24, "keys are kept {kept_hours} h");

    app.db
        .write()
        .await
        .unwrap()
        .execute(
            "UPDATE platform.idempotency_keys SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let reused = place(&app, &alice, "shared", &two).await;
    assert_eq!(
        reused.status(),
        StatusCode::ACCEPTED,
        "an expired key is free again"
    );
    assert!(reused.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.stock(product).await, 10 - 1 - 2 - 2);
}

#[tokio::test]
async fn a_failed_request_does_not_keep_its_key() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 700, 1).await;
    let customer = app.customer().await;
    let order = json!({ "lines": [ { "product_id": product, "quantity": 2 } ] });
    problem(
        place(&app, &customer, "retry-me", &order).await,
        StatusCode::CONFLICT,
    )
    .await;

    let restock = app
        .send_json(
            reqwest::Method::PUT,
            &format!("/products/{product}/stock"),
            &admin,
            &json!({ "on_hand": 5 }),
        )
        .await;
    assert_eq!(restock.status(), StatusCode::OK);
    let retried = place(&app, &customer, "retry-me", &order).await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    assert_eq!(body(retried).await["total_cents"], 1400);
}

#[tokio::test]
async fn malformed_keys_are_400() {
    let app = spawn_app().await;
    let customer = app.customer().await;
    let order = json!({ "lines": [ { "product_id": 1, "quantity": 1 } ] });
    let long = "k".repeat(256);
    for key in ["", long.as_str(), "has space"] {
        problem(
            place(&app, &customer, key, &order).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

/// A `keel serve` SIGKILLed while an order with a key is inside its transaction: the order
/// never commits, and the client's retry (through another instance) is refused while the
/// dead request could still have answered, then runs once the request timeout and margin
/// have passed — never a minute — and exactly one order exists.
#[tokio::test]
async fn a_key_whose_request_died_is_free_after_the_request_timeout() {
    use std::time::{Duration, Instant};

    use crate::keel_process::{KeelProcess, login};
    let redis = [
        ("KEEL_REDIS_PREFIX", "crash-mid-order:"),
        ("KEEL_REQUEST_TIMEOUT", "5s"),
    ];
    let mut first = KeelProcess::start(20, &redis).await;
    let token = login(&first.base, "user1@demo.keel").await;
    let (db, connection) = tokio_postgres::connect(&first.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let before: i32 = db
        .query_one(
            "SELECT on_hand FROM catalog.stock WHERE product_id = 7",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut set = crate::helpers::OrderSet::new(&[(7, before)]);
    // The order will wait inside its transaction for this row.
    db.batch_execute("BEGIN; SELECT 1 FROM catalog.stock WHERE product_id = 7 FOR UPDATE")
        .await
        .unwrap();
    let order = json!({ "lines": [ { "product_id": 7, "quantity": 1 } ] });
    let post = |base: String| {
        let order = order.clone();
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/orders"))
                .bearer_auth(token)
                .header("Idempotency-Key", "crash-1")
                .json(&order)
                .send()
                .await
        }
    };
    let in_flight = tokio::spawn(post(first.base.clone()));
    let (watch, connection) = tokio_postgres::connect(&first.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    crate::helpers::eventually("the key claimed", Duration::from_secs(5), async || {
        let row = watch
            .query_one(
                "SELECT count(*) FROM platform.idempotency_keys WHERE key = 'crash-1'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 1
    })
    .await;
    let claimed = Instant::now();
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the killed instance answered"
    );
    set.indeterminate();
    db.batch_execute("ROLLBACK").await.unwrap();

    let second = KeelProcess::start_on(first.database_url.clone(), &redis).await;
    let refused = post(second.base.clone()).await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::CONFLICT,
        "taken over too early"
    );
    let placed = loop {
        let response = post(second.base.clone()).await.unwrap();
        if response.status() != StatusCode::CONFLICT {
            break response;
        }
        assert!(
            claimed.elapsed() < Duration::from_secs(15),
            "the key stayed blocked"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(placed.status(), StatusCode::ACCEPTED);
    // The lease: the request timeout (5 s) and the margin (2 s), counted from the claim.
    let blocked = claimed.elapsed();
    assert!(blocked >= Duration::from_millis(6_500), "{blocked:?}");
    let placed: serde_json::Value = placed.json().await.unwrap();
    set.acknowledged(placed["id"].as_i64().unwrap());
    let replay = post(second.base.clone()).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    // One order, its stock taken once: the killed request left nothing behind.
    let verdict = set.check_placed(&first.database_url).await;
    assert_eq!((verdict.orders, verdict.unanswered), (1, 0));
}
