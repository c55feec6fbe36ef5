//! JetStream as a three-node cluster: Keel's streams keep three copies, and losing the node
//! that leads the events stream while orders are placed loses no order and stalls none
//! past the election.

use std::time::{Duration, Instant};

use fake_payments::Behaviour;
use orders::OrderMode;
use platform::bus::Bus;

use crate::{
    helpers::*,
    nats_server::NatsCluster,
    saga::{app_with, provider},
};

/// The events stream's leader, once the cluster has elected one.
pub(crate) async fn leader(bus: &Bus) -> Option<String> {
    let stream = bus.events_stream().await.ok()?;
    stream.get_info().await.ok()?.cluster?.leader
}

#[tokio::test]
async fn orders_go_through_when_the_events_streams_leader_is_killed() {
    let _busy = MACHINE.read().await;
    let mut cluster = NatsCluster::start().await;
    let provider = provider(Behaviour::default()).await;
    let app = app_with(&provider, OrderMode::Async).await;
    let config = worker_config(&app.config, &cluster.urls(), &nats_prefix());
    let bus = Bus::connect(&config.bus).await.unwrap();
    eventually(
        "the cluster to lead a stream",
        Duration::from_secs(30),
        async || leader(&bus).await.is_some(),
    )
    .await;
    let info = bus.events_stream().await.unwrap().get_info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3, "three copies of the events");

    let worker = spawn_worker(config).await;
    let admin = app.admin().await;
    let product = app.product(&admin, 250, 1000).await;
    let customer = app.customer().await;
    let mut set = OrderSet::new(&[(product, 1000)]);
    for _ in 0..15 {
        set.acknowledged(
            body(app.order(&customer, product, 1).await).await["id"]
                .as_i64()
                .unwrap(),
        );
    }

    // The node leading the events stream goes, while the orders' events are in flight.
    let led_by = leader(&bus).await.unwrap();
    let node = led_by.rsplit('-').next().unwrap().parse::<usize>().unwrap();
    cluster.nodes[node].kill().await;
    let killed = Instant::now();
    for _ in 0..15 {
        set.acknowledged(
            body(app.order(&customer, product, 1).await).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    eventually(
        "another node to lead",
        Duration::from_secs(30),
        async || leader(&bus).await.is_some_and(|now| now != led_by),
    )
    .await;
    let elected = killed.elapsed();
    let verdict = set
        .check(
            app.database_url(),
            Some(&provider.url()),
            Duration::from_secs(60),
        )
        .await;
    let settled = killed.elapsed();
    eprintln!(
        "NATS leader {led_by} killed: a new leader in {elected:?}, all 30 orders confirmed {settled:?} after"
    );
    assert_eq!(verdict.confirmed, 30);
    worker.stop().await;
}
