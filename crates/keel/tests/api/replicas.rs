//! Read replicas against clusters of the test's own (`scripts/replica.sh`), through the API:
//! reads go to a healthy replica (the primary answers what it fails), a read that carries its session's (or a header's)
//! consistency token sees that write, and a replica that dies under traffic costs no failed
//! request.

use std::time::Duration;

use futures_util::future::join_all;
use platform::db::Lsn;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    helpers::{Cluster, TestApp, body, eventually, execute, spawn_app_with, test_config, text},
    metrics::{sample, scrape},
};

/// How long a replica may take to catch up, come back or be skipped.
const REPLICA_WAIT: Duration = Duration::from_secs(15);

/// The product's price in the product list as this caller sees it (an uncached read).
async fn listed_price(app: &TestApp, id: i64, session: Option<&str>, header: Option<&str>) -> i64 {
    let mut request = app.client.get(app.url("/products?limit=100"));
    if let Some(session) = session {
        request = request.bearer_auth(session);
    }
    if let Some(token) = header {
        request = request.header("x-consistency-token", token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .map_or(-1, |p| p["price_cents"].as_i64().unwrap())
}

async fn my_order_count(app: &TestApp, session: &str, header: Option<&str>) -> usize {
    let mut request = app.client.get(app.url("/orders")).bearer_auth(session);
    if let Some(token) = header {
        request = request.header("x-consistency-token", token);
    }
    let page: Value = request.send().await.unwrap().json().await.unwrap();
    page["items"].as_array().unwrap().len()
}

/// Tells whether a read is served by the replica: with replay paused, the price changes on
/// the primary behind the API's back (so no token covers it), and the read sees the old one.
struct Probe<'a> {
    app: &'a TestApp,
    id: i64,
    shop: &'a str,
    replica: &'a str,
}

impl Probe<'_> {
    async fn read(&self, session: Option<&str>, price: &mut i64) -> bool {
        execute(self.replica, "SELECT pg_wal_replay_pause()").await;
        *price += 1;
        let sql = format!(
            "UPDATE catalog.products SET price_cents = {price} WHERE id = {}",
            self.id
        );
        execute(self.shop, &sql).await;
        let seen = listed_price(self.app, self.id, session, None).await;
        execute(self.replica, "SELECT pg_wal_replay_resume()").await;
        seen < *price
    }
}

#[tokio::test]
async fn reads_see_their_writes_while_replicas_lag_and_survive_a_dead_replica() {
    let _busy = crate::helpers::MACHINE.read().await;
    let primary = Cluster::new("primary", None);
    execute(&primary.url("keel", "postgres"), "CREATE DATABASE shop").await;
    let replica = Cluster::new("replica", Some(primary.port));
    let (shop, replica_admin) = (primary.url("keel", "shop"), replica.url("postgres", "shop"));
    // Replay stops before the schema exists: the replica checks out healthy (in recovery,
    // within the lag bound) yet fails every read that needs a table.
    execute(&replica_admin, "SELECT pg_wal_replay_pause()").await;
    let mut config = test_config(primary.url("keel", "shop"));
    config.db.replica_urls = vec![replica.url("keel", "shop")];
    config.db.acquire_timeout = Duration::from_millis(500);
    // A small write pool: a write that took a second connection while holding its first
    // would deadlock it under concurrent orders.
    config.db.write_pool = 2;
    // Paused replay must not count as lag here; the lag bound has its own instance below.
    config.db.replica_max_lag = Duration::from_secs(300);
    let app = spawn_app_with(config).await;

    let admin = app.admin().await;
    let id = app.product(&admin, 1000, 50).await;
    // Its failures are the primary's to answer: every read succeeds.
    let failed_on_replica = format!(
        r#"keel_db_replica_failed_reads_total{{replica="127.0.0.1:{}"}}"#,
        replica.port
    );
    eventually(
        "reads the replica failed, served",
        REPLICA_WAIT,
        async || {
            assert_eq!(listed_price(&app, id, None, None).await, 1000);
            sample(&scrape(&app.address).await, &failed_on_replica) > Some(0.0)
        },
    )
    .await;
    execute(&replica_admin, "SELECT pg_wal_replay_resume()").await;
    eventually("the replica catches up", REPLICA_WAIT, async || {
        let primary_at = text(&shop, "SELECT pg_current_wal_lsn()::text").await;
        let replayed = format!("SELECT pg_last_wal_replay_lsn() >= '{primary_at}'::pg_lsn");
        text(&replica_admin, &format!("SELECT ({replayed})::text")).await == "true"
    })
    .await;

    // The replica is in use once an anonymous read stops seeing a write replay has not reached.
    execute(&replica_admin, "SELECT pg_wal_replay_pause()").await;
    execute(
        &shop,
        &format!("UPDATE catalog.products SET price_cents = 1100 WHERE id = {id}"),
    )
    .await;
    eventually("reads reach the replica", REPLICA_WAIT, async || {
        listed_price(&app, id, None, None).await == 1000
    })
    .await;

    // Replay paused: the admin's write answers with a token and the session remembers it.
    let update = app
        .send_json(
            Method::PATCH,
            &format!("/products/{id}"),
            &admin,
            &json!({ "price_cents": 1500 }),
        )
        .await;
    assert_eq!(update.status(), StatusCode::OK);
    let token = update.headers()["x-consistency-token"]
        .to_str()
        .unwrap()
        .to_owned();
    token.parse::<Lsn>().expect("the token is a WAL position");
    for _ in 0..5 {
        assert_eq!(
            listed_price(&app, id, Some(&admin), None).await,
            1500,
            "the writer sees its write"
        );
        assert_eq!(
            listed_price(&app, id, None, None).await,
            1000,
            "no token: the paused replica"
        );
        assert_eq!(
            listed_price(&app, id, None, Some(&token)).await,
            1500,
            "the header's token"
        );
    }
    // The cached read too, in the session and for everyone (the cache never refills from a
    // replica behind the invalidating write).
    assert_eq!(
        body(app.get(&format!("/products/{id}"), Some(&admin)).await).await["price_cents"],
        1500
    );
    assert_eq!(
        body(app.get(&format!("/products/{id}"), None).await).await["price_cents"],
        1500
    );

    // A customer's order is in their own session's reads, not in another session's until
    // replay reaches it, unless that one brings the token.
    let email = app.register().await;
    let customer = app.login(&email).await;
    let placed = app.order(&customer, id, 1).await;
    assert_eq!(placed.status(), StatusCode::ACCEPTED);
    let order_token = placed.headers()["x-consistency-token"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(my_order_count(&app, &customer, None).await, 1);
    let concurrent = join_all((0..16).map(|_| app.order(&customer, id, 1))).await;
    assert!(
        concurrent
            .iter()
            .all(|r| r.status() == StatusCode::ACCEPTED),
        "{:?}",
        concurrent.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    let other_tab = app.login(&email).await;
    assert_eq!(
        my_order_count(&app, &other_tab, None).await,
        0,
        "the lagging replica"
    );
    assert_eq!(
        my_order_count(&app, &other_tab, Some(&order_token)).await,
        17,
        "the token sends the read to the primary"
    );
    let bad = app
        .client
        .get(app.url("/orders"))
        .bearer_auth(&other_tab)
        .header("x-consistency-token", "yesterday")
        .send()
        .await
        .unwrap();
    let problem = crate::helpers::problem(bad, StatusCode::BAD_REQUEST).await;
    assert_eq!(crate::helpers::field(&problem), "x-consistency-token");

    // Replay resumes: once the replica has the session's write, its reads go there again.
    execute(&replica_admin, "SELECT pg_wal_replay_resume()").await;
    let replica_serves = Probe {
        app: &app,
        id,
        shop: &shop,
        replica: &replica_admin,
    };
    let mut price = 1500;
    eventually(
        "the session's reads return to the replica",
        REPLICA_WAIT,
        async || replica_serves.read(Some(&admin), &mut price).await,
    )
    .await;

    // The replica dies under traffic: no request fails, and reads move to the primary.
    let reads = join_all((0..4).map(|_| async {
        for _ in 0..60 {
            assert!(
                listed_price(&app, id, None, None).await > 0,
                "no request fails"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }));
    let stop = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        replica.stop();
    };
    tokio::join!(reads, stop);
    assert_eq!(
        listed_price(&app, id, None, None).await,
        price,
        "the primary serves"
    );

    // Restarted, it is used again.
    replica.start();
    eventually(
        "the restarted replica is used again",
        REPLICA_WAIT,
        async || replica_serves.read(None, &mut price).await,
    )
    .await;

    // An instance with a tight lag bound stops reading from a replica that falls behind it.
    let mut strict = test_config(primary.url("keel", "shop"));
    strict.db.replica_urls = vec![replica.url("keel", "shop")];
    strict.db.replica_max_lag = Duration::from_millis(500);
    let strict = spawn_app_with(strict).await;
    execute(&replica_admin, "SELECT pg_wal_replay_pause()").await;
    price += 1;
    execute(
        &shop,
        &format!("UPDATE catalog.products SET price_cents = {price} WHERE id = {id}"),
    )
    .await;
    eventually("a lagging replica is skipped", REPLICA_WAIT, async || {
        listed_price(&strict, id, None, None).await == price
    })
    .await;
    execute(&replica_admin, "SELECT pg_wal_replay_resume()").await;
}
