//! `keel bench run` against a real `keel serve`: the report counts exactly what the server
//! counted (nothing dropped, nothing twice), and a flash sale sells its units and no more.

use std::time::Duration;

use bench::{RunArgs, ScenarioName, Workload, run_command};

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
        workload: Workload {
            rate,
            duration: Duration::from_secs(2),
            concurrency: 32,
            timeout: Duration::from_secs(10),
            warm_up: Duration::ZERO,
            users: 4,
            products: 50,
            slo: 50.0,
            max_rate: f64::INFINITY,
            checkout_share: 0.1,
        },
        units: 25,
        json: None,
        find_max: false,
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
    let json = std::env::temp_dir().join(format!("keel-bench-{}.json", free_port()));
    let mut arguments = args(&keel.base, ScenarioName::Browse, 200.0);
    arguments.json = Some(json.clone());
    let report = run_command(&arguments).await.unwrap();
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
    // The timeline (the chart's data) holds the same requests, each in the second it was
    // due: 2 s at 200/s.
    let by_second: Vec<u64> = report.run.seconds.iter().map(|s| s.requests).collect();
    assert_eq!(by_second.iter().sum::<u64>(), 400, "{by_second:?}");
    assert_eq!(by_second.len(), 2, "{by_second:?}");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(written["arrivals"], 400);
    let chart = std::fs::read_to_string(json.with_extension("svg")).unwrap();
    assert!(
        chart.contains("<polyline") && chart.contains("p99.9"),
        "{chart}"
    );
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(json.with_extension("svg"));
}

/// A warm-up is sent at the run's rate and reaches the server, but the report holds only
/// the measured run: its arrivals, its requests and its timeline.
#[tokio::test]
async fn a_warm_up_reaches_the_server_but_not_the_report() {
    let _busy = MACHINE.read().await;
    let keel = KeelProcess::start(50, &[]).await;
    let (_, method, route) = OPERATIONS[0];
    let before = served(&keel.base, method, route).await;
    let mut arguments = args(&keel.base, ScenarioName::Pages, 100.0);
    arguments.workload.warm_up = Duration::from_secs(1);
    let report = run_command(&arguments).await.unwrap();
    let counted = served(&keel.base, method, route).await - before;
    let pages = &report.run.operations["GET /products/{id}"];
    assert_eq!(report.run.arrivals, 200);
    assert_eq!(pages.requests, 200);
    // The server saw the second of warm-up too: 100 more than the report holds.
    assert_eq!(counted, 300);
    let by_second: Vec<u64> = report.run.seconds.iter().map(|s| s.requests).collect();
    assert_eq!(by_second, [100, 100]);
}

/// `keel bench compare` starts each profile with its own settings: the monolith answers an
/// order with the saga's outcome (201, charged), the event-driven profiles with 202 (the
/// worker charges it later), and every profile's search stops at the ceiling it was given.
#[tokio::test]
async fn compare_starts_each_profile_and_measures_it() {
    let _busy = MACHINE.write().await;
    let database_url = crate::keel_process::seeded_database(50).await;
    let json = std::env::temp_dir().join(format!("keel-compare-{}.json", free_port()));
    let port = free_port();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "bench",
            "compare",
            "--rate",
            "10",
            "--max-rate",
            "20",
            "--duration",
            "1s",
        ])
        .args([
            "--slo",
            "5000",
            "--users",
            "4",
            "--products",
            "50",
            "--port",
        ])
        .arg(port.to_string())
        .arg("--json")
        .arg(&json)
        .env("KEEL_DATABASE_URL", &database_url)
        .env("KEEL_NATS_PREFIX", nats_prefix())
        .env("KEEL_LOG", "error")
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let comparison: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let profiles = comparison["profiles"].as_array().unwrap();
    let names: Vec<&str> = profiles
        .iter()
        .map(|p| p["profile"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["monolith", "async", "cqrs"]);
    for profile in profiles {
        let name = &profile["profile"];
        let rates: Vec<f64> = profile["search"]["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["rate"].as_f64().unwrap())
            .collect();
        assert_eq!(rates, [10.0, 20.0], "{name}");
        assert_eq!(profile["search"]["max_rate"], 20.0, "{name}");
        let orders = &profile["best"]["operations"]["POST /orders"]["statuses"];
        let expected = if name == "monolith" { "201" } else { "202" };
        assert!(
            orders[expected].as_u64().unwrap_or(0) > 0,
            "{name}: POST /orders answered {orders}"
        );
    }
    assert!(
        table.contains("synchronous monolith") && table.contains("2500"),
        "{table}"
    );
    let chart = std::fs::read_to_string(json.with_extension("svg")).unwrap();
    assert!(chart.contains("async event-driven"), "{chart}");
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_file(json.with_extension("svg"));
}

#[tokio::test]
async fn a_checkout_run_logs_in_orders_and_reads_back_every_time() {
    let _busy = MACHINE.read().await;
    let keel = KeelProcess::start(50, &[]).await;
    let mut arguments = args(&keel.base, ScenarioName::Checkout, 20.0);
    arguments.workload.users = 10;
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
