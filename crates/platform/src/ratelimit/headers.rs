//! The IETF rate-limit headers (draft-ietf-httpapi-ratelimit-headers):
//! `RateLimit-Policy: "login";q=10;w=60` and `RateLimit: "login";r=7;t=42`, and the 429.

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use super::{Decision, Policy};
use crate::http::Problem;

/// Adds `RateLimit-Policy` and `RateLimit` to a response's headers.
pub fn apply_headers(headers: &mut HeaderMap, policy: &Policy, decision: &Decision) {
    let policy_value = format!(
        "\"{}\";q={};w={}",
        policy.name,
        policy.quota.limit,
        policy.quota.window.as_secs().max(1)
    );
    let state = format!(
        "\"{}\";r={};t={}",
        policy.name,
        decision.remaining,
        ceil_secs(decision.reset_after)
    );
    for (name, value) in [("ratelimit-policy", policy_value), ("ratelimit", state)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

/// The 429 problem for a denied request, with `Retry-After` and the rate-limit headers.
pub fn too_many_requests(policy: &Policy, decision: &Decision) -> Response {
    let retry = ceil_secs(decision.retry_after).max(1);
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
    )
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
