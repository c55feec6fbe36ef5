//! GCRA in one Lua script: read the key's theoretical arrival time (TAT), decide, store the
//! new TAT, all atomically and on Redis's clock, so every instance shares one budget.

use std::{sync::LazyLock, time::Duration};

use super::{Decision, Policy};
use crate::{InfraError, redis::Redis};

/// KEYS[1]: the key. ARGV: limit, window in ms. Returns {allowed, remaining, retry_after_ms,
/// reset_after_ms}. Times are milliseconds on Redis's clock (`TIME`).
const GCRA: &str = r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = window / limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
-- At least 1 ms: with a quota whose interval is below a double's resolution at this
-- magnitude (e.g. 10^9 per minute), new_tat rounds to now, and PX 0 is an error.
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return {1, math.floor((now - allow_at) / interval), 0, math.ceil(new_tat - now)}
";

/// Hashed once: `Script` sends `EVALSHA`, and loads the script only when Redis lacks it.
static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA));

pub(super) async fn check(
    redis: &Redis,
    policy: &Policy,
    key: &str,
) -> Result<Decision, InfraError> {
    let mut conn = redis.conn();
    let mut invocation = SCRIPT.key(key);
    invocation
        .arg(policy.quota.limit)
        .arg(policy.quota.window.as_millis() as u64);
    let (allowed, remaining, retry_ms, reset_ms): (i64, i64, i64, i64) =
        Redis::timed("ratelimit", invocation.invoke_async(&mut conn)).await?;
    Ok(Decision {
        allowed: allowed == 1,
        limit: policy.quota.limit,
        remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
        reset_after: Duration::from_millis(reset_ms.max(0) as u64),
        retry_after: Duration::from_millis(retry_ms.max(0) as u64),
    })
}
