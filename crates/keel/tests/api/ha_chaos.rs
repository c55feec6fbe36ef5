//! The HA topology under load while its parts fail in turn: PgBouncer in transaction mode,
//! Redis with a replica and three Sentinels, NATS as three nodes, two `keel serve` behind
//! the shipped nginx and two `keel worker`. Clients read products, place keyed orders
//! (retrying a failed POST with its key, as a client of an idempotent API does) and read
//! them back, while one NATS node, the Redis master, an instance and a worker are killed,
//! PgBouncer is restarted and every instance is restarted with SIGTERM.
//!
//! After healing: no GET failed, every acknowledged order exists once and is final, stock is
//! conserved to the unit and no order was charged twice. `KEEL_CHAOS_SECONDS` (default 2)
//! is the load between faults; the long variant is the same test with more.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use fake_payments::Behaviour;
use platform::bus::{Bus, BusConfig};

use crate::{
    helpers::{
        shoppers::{Seen, client},
        *,
    },
    keel_process::{KeelProcess, keel_worker, login, seeded_database},
    load_balancer::Nginx,
    nats_cluster::leader,
    nats_server::NatsCluster,
    pgbouncer::PgBouncer,
    redis_sentinel::RedisHa,
    rolling_restart::{back_in_rotation, port, stop},
    saga::provider,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ha_topology_loses_no_order_and_fails_no_read_while_its_parts_fail() {
    let _busy = MACHINE.read().await;
    let phase = Duration::from_secs(
        std::env::var("KEEL_CHAOS_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2),
    );
    let database_url = seeded_database(20).await;
    let mut pgbouncer = PgBouncer::start().await;
    let mut redis = RedisHa::start().await;
    let mut nats = NatsCluster::start().await;
    let payments = provider(Behaviour::default()).await;
    let prefix = format!("chaos{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    let (pooled, master) = (
        pgbouncer.url_for(&database_url),
        format!("redis://127.0.0.1:{}", redis.master.port),
    );
    let (sentinels, nats_urls, provider_url) =
        (redis.sentinel_urls().join(","), nats.urls(), payments.url());
    let env = [
        ("KEEL_DATABASE_URL", pooled.as_str()),
        ("KEEL_DATABASE_POOLING", "transaction"),
        ("KEEL_DATABASE_DIRECT_URL", database_url.as_str()),
        ("KEEL_REDIS_URL", master.as_str()),
        ("KEEL_REDIS_SENTINELS", sentinels.as_str()),
        ("KEEL_REDIS_PREFIX", prefix.as_str()),
        ("KEEL_NATS_URL", nats_urls.as_str()),
        ("KEEL_NATS_PREFIX", prefix.as_str()),
        ("KEEL_ORDER_MODE", "async"),
        ("KEEL_PAYMENTS_URL", provider_url.as_str()),
        ("KEEL_SHUTDOWN_DELAY", "2s"),
        ("KEEL_LOG", "warn"),
        // Limits on, through Redis and its failover, high enough never to refuse.
        ("KEEL_RATE_LIMIT_OFF", "false"),
        ("KEEL_RATE_READ", "1000000/60s"),
        ("KEEL_RATE_WRITE", "1000000/60s"),
        ("KEEL_RATE_LOGIN", "1000000/60s"),
    ];
    let mut instances = vec![
        KeelProcess::start_at(database_url.clone(), free_port(), &env).await,
        KeelProcess::start_at(database_url.clone(), free_port(), &env).await,
    ];
    // Every instance's log, the replaced ones' too, to explain a failure.
    let mut logs: Vec<_> = instances.iter().map(|k| k.logs.clone()).collect();
    let mut workers = vec![keel_worker(&env), keel_worker(&env)];
    let bases: Vec<&str> = instances.iter().map(|k| k.base.as_str()).collect();
    let nginx = Nginx::start(&bases, "1s").await;

    let direct = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(direct.1);
    direct
        .0
        .batch_execute("UPDATE catalog.stock SET on_hand = 100000 WHERE product_id <= 5")
        .await
        .unwrap();
    let mut set = OrderSet::new(&(1..=5).map(|p| (p, 100_000)).collect::<Vec<_>>());

    let seen = Arc::new(Seen::new());
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for n in 0..6 {
        let token = login(&nginx.url(""), &format!("user{}@demo.keel", n + 1)).await;
        clients.push(tokio::spawn(client(
            nginx.url(""),
            token,
            n,
            seen.clone(),
            running.clone(),
        )));
    }
    let mut log = Vec::new();
    tokio::time::sleep(phase).await;

    // One NATS node: the one leading the events stream.
    let bus = Bus::connect(&BusConfig {
        nats_url: nats.urls(),
        nats_replicas: 0,
        nats_prefix: prefix.clone(),
        ack_wait: Duration::from_secs(2),
        max_deliver: 10,
        concurrency: 1,
        outbox_poll: Duration::from_millis(10),
    })
    .await
    .unwrap();
    eventually("a stream leader", Duration::from_secs(30), async || {
        leader(&bus).await.is_some()
    })
    .await;
    let led_by = leader(&bus).await.unwrap();
    let node: usize = led_by.rsplit('-').next().unwrap().parse().unwrap();
    let at = seen.secs();
    nats.nodes[node].kill().await;
    let killed = Instant::now();
    eventually("a new leader", Duration::from_secs(30), async || {
        leader(&bus).await.is_some_and(|now| now != led_by)
    })
    .await;
    log.push((
        at,
        format!("NATS leader killed: new leader in {:?}", killed.elapsed()),
    ));
    tokio::time::sleep(phase).await;
    nats.nodes[node].restart().await;

    // The Redis master: the Sentinels promote the replica.
    redis.replicated().await;
    let at = seen.secs();
    redis.kill_master().await;
    let killed = Instant::now();
    redis.promoted().await;
    log.push((
        at,
        format!("Redis master killed: promoted in {:?}", killed.elapsed()),
    ));
    tokio::time::sleep(phase).await;

    // One API instance, SIGKILLed, then replaced on its port.
    log.push((seen.secs(), "instance SIGKILLed, replaced".into()));
    instances[0].child.kill().await.unwrap();
    tokio::time::sleep(phase).await;
    let on = port(&instances[0]);
    instances[0] = KeelProcess::start_at(database_url.clone(), on, &env).await;
    logs.push(instances[0].logs.clone());
    back_in_rotation(&nginx, &instances[0]).await;

    // One worker, SIGKILLed mid-saga, then replaced.
    log.push((seen.secs(), "worker SIGKILLed, replaced".into()));
    workers[0].kill().await.unwrap();
    tokio::time::sleep(phase).await;
    workers[0] = keel_worker(&env);

    // PgBouncer, restarted.
    let at = seen.secs();
    let away = pgbouncer.restart().await;
    log.push((at, format!("PgBouncer restarted: away {away:?}")));
    tokio::time::sleep(phase).await;

    // Every instance, one by one, with SIGTERM.
    for keel in &mut instances {
        let at = seen.secs();
        let drained = stop(keel).await;
        let on = port(keel);
        *keel = KeelProcess::start_at(database_url.clone(), on, &env).await;
        logs.push(keel.logs.clone());
        back_in_rotation(&nginx, keel).await;
        log.push((
            at,
            format!("instance restarted with SIGTERM: drained in {drained:?}"),
        ));
    }
    tokio::time::sleep(phase).await;
    running.store(false, Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let (reads, orders, retried) = (
        seen.reads.load(Relaxed),
        seen.orders.load(Relaxed),
        seen.retried.load(Relaxed),
    );
    let failures = seen.failures.lock().unwrap().clone();
    eprintln!(
        "HA chaos: {reads} reads, {orders} acknowledged orders ({retried} POSTs sent again with \
         their key), {} failed",
        failures.len()
    );
    let end = seen.secs();
    eprintln!(
        "  {:>5.1}s before any fault: {}",
        0.0,
        seen.impact(0.0, log[0].0)
    );
    for (n, (at, what)) in log.iter().enumerate() {
        let until = log.get(n + 1).map_or(end, |next| next.0);
        eprintln!("  {at:>5.1}s {what}: {}", seen.impact(*at, until));
    }
    if !failures.is_empty() {
        for line in logs.iter().flat_map(|log| log.lock().unwrap().clone()) {
            eprintln!("{line}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(reads > 200 && orders > 50, "{reads} reads, {orders} orders");
    for id in seen.acknowledged.lock().unwrap().iter() {
        set.acknowledged(*id);
    }
    // A retried POST whose first try was placed is answered with that order (checked: no
    // order exists that no client was told of). The provider approves every charge, so an
    // order cancelled here would be a saga a fault made give up.
    let verdict = set
        .check(
            &database_url,
            Some(&payments.url()),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(verdict.confirmed, verdict.orders, "{verdict:?}");
    drop((workers, instances, nginx));
}
