//! `keel worker`: relays the outbox to JetStream, runs order sagas from `OrderPlaced`
//! events, projects the order events into the read models, re-drives what the broker lost
//! (a sweep of stuck sagas, the read models reconciled with the event log), and keeps the
//! event log's partitions and the consumers' records trimmed. Run as
//! many as you like: relays share the outbox with `SKIP LOCKED`, consumers share a durable
//! JetStream consumer, and sagas hold a lease per order.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{Router, routing::get};

use catalog::ProductCache;
use orders::{Saga, SweepConfig, payments::PaymentClient};
use platform::{
    InfraError,
    bus::{Bus, consumer, partitions, relay},
    cache::Cache,
    db::Db,
    redis::Redis,
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{StartError, config::MaintenanceConfig, config::WorkerConfig, migrate};

/// What one maintenance pass did.
#[derive(Debug, Default)]
pub struct Maintained {
    pub partitions: partitions::Maintained,
    pub processed_deleted: u64,
    /// The read models' record of applied events, past the same retention.
    pub applied_events_deleted: u64,
    pub idempotency_keys_deleted: u64,
}

/// A worker connected, migrated and bound to its metrics port, ready to run.
#[derive(Debug)]
pub struct Worker {
    db: Db,
    bus: Bus,
    saga: Saga,
    maintenance: MaintenanceConfig,
    sweep: SweepConfig,
    listener: TcpListener,
}

impl Worker {
    /// Connects to PostgreSQL, Redis and NATS, migrates, and binds `config.listen` (which
    /// may use port 0) for `/metrics` and `/livez`.
    pub async fn build(config: &WorkerConfig) -> Result<Self, StartError> {
        platform::metrics::handle();
        let db = Db::connect(&config.db)?;
        migrate(&db).await?;
        db.check_budget(&config.db).await?;
        let redis = Redis::connect(&config.redis)?;
        let products = ProductCache::new(Cache::new(redis, config.cache.clone()));
        let saga = Saga::new(
            db.clone(),
            PaymentClient::new(&config.payments),
            products,
            config.saga.clone(),
        );
        let bus = Bus::connect(&config.bus).await?;
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        Ok(Self {
            db,
            bus,
            saga,
            maintenance: config.maintenance.clone(),
            sweep: config.sweep.clone(),
            listener,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Relays, consumes and maintains until `shutdown` completes; then finishes the messages
    /// in hand.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Self {
            db,
            bus,
            saga,
            maintenance,
            sweep,
            listener,
        } = self;
        // What stops at shutdown and is waited for: every task that holds messages.
        let stop = CancellationToken::new();
        let until_stopped = || stop.clone().cancelled_owned();
        let tasks = TaskTracker::new();
        tasks.spawn(relay::run(db.clone(), bus.clone(), until_stopped()));
        tasks.spawn({
            let (stopped, bus, db) = (stop.clone(), bus.clone(), db.clone());
            async move {
                consumer::run(
                    bus,
                    reports::PROJECTOR,
                    move |delivery| {
                        let db = db.clone();
                        async move { reports::project_event(&db, delivery).await }
                    },
                    stopped,
                )
                .await;
            }
        });
        tasks.spawn(sweep_and_reconcile(
            saga.clone(),
            db.clone(),
            sweep,
            until_stopped(),
        ));
        tasks.spawn({
            let stopped = stop.clone();
            async move {
                consumer::run(
                    bus,
                    orders::SAGA_CONSUMER,
                    move |delivery| {
                        let saga = saga.clone();
                        async move { orders::handle_order_placed(&saga, delivery).await }
                    },
                    stopped,
                )
                .await;
            }
        });
        tasks.spawn(serve_metrics(listener, until_stopped()));
        tasks.close();
        // Periodic upkeep that holds nothing: stopped where it stands.
        let backlog = tokio::spawn(watch_backlog(db.clone()));
        let budget = tokio::spawn(db.clone().watch_budget());
        let maintenance = tokio::spawn(maintain_daily(db, maintenance));
        tracing::info!("worker running");
        shutdown.await;
        stop.cancel();
        tasks.wait().await;
        backlog.abort();
        budget.abort();
        maintenance.abort();
    }
}

/// Runs a worker until `shutdown` completes.
pub async fn run(
    config: &WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    Worker::build(config).await?.run_until(shutdown).await;
    Ok(())
}

/// `/metrics` and `/livez`, for Prometheus and the orchestrator.
async fn serve_metrics(listener: TcpListener, stopped: impl Future<Output = ()> + Send + 'static) {
    let router = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .merge(platform::http::metrics_routes().into_router(|_, handler| handler));
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::warn!(error = %e, "the worker's metrics endpoint stopped");
    }
}

/// How far back the first reconciliation of a worker's life looks; later ones start where
/// the previous one ended, less an overlap.
const RECONCILE_FIRST_WINDOW: Duration = Duration::from_secs(3600);

/// Every `sweep_every`: re-drives the sagas no message moved for `sweep_after`, and applies
/// to the read models the logged events older than that they lack (younger ones are the
/// live projector's); until `stopped`.
async fn sweep_and_reconcile(
    saga: Saga,
    db: Db,
    config: SweepConfig,
    stopped: impl Future<Output = ()>,
) {
    tokio::pin!(stopped);
    let mut tick = tokio::time::interval(config.sweep_every);
    let mut from = time::OffsetDateTime::now_utc() - RECONCILE_FIRST_WINDOW;
    loop {
        tokio::select! {
            () = &mut stopped => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = orders::sweep(&saga, &db, config.sweep_after).await {
            tracing::warn!(error = %e, "sweep of stuck sagas failed; next try in a moment");
        }
        let to = time::OffsetDateTime::now_utc() - config.sweep_after;
        match reports::reconcile(&db, from, to).await {
            // Overlap the next window with this one: a transaction that commits late logs
            // its event with its start time.
            Ok(_) => from = to - config.sweep_after,
            Err(e) => {
                tracing::warn!(error = %e, "read model reconciliation failed; next try in a moment")
            }
        }
    }
}

/// Keeps the outbox gauges current: a relay that cannot publish shows as a growing backlog.
async fn watch_backlog(db: Db) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        if let Err(e) = relay::backlog(&db).await {
            tracing::debug!(error = %e, "outbox backlog unreadable");
        }
    }
}

/// One maintenance pass: partitions ahead and past retention, old consumer records (the
/// bus's and the read models'), expired idempotency keys.
pub async fn maintain(db: &Db, config: &MaintenanceConfig) -> Result<Maintained, InfraError> {
    let partitions = partitions::maintain(
        db,
        config.event_log_months_ahead,
        config.event_log_retention_months,
        config.event_archive_retention_months,
    )
    .await?;
    let mut client = db.write().await?;
    let processed_deleted =
        platform::bus::consumer::forget_processed(&client, config.processed_retention).await?;
    let applied_events_deleted =
        reports::forget_applied_events(&mut client, config.processed_retention).await?;
    let idempotency_keys_deleted = platform::idempotency::purge_expired(&client, 100_000).await?;
    Ok(Maintained {
        partitions,
        processed_deleted,
        applied_events_deleted,
        idempotency_keys_deleted,
    })
}

async fn maintain_daily(db: Db, config: MaintenanceConfig) {
    let mut tick = tokio::time::interval(Duration::from_secs(24 * 3600));
    loop {
        tick.tick().await;
        match maintain(&db, &config).await {
            Ok(done) => tracing::info!(?done, "maintenance done"),
            Err(e) => tracing::warn!(error = ?e, "maintenance failed; next try in a day"),
        }
    }
}
