//! Sessions: opaque random tokens kept in Redis with a sliding TTL.
//!
//! Redis holds only the SHA-256 of each token, so a copy of Redis grants no access. A login
//! always issues a new token (no fixation); a logout deletes it.
//!
//! A session also remembers the consistency token of the newest write made with it (stored
//! as `user role lsn name`, the LSN in decimal or `-` before the first write), so that its
//! reads see that write wherever they are served — read-your-writes across replicas,
//! instances and browser tabs. It carries the user's display name too, so that an order
//! records its customer's name without asking the accounts module.
//!
//! While Redis cannot answer (a failover, a restart), a session this instance checked within
//! the outage grace is still honoured ([`Recent`]): signed-in users ride out the seconds a
//! Sentinel takes to promote a replica. Nothing else is decided without Redis.

use std::{
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use contract::UserId;
use platform::{InfraError, db::Lsn, redis::Redis};
use redis::AsyncCommands;
use sha2::{Digest as _, Sha256};

use crate::Role;

#[derive(Debug, Clone, clap::Args)]
pub struct SessionConfig {
    /// How long a session lives without use; each use extends it.
    #[arg(long, env = "KEEL_SESSION_TTL", default_value = "24h", value_parser = platform::config::parse_duration)]
    pub session_ttl: Duration,
    /// While Redis is unreachable, how long after this instance last checked a session it is
    /// still honoured (0 turns this off). A session revoked elsewhere just before the outage
    /// opens for at most this long, on the instances that had checked it.
    #[arg(long, env = "KEEL_SESSION_OUTAGE_GRACE", default_value = "60s", value_parser = platform::config::parse_duration)]
    pub session_outage_grace: Duration,
}

/// The session store.
#[derive(Clone, Debug)]
pub struct Sessions {
    redis: Redis,
    ttl: Duration,
    recent: Arc<Recent>,
}

/// The sessions this instance found in Redis lately, by the SHA-256 of their token, with when:
/// the answer while Redis is away (Redis's breaker, shared with the cache and the rate
/// limiter, stops asking it after a few failures in a row, so that during an outage a
/// request does not wait for Redis's timeout first).
#[derive(Debug)]
struct Recent {
    map: quick_cache::sync::Cache<TokenDigest, (Session, Instant)>,
    grace: Duration,
}

/// Sessions one instance remembers for an outage: beyond it, the least used are forgotten.
const RECENT_SESSIONS: usize = 100_000;

impl Recent {
    /// Remembers `session` as checked now. Most requests find it checked lately; refreshing
    /// only past a tenth of the grace keeps writes off the hot path.
    fn checked(&self, digest: TokenDigest, session: &Session) {
        let fresh = self
            .map
            .get(&digest)
            .is_some_and(|(known, at)| known == *session && at.elapsed() < self.grace / 10);
        if !fresh {
            self.map.insert(digest, (session.clone(), Instant::now()));
        }
    }

    /// The session, if it was checked within the grace.
    fn during_outage(&self, digest: &TokenDigest) -> Option<Session> {
        self.map
            .get(digest)
            .filter(|(_, at)| at.elapsed() < self.grace)
            .map(|(session, _)| session)
    }
}

/// Who a valid session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: UserId,
    pub role: Role,
    /// The consistency token of the newest write made in this session.
    pub seen: Option<Lsn>,
    /// The user's display name (absent in sessions stored before it was kept).
    pub name: Option<String>,
}

/// Raises the session's remembered token, never lowers it (two writes may answer out of
/// order), and keeps its TTL and the rest of the value. Lua numbers are doubles: exact for
/// LSNs below 2^53 (8 PiB of WAL).
const REMEMBER_WRITE: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local user, role, seen, name = string.match(value, '^(%S+) (%S+) ?([%d-]*) ?(.*)$')
if not user then return 0 end
if seen ~= '' and seen ~= '-' and tonumber(seen) >= tonumber(ARGV[1]) then return 1 end
local rest = ''
if name ~= '' then rest = ' ' .. name end
redis.call('SET', KEYS[1], user .. ' ' .. role .. ' ' .. ARGV[1] .. rest, 'KEEPTTL')
return 1
";

static REMEMBER_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(REMEMBER_WRITE));

impl Sessions {
    pub fn new(redis: Redis, config: &SessionConfig) -> Self {
        Self {
            redis,
            ttl: config.session_ttl,
            recent: Arc::new(Recent {
                map: quick_cache::sync::Cache::new(RECENT_SESSIONS),
                grace: config.session_outage_grace,
            }),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(&self, token: &str) -> String {
        self.key_of(&digest(token))
    }

    fn key_of(&self, digest: &TokenDigest) -> String {
        self.redis.key(format_args!("session:{digest:x}"))
    }

    /// Starts a session for `user_id`, who goes by `name`; returns its token.
    pub async fn create(
        &self,
        user_id: UserId,
        role: Role,
        name: &str,
    ) -> Result<String, InfraError> {
        let token = URL_SAFE_NO_PAD.encode(generate_token_bytes()?);
        let value = format!("{user_id} {} - {name}", role.as_str());
        let mut conn = self.redis.conn();
        let _: () = Redis::timed(
            "session_create",
            conn.set_ex(self.key(&token), value, self.ttl.as_secs()),
        )
        .await?;
        Ok(token)
    }

    /// The session `token` opens, extending its life; `None` if it is unknown or expired.
    pub async fn find(&self, token: &str) -> Result<Option<Session>, InfraError> {
        if token.len() != 43 {
            return Ok(None);
        }
        let digest = digest(token);
        let found = match self.redis.breaker().allow() {
            true => {
                let mut conn = self.redis.conn();
                let found: Result<Option<String>, InfraError> = Redis::timed(
                    "session_find",
                    conn.get_ex(self.key_of(&digest), redis::Expiry::EX(self.ttl.as_secs())),
                )
                .await
                .map_err(InfraError::from);
                match &found {
                    Err(InfraError::Unavailable { .. }) => self.redis.breaker().record_failure(),
                    _ => self.redis.breaker().record_success(),
                }
                found
            }
            false => Err(InfraError::unavailable(
                "redis",
                "the sessions' circuit is open",
            )),
        };
        match found {
            Ok(value) => {
                let session = value.as_deref().and_then(parse_value);
                match &session {
                    Some(session) => self.recent.checked(digest, session),
                    None => {
                        self.recent.map.remove(&digest);
                    }
                }
                Ok(session)
            }
            Err(e @ InfraError::Unavailable { .. }) => match self.recent.during_outage(&digest) {
                Some(session) => {
                    metrics::counter!("keel_sessions_outage_served_total").increment(1);
                    Ok(Some(session))
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Remembers that the session `token` opens made a write at `written_at` (a no-op for an
    /// unknown session).
    pub async fn remember_write(&self, token: &str, written_at: Lsn) -> Result<(), InfraError> {
        let mut conn = self.redis.conn();
        let mut invocation = REMEMBER_SCRIPT.key(self.key(token));
        invocation.arg(written_at.0);
        let _: i32 = Redis::timed("session_remember", invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Ends the session `token` opens.
    pub async fn revoke(&self, token: &str) -> Result<(), InfraError> {
        let digest = digest(token);
        self.recent.map.remove(&digest);
        let mut conn = self.redis.conn();
        let _: () = Redis::timed("session_revoke", conn.del(self.key_of(&digest))).await?;
        Ok(())
    }
}

/// A token as the store knows it.
type TokenDigest = sha2::digest::Output<Sha256>;

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes())
}

/// 32 bytes from the operating system's CSPRNG: a token's entropy.
fn generate_token_bytes() -> Result<[u8; 32], InfraError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(InfraError::unexpected)?;
    Ok(bytes)
}

/// `user role [lsn|-] [name]`: values stored before the name was kept have no name, and
/// before the first write no LSN.
fn parse_value(value: &str) -> Option<Session> {
    let mut parts = value.splitn(4, ' ');
    let (id, role, seen, name) = (parts.next()?, parts.next()?, parts.next(), parts.next());
    Some(Session {
        user_id: UserId::new(id.parse().ok()?),
        role: Role::parse(role)?,
        seen: match seen {
            None | Some("-") => None,
            Some(lsn) => Some(Lsn(lsn.parse().ok()?)),
        },
        name: name.filter(|n| !n.is_empty()).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_round_trip() {
        let session = |role, seen, name: Option<&str>| {
            Some(Session {
                user_id: UserId::new(42),
                role,
                seen,
                name: name.map(str::to_owned),
            })
        };
        assert_eq!(parse_value("42 admin"), session(Role::Admin, None, None));
        assert_eq!(
            parse_value("42 customer 97189352"),
            session(Role::Customer, Some(Lsn(97_189_352)), None)
        );
        assert_eq!(
            parse_value("42 customer - Ada Lovelace"),
            session(Role::Customer, None, Some("Ada Lovelace"))
        );
        assert_eq!(
            parse_value("42 customer 97189352 Ada Lovelace"),
            session(Role::Customer, Some(Lsn(97_189_352)), Some("Ada Lovelace"))
        );
        assert_eq!(parse_value("42 customer 0/5CB0FE8"), None);
        assert_eq!(parse_value("42"), None);
        assert_eq!(parse_value("x customer"), None);
        assert_eq!(parse_value("42 root"), None);
    }

    #[test]
    fn an_outage_is_ridden_out_only_within_the_grace() {
        let recent = |grace| Recent {
            map: quick_cache::sync::Cache::new(10),
            grace,
        };
        let session = parse_value("42 customer").unwrap();
        let (known, unknown) = (digest("known"), digest("unknown"));

        let within = recent(Duration::from_secs(60));
        within.checked(known, &session);
        assert_eq!(within.during_outage(&known), Some(session.clone()));
        assert_eq!(within.during_outage(&unknown), None);

        let past = recent(Duration::from_millis(20));
        past.checked(known, &session);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(past.during_outage(&known), None, "checked too long ago");

        let off = recent(Duration::ZERO);
        off.checked(known, &session);
        assert_eq!(off.during_outage(&known), None, "a grace of 0 turns it off");
    }

    // A runtime, because the Redis handle spawns its (lazy) connection manager on one.
    #[tokio::test]
    async fn a_token_is_stored_under_its_sha256_in_hex() {
        let redis = platform::redis::Redis::connect(&platform::config::RedisConfig {
            sentinels: Vec::new(),
            master_name: "keel".into(),
            url: "redis://127.0.0.1:1".into(),
            key_prefix: "keel:".into(),
            timeout: Duration::from_millis(10),
        })
        .unwrap();
        let sessions = Sessions::new(
            redis,
            &SessionConfig {
                session_ttl: Duration::from_secs(1),
                session_outage_grace: Duration::from_secs(60),
            },
        );
        assert_eq!(
            sessions.key("abc"),
            "keel:session:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
