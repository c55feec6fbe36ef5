//! The event bus: the outbox relay (in order; several at once, no event published twice), the
//! dead-letter stream, and the event log's monthly partitions.

use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use platform::bus::{Bus, outbox, partitions, relay};
use serde::Serialize;

use crate::helpers::*;

#[derive(Debug, Serialize)]
struct Tested {
    n: i64,
}

impl outbox::Event for Tested {
    const SUBJECT: &'static str = "tests.tested";
}

fn stream_name(prefix: &str, suffix: &str) -> String {
    format!("{}_{suffix}", prefix.to_uppercase())
}

async fn jetstream() -> jetstream::Context {
    jetstream::new(async_nats::connect(nats_url()).await.unwrap())
}

/// Appends `n` test events from `from` on, in one transaction.
async fn append(app: &TestApp, from: i64, n: i64) {
    let mut client = app.db.write().await.unwrap();
    let tx = client.transaction().await.unwrap();
    for n in from..from + n {
        outbox::append(&tx, &Tested { n }).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Runs `relays` relays until the outbox is empty.
async fn relay_all(app: &TestApp, bus: &Bus, relays: usize) {
    let stop = tokio_util::sync::CancellationToken::new();
    let running: Vec<_> = (0..relays)
        .map(|_| {
            tokio::spawn(relay::run(
                app.db.clone(),
                bus.clone(),
                stop.clone().cancelled_owned(),
            ))
        })
        .collect();
    eventually("the outbox drained", Duration::from_secs(30), async || {
        app.count("SELECT count(*) FROM bus.outbox").await == 0
    })
    .await;
    stop.cancel();
    for relay in running {
        relay.await.unwrap();
    }
}

/// Every event publish, seen as NATS carries it: a plain subscription sees a publish that
/// JetStream's de-duplication would then drop, so a relay that publishes twice shows here.
struct Publishes(async_nats::Subscriber);

impl Publishes {
    async fn watch(prefix: &str) -> Self {
        let client = async_nats::connect(nats_url()).await.unwrap();
        let subscriber = client
            .subscribe(format!("{prefix}.events.>"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        Self(subscriber)
    }

    /// The `n` of the next `count` publishes, in the order they were made.
    async fn next(&mut self, count: usize) -> Vec<i64> {
        let mut seen = Vec::new();
        while seen.len() < count {
            let message = tokio::time::timeout(Duration::from_secs(10), self.0.next())
                .await
                .expect("a publish")
                .unwrap();
            let value: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
            seen.push(value["n"].as_i64().unwrap());
        }
        seen
    }

    /// Whether another publish comes within a moment.
    async fn any_more(&mut self) -> bool {
        tokio::time::timeout(Duration::from_millis(300), self.0.next())
            .await
            .is_ok()
    }
}

#[tokio::test]
async fn relays_publish_every_event_once_and_in_order() {
    let app = spawn_app().await;
    let prefix = nats_prefix();
    let config = worker_config(&app.config, &nats_url(), &prefix);
    let bus = Bus::connect(&config.bus).await.unwrap();
    bus.events_stream().await.unwrap();
    let mut publishes = Publishes::watch(&prefix).await;

    // One relay publishes in outbox order.
    append(&app, 0, 300).await;
    relay_all(&app, &bus, 1).await;
    assert_eq!(
        publishes.next(300).await,
        (0..300).collect::<Vec<_>>(),
        "in order"
    );
    assert!(!publishes.any_more().await, "an event published twice");

    // Two relays share the outbox: each event published once.
    append(&app, 300, 600).await;
    relay_all(&app, &bus, 2).await;
    let mut seen = publishes.next(600).await;
    assert!(!publishes.any_more().await, "an event published twice");
    seen.sort_unstable();
    assert_eq!(seen, (300..900).collect::<Vec<_>>());
    assert_eq!(app.count("SELECT count(*) FROM bus.event_log").await, 900);
    let js = jetstream().await;
    let mut stream = js.get_stream(stream_name(&prefix, "EVENTS")).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 900);
    js.delete_stream(stream_name(&prefix, "EVENTS"))
        .await
        .unwrap();
}

#[tokio::test]
async fn messages_that_keep_failing_go_to_the_dead_letter_stream_with_the_reason() {
    let app = spawn_app().await;
    let prefix = nats_prefix();
    let mut config = worker_config(&app.config, &nats_url(), &prefix);
    config.bus.max_deliver = 2;
    let worker = spawn_worker(config).await;
    {
        let client = app.db.write().await.unwrap();
        // One that can never parse, one naming an order that does not exist (it fails
        // transiently until its deliveries run out).
        client
            .batch_execute(
                "INSERT INTO bus.outbox (subject, payload) VALUES
                    ('orders.placed', '{\"nonsense\": true}'),
                    ('orders.placed', '{\"order_id\": 987654, \"user_id\": 1, \"total_cents\": 1, \"lines\": []}')",
            )
            .await
            .unwrap();
    }
    let js = jetstream().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Both fail the saga; the read models' projector also refuses the one that cannot parse.
    let dlq = loop {
        if let Ok(mut stream) = js.get_stream(stream_name(&prefix, "DLQ")).await {
            if stream.info().await.unwrap().state.messages == 3 {
                break stream;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the messages are dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut reasons = std::collections::BTreeMap::<String, Vec<String>>::new();
    for sequence in 1..=3 {
        let message = dlq.get_raw_message(sequence).await.unwrap();
        let header = |name: &str| message.headers.get(name).unwrap().as_str().to_owned();
        reasons
            .entry(header("Keel-Dlq-Consumer"))
            .or_default()
            .push(header("Keel-Dlq-Reason"));
    }
    let saga = &reasons["order-saga"];
    assert_eq!(saga.len(), 2, "{reasons:?}");
    assert!(
        saga.iter().any(|r| r.contains("not an OrderPlaced event")),
        "{reasons:?}"
    );
    assert!(
        saga.iter().any(|r| r.contains("no such order")),
        "{reasons:?}"
    );
    assert!(
        reasons["reports"][0].contains("does not parse"),
        "{reasons:?}"
    );
    worker.stop().await;
    for suffix in ["EVENTS", "DLQ"] {
        js.delete_stream(stream_name(&prefix, suffix))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn maintenance_creates_months_ahead_and_drops_months_past_retention() {
    let app = spawn_app().await;
    let client = app.db.write().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE bus.event_log_y2020m01 PARTITION OF bus.event_log
                 FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
             INSERT INTO bus.event_log (id, subject, payload, occurred_at)
                 VALUES (-1, 'old.event', '{}', '2020-01-15')",
        )
        .await
        .unwrap();
    let done = partitions::maintain(&app.db, 3, 12, 0).await.unwrap();
    assert_eq!(done.archived, ["event_log_y2020m01"]);
    assert!(
        done.dropped.is_empty(),
        "the archive keeps its months unless told"
    );
    assert_eq!(
        done.created.len(),
        2,
        "startup made this month and next: {done:?}"
    );
    let partitions = app
        .count("SELECT count(*) FROM pg_inherits WHERE inhparent = 'bus.event_log'::regclass")
        .await;
    assert_eq!(partitions, 4, "this month and three ahead");
    assert_eq!(
        app.count("SELECT count(*) FROM bus.event_log WHERE id = -1")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM bus.event_archive WHERE id = -1")
            .await,
        1,
        "archived, not lost"
    );
    let again = partitions::maintain(&app.db, 3, 12, 0).await.unwrap();
    assert_eq!(
        again,
        partitions::Maintained::default(),
        "a second run has nothing to do"
    );
    // An archive retention drops the archive's months past it, for good.
    let dropped = partitions::maintain(&app.db, 3, 12, 24).await.unwrap();
    assert_eq!(dropped.dropped, ["event_log_y2020m01"]);
    assert_eq!(app.count("SELECT count(*) FROM bus.event_archive").await, 0);
}
