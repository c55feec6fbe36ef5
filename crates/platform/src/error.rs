//! The infrastructure failures every boundary shares: a dependency that is down, or a bug.

use deadpool_postgres::PoolError;

/// Any error, boxed: what an `Unexpected` failure carries for the logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A failure of the infrastructure beneath a request, never the client's fault.
///
/// `Unavailable` becomes a 503 with `Retry-After` (the client may retry); `Unexpected`
/// becomes a 500. Neither sends its source to the client: it is logged.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("unexpected internal error")]
    Unexpected(#[source] BoxError),
}

impl InfraError {
    pub fn unexpected(source: impl Into<BoxError>) -> Self {
        Self::Unexpected(source.into())
    }

    pub fn unavailable(dependency: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            dependency,
            source: source.into(),
        }
    }
}

impl From<tokio_postgres::Error> for InfraError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let overloaded = matches!(
            e.code(),
            Some(c) if *c == SqlState::QUERY_CANCELED
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        );
        if e.is_closed() || overloaded || e.code().is_none() {
            Self::unavailable("postgres", e)
        } else {
            Self::unexpected(e)
        }
    }
}

impl From<PoolError> for InfraError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            // Waiting for a connection timed out, or the pool could not open one: shed the
            // request rather than queue it forever.
            e => Self::unavailable("postgres", e),
        }
    }
}

impl From<::redis::RedisError> for InfraError {
    fn from(e: ::redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            Self::unavailable("redis", e)
        } else {
            Self::unexpected(e)
        }
    }
}

/// The plumbing every boundary error enum with an `Infra(InfraError)` variant and a
/// `From<Error> for Problem` mapping needs: pool errors become `Infra`, and the error is a
/// response through its problem.
#[macro_export]
macro_rules! boundary_error {
    ($error:ty) => {
        impl From<::deadpool_postgres::PoolError> for $error {
            fn from(e: ::deadpool_postgres::PoolError) -> Self {
                Self::Infra(e.into())
            }
        }

        impl ::axum::response::IntoResponse for $error {
            fn into_response(self) -> ::axum::response::Response {
                ::axum::response::IntoResponse::into_response($crate::http::Problem::from(self))
            }
        }
    };
}
