//! Sessions: opaque random tokens kept in Redis with a sliding TTL.
//!
//! Redis holds only the SHA-256 of each token, so a copy of Redis grants no access. A login
//! always issues a new token (no fixation); a logout deletes it.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use platform::{InfraError, redis::Redis};
use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use crate::{Role, UserId};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: UserId,
    pub role: Role,
}

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
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        self.redis.key(&format!("session:{hex}"))
    }

    /// Starts a session for `user_id`; returns its token.
    pub async fn create(&self, user_id: UserId, role: Role) -> Result<String, InfraError> {
        let token = URL_SAFE_NO_PAD.encode(generate_token_bytes());
        let value = format!("{user_id} {}", role.as_str());
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

    /// Ends the session `token` opens.
    pub async fn revoke(&self, token: &str) -> Result<(), InfraError> {
        let mut conn = self.redis.conn();
        let _: () = Redis::timed("session_revoke", conn.del(self.key(token))).await?;
        Ok(())
    }
}

/// 32 bytes from the operating system's CSPRNG: a token's entropy.
fn generate_token_bytes() -> [u8; 32] {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

fn parse_value(value: &str) -> Option<Session> {
    let (id, role) = value.split_once(' ')?;
    Some(Session {
        user_id: id.parse().ok()?,
        role: Role::parse(role)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_round_trip() {
        assert_eq!(
            parse_value("42 admin"),
            Some(Session {
                user_id: 42,
                role: Role::Admin
            })
        );
        assert_eq!(parse_value("42"), None);
        assert_eq!(parse_value("x customer"), None);
        assert_eq!(parse_value("42 root"), None);
    }
}
