//! Read-your-writes, the write half: every successful write answers with the primary's WAL
//! position as `X-Consistency-Token`, and the caller's session remembers it, so the caller's
//! next reads (through any instance, from any replica) see the write. The read half is
//! [`accounts::ReadToken`].

use std::convert::Infallible;

use axum::{extract::Request, http::HeaderValue, response::Response};
use identity::Sessions;
use platform::{
    db::Db,
    http::{CONSISTENCY_TOKEN, Selective, call_next},
};
use tower::Service;

/// Issues consistency tokens for writes; reads pass straight through (they are the hot
/// path). Applied with [`platform::http::SelectiveLayer`].
#[derive(Clone, Debug)]
pub(crate) struct IssueTokens {
    pub(crate) db: Db,
    pub(crate) sessions: Sessions,
}

impl Selective for IssueTokens {
    /// The caller's session, which remembers the token.
    type Plan = Option<String>;

    fn plan(&self, request: &Request) -> Option<Self::Plan> {
        (!request.method().is_safe()).then(|| identity::session_token(request.headers()))
    }

    async fn around<S>(self, session: Self::Plan, request: Request, next: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let response = call_next(next, request).await;
        self.issue(session, response).await
    }
}

impl IssueTokens {
    async fn issue(&self, session: Option<String>, mut response: Response) -> Response {
        if !response.status().is_success() {
            return response;
        }
        // Read after the handler committed: at or past its commit, whichever connection it used.
        let written_at = match self.db.consistency_token().await {
            Ok(position) => position,
            Err(e) => {
                // The write stands; only its reads may come from a replica that lacks it.
                tracing::warn!(error = %e, "no consistency token for a write");
                return response;
            }
        };
        if let Ok(value) = HeaderValue::from_str(&written_at.to_string()) {
            response.headers_mut().insert(CONSISTENCY_TOKEN, value);
        }
        if let Some(session) = session {
            if let Err(e) = self.sessions.remember_write(&session, written_at).await {
                tracing::warn!(error = %e, "the session could not remember a write's token; the header still carries it");
            }
        }
        response
    }
}
