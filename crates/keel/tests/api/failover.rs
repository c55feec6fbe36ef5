//! The PostgreSQL primary lost whole, under reads and keyed orders: a pg_auto_failover
//! formation promotes its synchronous standby, Keel follows through its multi-host URL
//! without a restart (directly, or through a PgBouncer beside each node), cached reads are
//! served throughout, every POST is acknowledged in the end and none of those is lost, and
//! the old primary comes back as a standby that refuses writes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use crate::{
    helpers::{
        shoppers::{Seen, client},
        *,
    },
    pgbouncer::PgBouncer,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_primary_fails_over_and_no_acknowledged_order_is_lost() {
    let _busy = MACHINE.read().await;
    let formation = Formation::start().await;
    let url = formation.url();
    let mut config = test_config(url.clone());
    // The standby serves reads while it is one: the read-only node of the two.
    config.db.replica_urls = vec![url.replace("read-write", "read-only")];
    lose_the_primary(&formation, config).await;
}

/// The same through a transaction-mode PgBouncer beside each node (as a sidecar runs): Keel
/// names both poolers with `target_session_attrs=read-write`, and a pooler whose node is
/// gone or a standby is passed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_primary_fails_over_through_pgbouncer() {
    let _busy = MACHINE.read().await;
    let formation = Formation::start().await;
    let url = formation.url();
    let mut poolers = Vec::new();
    for node in formation.node_addresses() {
        poolers.push(PgBouncer::in_front_of(&node).await);
    }
    let through: Vec<String> = poolers
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.port))
        .collect();
    let mut config = test_config(url.clone());
    config.db.url = format!(
        "postgres://keel:keel@{}/keel?target_session_attrs=read-write",
        through.join(",")
    );
    config.db.pooling = platform::db::Pooling::Transaction;
    config.db.direct_url = Some(url);
    lose_the_primary(&formation, config).await;
}

/// Runs shoppers against an app on `config`, kills the formation's primary, and checks what
/// the clients saw and what the promoted node holds.
async fn lose_the_primary(formation: &Formation, mut config: keel::Config) {
    let url = formation.url();
    config.db.statement_timeout = Duration::from_secs(2);
    config.db.acquire_timeout = Duration::from_secs(2);
    let app = spawn_app_with(config).await;
    let admin = app.admin().await;
    // Products 1 to 5, which the shoppers read and order, and one nobody orders.
    for _ in 1..=5 {
        app.product(&admin, 100, 100_000).await;
    }
    let browsed = app.product(&admin, 100, 10).await;
    let mut set = OrderSet::new(&(1..=5).map(|p| (p, 100_000)).collect::<Vec<_>>());

    let seen = Arc::new(Seen::new());
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for n in 0..4 {
        let token = app.customer().await;
        clients.push(tokio::spawn(client(
            app.url(""),
            token,
            n,
            seen.clone(),
            running.clone(),
        )));
    }
    // A reader of the product nobody orders: its cached entry stays valid, so it is served
    // while no primary is up. (A product being ordered changes with each order, and its
    // next read needs the database.)
    let reader = tokio::spawn({
        let (http, url, running) = (
            app.client.clone(),
            app.url(&format!("/products/{browsed}")),
            running.clone(),
        );
        async move {
            let (mut served, mut failed) = (0, Vec::new());
            while running.load(Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => served += 1,
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (served, failed)
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let orders_before = seen.orders.load(Relaxed);
    assert!(orders_before > 0, "orders are placed before the fault");

    let old_port = formation.primary_port();
    let old = formation.node_on(old_port);
    formation.kill(old);
    let at = seen.secs();
    // Writes are back when an order is acknowledged that was first sent after the kill.
    eventually(
        "orders acknowledged again",
        Duration::from_secs(60),
        async || seen.first_acknowledged_after(at).is_some(),
    )
    .await;
    let outage = seen.first_acknowledged_after(at).unwrap_or_default() - at;
    let new_port = formation.primary_port();
    assert_ne!(
        new_port,
        old_port,
        "the standby was promoted: {}",
        formation.state()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    eprintln!(
        "primary :{old_port} killed at {at:.1}s; orders acknowledged again {outage:.1}s later; \
         requests started in that window: {}; {} orders, {} POSTs retried",
        seen.impact(at, at + outage),
        seen.orders.load(Relaxed),
        seen.retried.load(Relaxed),
    );

    let (served, failed) = reader.await.unwrap();
    assert!(failed.is_empty(), "the cached product failed: {failed:?}");
    assert!(served > 100, "the cached product was read {served} times");
    // Every POST was acknowledged in the end (a client sends a failed one again with its
    // key). Reads that need the database fail during the outage when the standby cannot
    // prove it has what they must see (a token newer than its replay: a client's own last
    // order, an instance's loads after the last writes); the standby serves the rest.
    let failures = seen.failures.lock().unwrap().clone();
    let failed_orders: Vec<_> = failures.iter().filter(|f| f.contains("POST")).collect();
    assert!(failed_orders.is_empty(), "{failed_orders:?}");
    eprintln!(
        "{} reads failed during the outage: {failures:?}",
        failures.len()
    );

    for id in seen.acknowledged.lock().unwrap().iter() {
        set.acknowledged(*id);
    }
    // On the promoted node: every acknowledged order, none twice, stock to the unit.
    set.check_placed(&url).await;

    // The lost node back: it rejoins as a standby, and a write sent to it is refused.
    formation.start_node(old);
    let direct = format!("postgres://keel@127.0.0.1:{old_port}/keel");
    eventually(
        "the old primary back, as a standby",
        Duration::from_secs(90),
        async || match tokio_postgres::connect(&direct, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
                    .query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .is_ok_and(|row| row.get::<_, bool>(0))
            }
            Err(_) => false,
        },
    )
    .await;
    let (client, connection) = tokio_postgres::connect(&direct, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let write = client
        .batch_execute("UPDATE catalog.stock SET on_hand = on_hand - 1 WHERE product_id = 1")
        .await
        .unwrap_err();
    assert_eq!(
        write.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
        "{write}"
    );
}

/// A commit that waits for a synchronous standby is not acknowledged while it waits: a
/// cancelled wait is reported as a commit done (a warning is all that says otherwise), and a
/// failover to that standby would then lose an order the client was told of. The server's
/// statement timeout does not cancel it (it ends before the commit's work), and Keel sends
/// no cancel request: past its deadline it abandons the connection and answers 503.
#[tokio::test]
async fn an_order_no_standby_has_confirmed_is_not_acknowledged() {
    let _busy = MACHINE.read().await;
    let server = Cluster::new("sync", None);
    execute(
        &server.url("postgres", "postgres"),
        "CREATE DATABASE shop OWNER keel",
    )
    .await;
    let mut config = test_config(server.url("keel", "shop"));
    config.db.statement_timeout = Duration::from_secs(1);
    let budget = config.db.statement_deadline() + Duration::from_millis(700);
    let app = spawn_app_with(config).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 100, 10).await;
    let customer = app.customer().await;

    // A synchronous standby that never connects: every commit from now on waits for it.
    let superuser = server.url("postgres", "postgres");
    execute(
        &superuser,
        "ALTER SYSTEM SET synchronous_standby_names = 'nobody'",
    )
    .await;
    execute(&superuser, "SELECT pg_reload_conf()").await;
    let started = std::time::Instant::now();
    let order = app.order(&customer, product, 1).await;
    let took = started.elapsed();
    assert_eq!(order.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(took > Duration::from_secs(1), "answered after {took:?}");
    assert!(took < budget, "answered after {took:?}, past {budget:?}");
}
