//! `keel diagnose` against situations created for real: each test starts its own `keel serve`
//! process (so its metrics and its CPU are its own), runs traffic that causes one bottleneck,
//! diagnoses meanwhile, and checks the report names that bottleneck first.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use diagnose::{DiagnoseArgs, Layer, Report, diagnose};
use fake_payments::{Behaviour, FakePayments};
use futures_util::future::join_all;
use serde_json::json;

use crate::{helpers::*, keel_process::*};

impl KeelProcess {
    fn args(&self) -> DiagnoseArgs {
        DiagnoseArgs {
            instances: vec![self.base.clone()],
            database_url: self.database_url.clone(),
            redis_url: test_config(self.database_url.clone()).redis.url,
            window: Duration::from_secs(3),
            pids: self.child.id().into_iter().collect(),
            json: false,
        }
    }

    /// Runs `request` from `clients` concurrent loops while diagnosing.
    async fn diagnose_under<F, Fut>(&self, clients: usize, request: F) -> Report
    where
        F: Fn(reqwest::Client, u64) -> Fut + Clone,
        Fut: std::future::Future<Output = ()>,
    {
        let _quiet = MACHINE.write().await;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let warm = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::new();
        let load = join_all((0..clients).map(|_| {
            let (stop, sent, warm, http, request) = (
                stop.clone(),
                sent.clone(),
                warm.clone(),
                http.clone(),
                request.clone(),
            );
            async move {
                let mut first = true;
                while !stop.load(Ordering::Relaxed) {
                    request(http.clone(), sent.fetch_add(1, Ordering::Relaxed)).await;
                    if std::mem::take(&mut first) {
                        warm.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
        let args = self.args();
        let diagnosis = async {
            // Let the traffic settle first: the window's histograms count a request that ends
            // in it whole, so every client's cold first request (new pool connections, first
            // statements prepared) must be over before it starts, however slow the machine is.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            tokio::time::sleep(Duration::from_millis(500)).await;
            while warm.load(Ordering::Relaxed) < clients as u64
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let report = diagnose(&args).await.unwrap();
            stop.store(true, Ordering::Relaxed);
            report
        };
        let (_, report) = tokio::join!(load, diagnosis);
        assert!(sent.load(Ordering::Relaxed) > 0);
        report
    }
}

async fn get_product(base: String, http: reqwest::Client, n: u64, products: u64) {
    let _ = http
        .get(format!("{base}/products/{}", 1 + n % products))
        .send()
        .await;
}

fn first(report: &Report) -> (Layer, &'static str) {
    let finding = report
        .first()
        .unwrap_or_else(|| panic!("no finding:\n{report}"));
    (finding.layer, finding.kind)
}

#[tokio::test]
async fn a_dropped_index_is_named_a_missing_index() {
    let keel = KeelProcess::start(20_000, &[("KEEL_CACHE", "off")]).await;
    let (db, connection) = tokio_postgres::connect(&keel.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // Every product read joins the stock by product id: without its key, a scan of all rows.
    db.batch_execute("ALTER TABLE catalog.stock DROP CONSTRAINT stock_pkey; ANALYZE catalog.stock")
        .await
        .unwrap();
    let base = keel.base.clone();
    let report = keel
        .diagnose_under(8, move |http, n| get_product(base.clone(), http, n, 20_000))
        .await;
    assert_eq!(
        first(&report),
        (Layer::Database, "missing index"),
        "{report}"
    );
    assert!(
        report.findings[0].title.contains("catalog.stock"),
        "{report}"
    );
}

#[tokio::test]
async fn a_pool_of_one_under_concurrency_is_an_exhausted_pool() {
    let keel =
        KeelProcess::start(2_000, &[("KEEL_CACHE", "off"), ("KEEL_DB_READ_POOL", "1")]).await;
    let base = keel.base.clone();
    let report = keel
        .diagnose_under(32, move |http, n| get_product(base.clone(), http, n, 2_000))
        .await;
    assert_eq!(
        first(&report),
        (Layer::PoolWait, "exhausted pool"),
        "{report}"
    );
}

// The provider runs in this process: on a runtime of its own threads, so the test's load
// loop and the diagnosis's synchronous reads of `/proc` never hold its answers back (a
// provider that answers late is a slow third party only from Keel's side of the wire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_provider_in_sync_mode_is_the_third_party() {
    let provider = FakePayments::start(
        "127.0.0.1:0".parse().unwrap(),
        Behaviour {
            latency: Duration::from_millis(250),
            ..Behaviour::default()
        },
    )
    .await
    .unwrap();
    let keel = KeelProcess::start(
        2_000,
        &[
            ("KEEL_ORDER_MODE", "sync"),
            ("KEEL_PAYMENTS_URL", &provider.url()),
        ],
    )
    .await;
    let token = login(&keel.base, "user1@demo.keel").await;
    let base = keel.base.clone();
    let report = keel
        .diagnose_under(8, move |http, n| {
            let (base, token) = (base.clone(), token.clone());
            async move {
                let _ = http
                    .post(format!("{base}/orders"))
                    .bearer_auth(&token)
                    .json(&json!({ "lines": [ { "product_id": 1 + n % 2_000, "quantity": 1 } ] }))
                    .send()
                    .await;
            }
        })
        .await;
    assert_eq!(
        first(&report),
        (Layer::ThirdParty, "slow third party"),
        "{report}"
    );
}

#[tokio::test]
async fn orders_of_one_product_are_lock_waits_on_a_hot_row() {
    let keel = KeelProcess::start(100, &[]).await;
    let (db, connection) = tokio_postgres::connect(&keel.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    db.batch_execute("UPDATE catalog.stock SET on_hand = 1000000 WHERE product_id = 1")
        .await
        .unwrap();
    let tokens = join_all((1..=16).map(|n| {
        let base = keel.base.clone();
        async move { login(&base, &format!("user{n}@demo.keel")).await }
    }))
    .await;
    let base = keel.base.clone();
    let report = keel
        .diagnose_under(16, move |http, n| {
            let (base, token) = (base.clone(), tokens[n as usize % 16].clone());
            async move {
                let _ = http
                    .post(format!("{base}/orders"))
                    .bearer_auth(&token)
                    .json(&json!({ "lines": [ { "product_id": 1, "quantity": 1 } ] }))
                    .send()
                    .await;
            }
        })
        .await;
    assert_eq!(
        first(&report),
        (Layer::LockWaits, "lock contention"),
        "{report}"
    );
    assert!(
        report.findings[0]
            .evidence
            .iter()
            .any(|l| l.contains("catalog.stock")),
        "{report}"
    );
}

#[tokio::test]
async fn password_hashing_is_cpu_bound_application_time() {
    let keel = KeelProcess::start(100, &[]).await;
    let base = keel.base.clone();
    let report = keel
        .diagnose_under(4, move |http, n| {
            let base = base.clone();
            async move {
                let _ = http
                    .post(format!("{base}/sessions"))
                    .json(&json!({ "email": format!("user{}@demo.keel", 1 + n % 20), "password": "keel-demo-password" }))
                    .send()
                    .await;
            }
        })
        .await;
    assert_eq!(
        first(&report),
        (Layer::Application, "cpu-bound handlers"),
        "{report}"
    );
}
