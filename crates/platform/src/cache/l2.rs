//! The Redis layer: reads, fenced writes, and the fence-and-publish of an invalidation.
//!
//! An entry is one byte of kind, then the value: `v<json>` a value, `n` "not found", `f` a
//! fence. An invalidation writes a fence for [`FENCE`]; a load that read the source before
//! the write cannot put its stale value over the fence, because the set is a script that
//! leaves fences alone. Reads treat a fence as a miss.

use std::{sync::LazyLock, time::Duration};

use bytes::Bytes;
use redis::AsyncCommands;

use super::{Cache, jitter};
use crate::redis::Redis;

/// How long a key stays fenced after a write: longer than any load can take (the default
/// statement timeout is 5 s).
const FENCE: Duration = Duration::from_secs(10);

const SET_UNLESS_FENCED: &str = r"
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 1) == 'f' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Hashed once: `Script` sends `EVALSHA`, and loads the script only when Redis lacks it.
static SET_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(SET_UNLESS_FENCED));

impl Cache {
    fn l2_key(&self, key: &str) -> String {
        self.inner.redis.key(&format!("cache:{key}"))
    }

    pub(super) fn channel(&self) -> String {
        self.inner.redis.key("cache-invalidations")
    }

    /// `Some(entry)` on a hit; `None` on a miss, a fence, or Redis failing.
    pub(super) async fn l2_get(&self, key: &str) -> Option<Option<Bytes>> {
        let inner = &self.inner;
        if !inner.breaker.allow() {
            inner.stats.count_l2_error();
            return None;
        }
        let mut conn = inner.redis.conn();
        let raw: redis::RedisResult<Option<Vec<u8>>> =
            Redis::timed("cache_get", conn.get(self.l2_key(key))).await;
        match raw {
            Ok(raw) => {
                inner.breaker.record_success();
                decode(raw)
            }
            Err(e) => {
                inner.breaker.record_failure();
                inner.stats.count_l2_error();
                tracing::debug!(error = %e, "cache read from redis failed");
                None
            }
        }
    }

    pub(super) async fn l2_set(&self, key: &str, value: Option<&Bytes>) {
        let inner = &self.inner;
        if !inner.breaker.allow() {
            return;
        }
        let (encoded, ttl) = match value {
            Some(bytes) => {
                let mut encoded = Vec::with_capacity(bytes.len() + 1);
                encoded.push(b'v');
                encoded.extend_from_slice(bytes);
                (encoded, jitter(inner.config.l2_ttl, key))
            }
            None => (vec![b'n'], inner.config.negative_ttl),
        };
        let mut conn = inner.redis.conn();
        let mut invocation = SET_SCRIPT.key(self.l2_key(key));
        invocation.arg(encoded).arg(ttl.as_millis() as u64);
        let result: redis::RedisResult<i32> =
            Redis::timed("cache_set", invocation.invoke_async(&mut conn)).await;
        match result {
            Ok(_) => inner.breaker.record_success(),
            Err(e) => {
                inner.breaker.record_failure();
                inner.stats.count_l2_error();
                tracing::debug!(error = %e, "cache write to redis failed");
            }
        }
    }

    /// Fences `keys` in Redis and tells every instance to drop them from L1, in one round trip.
    pub(super) async fn l2_fence_and_publish(&self, keys: &[String]) {
        let inner = &self.inner;
        if keys.is_empty() || !inner.breaker.allow() {
            return;
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("SET")
                .arg(self.l2_key(key))
                .arg("f")
                .arg("PX")
                .arg(FENCE.as_millis() as u64)
                .ignore();
        }
        pipe.cmd("PUBLISH")
            .arg(self.channel())
            .arg(keys.join("\n"))
            .ignore();
        let mut conn = inner.redis.conn();
        let result: redis::RedisResult<()> =
            Redis::timed("cache_invalidate", pipe.query_async(&mut conn)).await;
        match result {
            Ok(()) => inner.breaker.record_success(),
            Err(e) => {
                inner.breaker.record_failure();
                inner.stats.count_l2_error();
                tracing::warn!(error = %e, "cache invalidation could not reach redis; other instances' L1 expires on its own");
            }
        }
    }
}

fn decode(raw: Option<Vec<u8>>) -> Option<Option<Bytes>> {
    let raw = raw?;
    match raw.first() {
        Some(b'v') => Some(Some(Bytes::from(raw).slice(1..))),
        Some(b'n') => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_by_their_kind_byte() {
        assert_eq!(
            decode(Some(b"v{}".to_vec())),
            Some(Some(Bytes::from_static(b"{}")))
        );
        assert_eq!(decode(Some(b"n".to_vec())), Some(None));
        assert_eq!(decode(Some(b"f".to_vec())), None, "a fence is a miss");
        assert_eq!(decode(None), None);
    }
}
