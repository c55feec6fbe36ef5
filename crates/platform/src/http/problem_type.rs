//! The registry of problem types: each kind of error Keel answers with has one URN, one
//! status and one title, declared once with what it means. Each module lists its own in a
//! `PROBLEMS` slice; the application joins them for its documentation and OpenAPI document.

use axum::http::StatusCode;

/// One kind of problem. Every response of this kind carries its `uri`, `status` and `title`;
/// what differs between occurrences goes in the problem's `detail` and `errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemType {
    /// `urn:keel:problem:<slug>`.
    pub uri: &'static str,
    pub status: StatusCode,
    pub title: &'static str,
    /// When it is answered and what a client should do, for the documentation.
    pub meaning: &'static str,
}

/// Declares problem types as constants, and `PROBLEMS`, the slice of all of them:
///
/// ```
/// platform::problem_types! {
///     /// register: the email belongs to another account.
///     EMAIL_TAKEN = (CONFLICT, "email-taken", "An account with this email exists");
/// }
/// assert_eq!(EMAIL_TAKEN.uri, "urn:keel:problem:email-taken");
/// assert_eq!(PROBLEMS.len(), 1);
/// ```
#[macro_export]
macro_rules! problem_types {
    ($($(#[doc = $meaning:literal])+ $name:ident = ($status:ident, $slug:literal, $title:literal);)*) => {
        $(
            $(#[doc = $meaning])+
            pub const $name: $crate::http::ProblemType = $crate::http::ProblemType {
                uri: concat!("urn:keel:problem:", $slug),
                status: $crate::__macro::StatusCode::$status,
                title: $title,
                meaning: concat!($($meaning),+).trim_ascii(),
            };
        )*
        /// Every problem type declared here.
        pub const PROBLEMS: &[$crate::http::ProblemType] = &[$($name),*];
    };
}

/// The problem types of the HTTP edge itself, which any operation may answer with.
pub mod edge {
    crate::problem_types! {
        /// A path or query names nothing that exists (or nothing this user may see).
        NOT_FOUND = (NOT_FOUND, "not-found", "Not found");
        /// No session token, or one that is unknown or expired: log in with POST /sessions.
        UNAUTHENTICATED = (UNAUTHORIZED, "unauthenticated", "Authentication required");
        /// The session's role may not do this (an admin operation asked by a customer).
        FORBIDDEN = (FORBIDDEN, "forbidden", "Not allowed");
        /// A field of the body is invalid; `errors` names each one with what was wrong.
        INVALID_REQUEST = (UNPROCESSABLE_ENTITY, "invalid-request", "The request has invalid fields");
        /// The body is not JSON, or not the JSON this operation takes (`detail` says where).
        MALFORMED_JSON = (BAD_REQUEST, "malformed-json", "Malformed JSON");
        /// The body could not be read to its end (the connection broke or lied about length).
        UNREADABLE_BODY = (BAD_REQUEST, "unreadable-body", "Unreadable body");
        /// The body is larger than the server accepts (`KEEL_BODY_LIMIT`).
        BODY_TOO_LARGE = (PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large");
        /// A body was sent without `Content-Type: application/json`.
        UNSUPPORTED_MEDIA_TYPE = (UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Expected a JSON body");
        /// A query parameter is unknown or invalid; `errors` names it.
        INVALID_QUERY = (BAD_REQUEST, "invalid-query", "Invalid query parameter");
        /// A path parameter is not what the route takes (e.g. an id that is not a positive integer).
        INVALID_PATH = (BAD_REQUEST, "invalid-path", "Invalid path parameter");
        /// A request header is malformed; `errors` names it.
        INVALID_HEADER = (BAD_REQUEST, "invalid-header", "Invalid request header");
        /// The path exists but not with this method; `Allow` lists the methods it takes.
        METHOD_NOT_ALLOWED = (METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed");
        /// A quota is spent; retry after `Retry-After` seconds (the `RateLimit` headers say more).
        RATE_LIMITED = (TOO_MANY_REQUESTS, "rate-limited", "Too many requests");
        /// The request ran past the server's request timeout and was stopped; nothing it began
        /// was committed. Retry (with the same `Idempotency-Key` for orders).
        TIMEOUT = (SERVICE_UNAVAILABLE, "timeout", "Request timed out");
        /// A dependency is overloaded or unreachable (e.g. every database connection busy); the
        /// request was shed before it changed anything. Retry after `Retry-After` seconds.
        UNAVAILABLE = (SERVICE_UNAVAILABLE, "unavailable", "Service temporarily unavailable");
        /// The `Idempotency-Key` header is not 1 to 255 visible ASCII characters.
        INVALID_IDEMPOTENCY_KEY = (BAD_REQUEST, "invalid-idempotency-key", "Invalid Idempotency-Key header");
        /// The `Idempotency-Key` was used before by this user with a different body.
        IDEMPOTENCY_KEY_REUSED = (UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency key reused with a different request");
        /// A request with this `Idempotency-Key` is still running; retry when it has answered.
        IDEMPOTENCY_KEY_IN_FLIGHT = (CONFLICT, "idempotency-key-in-flight", "A request with this idempotency key is in progress");
        /// An unexpected failure inside the server, logged with the request id; never caused by
        /// what the client sent.
        INTERNAL = (INTERNAL_SERVER_ERROR, "internal", "Internal server error");
    }
}
