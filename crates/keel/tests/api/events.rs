//! The event bus: the outbox relay (several at once, no duplicates, in order), the
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

#[tokio::test]
async fn two_relays_publish_every_event_once_in_order() {
    let app = spawn_app().await;
    let prefix = nats_prefix();
    let config = worker_config(&app.config, &nats_url(), &prefix);
    let bus = Bus::connect(&config.bus).await.unwrap();
    bus.events_stream().await.unwrap();
    {
        let mut client = app.db.write().await.unwrap();
        let tx = client.transaction().await.unwrap();
        for n in 0..600 {
            outbox::append(&tx, &Tested { n }).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let mut stopped = stopped.clone();
            tokio::spawn(relay::run(app.db.clone(), bus.clone(), async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.count("SELECT count(*) FROM bus.outbox").await > 0 {
        assert!(std::time::Instant::now() < deadline, "the outbox drains");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    for relay in relays {
        relay.await.unwrap();
    }

    let js = jetstream().await;
    let mut stream = js.get_stream(stream_name(&prefix, "EVENTS")).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        600,
        "no duplicates"
    );
    // Each relay publishes its batch in outbox order.
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap().take(600);
    let mut seen = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        seen.push(value["n"].as_i64().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..600).collect::<Vec<_>>());
    assert_eq!(app.count("SELECT count(*) FROM bus.event_log").await, 600);
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
