//! The layered cache behind `GET /products/{id}`: layers, negative caching, stampede
//! protection, invalidation across instances, and Redis going away.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::future::join_all;
use platform::{cache::Loaded, db::Lsn};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    helpers::{body, create_database, eventually, spawn_app, spawn_app_with, test_config},
    redis_server::RedisServer,
};

#[tokio::test]
async fn a_product_is_loaded_once_then_served_from_l1() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = app.product(&admin, 1234, 7).await;
    let loads = app.cache.stats().loads();
    let first = body(app.get(&format!("/products/{id}"), None).await).await;
    for _ in 0..5 {
        assert_eq!(
            body(app.get(&format!("/products/{id}"), None).await).await,
            first
        );
    }
    assert_eq!(app.cache.stats().loads() - loads, 1);
    assert!(app.cache.stats().l1_hits() >= 5);
}

#[tokio::test]
async fn unknown_products_are_cached_as_missing() {
    let app = spawn_app().await;
    let loads = app.cache.stats().loads();
    for _ in 0..10 {
        assert_eq!(
            app.get("/products/987654", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        app.cache.stats().loads() - loads,
        1,
        "one database load for ten misses"
    );
}

#[tokio::test]
async fn five_hundred_concurrent_misses_make_one_load() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let id = app.product(&admin, 500, 5).await;
    let loads = app.cache.stats().loads();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(600)
        .build()
        .unwrap();
    let url = app.url(&format!("/products/{id}"));
    let statuses = join_all((0..500).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.get(url).send().await.unwrap().status() }
    }))
    .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert_eq!(app.cache.stats().loads() - loads, 1);
}

#[tokio::test]
async fn concurrent_misses_of_a_slow_load_wait_for_the_one_load() {
    let app = spawn_app().await;
    let cache = app.cache.clone();
    let calls = Arc::new(AtomicU64::new(0));
    let results = join_all((0..500).map(|_| {
        let (cache, calls) = (cache.clone(), calls.clone());
        async move {
            cache
                .get_or_load("slow-key", None, |_| {
                    let calls = calls.clone();
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok(Loaded {
                            value: Some(Bytes::from_static(b"{\"v\":1}")),
                            as_of: Lsn(0),
                        })
                    }
                })
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        results
            .iter()
            .all(|r| r.as_deref() == Some(&b"{\"v\":1}"[..]))
    );
}

/// Two instances on one database and one Redis, as behind a load balancer.
async fn two_instances() -> (crate::helpers::TestApp, crate::helpers::TestApp) {
    let config = test_config(create_database().await);
    let a = spawn_app_with(config.clone()).await;
    let b = spawn_app_with(config).await;
    (a, b)
}

#[tokio::test]
async fn a_write_on_one_instance_is_read_on_another_within_the_bound() {
    let (a, b) = two_instances().await;
    let admin = a.admin().await;
    let id = a.product(&admin, 1000, 50).await;
    let path = format!("/products/{id}");
    // Both instances hold the product in L1.
    for app in [&a, &b] {
        assert_eq!(body(app.get(&path, None).await).await["price_cents"], 1000);
        assert_eq!(body(app.get(&path, None).await).await["price_cents"], 1000);
    }

    let written = Instant::now();
    let update = a
        .send_json(
            Method::PATCH,
            &path,
            &admin,
            &json!({ "price_cents": 1500 }),
        )
        .await;
    assert_eq!(update.status(), StatusCode::OK);
    let seen = loop {
        if body(b.get(&path, None).await).await["price_cents"] == 1500 {
            break written.elapsed();
        }
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "instance B still stale after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    eprintln!("price change visible on the other instance after {seen:?}");

    // A stock change made by an order is invalidated the same way.
    let customer = a.customer().await;
    let order = a
        .post(
            "/orders",
            Some(&customer),
            &json!({ "lines": [ { "product_id": id, "quantity": 3 } ] }),
        )
        .await;
    assert_eq!(order.status(), StatusCode::ACCEPTED);
    let written = Instant::now();
    while body(b.get(&path, None).await).await["stock"] != 47 {
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "stock still stale on B after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn reads_survive_redis_dying_and_the_cache_recovers() {
    let mut redis = RedisServer::start().await;
    let mut config = test_config(create_database().await);
    config.redis.url = redis.url();
    config.redis.timeout = Duration::from_millis(100);
    let app = spawn_app_with(config.clone()).await;
    let admin = app.admin().await;
    let warm = app.product(&admin, 100, 1).await;
    let cold = app.product(&admin, 200, 2).await;
    assert_eq!(
        app.get(&format!("/products/{warm}"), None).await.status(),
        StatusCode::OK
    );

    redis.kill().await;
    let started = Instant::now();
    for _ in 0..20 {
        for id in [warm, cold] {
            let response = app.get(&format!("/products/{id}"), None).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "reads keep working without Redis"
            );
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "Redis timeouts are bounded: {:?}",
        started.elapsed()
    );
    // Still ready: it serves, degraded.
    let degraded = body(app.get("/readyz", None).await).await;
    assert_eq!(degraded["status"], "degraded");
    assert_eq!(degraded["checks"]["redis"], "unreachable");

    redis.restart().await;
    let redis_client = redis::Client::open(redis.url()).unwrap();
    let prefix = &config.redis.key_prefix;
    // The cache writes to Redis again once its breaker lets a probe through.
    read_until_in_l2(
        &redis_client,
        "L2 unused 5 s after Redis returned",
        async |n| {
            let key = format!("probe-{n}");
            app.cache
                .get_or_load(&key, None, |_| async {
                    Ok(Loaded {
                        value: Some(Bytes::from_static(b"1")),
                        as_of: Lsn(0),
                    })
                })
                .await
                .unwrap();
            format!("{prefix}cache:{key}")
        },
    )
    .await;
    // And the API path with it: a product read for the first time lands in L2. Not always
    // the very first read: the invalidation listener resubscribing after the outage clears
    // L1, and a load that overlaps that is served but not kept (it may predate a write).
    let admin = app.admin().await;
    let fresh = app.product(&admin, 300, 3).await;
    let product = "the product not in L2 5 s after Redis returned";
    read_until_in_l2(&redis_client, product, async |_| {
        assert_eq!(
            app.get(&format!("/products/{fresh}"), None).await.status(),
            StatusCode::OK
        );
        format!("{prefix}cache:product:{fresh}")
    })
    .await;
    assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);
}

/// Reads (`read(n)` for the n-th try, answering the Redis key it should have filled) every
/// 50 ms until that key is in Redis; fails with `failure` after 5 s.
async fn read_until_in_l2(
    redis: &redis::Client,
    failure: &str,
    mut read: impl AsyncFnMut(u32) -> String,
) {
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let mut n = 0;
    eventually(failure, Duration::from_secs(5), async || {
        let key = read(n).await;
        n += 1;
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<bool>(&mut conn)
            .await
            .unwrap()
    })
    .await;
}

/// A load of `key` that answers `value` as of `as_of`, and tells what it was asked for.
async fn load_as_of(
    cache: &platform::cache::Cache,
    key: &str,
    token: Option<Lsn>,
    value: &'static str,
    as_of: u64,
) -> (String, Option<Option<Lsn>>) {
    let asked = std::sync::Mutex::new(None);
    let got = cache
        .get_or_load(key, token, |at_least| {
            *asked.lock().unwrap() = Some(at_least);
            async move {
                Ok(Loaded {
                    value: Some(Bytes::from_static(value.as_bytes())),
                    as_of: Lsn(as_of),
                })
            }
        })
        .await
        .unwrap()
        .unwrap();
    let asked = *asked.lock().unwrap();
    (String::from_utf8(got.to_vec()).unwrap(), asked)
}

#[tokio::test]
async fn an_entry_older_than_the_readers_token_is_loaded_past() {
    let app = spawn_app().await;
    let cache = &app.cache;
    assert_eq!(
        load_as_of(cache, "k", None, "old", 10).await,
        ("old".into(), Some(None))
    );
    // Hits while the reader's write is in the entry...
    assert_eq!(
        load_as_of(cache, "k", Some(Lsn(10)), "x", 99).await,
        ("old".into(), None)
    );
    // ...a newer write is loaded past it, at a source that has it, and replaces it.
    assert_eq!(
        load_as_of(cache, "k", Some(Lsn(20)), "new", 25).await,
        ("new".into(), Some(Some(Lsn(20))))
    );
    assert_eq!(
        load_as_of(cache, "k", None, "x", 99).await,
        ("new".into(), None)
    );
    assert_eq!(
        load_as_of(cache, "k", Some(Lsn(25)), "x", 99).await,
        ("new".into(), None)
    );

    // After an invalidation, every load asks for a source that has the invalidating write.
    cache.invalidate(&["k".to_owned()], Lsn(50)).await;
    assert_eq!(
        load_as_of(cache, "k", None, "newest", 50).await,
        ("newest".into(), Some(Some(Lsn(50))))
    );
    assert_eq!(
        load_as_of(cache, "other", Some(Lsn(60)), "o", 60).await,
        ("o".into(), Some(Some(Lsn(60))))
    );
}

/// Without replicas a load reads the primary, which has every committed write: the newest
/// token the instance has issued or been shown is its `as_of`, with no query for it.
#[tokio::test]
async fn without_replicas_a_load_is_as_new_as_the_newest_token_heard() {
    let app = spawn_app().await;
    let read = |token| {
        app.db.with_read_as_of(token, |client| async move {
            let row = client.query_one("SELECT 1", &[]).await;
            row.map(|_| ()).map_err(platform::InfraError::from)
        })
    };
    let issued = app.db.consistency_token().await.unwrap();
    let ((), as_of) = read(None).await.unwrap();
    assert_eq!(as_of, issued, "the token this instance issued");
    let shown = Lsn(issued.0 + 1_000);
    let ((), as_of) = read(Some(shown)).await.unwrap();
    assert_eq!(as_of, shown, "a reader's token");
    let ((), as_of) = read(None).await.unwrap();
    assert_eq!(as_of, shown, "remembered");
}
