//! The layered cache: L1 in-process (moka), L2 Redis, then the source.
//!
//! - Values are stored pre-serialized (`Bytes`): a hit serves bytes without touching the
//!   database or encoding JSON again.
//! - Concurrent misses of one key are coalesced into one load (stampede protection), and
//!   "not found" is cached briefly (negative caching) so unknown ids cannot hammer the source.
//! - TTLs carry ±10 % jitter so keys written together do not expire together.
//! - [`Cache::invalidate`] drops the key from this instance's L1, fences it in Redis and
//!   publishes it; every instance's listener drops it from its own L1 ([`invalidation`]).
//! - Redis down or slow costs at most one short timeout: a breaker then skips L2 and reads
//!   go to L1 and the source until Redis answers again.

mod config;
mod invalidation;
mod l2;
mod stats;

pub use config::{CacheConfig, CacheMode};
pub use stats::CacheStats;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use moka::{future::Cache as Moka, policy::Expiry};

use crate::{InfraError, breaker::Breaker, redis::Redis};

/// A handle on the layered cache: cheap to clone, clones share everything.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("mode", &self.inner.config.mode)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: CacheConfig,
    l1: Moka<String, Entry>,
    redis: Redis,
    breaker: Breaker,
    stats: CacheStats,
    /// Bumped by every invalidation this instance learns of. A load that saw it change was
    /// racing a write, so its result is served but not cached.
    epoch: AtomicU64,
}

/// What a layer holds for a key: the value's bytes, or that there is no such value.
#[derive(Clone, Debug)]
struct Entry {
    value: Option<Bytes>,
    /// Loaded while an invalidation arrived: expires at once instead of being kept.
    racing_write: bool,
}

struct EntryExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(&self, key: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(match (&entry.value, entry.racing_write) {
            (_, true) => Duration::ZERO,
            (Some(_), false) => jitter(self.ttl, key),
            (None, false) => self.negative_ttl,
        })
    }
}

impl Cache {
    pub fn new(redis: Redis, config: CacheConfig) -> Self {
        let l1 = Moka::builder()
            .max_capacity(config.l1_capacity)
            .expire_after(EntryExpiry {
                ttl: config.l1_ttl,
                negative_ttl: config.negative_ttl,
            })
            .build();
        Self {
            inner: Arc::new(Inner {
                breaker: Breaker::new("redis_cache", 3, Duration::from_secs(1)),
                config,
                l1,
                redis,
                stats: CacheStats::default(),
                epoch: AtomicU64::new(0),
            }),
        }
    }

    pub fn stats(&self) -> &CacheStats {
        &self.inner.stats
    }

    pub fn mode(&self) -> CacheMode {
        self.inner.config.mode
    }

    /// The value of `key` from the nearest layer that has it, or from `load`; `None` when
    /// `load` found nothing (and that too is cached, briefly).
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> Result<Option<Bytes>, InfraError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, InfraError>>,
    {
        let inner = &self.inner;
        match inner.config.mode {
            CacheMode::Off => {
                inner.stats.count_load();
                load().await
            }
            CacheMode::Redis => Ok(self.load_through_l2(key, load).await?.value),
            CacheMode::Layered => {
                if let Some(entry) = inner.l1.get(key).await {
                    inner.stats.count_l1_hit();
                    return Ok(entry.value);
                }
                inner
                    .l1
                    .try_get_with(key.to_owned(), self.load_through_l2(key, load))
                    .await
                    .map(|entry| entry.value)
                    .map_err(shared_error)
            }
        }
    }

    /// L2, then the source; fills L2 unless a write raced the load.
    async fn load_through_l2<F, Fut>(&self, key: &str, load: F) -> Result<Entry, InfraError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, InfraError>>,
    {
        let inner = &self.inner;
        let epoch = inner.epoch.load(Ordering::Acquire);
        if let Some(value) = self.l2_get(key).await {
            inner.stats.count_l2_hit();
            return Ok(Entry {
                value,
                racing_write: false,
            });
        }
        inner.stats.count_load();
        let value = load().await?;
        let racing_write = inner.epoch.load(Ordering::Acquire) != epoch;
        if !racing_write {
            self.l2_set(key, value.as_ref()).await;
        }
        Ok(Entry {
            value,
            racing_write,
        })
    }

    /// Drops `keys` everywhere: this L1 now, L2 and every other instance's L1 through Redis.
    /// A write has already committed when this runs, so a failure is logged, not returned:
    /// the other instances' L1 then expires within `l1_ttl`.
    pub async fn invalidate(&self, keys: &[String]) {
        let inner = &self.inner;
        inner.epoch.fetch_add(1, Ordering::AcqRel);
        for key in keys {
            inner.l1.invalidate(key).await;
        }
        inner.stats.count_invalidations(keys.len());
        if inner.config.mode != CacheMode::Off {
            self.l2_fence_and_publish(keys).await;
        }
    }

    /// Forgets everything this instance holds in L1 (after missed invalidations).
    fn clear_l1(&self) {
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        self.inner.l1.invalidate_all();
    }

    async fn invalidate_l1(&self, key: &str) {
        self.inner.epoch.fetch_add(1, Ordering::AcqRel);
        self.inner.l1.invalidate(key).await;
    }
}

/// `d` ± 10 %, varying by key and moment, so that entries written together spread out.
fn jitter(d: Duration, key: &str) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let noise = RandomState::new().hash_one((key, Instant::now())) % 2001; // 0..=2000
    d.mul_f64(0.9 + noise as f64 / 10_000.0)
}

/// moka shares one load's error among all the callers it coalesced.
fn shared_error(e: Arc<InfraError>) -> InfraError {
    match &*e {
        InfraError::Unavailable { dependency, .. } => {
            InfraError::unavailable(dependency, SharedError(e.clone()))
        }
        InfraError::Unexpected(_) => InfraError::unexpected(SharedError(e)),
    }
}

#[derive(Debug)]
struct SharedError(Arc<InfraError>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let base = Duration::from_secs(30);
        let spread: Vec<Duration> = (0..200).map(|i| jitter(base, &i.to_string())).collect();
        assert!(
            spread
                .iter()
                .all(|d| *d >= base.mul_f64(0.9) && *d <= base.mul_f64(1.1))
        );
        assert!(spread.iter().any(|d| *d != spread[0]), "jitter varies");
    }
}
