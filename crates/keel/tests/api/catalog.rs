//! Products: admin writes, public reads, filters and keyset pages.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{body, field, problem, spawn_app};

#[tokio::test]
async fn an_admin_creates_updates_and_restocks_a_product() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let response = app
        .post(
            "/products",
            Some(&admin),
            &json!({ "sku": "LAMP-1", "name": "Desk lamp", "description": "Warm light",
                      "category": "lighting", "price_cents": 2999, "stock": 5 }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created = body(response).await;
    assert_eq!(location, format!("/products/{}", created["id"]));

    let fetched = body(app.get(&location, None).await).await;
    assert_eq!(fetched, created);
    assert_eq!(fetched["stock"], 5);

    let updated = app
        .send_json(
            Method::PATCH,
            &location,
            &admin,
            &json!({ "price_cents": 2499, "name": "Lamp" }),
        )
        .await;
    let updated = body(updated).await;
    assert_eq!(updated["price_cents"], 2499);
    assert_eq!(updated["name"], "Lamp");
    assert_eq!(updated["category"], "lighting");

    let restocked = app
        .send_json(
            Method::PUT,
            &format!("{location}/stock"),
            &admin,
            &json!({ "on_hand": 42 }),
        )
        .await;
    assert_eq!(body(restocked).await["stock"], 42);
    assert_eq!(body(app.get(&location, None).await).await["stock"], 42);
}

#[tokio::test]
async fn only_admins_write_the_catalog() {
    let app = spawn_app().await;
    let customer = app.customer().await;
    let new = json!({ "sku": "X-1", "name": "X", "category": "x", "price_cents": 1 });
    problem(
        app.post("/products", None, &new).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        app.post("/products", Some(&customer), &new).await,
        StatusCode::FORBIDDEN,
    )
    .await;

    let admin = app.admin().await;
    let id = app.product(&admin, 100, 1).await;
    let patch = app
        .send_json(
            Method::PATCH,
            &format!("/products/{id}"),
            &customer,
            &json!({ "price_cents": 1 }),
        )
        .await;
    problem(patch, StatusCode::FORBIDDEN).await;
    let stock = app
        .send_json(
            Method::PUT,
            &format!("/products/{id}/stock"),
            &customer,
            &json!({ "on_hand": 1 }),
        )
        .await;
    problem(stock, StatusCode::FORBIDDEN).await;
    assert_eq!(app.stock(id).await, 1);
}

#[tokio::test]
async fn product_fields_are_validated_by_name() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let valid = json!({ "sku": "OK-1", "name": "Ok", "category": "ok", "price_cents": 1 });
    for (key, value) in [
        ("sku", json!("has spaces")),
        ("name", json!("")),
        ("category", json!("Not A Slug")),
        ("price_cents", json!(-5)),
        ("price_cents", json!("12.50")),
        ("stock", json!(-1)),
        ("id", json!(99)),
    ] {
        let mut body = valid.clone();
        body[key] = value;
        let problem = problem(
            app.post("/products", Some(&admin), &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(field(&problem), key, "{body}");
    }
    assert_eq!(app.count("SELECT count(*) FROM catalog.products").await, 0);
}

#[tokio::test]
async fn a_sku_names_one_product() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let new = json!({ "sku": "DUP-1", "name": "A", "category": "a", "price_cents": 1 });
    assert_eq!(
        app.post("/products", Some(&admin), &new).await.status(),
        StatusCode::CREATED
    );
    let problem = problem(
        app.post("/products", Some(&admin), &new).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(field(&problem), "sku");
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = spawn_app().await;
    problem(
        app.get("/products/999999", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let bad = problem(
        app.get("/products/abc", None).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(field(&bad), "id");
    let admin = app.admin().await;
    let patch = app
        .send_json(
            Method::PATCH,
            "/products/999999",
            &admin,
            &json!({ "name": "x" }),
        )
        .await;
    problem(patch, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn listing_filters_and_pages_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut expected = HashSet::new();
    for i in 0..25 {
        let category = if i % 2 == 0 { "even" } else { "odd" };
        let sku = format!("P-{i}");
        let response = app
            .post(
                "/products",
                Some(&admin),
                &json!({ "sku": sku, "name": sku, "category": category, "price_cents": 100 * i, "stock": 1 }),
            )
            .await;
        let product = body(response).await;
        if category == "even" && (400..=2000).contains(&(100 * i)) {
            expected.insert(product["id"].as_i64().unwrap());
        }
    }

    let mut seen = HashSet::new();
    let mut after: Option<i64> = None;
    loop {
        let mut path = "/products?category=even&min_price=400&max_price=2000&limit=3".to_owned();
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let page = body(app.get(&path, None).await).await;
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["category"], "even");
            assert!(seen.insert(item["id"].as_i64().unwrap()), "repeated item");
        }
        match page["next_after"].as_i64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn bad_list_parameters_are_named() {
    let app = spawn_app().await;
    for (query, bad_field) in [
        ("min_price=cheap", "min_price"),
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("category=BAD!", "category"),
        ("colour=red", "colour"),
    ] {
        let response = app.get(&format!("/products?{query}"), None).await;
        let problem = problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(field(&problem), bad_field, "{query}");
    }
    // Each parameter is valid: no price lies between them, so the page is empty.
    let empty = app.get("/products?min_price=500&max_price=100", None).await;
    assert_eq!(empty.status(), StatusCode::OK);
    let empty: serde_json::Value = empty.json().await.unwrap();
    assert_eq!(empty["items"], json!([]));
    assert!(empty.get("next_after").is_none());
}
