//! Redis: one multiplexed, self-reconnecting connection per instance, and the key prefix that
//! lets deployments and tests share a server. With Sentinels configured, the connection
//! follows the master through a failover.

use std::{
    future::Future,
    sync::{Arc, RwLock, Weak},
    time::Duration,
};

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    sentinel::{SentinelClient, SentinelServerType},
};

use crate::{InfraError, breaker::Breaker, config::RedisConfig, metrics::HistogramFamily};

/// A handle on Redis: cheap to clone (one `Arc`; handlers clone their state on every
/// request), every clone shares one connection.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Shared>,
}

struct Shared {
    /// The master's client and connection; replaced when Sentinel names another master.
    current: RwLock<Current>,
    manager_config: ConnectionManagerConfig,
    prefix: String,
    timeout: Duration,
    /// One breaker for every user of the connection (sessions, cache, rate limits): when
    /// Redis is gone it is gone for all of them, and a request that touches all three
    /// should not wait for its timeout three times before each learns it on its own.
    breaker: Breaker,
}

struct Current {
    client: redis::Client,
    conn: ConnectionManager,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// A Redis URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("KEEL_REDIS_URL or KEEL_REDIS_SENTINELS is not a valid Redis URL")]
pub struct RedisConfigError(#[source] redis::RedisError);

/// How often the Sentinels are asked where the master is.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

impl Redis {
    /// Connects lazily: a Redis that is down at start-up makes `/readyz` fail, not the process.
    /// With Sentinels, a task asks them for the master from then on (it needs a runtime).
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisConfigError> {
        let client = redis::Client::open(config.url.as_str()).map_err(RedisConfigError)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
            .map_err(RedisConfigError)?;
        let redis = Self {
            inner: Arc::new(Shared {
                current: RwLock::new(Current { client, conn }),
                manager_config,
                prefix: config.key_prefix.clone(),
                timeout: config.timeout,
                breaker: Breaker::new("redis", 3, Duration::from_secs(1)),
            }),
        };
        let sentinels: Vec<&str> = config
            .sentinels
            .iter()
            .map(|url| url.trim())
            .filter(|url| !url.is_empty())
            .collect();
        if !sentinels.is_empty() {
            let sentinel = SentinelClient::build(
                sentinels,
                config.master_name.clone(),
                None,
                SentinelServerType::Master,
            )
            .map_err(RedisConfigError)?;
            tokio::spawn(follow_master(Arc::downgrade(&redis.inner), sentinel));
        }
        Ok(redis)
    }

    /// Reads the current master's handles: only what the caller takes is cloned (a
    /// `redis::Client` clone copies its connection info, a `ConnectionManager` clone does not).
    fn with_current<T>(&self, read: impl FnOnce(&Current) -> T) -> T {
        // A writer that panicked left a whole `Current` behind: still usable.
        match self.inner.current.read() {
            Ok(current) => read(&current),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }

    /// The full key for `name`, under this deployment's prefix, in one allocation: callers
    /// pass `format_args!("session:{token}")` rather than a `format!`ed string.
    pub fn key(&self, name: impl std::fmt::Display) -> String {
        use std::fmt::Write as _;
        // Room for every key Keel makes (the longest, a session's, is 72 bytes).
        let mut key = String::with_capacity(self.inner.prefix.len() + 80);
        key.push_str(&self.inner.prefix);
        // Writing to a String cannot fail.
        let _ = write!(key, "{name}");
        key
    }

    /// The circuit breaker every user of this connection asks before a round trip and tells
    /// how it went.
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// A connection to run commands on; clones share one multiplexed connection.
    pub fn conn(&self) -> ConnectionManager {
        self.with_current(|current| current.conn.clone())
    }

    /// A dedicated connection for subscriptions (pub/sub cannot share the multiplexed one).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, InfraError> {
        let client = self.with_current(|current| current.client.clone());
        let connect = client.get_async_pubsub();
        match tokio::time::timeout(self.inner.timeout.max(Duration::from_millis(100)), connect)
            .await
        {
            Ok(result) => Ok(result?),
            Err(elapsed) => Err(InfraError::unavailable("redis", elapsed)),
        }
    }

    /// Runs one Redis round trip under `operation`, recording its time in
    /// `keel_redis_seconds{operation}`: what a request spends waiting for Redis.
    pub async fn timed<T>(operation: &'static str, call: impl Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        static REDIS_SECONDS: HistogramFamily =
            HistogramFamily::new("keel_redis_seconds", "operation");
        let result = call.await;
        REDIS_SECONDS.record(operation, started.elapsed());
        result
    }

    pub async fn ping(&self) -> Result<(), InfraError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}

/// Asks the Sentinels where the master is, every [`FOLLOW_EVERY`], for as long as the handle
/// lives; when they name another one, later commands go there (`keel_redis_master_changes_total`).
async fn follow_master(shared: Weak<Shared>, mut sentinel: SentinelClient) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let master = match sentinel.async_get_client().await {
            Ok(master) => master,
            Err(e) => {
                tracing::debug!(error = %e, "no master from the Sentinels yet");
                continue;
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let address = master.get_connection_info().addr().to_string();
        let known = shared
            .current
            .read()
            .map(|current| current.client.get_connection_info().addr().to_string())
            .unwrap_or_default();
        if address == known {
            continue;
        }
        match ConnectionManager::new_lazy_with_config(master.clone(), shared.manager_config.clone())
        {
            Ok(conn) => {
                tracing::warn!(from = %known, to = %address, "redis master moved; following it");
                metrics::counter!("keel_redis_master_changes_total").increment(1);
                if let Ok(mut current) = shared.current.write() {
                    *current = Current {
                        client: master,
                        conn,
                    };
                }
                // The failures were the old master's: the new one is tried at once rather
                // than after the cool-down.
                shared.breaker.record_success();
            }
            Err(e) => {
                tracing::warn!(error = %e, to = %address, "cannot connect to the new redis master")
            }
        }
    }
}
