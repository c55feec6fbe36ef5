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

use std::{sync::LazyLock, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use contract::UserId;
use platform::{InfraError, db::Lsn, redis::Redis};
use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::Role;

#[derive(Debug, Clone, clap::Args)]
pub struct SessionConfig {
    /// How long a session lives without use; each use extends it.
    #[arg(long, env = "KEEL_SESSION_TTL", default_value = "24h", value_parser = platform::config::parse_duration)]
    pub session_ttl: Duration,
}

/// The session store.
#[derive(Clone, Debug)]
pub struct Sessions {
    redis: Redis,
    ttl: Duration,
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
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(&self, token: &str) -> String {
        let digest = Sha256::digest(token.as_bytes());
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
        let mut conn = self.redis.conn();
        let value: Option<String> = Redis::timed(
            "session_find",
            conn.get_ex(self.key(token), redis::Expiry::EX(self.ttl.as_secs())),
        )
        .await?;
        Ok(value.as_deref().and_then(parse_value))
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
        let mut conn = self.redis.conn();
        let _: () = Redis::timed("session_revoke", conn.del(self.key(token))).await?;
        Ok(())
    }
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
            },
        );
        assert_eq!(
            sessions.key("abc"),
            "keel:session:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
