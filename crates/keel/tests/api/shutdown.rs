//! Stopping an instance the way an orchestrator does: SIGTERM.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::eventually,
    keel_process::{KeelProcess, login},
};

/// From SIGTERM on `/readyz` answers 503 while a request in flight completes, the instance
/// keeps serving for its shutdown delay, then exits on its own.
#[tokio::test]
async fn sigterm_makes_an_instance_unready_at_once_and_drains() {
    let mut keel = KeelProcess::start(10, &[("KEEL_SHUTDOWN_DELAY", "2s")]).await;
    let token = login(&keel.base, "user1@demo.keel").await;
    let (db, connection) = tokio_postgres::connect(&keel.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // A slow request: the order waits inside its transaction for this row.
    db.batch_execute("BEGIN; SELECT 1 FROM catalog.stock WHERE product_id = 3 FOR UPDATE")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let slow = tokio::spawn(
        http.post(format!("{}/orders", keel.base))
            .bearer_auth(&token)
            .json(&json!({ "lines": [ { "product_id": 3, "quantity": 1 } ] }))
            .send(),
    );
    let (watch, connection) = tokio_postgres::connect(&keel.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    eventually(
        "the order waiting on the lock",
        Duration::from_secs(5),
        async || {
            let row = watch
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) >= 1
        },
    )
    .await;
    let ready = http
        .get(format!("{}/readyz", keel.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    let pid = keel.child.id().unwrap().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    let sent = Instant::now();
    let unready = loop {
        let response = http
            .get(format!("{}/readyz", keel.base))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "still ready after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let took = sent.elapsed();
    eprintln!("/readyz answered 503 {took:?} after SIGTERM");
    // The CI machine runs the suite in parallel on two cores: the bound leaves it room.
    assert!(took < Duration::from_millis(500), "{took:?}");
    let problem: serde_json::Value = unready.json().await.unwrap();
    assert_eq!(problem["type"], "urn:keel:problem:draining");
    // Still serving while it drains: a product page is answered.
    let page = http
        .get(format!("{}/products/1", keel.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);

    db.batch_execute("ROLLBACK").await.unwrap();
    let placed = slow.await.unwrap().unwrap();
    assert_eq!(
        placed.status(),
        StatusCode::ACCEPTED,
        "the request in flight completes"
    );
    let exited = tokio::time::timeout(Duration::from_secs(10), keel.child.wait())
        .await
        .expect("it exits after the delay")
        .unwrap();
    assert!(exited.success(), "{exited:?}");
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "it left before its delay"
    );
}
