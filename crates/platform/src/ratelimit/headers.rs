//! The IETF rate-limit headers (draft-ietf-httpapi-ratelimit-headers):
//! `RateLimit-Policy: "login";q=10;w=60` and `RateLimit: "login";r=7;t=42`, and the 429.

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue},
    response::{IntoResponse, Response},
};

use bytes::Bytes;

use super::{Decision, Policy, Quota};
use crate::http::Problem;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `RateLimit-Policy` for a quota: the same on every response, so rendered once.
pub(super) fn policy_header(name: &str, quota: Quota) -> HeaderValue {
    let value = format!(
        "\"{name}\";q={};w={}",
        quota.limit,
        quota.window.as_secs().max(1)
    );
    HeaderValue::from_maybe_shared(Bytes::from(value))
        .unwrap_or_else(|_| HeaderValue::from_static("\"unnamed\""))
}

/// Adds `RateLimit-Policy` and `RateLimit` to a response's headers.
pub fn apply_headers(headers: &mut HeaderMap, policy: &Policy, decision: &Decision) {
    let state = format!(
        "\"{}\";r={};t={}",
        policy.name,
        decision.remaining,
        ceil_secs(decision.reset_after)
    );
    headers.insert(RATELIMIT_POLICY, policy.header.clone());
    // The policy's name is ours and the rest digits: the value is always valid.
    if let Ok(state) = HeaderValue::from_maybe_shared(Bytes::from(state)) {
        headers.insert(RATELIMIT, state);
    }
}

/// The 429 problem for a denied request, with `Retry-After` and the rate-limit headers.
pub fn too_many_requests(policy: &Policy, decision: &Decision) -> Response {
    let retry = ceil_secs(decision.retry_after).max(1);
    let mut response = Problem::new(crate::http::problems::RATE_LIMITED)
        .detail(format!(
            "the {} limit is {} requests per {} s; retry in {retry} s",
            policy.name,
            policy.quota.limit,
            policy.quota.window.as_secs()
        ))
        .retry_after(u32::try_from(retry).unwrap_or(u32::MAX))
        .into_response();
    apply_headers(response.headers_mut(), policy, decision);
    response
}

fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}
