//! Idempotency keys for unsafe requests, with the semantics of Stripe and of
//! draft-ietf-httpapi-idempotency-key-header:
//!
//! - the same key with the same request replays the stored response;
//! - the same key with another request is a 422;
//! - the same key while the first request still runs is a 409;
//! - a key whose request died with its process (a crash, a kill) is free again for the
//!   retry once that request's deadline has passed, plus a margin (see [`Lease`]);
//! - keys live at least 24 hours, then expire.
//!
//! The response is stored by [`Pending::complete`] inside the caller's transaction, so the
//! effect and its recorded response commit together or not at all.

use std::time::Duration;

use crate::db::Client;
use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;

use crate::{
    InfraError,
    http::{Problem, problems},
};

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How long a claim without a response holds its key. A request's handler is dropped at its
/// deadline (the edge's request timeout), and with it the transaction that would have stored
/// the response, so a claim older than the deadline belongs to a request that can no longer
/// commit: its process died (or is about to drop it). The margin covers the time between
/// the request's arrival, where its deadline starts, and its claim, which is later.
#[derive(Debug, Clone, Copy)]
pub struct Lease(Duration);

impl Lease {
    /// What the edge gives a request after its deadline before a claim is taken over.
    pub const MARGIN: Duration = Duration::from_secs(2);

    /// The lease of requests that are dropped at `request_timeout`.
    pub fn for_requests_of(request_timeout: Duration) -> Self {
        Self(request_timeout + Self::MARGIN)
    }

    pub fn duration(self) -> Duration {
        self.0
    }
}

/// The value of an `Idempotency-Key` header: 1 to 255 visible ASCII characters, as sent
/// (a client that quotes its keys, as structured fields do, quotes them every time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// The `Idempotency-Key` request header, as the API document shows it.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Replays the first response for the same key and body, for 24 hours.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$")]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}

impl IdempotencyKey {
    pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");

    /// Reads the header, if the request has one.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, Problem> {
        let Some(value) = headers.get(&Self::HEADER) else {
            return Ok(None);
        };
        let invalid = || {
            Problem::new(problems::INVALID_IDEMPOTENCY_KEY)
                .detail("Idempotency-Key must be 1 to 255 visible ASCII characters")
                .field(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )
        };
        let text = value.to_str().map_err(|_| invalid())?;
        let text = text.trim();
        if text.is_empty() || text.len() > 255 || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid());
        }
        Ok(Some(Self(text.to_owned())))
    }
}

/// What a claim on a key found.
#[derive(Debug)]
pub enum Claim {
    /// The key is new (or expired): run the request, then `complete` or `release`.
    Fresh(Pending),
    /// The key was used for this very request before: send this again.
    Replay(StoredResponse),
}

/// A key this request holds until it completes or releases it.
#[derive(Debug)]
pub struct Pending {
    scope: String,
    key: String,
}

/// A response recorded for a key.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("the idempotency key was used with a different request")]
    Mismatch,
    #[error("a request with this idempotency key is still in progress")]
    InFlight,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

crate::infra_errors!(IdempotencyError);

impl From<IdempotencyError> for Problem {
    fn from(e: IdempotencyError) -> Self {
        match e {
            IdempotencyError::Mismatch => Problem::new(problems::IDEMPOTENCY_KEY_REUSED)
                .detail("this Idempotency-Key was sent before with another body; use a new key")
                .field("Idempotency-Key", "already used for a different request"),
            IdempotencyError::InFlight => Problem::new(problems::IDEMPOTENCY_KEY_IN_FLIGHT)
                .detail("wait for the first request to finish, then retry to get its response")
                .retry_after(1),
            IdempotencyError::Infra(e) => e.into(),
        }
    }
}

/// The fingerprint of a request: its operation and its canonical JSON, so that key order and
/// white space do not make two equal requests differ.
pub fn fingerprint(operation: &str, request: &impl Serialize) -> Result<Vec<u8>, InfraError> {
    let canonical: serde_json::Value =
        serde_json::to_value(request).map_err(InfraError::unexpected)?;
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update([0]);
    hasher.update(canonical.to_string().as_bytes());
    Ok(hasher.finalize().to_vec())
}

/// Inserts the claim, or takes over an expired or abandoned one; returns a row if claimed.
const CLAIM: &str =
    "INSERT INTO platform.idempotency_keys AS k (scope, key, request_hash, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             ON CONFLICT (scope, key) DO UPDATE
                SET request_hash = EXCLUDED.request_hash, locked_at = now(),
                    expires_at = EXCLUDED.expires_at, response_status = NULL, response_body = NULL,
                    response_location = NULL
              WHERE k.expires_at < now()
                 OR (k.response_status IS NULL AND k.request_hash = EXCLUDED.request_hash
                     AND k.locked_at < now() - make_interval(secs => $5))
             RETURNING 1";

/// Claims `key` for `scope` (e.g. `user:42`) and a request with this `fingerprint`; a claim
/// without a response older than `lease` is taken over.
pub async fn claim(
    client: &impl Client,
    scope: &str,
    key: &IdempotencyKey,
    fingerprint: &[u8],
    lease: Lease,
) -> Result<Claim, IdempotencyError> {
    let retention = RETENTION.as_secs_f64();
    let abandoned = lease.0.as_secs_f64();
    // The claim commits asynchronously (no WAL flush of its own) in one round trip: BEGIN,
    // the insert and COMMIT are pipelined. That is safe because the request's effect commits
    // synchronously later on this connection, and flushing its commit flushes the WAL up to
    // and past the claim; a crash before then loses both, and the client's retry runs anew.
    let insert = client.prepare_cached(CLAIM).await?;
    let params: [&(dyn ToSql + Sync); 5] = [&scope, &key.0, &fingerprint, &retention, &abandoned];
    let (_, claimed, _) = tokio::try_join!(
        client.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"),
        client.query_opt(&insert, &params),
        client.batch_execute("COMMIT"),
    )?;
    if claimed.is_some() {
        return Ok(Claim::Fresh(Pending {
            scope: scope.to_owned(),
            key: key.0.clone(),
        }));
    }
    let row = client
        .query_opt(
            "SELECT request_hash, response_status, response_body, response_location
               FROM platform.idempotency_keys WHERE scope = $1 AND key = $2",
            &[&scope, &key.0],
        )
        .await?;
    // The row vanished between the two statements only if the purge took it: the key is
    // expired, and a retry will claim it.
    let row = row.ok_or(IdempotencyError::InFlight)?;
    if row.get::<_, &[u8]>(0) != fingerprint {
        return Err(IdempotencyError::Mismatch);
    }
    match (
        row.get::<_, Option<i16>>(1),
        row.get::<_, Option<Vec<u8>>>(2),
    ) {
        (Some(status), Some(body)) => Ok(Claim::Replay(StoredResponse {
            status: u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK),
            location: row.get(3),
            body,
        })),
        _ => Err(IdempotencyError::InFlight),
    }
}

impl Pending {
    /// Records the response; run it in the transaction of the request's effect.
    pub async fn complete(
        &self,
        client: &impl Client,
        response: &StoredResponse,
    ) -> Result<(), InfraError> {
        let status = i16::try_from(response.status.as_u16()).map_err(InfraError::unexpected)?;
        client
            .execute(
                "UPDATE platform.idempotency_keys
                    SET response_status = $3, response_body = $4, response_location = $5
                  WHERE scope = $1 AND key = $2",
                &[
                    &self.scope,
                    &self.key,
                    &status,
                    &response.body,
                    &response.location,
                ],
            )
            .await?;
        Ok(())
    }

    /// Forgets the key after a failure that was not the client's, so a retry runs again.
    pub async fn release(&self, client: &impl Client) -> Result<(), InfraError> {
        client
            .execute(
                "DELETE FROM platform.idempotency_keys WHERE scope = $1 AND key = $2",
                &[&self.scope, &self.key],
            )
            .await?;
        Ok(())
    }
}

/// Deletes up to `batch` expired keys; returns how many went.
pub async fn purge_expired(client: &impl Client, batch: i64) -> Result<u64, InfraError> {
    Ok(client
        .execute(
            "DELETE FROM platform.idempotency_keys WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM platform.idempotency_keys WHERE expires_at < now() LIMIT $1))",
            &[&batch],
        )
        .await?)
}

/// The response as first sent. A replay is marked with `Idempotent-Replayed: true` by
/// [`StoredResponse::replayed`].
impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        let content_type = if self.status.is_success() {
            "application/json"
        } else {
            "application/problem+json"
        };
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}

impl StoredResponse {
    /// The stored response, marked as a replay.
    pub fn replayed(self) -> Response {
        let mut response = self.into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        response
    }
}
