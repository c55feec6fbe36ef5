//! `keel bench run` against a real `keel serve`: the report counts exactly what the server
//! counted (nothing dropped, nothing twice), and a flash sale sells its units and no more.

use std::time::Duration;

use bench::{RunArgs, ScenarioName, run_command};

use crate::{helpers::*, keel_process::KeelProcess};

/// Requests the instance counted for `method route`, any status.
async fn served(base: &str, method: &str, route: &str) -> u64 {
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!(r#"keel_http_requests_total{{method="{method}",route="{route}","#);
    metrics
        .lines()
        .filter(|line| line.starts_with(&series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn args(base: &str, scenario: ScenarioName, rate: f64) -> RunArgs {
    RunArgs {
        url: base.to_owned(),
        scenario,
        rate,
        duration: Duration::from_secs(2),
        concurrency: 32,
        timeout: Duration::from_secs(10),
        users: 4,
        products: 50,
        units: 25,
        checkout_share: 0.1,
        json: None,
        find_max: false,
        slo: 50.0,
    }
}

const OPERATIONS: [(&str, &str, &str); 3] = [
    ("GET /products/{id}", "GET", "/products/{id}"),
    ("GET /products", "GET", "/products"),
    ("POST /orders", "POST", "/orders"),
];

#[tokio::test]
async fn a_browse_run_reports_what_the_server_served() {
    let _busy = MACHINE.read().await;
    let keel = KeelProcess::start(50, &[]).await;
    let mut before = Vec::new();
    for (_, method, route) in OPERATIONS {
        before.push(served(&keel.base, method, route).await);
    }
    let report = run_command(&args(&keel.base, ScenarioName::Browse, 200.0))
        .await
        .unwrap();
    assert_eq!(report.run.arrivals, 400);
    let mut recorded = 0;
    for ((operation, method, route), before) in OPERATIONS.into_iter().zip(before) {
        let summary = &report.run.operations[operation];
        let counted = served(&keel.base, method, route).await - before;
        assert_eq!(summary.requests, counted, "{operation}");
        assert_eq!(summary.failed, 0, "{operation}");
        let answered_2xx: u64 = summary.statuses.range(200..300).map(|(_, n)| n).sum();
        assert_eq!(
            answered_2xx, summary.requests,
            "{operation}: {:?}",
            summary.statuses
        );
        recorded += summary.requests;
    }
    // Every arrival is one request in this scenario: none lost between schedule and report.
    assert_eq!(recorded, 400);
    assert!(report.run.operations["POST /orders"].requests >= 30);
}

#[tokio::test]
async fn a_checkout_run_logs_in_orders_and_reads_back_every_time() {
    let _busy = MACHINE.read().await;
    let keel = KeelProcess::start(50, &[]).await;
    let mut arguments = args(&keel.base, ScenarioName::Checkout, 20.0);
    arguments.users = 10;
    let report = run_command(&arguments).await.unwrap();
    // 40 arrivals, each four requests in order; each step runs only if the last succeeded.
    for operation in [
        "POST /sessions",
        "GET /products/{id}",
        "POST /orders",
        "GET /orders/{id}",
    ] {
        let summary = &report.run.operations[operation];
        assert_eq!(summary.requests, 40, "{operation}: {summary:?}");
        assert_eq!(summary.failed, 0, "{operation}");
    }
    assert_eq!(report.run.operations["GET /orders/{id}"].statuses[&200], 40);
}

#[tokio::test]
async fn a_flash_sale_sells_its_units_and_no_more() {
    let _busy = MACHINE.read().await;
    let keel = KeelProcess::start(10, &[]).await;
    // 600 buyers for 25 units.
    let report = run_command(&args(&keel.base, ScenarioName::FlashSale, 300.0))
        .await
        .unwrap();
    let sale = report.sale.unwrap();
    assert_eq!(sale.oversold, 0);
    assert_eq!(sale.accepted, 25, "{sale:?}");
    assert_eq!(sale.stock_left, 0);
    assert_eq!(sale.accepted + sale.sold_out, 600, "{sale:?}");
}
