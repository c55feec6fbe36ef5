//! The connection budget: a process whose own pools cannot fit in the primary's
//! `max_connections` refuses to start; processes whose pools fit alone but not together are
//! counted, each from the claim the others' connections carry in their `application_name`.

use std::time::Duration;

use keel::{Application, StartError};
use platform::db::{Db, Pooling};

use crate::helpers::{Cluster, create_database, eventually, execute, test_config};

#[tokio::test]
async fn pools_larger_than_the_server_allows_refuse_to_start() {
    let mut config = test_config(create_database().await);
    // The pools open connections to PostgreSQL itself (a pooler in front would absorb them).
    config.db.url = config.db.direct_url.clone().unwrap();
    config.db.pooling = Pooling::Direct;
    config.db.write_pool = 5_000;
    let refused = Application::build(&config).await.unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, StartError::OverBudget(_)), "{message}");
    assert!(
        message.contains("KEEL_DB_WRITE_POOL 5000") && message.contains("max_connections"),
        "{message}"
    );
}

/// Pools of `write` + `read` connections on `url`, straight to the server.
fn pools(url: &str, write: usize, read: usize) -> keel::Config {
    let mut config = test_config(url.to_owned());
    config.db.url = url.to_owned();
    config.db.pooling = Pooling::Direct;
    config.db.write_pool = write;
    config.db.read_pool = read;
    config
}

#[tokio::test]
async fn processes_that_fit_alone_but_not_together_are_counted_and_still_start() {
    let _busy = crate::helpers::MACHINE.read().await;
    // A server of its own: the fleet on it is exactly what this test starts.
    let server = Cluster::new("budget", None);
    execute(&server.url("keel", "postgres"), "CREATE DATABASE shop").await;
    let url = server.url("keel", "shop");

    // The observer is a process too: it claims its own pools, 5 + 5.
    let observer = Db::connect(&pools(&url, 5, 5).db).unwrap();
    let fleet = observer.fleet().await.unwrap();
    assert_eq!((fleet.processes, fleet.claimed), (1, 10));
    let half = fleet.available / 2;

    let first = Application::build(&pools(&url, half - 10, 10))
        .await
        .unwrap();
    let fleet = observer.fleet().await.unwrap();
    assert_eq!((fleet.processes, fleet.claimed), (2, 10 + half));
    assert!(!fleet.overcommitted(), "{fleet:?}");

    // The second fits alone, not beside the others: it starts (a rolling deploy's surge
    // looks the same), and the fleet is overcommitted.
    let second = pools(&url, half - 10, 10);
    let started = Application::build(&second).await.unwrap();
    let budget = started
        .db()
        .check_budget(&second.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(budget.pooled, half);
    assert_eq!(
        (budget.fleet.processes, budget.fleet.claimed),
        (3, 10 + 2 * half)
    );
    assert!(budget.fleet.overcommitted(), "{budget:?}");

    // A process that stops (its connections close) no longer counts.
    drop(first);
    eventually(
        "the stopped process leaves the fleet",
        Duration::from_secs(10),
        async || {
            let fleet = observer.fleet().await.unwrap();
            (fleet.processes, fleet.claimed) == (2, 10 + half)
        },
    )
    .await;
}
