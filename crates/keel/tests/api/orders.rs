//! Placing and reading orders: totals, stock, ownership, and no oversell under concurrency.

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{body, field, problem, spawn_app};

#[tokio::test]
async fn placing_an_order_reserves_stock_and_fixes_prices() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let lamp = app.product(&admin, 2500, 10).await;
    let bulb = app.product(&admin, 300, 100).await;
    let customer = app.customer().await;

    let response = app
        .post(
            "/orders",
            Some(&customer),
            &json!({ "lines": [ { "product_id": lamp, "quantity": 2 }, { "product_id": bulb, "quantity": 5 } ] }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order = body(response).await;
    assert_eq!(order["status"], "stock_reserved");
    assert_eq!(order["total_cents"], 2 * 2500 + 5 * 300);
    assert_eq!(order["lines"][0]["unit_price_cents"], 2500);
    assert_eq!(app.stock(lamp).await, 8);
    assert_eq!(app.stock(bulb).await, 95);

    let mut fetched = body(app.get(&location, Some(&customer)).await).await;
    let history = fetched.as_object_mut().unwrap().remove("history").unwrap();
    assert_eq!(history[0]["status"], "placed");
    assert_eq!(history[1]["status"], "stock_reserved");
    assert_eq!(fetched, order);
    // The order and its event were written in one transaction.
    assert_eq!(
        app.count("SELECT count(*) FROM bus.outbox WHERE subject = 'orders.placed'")
            .await,
        1
    );
    let mine = body(app.get("/orders", Some(&customer)).await).await;
    assert_eq!(mine["items"], json!([order]));
}

/// Lines of one product are one line with their total, where the first was; a shortage is
/// named at that first line. Whole numbers may be written `2.0`, as JSON Schema allows.
#[tokio::test]
async fn lines_of_one_product_are_ordered_as_one() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let lamp = app.product(&admin, 2500, 10).await;
    let bulb = app.product(&admin, 300, 100).await;
    let customer = app.customer().await;

    let lines = json!({ "lines": [
        { "product_id": lamp, "quantity": 2 },
        { "product_id": bulb, "quantity": 1 },
        { "product_id": lamp, "quantity": 3.0 },
    ] });
    let response = app.post("/orders", Some(&customer), &lines).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let order = body(response).await;
    let ordered: Vec<(i64, i64)> = order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["product_id"].as_i64().unwrap(),
                l["quantity"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ordered, [(lamp, 5), (bulb, 1)]);
    assert_eq!(order["total_cents"], 5 * 2500 + 300);
    assert_eq!(app.stock(lamp).await, 5);

    let too_many = json!({ "lines": [
        { "product_id": bulb, "quantity": 1 },
        { "product_id": lamp, "quantity": 3 },
        { "product_id": lamp, "quantity": 3 },
    ] });
    let response = app.post("/orders", Some(&customer), &too_many).await;
    let problem = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "urn:keel:problem:insufficient-stock");
    assert_eq!(field(&problem), "lines[1].quantity");
    assert_eq!(app.stock(lamp).await, 5);
    assert_eq!(app.stock(bulb).await, 99);
}

#[tokio::test]
async fn a_user_never_sees_another_users_orders() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 10).await;
    let alice = app.customer().await;
    let bob = app.customer().await;
    let order = body(
        app.post(
            "/orders",
            Some(&alice),
            &json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }),
        )
        .await,
    )
    .await;

    problem(
        app.get(&format!("/orders/{}", order["id"]), Some(&bob))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let bobs = body(app.get("/orders", Some(&bob)).await).await;
    assert_eq!(bobs["items"], json!([]));
    problem(app.get("/orders", None).await, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn my_orders_page_newest_first_with_their_lines() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 100).await;
    let customer = app.customer().await;
    let mut ids = Vec::new();
    for quantity in 1..=5 {
        let order = body(
            app.post(
                "/orders",
                Some(&customer),
                &json!({ "lines": [ { "product_id": product, "quantity": quantity } ] }),
            )
            .await,
        )
        .await;
        ids.push(order["id"].as_i64().unwrap());
    }
    ids.reverse();
    let first = body(app.get("/orders?limit=3", Some(&customer)).await).await;
    let after = first["next_after"].as_i64().unwrap();
    let second = body(
        app.get(&format!("/orders?limit=3&after={after}"), Some(&customer))
            .await,
    )
    .await;
    let listed: Vec<i64> = [&first, &second]
        .iter()
        .flat_map(|page| {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(listed, ids);
    assert!(second.get("next_after").is_none());
    assert_eq!(first["items"][0]["lines"][0]["quantity"], 5);
}

#[tokio::test]
async fn insufficient_stock_writes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let plenty = app.product(&admin, 100, 100).await;
    let scarce = app.product(&admin, 100, 1).await;
    let customer = app.customer().await;
    let response = app
        .post(
            "/orders",
            Some(&customer),
            &json!({ "lines": [ { "product_id": plenty, "quantity": 3 }, { "product_id": scarce, "quantity": 2 } ] }),
        )
        .await;
    let problem = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(field(&problem), "lines[1].quantity");
    assert_eq!(app.stock(plenty).await, 100, "no partial reservation");
    assert_eq!(app.stock(scarce).await, 1);
    assert_eq!(app.count("SELECT count(*) FROM orders.orders").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM orders.order_lines").await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM bus.outbox").await,
        0,
        "no event either"
    );
}

#[tokio::test]
async fn invalid_orders_name_the_field_and_write_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 100).await;
    let customer = app.customer().await;
    for (order, bad_field) in [
        (json!({ "lines": [] }), "lines"),
        (json!({}), "lines"),
        (
            json!({ "lines": [ { "product_id": product, "quantity": 0 } ] }),
            "lines[0].quantity",
        ),
        (
            json!({ "lines": [ { "product_id": product, "quantity": 1001 } ] }),
            "lines[0].quantity",
        ),
        (
            json!({ "lines": [ { "product_id": product, "quantity": "1" } ] }),
            "lines[0].quantity",
        ),
        (
            json!({ "lines": [ { "product_id": product } ] }),
            "lines[0].quantity",
        ),
        (
            json!({ "lines": [ { "product_id": product, "quantity": 1, "unit_price_cents": 1 } ] }),
            "lines[0].unit_price_cents",
        ),
        (
            json!({ "lines": [ { "product_id": product, "quantity": 1 } ], "status": "confirmed" }),
            "status",
        ),
        (
            json!({ "lines": [ { "product_id": product, "quantity": 1.5 } ] }),
            "lines[0].quantity",
        ),
        // An object's fields in an array, which serde alone would take for the object.
        (json!({ "lines": [ [product, 1] ] }), "lines[0]"),
        (json!([[{ "product_id": product, "quantity": 1 }]]), "body"),
    ] {
        let response = app.post("/orders", Some(&customer), &order).await;
        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(field(&problem), bad_field, "{order}");
    }
    // A product the catalog does not hold: the order is well formed, the catalog decides.
    let unknown = json!({ "lines": [
        { "product_id": product, "quantity": 1 },
        { "product_id": 999999, "quantity": 1 },
    ] });
    let response = app.post("/orders", Some(&customer), &unknown).await;
    let problem = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "urn:keel:problem:unknown-product");
    assert_eq!(field(&problem), "lines[1].product_id");
    assert_eq!(app.stock(product).await, 100);
    assert_eq!(app.count("SELECT count(*) FROM orders.orders").await, 0);
}

#[tokio::test]
async fn concurrent_buyers_never_oversell() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let stock = 10;
    let product = app.product(&admin, 100, stock).await;
    let other = app.product(&admin, 100, 1000).await;
    let buyers = [
        app.customer().await,
        app.customer().await,
        app.customer().await,
    ];

    // 60 orders race for 10 units; half also take `other`, listed in both orders, so that
    // row locks are requested in opposite orders across transactions.
    let attempts = (0..60).map(|i| {
        let token = &buyers[i % buyers.len()];
        let lines = match i % 3 {
            0 => json!([ { "product_id": product, "quantity": 1 } ]),
            1 => json!([ { "product_id": product, "quantity": 1 }, { "product_id": other, "quantity": 1 } ]),
            _ => json!([ { "product_id": other, "quantity": 1 }, { "product_id": product, "quantity": 1 } ]),
        };
        let app = &app;
        async move { app.post("/orders", Some(token), &json!({ "lines": lines })).await.status() }
    });
    let statuses = join_all(attempts).await;

    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!(created, stock as usize, "{statuses:?}");
    assert_eq!(refused, 60 - stock as usize, "{statuses:?}");
    assert_eq!(app.stock(product).await, 0);
    let sold: i64 = app
        .count(&format!("SELECT coalesce(sum(quantity), 0)::bigint FROM orders.order_lines WHERE product_id = {product}"))
        .await;
    assert_eq!(sold, i64::from(stock));
    let other_sold = app
        .count(&format!("SELECT coalesce(sum(quantity), 0)::bigint FROM orders.order_lines WHERE product_id = {other}"))
        .await;
    assert_eq!(i64::from(app.stock(other).await), 1000 - other_sold);
}
