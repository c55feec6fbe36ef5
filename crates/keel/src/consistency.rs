//! Read-your-writes, the write half: every successful write answers with the primary's WAL
//! position as `X-Consistency-Token`, and the caller's session remembers it, so the caller's
//! next reads (through any instance, from any replica) see the write. The read half is
//! [`accounts::ReadToken`].

use accounts::Sessions;
use axum::{
    extract::{Request, State},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use platform::{db::Db, http::CONSISTENCY_TOKEN};

#[derive(Clone, Debug)]
pub(crate) struct Consistency {
    pub(crate) db: Db,
    pub(crate) sessions: Sessions,
}

pub(crate) async fn issue_consistency_token(
    State(consistency): State<Consistency>,
    request: Request,
    next: Next,
) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    let session = accounts::session_token(request.headers()).map(str::to_owned);
    let mut response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    // Read after the handler committed: at or past its commit, whichever connection it used.
    let written_at = match consistency.db.consistency_token().await {
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
        if let Err(e) = consistency
            .sessions
            .remember_write(&session, written_at)
            .await
        {
            tracing::warn!(error = %e, "the session could not remember a write's token; the header still carries it");
        }
    }
    response
}
