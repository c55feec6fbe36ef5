//! Building and running the HTTP application: pools, migrations, router, listener.

use std::{future::Future, net::SocketAddr, time::Duration};

use accounts::{Accounts, Sessions};
use axum::Router;
use catalog::{Catalog, ProductCache};
use orders::{Orders, Saga, payments::PaymentClient};
use platform::{
    InfraError,
    cache::Cache,
    db::{Db, DbConfigError, Migration, MigrationError},
    http::SelectiveLayer,
    ratelimit::RateLimiter,
    redis::{Redis, RedisConfigError},
};
use reports::Reports;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::{
    Config,
    consistency::IssueTokens,
    features::{self, Features},
    health,
    limits::Limits,
    openapi,
};

/// Every module's migrations, in dependency order.
const MIGRATIONS: [&[Migration]; 5] = [
    platform::MIGRATIONS,
    accounts::MIGRATIONS,
    catalog::MIGRATIONS,
    orders::MIGRATIONS,
    reports::MIGRATIONS,
];

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    DbConfig(#[from] DbConfigError),
    #[error(transparent)]
    RedisConfig(#[from] RedisConfigError),
    #[error("cannot reach PostgreSQL (KEEL_DATABASE_URL)")]
    Db(#[from] InfraError),
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Applies every pending migration of every module.
pub async fn migrate(db: &Db) -> Result<usize, StartError> {
    let mut client = db.write().await?;
    let all: Vec<Migration> = MIGRATIONS.iter().flat_map(|m| m.iter().copied()).collect();
    let applied = platform::db::migrate(&mut client, &all).await?;
    drop(client);
    // The event log needs this month's partition before the first event is written.
    platform::bus::partitions::ensure(db, 1).await?;
    Ok(applied)
}

/// The whole HTTP API behind the middleware stack.
pub fn router(db: Db, redis: Redis, cache: Cache, config: &Config) -> Router {
    let sessions = Sessions::new(redis.clone(), &config.sessions);
    let products = ProductCache::new(cache);
    let features = Features::new(redis.clone());
    // Ends once the router (which holds the switches) is dropped.
    tokio::spawn(features.watch());
    let api = Router::new()
        .merge(accounts::router().with_state(Accounts {
            db: db.clone(),
            sessions: sessions.clone(),
        }))
        .merge(catalog::router().with_state(Catalog::new(
            db.clone(),
            sessions.clone(),
            products.clone(),
        )))
        .merge(orders::router().with_state(Orders {
            saga: Saga::new(
                db.clone(),
                PaymentClient::new(&config.payments),
                products.clone(),
                config.saga.clone(),
            ),
            db: db.clone(),
            sessions: sessions.clone(),
            products,
        }))
        .merge(reports::router().with_state(Reports {
            db: db.clone(),
            sessions: sessions.clone(),
        }))
        .merge(features::router(features.clone(), sessions.clone()))
        .merge(health::router(db.clone(), redis.clone()))
        .merge(platform::metrics::router())
        .merge(openapi::router());
    let limits = (!config.rate_limits.rate_limit_off).then(|| {
        Limits::new(
            RateLimiter::new(redis),
            sessions.clone(),
            &config.rate_limits,
        )
    });
    // A switched-off feature's requests are answered first: they cost no rate-limit round trip.
    let layers = ServiceBuilder::new()
        .layer(SelectiveLayer(features))
        .layer(SelectiveLayer(limits))
        .layer(SelectiveLayer(IssueTokens { db, sessions }));
    platform::http::layer(api, &config.http, layers)
}

/// A migrated application bound to its port, ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    db: Db,
    cache: Cache,
    invalidations: tokio::task::JoinHandle<()>,
    /// Whether requests carry the peer's address (`ConnectInfo`): only rate limiting reads
    /// it, and it costs every request a boxed extension.
    peer_addresses: bool,
}

impl Application {
    /// Connects, migrates and binds; `config.http.listen` may use port 0.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        platform::metrics::handle();
        let db = Db::connect(&config.db)?;
        let redis = Redis::connect(&config.redis)?;
        migrate(&db).await?;
        let addr = config.http.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let cache = Cache::new(redis.clone(), config.cache.clone());
        let invalidations = cache
            .start_invalidation_listener(config.redis.timeout.max(Duration::from_secs(1)))
            .await;
        let router = router(db.clone(), redis, cache.clone(), config);
        Ok(Self {
            listener,
            router,
            db,
            cache,
            invalidations,
            peer_addresses: !config.rate_limits.rate_limit_off,
        })
    }

    /// The cache this instance serves from (its counters show what each layer served).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` completes, then stops accepting and drains in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let purge = tokio::spawn(purge_idempotency_keys(self.db.clone()));
        // Health and lag of the read replicas, if any are configured.
        let replicas = tokio::spawn(self.db.clone().watch_replicas(REPLICA_CHECK));
        let served = if self.peer_addresses {
            let service = self
                .router
                .into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(self.listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        } else {
            axum::serve(self.listener, self.router)
                .with_graceful_shutdown(shutdown)
                .await
        };
        purge.abort();
        replicas.abort();
        self.invalidations.abort();
        served
    }
}

/// How often each read replica's health and lag are checked.
const REPLICA_CHECK: Duration = Duration::from_millis(250);

/// Deletes expired idempotency keys every few minutes, in small batches.
async fn purge_idempotency_keys(db: Db) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    loop {
        tick.tick().await;
        let purged = async {
            let client = db.write().await?;
            platform::idempotency::purge_expired(&client, 5_000).await
        }
        .await;
        match purged {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired idempotency keys deleted"),
            Err(e) => tracing::warn!(error = %e, "idempotency key purge failed"),
        }
    }
}
