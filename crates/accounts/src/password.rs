//! Passwords: the registration policy, and argon2id hashing with OWASP's parameters
//! (m = 19456 KiB, t = 2, p = 1), run off the async workers because each hash costs
//! tens of milliseconds of CPU.

use std::sync::LazyLock;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use platform::InfraError;
use serde::Deserialize;

/// A new password: 8 to 128 characters (NIST SP 800-63B: length, not composition rules).
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    pub(crate) fn parse(text: String) -> Result<Self, String> {
        match text.chars().count() {
            0..8 => Err("must be at least 8 characters".into()),
            8..=128 => Ok(Self(text)),
            _ => Err("must be at most 128 characters".into()),
        }
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(text)
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string with a fresh salt.
pub(crate) async fn hash(password: String) -> Result<String, InfraError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(InfraError::unexpected)?
}

pub(crate) fn hash_blocking(password: &str) -> Result<String, InfraError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| InfraError::unexpected(e.to_string()))
}

/// A valid hash of a password nobody has, verified when the email is unknown so that a
/// login takes as long whether the account exists or not.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("no account has this password").unwrap_or_default());

/// Checks `password` against `stored` (or the dummy hash when there is no account).
pub(crate) async fn verify(password: String, stored: Option<String>) -> Result<bool, InfraError> {
    tokio::task::spawn_blocking(move || {
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let hash = PasswordHash::new(&stored).map_err(|e| InfraError::unexpected(e.to_string()))?;
        let matches = argon2().verify_password(password.as_bytes(), &hash).is_ok();
        Ok(exists && matches)
    })
    .await
    .map_err(InfraError::unexpected)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_bounds_length() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("long enough".into()).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            verify("correct horse".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(stored)).await.unwrap());
        assert!(!verify("correct horse".into(), None).await.unwrap());
    }
}
