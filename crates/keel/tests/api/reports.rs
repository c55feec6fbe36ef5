//! The CQRS read models: after a burst of orders (some declined, some cancelled by their
//! customers) they equal a from-scratch recomputation from the orders themselves, and so
//! does a generation rebuilt from the event log while orders keep coming.

use std::time::Duration;

use fake_payments::{Behaviour, FakePayments};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// The read models as text, one row per line, in key order.
const READ_MODELS: &str = "
    SELECT concat_ws(E'\\n---\\n',
      (SELECT string_agg(concat_ws(' ', order_id, customer_id, customer_name, status, total_cents,
                                   line_count, item_count, placed_at), E'\\n' ORDER BY order_id)
         FROM reports.order_summaries),
      (SELECT string_agg(concat_ws(' ', customer_id, customer_name, orders_placed, orders_confirmed,
                                   orders_cancelled, spent_cents, last_order_at), E'\\n' ORDER BY customer_id)
         FROM reports.customer_stats),
      (SELECT string_agg(concat_ws(' ', day, product_id, product_name, units, revenue_cents, orders),
                         E'\\n' ORDER BY day, product_id)
         FROM reports.product_sales_daily))";

/// The same, computed from the write model (orders, lines, users).
const RECOMPUTED: &str = "
    WITH o AS (
        SELECT o.*, u.name,
               (SELECT count(*) FROM orders.order_lines l WHERE l.order_id = o.id) AS line_count,
               (SELECT sum(quantity) FROM orders.order_lines l WHERE l.order_id = o.id) AS item_count
          FROM orders.orders o JOIN accounts.users u ON u.id = o.user_id)
    SELECT concat_ws(E'\\n---\\n',
      (SELECT string_agg(concat_ws(' ', id, user_id, name, status, total_cents, line_count,
                                   item_count, created_at), E'\\n' ORDER BY id) FROM o),
      (SELECT string_agg(concat_ws(' ', user_id, name, placed, confirmed, cancelled, spent, last_at),
                         E'\\n' ORDER BY user_id)
         FROM (SELECT user_id, min(name) AS name, count(*) AS placed,
                      count(*) FILTER (WHERE status = 'confirmed') AS confirmed,
                      count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                      coalesce(sum(total_cents) FILTER (WHERE status = 'confirmed'), 0) AS spent,
                      max(created_at) AS last_at
                 FROM o GROUP BY user_id) c),
      (SELECT string_agg(concat_ws(' ', day, product_id, product_name, units, revenue, orders),
                         E'\\n' ORDER BY day, product_id)
         FROM (SELECT (o.created_at AT TIME ZONE 'UTC')::date AS day, l.product_id,
                      min(l.product_name) AS product_name, sum(l.quantity) AS units,
                      sum(l.quantity * l.unit_price_cents) AS revenue, count(*) AS orders
                 FROM o JOIN orders.order_lines l ON l.order_id = o.id
                WHERE o.status = 'confirmed'
                GROUP BY 1, 2) s))";

async fn text(app: &TestApp, sql: &str) -> String {
    let client = app.db.write().await.unwrap();
    client
        .query_one(sql, &[])
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .unwrap_or_default()
}

/// Waits for every saga to end and the projections to catch up, then compares.
async fn assert_read_models_match(app: &TestApp) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let in_flight = app
            .count(
                "SELECT count(*) FROM orders.orders WHERE status NOT IN ('confirmed', 'cancelled')",
            )
            .await;
        let (read, recomputed) = (text(app, READ_MODELS).await, text(app, RECOMPUTED).await);
        if in_flight == 0 && read == recomputed {
            assert!(recomputed.lines().count() > 10, "{recomputed}");
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!("read models differ from the recomputation:\n{read}\n=====\n{recomputed}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `n` orders from the customers over the products, a fifth of them cancelled at once.
async fn burst(app: &TestApp, customers: &[String], products: &[i64], n: usize) {
    join_all((0..n).map(|i| async move {
        let customer = &customers[i % customers.len()];
        let response = app
            .order(customer, products[i % products.len()], 1 + (i % 3) as i32)
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let id = body(response).await["id"].as_i64().unwrap();
        if i % 5 == 0 {
            let cancel = app
                .post(
                    &format!("/orders/{id}/cancel"),
                    Some(customer),
                    &Value::Null,
                )
                .await;
            assert!(cancel.status().is_success() || cancel.status() == StatusCode::CONFLICT);
        }
    }))
    .await;
}

#[tokio::test]
async fn read_models_equal_a_recomputation_and_survive_a_rebuild_under_load() {
    let _busy = crate::helpers::MACHINE.read().await;
    // Totals over 50.00 are declined: those orders are cancelled by the saga.
    let provider = FakePayments::start(
        "127.0.0.1:0".parse().unwrap(),
        Behaviour {
            decline_over_cents: 5000,
            ..Behaviour::default()
        },
    )
    .await
    .unwrap();
    let mut config = test_config(create_database().await);
    config.payments = payments_config(&provider.url());
    let app = spawn_app_with(config.clone()).await;
    let worker = spawn_worker(worker_config(&config, &nats_url(), &nats_prefix())).await;

    let admin = app.admin().await;
    let mut products = Vec::new();
    for price in [900, 1500, 2100, 2600] {
        products.push(app.product(&admin, price, 1000).await);
    }
    let mut customers = Vec::new();
    for _ in 0..4 {
        customers.push(app.customer().await);
    }
    burst(&app, &customers, &products, 80).await;
    assert_read_models_match(&app).await;

    // Through the API: a customer's history and totals, and the admin's sales report.
    let history = body(
        app.get("/reports/my-orders?limit=7", Some(&customers[1]))
            .await,
    )
    .await;
    assert_eq!(history["items"].as_array().unwrap().len(), 7);
    let after = history["next_after"].as_i64().unwrap();
    let rest = body(
        app.get(
            &format!("/reports/my-orders?limit=100&after={after}"),
            Some(&customers[1]),
        )
        .await,
    )
    .await;
    assert_eq!(
        rest["items"].as_array().unwrap().len(),
        20 - 7,
        "80 orders over 4 customers"
    );
    let stats = body(app.get("/reports/my-stats", Some(&customers[1])).await).await;
    assert_eq!(stats["orders_placed"], 20);
    assert_eq!(
        stats["orders_confirmed"].as_i64().unwrap() + stats["orders_cancelled"].as_i64().unwrap(),
        20
    );
    let sales = body(app.get("/reports/sales?limit=2", Some(&admin)).await).await;
    assert_eq!(sales["items"].as_array().unwrap().len(), 2);
    let next = format!(
        "/reports/sales?after_day={}&after_product_id={}",
        sales["next_after_day"].as_str().unwrap(),
        sales["next_after_product_id"]
    );
    assert_eq!(app.get(&next, Some(&admin)).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/reports/sales", Some(&customers[0]))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let bad = problem(
        app.get("/reports/sales?from=yesterday", Some(&admin)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(field(&bad), "from");
    // Half a cursor is a position too: after that whole day, or after that product on the
    // first day. A range that ends before it starts is empty.
    let all = body(app.get("/reports/sales?limit=100", Some(&admin)).await).await;
    let all = all["items"].as_array().unwrap().clone();
    let first_day = all[0]["day"].as_str().unwrap();
    let after_first_day = body(
        app.get(
            &format!("/reports/sales?limit=100&after_day={first_day}"),
            Some(&admin),
        )
        .await,
    )
    .await;
    let expected: Vec<_> = all.iter().filter(|s| s["day"] != first_day).collect();
    assert_eq!(
        after_first_day["items"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        expected
    );
    let backwards = body(
        app.get("/reports/sales?from=2026-02-01&to=2026-01-01", Some(&admin))
            .await,
    )
    .await;
    assert_eq!(backwards["items"], json!([]));
    assert_eq!(
        app.get("/reports/my-orders", None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Rebuilt from the event log while orders keep coming, then switched to.
    let (rebuilt, ()) = tokio::join!(
        reports::rebuild(&app.db),
        burst(&app, &customers, &products, 60)
    );
    let rebuilt = rebuilt.unwrap();
    assert_eq!(rebuilt.generation, 2);
    assert!(rebuilt.applied > 300, "{rebuilt:?}");
    assert_read_models_match(&app).await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'reports_g%'"
        )
        .await,
        1,
        "the old generation is dropped"
    );
    // A rebuild of a quiet log changes nothing either.
    assert_eq!(reports::rebuild(&app.db).await.unwrap().generation, 3);
    assert_read_models_match(&app).await;
    worker.stop().await;
}

/// Applied-event ids are kept as long as their events can be delivered again, then
/// forgotten by maintenance: in the generation the migration timestamped and in one a
/// rebuild made.
#[tokio::test]
async fn maintenance_forgets_applied_events_past_the_retention() {
    let app = spawn_app().await;
    let retention = keel::MaintenanceConfig {
        event_log_retention_months: 12,
        event_archive_retention_months: 0,
        event_log_months_ahead: 3,
        processed_retention: Duration::from_secs(7 * 86_400),
    };
    let remember = |generation: i32| {
        format!(
            "INSERT INTO reports_g{generation}.applied_events (event_id, applied_at)
             SELECT id, now() - CASE WHEN id <= 30 THEN interval '8 days' ELSE interval '6 days' END
               FROM generate_series(1, 50) AS id"
        )
    };
    let remembered =
        |generation: i32| format!("SELECT count(*) FROM reports_g{generation}.applied_events");
    for generation in [1, 2] {
        if generation == 2 {
            assert_eq!(reports::rebuild(&app.db).await.unwrap().generation, 2);
        }
        app.db
            .write()
            .await
            .unwrap()
            .execute(&remember(generation), &[])
            .await
            .unwrap();
        let done = keel::worker::maintain(&app.db, &retention).await.unwrap();
        assert_eq!(done.applied_events_deleted, 30, "generation {generation}");
        assert_eq!(app.count(&remembered(generation)).await, 20);
        // The ids six days old stay until their own week is up.
        let again = keel::worker::maintain(&app.db, &retention).await.unwrap();
        assert_eq!(again.applied_events_deleted, 0);
    }
    // Two workers starting together maintain one after the other, both without an error
    // (two passes creating the same partitions at once raced in PostgreSQL's catalog).
    // Each round reaches further ahead, so both passes have partitions to create.
    for round in 1..=5 {
        let ahead = keel::MaintenanceConfig {
            event_log_months_ahead: 3 + 4 * round,
            ..retention.clone()
        };
        let (first, second) = tokio::join!(
            keel::worker::maintain(&app.db, &ahead),
            keel::worker::maintain(&app.db, &ahead)
        );
        first.unwrap();
        second.unwrap();
    }
}

/// A month past the event log's retention moves to the archive, and a rebuild still reads
/// it: an order placed and confirmed years ago is in the rebuilt read models.
#[tokio::test]
async fn a_rebuild_reads_the_archived_months_too() {
    let app = spawn_app().await;
    let placed = r#"{"order_id": -7, "user_id": -70, "customer_name": "Ada",
        "placed_at": "2020-01-15T10:00:00Z", "total_cents": 500,
        "lines": [{"product_id": 1, "product_name": "Old", "quantity": 1, "unit_price_cents": 500}]}"#;
    app.db
        .write()
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE TABLE bus.event_log_y2020m01 PARTITION OF bus.event_log
                 FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
             INSERT INTO bus.event_log (id, subject, payload, occurred_at) VALUES
                 (1, 'orders.placed', '{placed}', '2020-01-15 10:00Z'),
                 (2, 'orders.confirmed', '{{\"order_id\": -7}}', '2020-01-15 10:01Z')"
        ))
        .await
        .unwrap();
    let done = platform::bus::partitions::maintain(&app.db, 3, 12, 0)
        .await
        .unwrap();
    assert_eq!(done.archived, ["event_log_y2020m01"]);
    assert_eq!(
        app.count("SELECT count(*) FROM bus.event_log WHERE id < 0")
            .await,
        0
    );

    assert_eq!(reports::rebuild(&app.db).await.unwrap().generation, 2);
    assert_eq!(
        text(&app, "SELECT concat_ws(' ', status, total_cents, customer_name) FROM reports.order_summaries WHERE order_id = -7").await,
        "confirmed 500 Ada"
    );
    assert_eq!(
        text(&app, "SELECT concat_ws(' ', orders_placed, orders_confirmed, spent_cents) FROM reports.customer_stats WHERE customer_id = -70").await,
        "1 1 500"
    );
}

/// JetStream redelivers an event whose ack was lost: the projection applies it once (the
/// customer counted once, the confirmed sale once), and an event it cannot read is an error
/// for the dead-letter stream, never acknowledged as applied.
#[tokio::test]
async fn a_projection_fed_the_same_event_twice_applies_it_once() {
    use platform::bus::consumer::{Delivery, Handled, HandlerError};
    let app = spawn_app().await;
    let delivery = |id: i64, subject: &str, payload: &str| Delivery {
        id,
        subject: subject.to_owned(),
        payload: bytes::Bytes::from(payload.to_owned()),
        attempt: 1,
        last_attempt: false,
        occurred_at: None,
    };
    let placed = r#"{"order_id": 9, "user_id": 90, "customer_name": "Bo", "total_cents": 250,
        "lines": [{"product_id": 3, "product_name": "Tea", "quantity": 1, "unit_price_cents": 250}]}"#;
    let confirmed = r#"{"order_id": 9}"#;
    for _ in 0..2 {
        for (id, subject, payload) in [
            (101, "orders.placed", placed),
            (102, "orders.confirmed", confirmed),
        ] {
            let handled = reports::project_event(&app.db, delivery(id, subject, payload)).await;
            assert!(matches!(handled, Ok(Handled::Done)), "{handled:?}");
        }
    }
    assert_eq!(
        text(&app, "SELECT concat_ws(' ', orders_placed, orders_confirmed, spent_cents) FROM reports.customer_stats WHERE customer_id = 90").await,
        "1 1 250"
    );
    assert_eq!(
        text(&app, "SELECT concat_ws(' ', units, revenue_cents, orders) FROM reports.product_sales_daily WHERE product_id = 3").await,
        "1 250 1"
    );
    let unknown = reports::project_event(&app.db, delivery(103, "orders.renamed", "{}")).await;
    assert!(
        matches!(unknown, Err(HandlerError::Permanent(_))),
        "{unknown:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM reports_g1.applied_events WHERE event_id = 103")
            .await,
        0,
        "an unknown event is not marked applied"
    );
}
