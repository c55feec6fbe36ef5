//! GCRA in one Lua script: read the key's theoretical arrival time (TAT), take as many cells
//! as are asked for and free, store the new TAT, all atomically and on Redis's clock, so
//! every instance shares one budget.

use std::{
    sync::{LazyLock, atomic::Ordering::Relaxed},
    time::Duration,
};

use super::{Decision, Policy};
use crate::{InfraError, redis::Redis};

/// KEYS[1]: the key. ARGV: limit, window in ms, cells wanted. Returns {taken, remaining,
/// retry_after_ms, reset_after_ms}; taken 0 is a refusal. Times are milliseconds on Redis's
/// clock (`TIME`). A cell is free when spending it keeps the TAT within one window of now:
/// with one cell wanted, this is the classic GCRA test (`tat + interval - window <= now`).
const GCRA: &str = r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local interval = window / limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
-- The small epsilon keeps a cell that is free exactly at `now` from being lost to rounding.
local free = math.floor((now + window - tat) / interval + 1e-9)
if free < 1 then
  return {0, 0, math.ceil(tat + interval - window - now), math.ceil(tat - now)}
end
local taken = math.min(want, free)
local new_tat = tat + taken * interval
-- At least 1 ms: with a quota whose interval is below a double's resolution at this
-- magnitude (e.g. 10^9 per minute), new_tat rounds to now, and PX 0 is an error.
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return {taken, free - taken, 0, math.ceil(new_tat - now)}
";

/// Hashed once: `Script` sends `EVALSHA`, and loads the script only when Redis lacks it.
static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA));

/// What a draw got: `taken` cells (0: refused), and the decision for the request that drew.
#[derive(Debug)]
pub(super) struct Draw {
    pub(super) taken: u32,
    pub(super) decision: Decision,
}

/// Takes up to `want` of `key`'s cells.
pub(super) async fn draw(
    redis: &Redis,
    policy: &Policy,
    key: &str,
    want: u32,
) -> Result<Draw, InfraError> {
    policy.draws.increment(1);
    policy.draws_made.fetch_add(1, Relaxed);
    let mut conn = redis.conn();
    let mut invocation = SCRIPT.key(key);
    invocation
        .arg(policy.quota.limit)
        .arg(policy.quota.window.as_millis() as u64)
        .arg(want.max(1));
    let (taken, remaining, retry_ms, reset_ms): (i64, i64, i64, i64) =
        Redis::timed("ratelimit", invocation.invoke_async(&mut conn)).await?;
    Ok(Draw {
        taken: u32::try_from(taken.max(0)).unwrap_or(0),
        decision: Decision {
            allowed: taken > 0,
            limit: policy.quota.limit,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
            reset_after: Duration::from_millis(reset_ms.max(0) as u64),
            retry_after: Duration::from_millis(retry_ms.max(0) as u64),
        },
    })
}
