//! Building and running the HTTP application: pools, migrations, routes, listener.

use std::{future::Future, net::SocketAddr, time::Duration};

use accounts::Accounts;
use axum::{Router, extract::FromRef, routing::MethodRouter};
use catalog::{Catalog, ProductCache};
use identity::Sessions;
use orders::{Orders, Saga, payments::PaymentClient};
use platform::{
    ErrorChain, InfraError,
    cache::Cache,
    db::{Db, DbConfigError, Migration, MigrationError, OverBudget},
    http::{Draining, Policy, Routes, SelectiveLayer, Serving},
    idempotency::Lease,
    ratelimit::RateLimiter,
    redis::{Redis, RedisConfigError},
};
use reports::Reports;
use tokio::net::TcpListener;

use crate::{
    Config,
    consistency::IssueTokens,
    features::{self, Features},
    health::{self, Dependencies},
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
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Applies every pending migration of every module.
pub async fn migrate(db: &Db) -> Result<usize, StartError> {
    // DDL under an advisory lock: a session on the primary itself.
    let mut client = db.session().await?;
    let all: Vec<Migration> = MIGRATIONS.iter().flat_map(|m| m.iter().copied()).collect();
    let applied = platform::db::migrate(client.raw_mut(), &all).await?;
    drop(client);
    // The event log needs this month's partition before the first event is written.
    platform::bus::partitions::ensure(db, 1).await?;
    Ok(applied)
}

/// What the handlers share: each module's state, and what the identity, health and
/// feature-switch extractors need. Handlers take the part they use (`State<Catalog>`).
#[derive(Clone, Debug, FromRef)]
pub(crate) struct AppState {
    accounts: Accounts,
    catalog: Catalog,
    orders: Orders,
    reports: Reports,
    sessions: Sessions,
    features: Features,
    health: Dependencies,
}

/// Every route of the API, each declared by its module with its policy.
pub(crate) fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
    Catalog: FromRef<S>,
    Orders: FromRef<S>,
    Reports: FromRef<S>,
    Sessions: FromRef<S>,
    Features: FromRef<S>,
    Dependencies: FromRef<S>,
{
    Routes::new()
        .merge(accounts::routes())
        .merge(catalog::routes())
        .merge(orders::routes())
        .merge(reports::routes())
        .merge(features::routes())
        .merge(health::routes())
        .merge(platform::http::metrics_routes())
}

/// The whole HTTP API behind the middleware stack.
pub fn router(db: Db, redis: Redis, cache: Cache, config: &Config) -> Router {
    assemble(db, redis, cache, config, Draining::default())
}

/// [`router`], its readiness tied to `draining`.
fn assemble(db: Db, redis: Redis, cache: Cache, config: &Config, draining: Draining) -> Router {
    let sessions = Sessions::new(redis.clone(), &config.sessions);
    let products = ProductCache::new(cache);
    let api = routes::<AppState>();
    let document = openapi::routes(&api);
    let routes = api.merge(document);
    let features = Features::new(redis.clone(), routes.features());
    // Ends once the router (which holds the switches) is dropped.
    tokio::spawn(features.watch());
    let limits = (!config.rate_limits.rate_limit_off).then(|| {
        Limits::new(
            RateLimiter::new(redis.clone()),
            sessions.clone(),
            &config.rate_limits,
        )
    });
    // What each route's policy asks for, outermost first: a switched-off feature is answered
    // before it costs a rate-limit round trip. A route that asks for nothing gets nothing.
    let guard = |policy: Policy, handler: MethodRouter<AppState>| {
        let handler = match (&limits, policy.rate) {
            (Some(limits), Some(class)) => handler.layer(SelectiveLayer(limits.spending(class))),
            _ => handler,
        };
        match policy.feature.and_then(|feature| features.gate(feature)) {
            Some(gate) => handler.layer(SelectiveLayer(gate)),
            None => handler,
        }
    };
    let state = AppState {
        accounts: Accounts {
            db: db.clone(),
            sessions: sessions.clone(),
        },
        catalog: Catalog::new(db.clone(), products.clone()),
        orders: Orders {
            saga: Saga::new(
                db.clone(),
                PaymentClient::new(&config.payments),
                products.clone(),
                config.saga.clone(),
            ),
            db: db.clone(),
            products,
            claims: Lease::for_requests_of(config.http.request_timeout),
        },
        reports: Reports { db: db.clone() },
        sessions: sessions.clone(),
        features: features.clone(),
        health: Dependencies {
            db: db.clone(),
            redis,
            draining,
        },
    };
    let api = routes.into_router(guard).with_state(state);
    platform::http::layer(
        api,
        &config.http,
        SelectiveLayer(IssueTokens { db, sessions }),
    )
}

/// A migrated application bound to its port, ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    db: Db,
    cache: Cache,
    invalidations: tokio::task::JoinHandle<()>,
    /// Set when the shutdown signal comes: `/readyz` answers 503 from then on.
    draining: Draining,
    /// The connections' bounds, the shutdown delay, and whether requests carry the peer's
    /// address (only rate limiting reads it, and it costs every request a boxed extension).
    serving: Serving,
}

impl Application {
    /// Connects, migrates and binds; `config.http.listen` may use port 0.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        platform::metrics::handle();
        let db = Db::connect(&config.db)?;
        let redis = Redis::connect(&config.redis)?;
        migrate(&db).await?;
        db.check_budget(&config.db).await?;
        let addr = config.http.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let cache = Cache::new(redis.clone(), config.cache.clone());
        let invalidations = cache
            .start_invalidation_listener(config.redis.timeout.max(Duration::from_secs(1)))
            .await;
        let draining = Draining::default();
        let router = assemble(db.clone(), redis, cache.clone(), config, draining.clone());
        Ok(Self {
            listener,
            router,
            db,
            cache,
            invalidations,
            serving: Serving {
                config: config.http.clone(),
                peer_addresses: !config.rate_limits.rate_limit_off,
                draining: draining.clone(),
            },
            draining,
        })
    }

    /// The database this instance serves from.
    pub fn db(&self) -> &Db {
        &self.db
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

    /// Serves until `shutdown` completes; then answers `/readyz` with 503 and asks clients
    /// to close their connections (`Connection: close`) at once, keeps serving for the
    /// shutdown delay (while balancers take it out), stops accepting and drains the requests
    /// in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (draining, delay) = (self.draining.clone(), self.serving.config.shutdown_delay);
        let shutdown = async move {
            shutdown.await;
            draining.start();
            tracing::info!(?delay, "draining: not ready; serving until the delay ends");
            tokio::time::sleep(delay).await;
        };
        let purge = tokio::spawn(purge_idempotency_keys(self.db.clone()));
        // Health and lag of the read replicas, if any are configured.
        let replicas = tokio::spawn(self.db.clone().watch_replicas(REPLICA_CHECK));
        // What every process on the primary claims of its connections, as they come and go.
        let budget = tokio::spawn(self.db.clone().watch_budget());
        let served =
            platform::http::serve(self.listener, self.router, self.serving, shutdown).await;
        purge.abort();
        replicas.abort();
        budget.abort();
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
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "idempotency key purge failed"),
        }
    }
}
