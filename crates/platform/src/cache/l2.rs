//! The Redis layer: reads, fenced writes, and the fence-and-publish of an invalidation.
//!
//! An entry is one byte of kind, the source position it was loaded at (8 bytes, big endian),
//! then the value: `V<as_of><json>` a value, `N<as_of>` "not found", `f` a fence. (Entries of
//! the earlier format, `v`/`n` without a position, read as misses.) An invalidation writes a fence for [`FENCE`]; a load that read the source before
//! the write cannot put its stale value over the fence, because the set is a script that
//! leaves fences alone. Reads treat a fence as a miss.

use std::{sync::LazyLock, time::Duration};

use bytes::Bytes;
use redis::AsyncCommands;

use super::{Cache, Entry, jitter};
use crate::{db::Lsn, redis::Redis};

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
        self.inner.redis.key(format_args!("cache:{key}"))
    }

    pub(super) fn channel(&self) -> String {
        self.inner.redis.key("cache-invalidations")
    }

    /// `Some(entry)` on a hit; `None` on a miss, a fence, or Redis failing.
    pub(super) async fn l2_get(&self, key: &str) -> Option<Entry> {
        let inner = &self.inner;
        if !inner.redis.breaker().allow() {
            inner.stats.count_l2_error();
            return None;
        }
        let mut conn = inner.redis.conn();
        let raw: redis::RedisResult<Option<Vec<u8>>> =
            Redis::timed("cache_get", conn.get(self.l2_key(key))).await;
        match raw {
            Ok(raw) => {
                inner.redis.breaker().record_success();
                decode(raw)
            }
            Err(e) => {
                inner.redis.breaker().record_failure();
                inner.stats.count_l2_error();
                tracing::debug!(error = %e, "cache read from redis failed");
                None
            }
        }
    }

    pub(super) async fn l2_set(&self, key: &str, entry: &Entry) {
        let inner = &self.inner;
        if !inner.redis.breaker().allow() {
            return;
        }
        let ttl = match entry.value {
            Some(_) => jitter(inner.config.l2_ttl, key),
            None => inner.config.negative_ttl,
        };
        let encoded = encode(entry);
        let mut conn = inner.redis.conn();
        let mut invocation = SET_SCRIPT.key(self.l2_key(key));
        invocation.arg(encoded).arg(ttl.as_millis() as u64);
        let result: redis::RedisResult<i32> =
            Redis::timed("cache_set", invocation.invoke_async(&mut conn)).await;
        match result {
            Ok(_) => inner.redis.breaker().record_success(),
            Err(e) => {
                inner.redis.breaker().record_failure();
                inner.stats.count_l2_error();
                tracing::debug!(error = %e, "cache write to redis failed");
            }
        }
    }

    /// Fences `keys` in Redis and tells every instance to drop them from L1, in one round trip.
    pub(super) async fn l2_fence_and_publish(&self, keys: &[String], written_at: Lsn) {
        let inner = &self.inner;
        if keys.is_empty() || !inner.redis.breaker().allow() {
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
        // The write's token on the first line, then the keys.
        pipe.cmd("PUBLISH")
            .arg(self.channel())
            .arg(format!("{}\n{}", written_at.0, keys.join("\n")))
            .ignore();
        let mut conn = inner.redis.conn();
        let result: redis::RedisResult<()> =
            Redis::timed("cache_invalidate", pipe.query_async(&mut conn)).await;
        match result {
            Ok(()) => inner.redis.breaker().record_success(),
            Err(e) => {
                inner.redis.breaker().record_failure();
                inner.stats.count_l2_error();
                tracing::warn!(error = %e, "cache invalidation could not reach redis; other instances' L1 expires on its own");
            }
        }
    }
}

fn encode(entry: &Entry) -> Vec<u8> {
    let value = entry.value.as_deref().unwrap_or_default();
    let mut encoded = Vec::with_capacity(9 + value.len());
    encoded.push(if entry.value.is_some() { b'V' } else { b'N' });
    encoded.extend_from_slice(&entry.as_of.0.to_be_bytes());
    encoded.extend_from_slice(value);
    encoded
}

fn decode(raw: Option<Vec<u8>>) -> Option<Entry> {
    let raw = raw?;
    let kind = *raw.first()?;
    let as_of = Lsn(u64::from_be_bytes(raw.get(1..9)?.try_into().ok()?));
    let value = match kind {
        b'V' => Some(Bytes::from(raw).slice(9..)),
        b'N' => None,
        _ => return None,
    };
    Some(Entry {
        value,
        as_of,
        racing_write: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_their_position() {
        for value in [Some(Bytes::from_static(b"{}")), None] {
            let entry = Entry {
                value: value.clone(),
                as_of: Lsn(0x16_B374_D848),
                racing_write: false,
            };
            let back = decode(Some(encode(&entry))).unwrap();
            assert_eq!((back.value, back.as_of), (value, entry.as_of));
        }
    }

    #[test]
    fn fences_and_garbage_are_misses() {
        assert!(decode(Some(b"f".to_vec())).is_none(), "a fence is a miss");
        assert!(
            decode(Some(b"V{}".to_vec())).is_none(),
            "too short for a position"
        );
        assert!(
            decode(Some(b"v{\"id\":12345}".to_vec())).is_none(),
            "the old format"
        );
        assert!(decode(None).is_none());
    }
}
