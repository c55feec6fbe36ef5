//! Graceful degradation: an admin switches a feature off through one instance, every
//! instance answers its requests with a 503 problem within about a second while the rest of
//! the API serves on, and switching it on brings it back everywhere.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Polls `path` on `app` until it answers `status` (the switches are read every second);
/// says how long that took.
async fn until_status(app: &TestApp, path: &str, token: &str, status: StatusCode) -> Duration {
    let started = Instant::now();
    let what = format!("{path} not {status} after 5 s");
    eventually(&what, Duration::from_secs(5), async || {
        app.get(path, Some(token)).await.status() == status
    })
    .await;
    started.elapsed()
}

/// Switches the reports feature through `app`.
async fn switch_reports(app: &TestApp, admin: &str, enabled: bool) -> reqwest::Response {
    app.send_json(
        Method::PUT,
        "/admin/features/reports",
        admin,
        &json!({ "enabled": enabled }),
    )
    .await
}

#[tokio::test]
async fn a_feature_switched_off_on_one_instance_is_off_on_every_one() {
    let config = test_config(create_database().await);
    let first = spawn_app_with(config.clone()).await;
    let second = spawn_app_with(config).await;
    let admin = first.admin().await;
    let customer = first.customer().await;
    let product = first.product(&admin, 1500, 10).await;
    for app in [&first, &second] {
        assert_eq!(
            app.get("/reports/my-orders", Some(&customer))
                .await
                .status(),
            StatusCode::OK
        );
    }

    let off = switch_reports(&first, &admin, false).await;
    assert_eq!(off.status(), StatusCode::OK);
    assert_eq!(
        body(off).await,
        json!({ "name": "reports", "enabled": false })
    );
    // At once on the instance that took the switch, within about a second on the other.
    let refused = problem(
        first.get("/reports/my-orders", Some(&customer)).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(refused["type"], "urn:keel:problem:feature-off");
    let took = until_status(
        &second,
        "/reports/my-stats",
        &customer,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    let response = second.get("/reports/my-stats", Some(&customer)).await;
    assert_eq!(response.headers()["retry-after"], "30");
    // The rest serves on: a product's page, and listings (another feature, still on).
    for path in [format!("/products/{product}"), "/products".to_owned()] {
        assert_eq!(
            second.get(&path, Some(&customer)).await.status(),
            StatusCode::OK
        );
    }
    let listed = body(second.get("/admin/features", Some(&admin)).await).await;
    assert_eq!(
        listed,
        json!([
            { "name": "product-listing", "enabled": true },
            { "name": "reports", "enabled": false }
        ])
    );

    let on = switch_reports(&second, &admin, true).await;
    assert_eq!(on.status(), StatusCode::OK);
    until_status(&first, "/reports/my-orders", &customer, StatusCode::OK).await;
}

#[tokio::test]
async fn only_an_admin_switches_and_only_a_feature_that_exists() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let off = json!({ "enabled": false });
    let path = "/admin/features/reports";
    assert_eq!(
        app.send_json(Method::PUT, path, &customer, &off)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/admin/features", Some(&customer)).await.status(),
        StatusCode::FORBIDDEN
    );
    let unknown = problem(
        app.send_json(Method::PUT, "/admin/features/checkout", &admin, &off)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(field(&unknown), "name");
    let malformed = problem(
        app.send_json(Method::PUT, path, &admin, &json!({ "enabled": "no" }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(field(&malformed), "enabled");
    // Nothing was switched by any of those.
    assert_eq!(
        app.get("/reports/my-orders", Some(&customer))
            .await
            .status(),
        StatusCode::OK
    );
}
