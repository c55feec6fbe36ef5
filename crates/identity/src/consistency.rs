//! Read-your-writes: the consistency token a read must honour, from the request's
//! `X-Consistency-Token` header and from what the caller's session remembers.

use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
};
use platform::{
    db::Lsn,
    http::{CONSISTENCY_TOKEN, Problem},
};

use crate::{CurrentUser, Sessions, auth};

/// The newest write this read must see, if any: the newer of the header's token and the
/// session's. A read with it goes to a replica that has replayed that write, or the primary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadToken(pub Option<Lsn>);

impl<S> FromRequestParts<S> for ReadToken
where
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let sent = parts
            .headers
            .get(&CONSISTENCY_TOKEN)
            .map(|value| {
                value
                    .to_str()
                    .ok()
                    .and_then(|text| text.parse::<Lsn>().ok())
                    .ok_or_else(invalid_token)
            })
            .transpose()?;
        let remembered = match parts.extensions.get::<CurrentUser>() {
            Some(user) => user.seen,
            // Not resolved by middleware yet: resolve it here, once, for the handler too. An
            // unknown or expired session just remembers nothing.
            None if auth::session_token(&parts.headers).is_some() => {
                // Boxed: a Redis round trip's future would otherwise grow every anonymous
                // read's handler future, which axum moves onto the heap per request.
                let sessions = Sessions::from_ref(state);
                let user = Box::pin(auth::authenticate(&sessions, &parts.headers)).await?;
                let seen = user.as_ref().and_then(|user| user.seen);
                if let Some(user) = user {
                    parts.extensions.insert(user);
                }
                seen
            }
            None => None,
        };
        Ok(ReadToken(sent.max(remembered)))
    }
}

fn invalid_token() -> Problem {
    let detail = "must be a consistency token from an earlier response, like 0/16B3748";
    Problem::new(platform::http::problems::INVALID_HEADER)
        .detail(format!("{CONSISTENCY_TOKEN}: {detail}"))
        .field(CONSISTENCY_TOKEN.as_str(), detail)
}
