//! Who is calling: the session token from `Authorization: Bearer` or the `keel_session`
//! cookie, resolved against the session store.

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
};
use axum_extra::{
    extract::CookieJar,
    headers::{Authorization, Header, authorization::Bearer},
};
use contract::UserId;
use platform::{InfraError, db::Lsn, http::Problem};

use crate::{Role, Sessions};

/// The name of the session cookie.
pub const COOKIE: &str = "keel_session";

/// The authenticated caller. Extracting it rejects anonymous requests with a 401.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: UserId,
    pub role: Role,
    /// The consistency token of the newest write made in this session.
    pub seen: Option<Lsn>,
    /// The name the user goes by (absent in sessions stored before it was kept).
    pub name: Option<String>,
    token: String,
}

impl CurrentUser {
    /// The session token the request came with (to end the session, or remember a write).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Problem> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Customer => Err(Problem::forbidden().detail("this action needs the admin role")),
        }
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        // Middleware that already resolved the session (the rate limiter) left it here.
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        if session_token(&parts.headers).is_none() {
            return Err(Problem::unauthorized());
        }
        let user = authenticate(&Sessions::from_ref(state), &parts.headers)
            .await?
            .ok_or_else(|| {
                Problem::unauthorized().detail("the session token is unknown or has expired")
            })?;
        // Left for the extractors after this one (the read's consistency token): one lookup
        // per request.
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// The user whose session the request's credentials open, if any.
pub async fn authenticate(
    sessions: &Sessions,
    headers: &HeaderMap,
) -> Result<Option<CurrentUser>, InfraError> {
    let Some(token) = session_token(headers) else {
        return Ok(None);
    };
    Ok(sessions.find(&token).await?.map(|session| CurrentUser {
        id: session.user_id,
        role: session.role,
        seen: session.seen,
        name: session.name,
        token,
    }))
}

/// The bearer token, or else the session cookie.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    if let Ok(Authorization(bearer)) = Authorization::<Bearer>::decode(&mut authorization) {
        return Some(bearer.token().trim().to_owned());
    }
    CookieJar::from_headers(headers)
        .get(COOKIE)
        .map(|cookie| cookie.value().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_wins_over_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; keel_session=fromcookie"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("fromcookie"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer frombearer"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("frombearer"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer lowercase"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("lowercase"));
    }

    #[test]
    fn no_credentials_no_token() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("other=1"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(session_token(&headers), None);
    }
}
