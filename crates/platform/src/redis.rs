//! Redis: one multiplexed, self-reconnecting connection per instance, and the key prefix that
//! lets deployments and tests share a server.

use std::{future::Future, sync::Arc, time::Duration};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::{InfraError, config::RedisConfig, metrics::HistogramFamily};

/// A handle on Redis: cheap to clone (one `Arc`; handlers clone their state on every
/// request), every clone shares one connection.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Shared>,
}

struct Shared {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
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
#[error("KEEL_REDIS_URL is not a valid Redis URL")]
pub struct RedisConfigError(#[source] redis::RedisError);

impl Redis {
    /// Connects lazily: a Redis that is down at start-up makes `/readyz` fail, not the process.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisConfigError> {
        let client = redis::Client::open(config.url.as_str()).map_err(RedisConfigError)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(RedisConfigError)?;
        Ok(Self {
            inner: Arc::new(Shared {
                client,
                conn,
                prefix: config.key_prefix.clone(),
                timeout: config.timeout,
            }),
        })
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

    /// A connection to run commands on; clones share one multiplexed connection.
    pub fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// A dedicated connection for subscriptions (pub/sub cannot share the multiplexed one).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, InfraError> {
        let connect = self.inner.client.get_async_pubsub();
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
