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

/// Displays an error with all its sources (`outer: inner: root`), for one log field: an
/// [`InfraError`]'s own text names only the dependency, its source says what went wrong.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// An error that is either the domain's answer (no such product) or a failure beneath it: a
/// read a replica failed runs again on the primary only when it is the second kind.
pub trait AsInfra {
    /// The infrastructure failure this is, if it is one.
    fn as_infra(&self) -> Option<&InfraError>;
}

impl AsInfra for InfraError {
    fn as_infra(&self) -> Option<&InfraError> {
        Some(self)
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
                // A demoted primary: a failover is under way or just done.
                || *c == SqlState::READ_ONLY_SQL_TRANSACTION
        );
        if e.is_closed() || overloaded || e.code().is_none() {
            Self::unavailable("postgres", e)
        } else {
            Self::unexpected(e)
        }
    }
}

impl From<crate::db::QueryError> for InfraError {
    fn from(e: crate::db::QueryError) -> Self {
        match e {
            crate::db::QueryError::Postgres(e) => e.into(),
            e @ crate::db::QueryError::NoAnswer(_) => Self::unavailable("postgres", e),
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

/// `From` the database's errors for an error enum with an `Infra(InfraError)` variant: pool
/// and query errors become `Infra`, except a violated constraint named in `constraints`,
/// which becomes the domain error given for it (`"users_email_key" => Error::EmailTaken`).
/// And [`AsInfra`]: the `Infra` variant is the infrastructure's failure.
#[macro_export]
macro_rules! infra_errors {
    ($error:ty $(, constraints { $($constraint:literal => $domain:expr),* $(,)? })?) => {
        impl $crate::AsInfra for $error {
            #[allow(unreachable_patterns)]
            fn as_infra(&self) -> Option<&$crate::InfraError> {
                match self {
                    Self::Infra(e) => Some(e),
                    _ => None,
                }
            }
        }

        impl From<$crate::__macro::PoolError> for $error {
            fn from(e: $crate::__macro::PoolError) -> Self {
                Self::Infra(e.into())
            }
        }

        impl From<$crate::__macro::QueryError> for $error {
            fn from(e: $crate::__macro::QueryError) -> Self {
                $(match e.as_db_error().and_then(|db| db.constraint()) {
                    $(Some($constraint) => return $domain,)*
                    _ => {}
                })?
                Self::Infra(e.into())
            }
        }

        impl From<$crate::__macro::PgError> for $error {
            fn from(e: $crate::__macro::PgError) -> Self {
                $crate::__macro::QueryError::from(e).into()
            }
        }
    };
}

/// The plumbing every boundary error enum with an `Infra(InfraError)` variant and a
/// `From<Error> for Problem` mapping needs: the database's errors as [`infra_errors!`] maps
/// them, and the error is a response through its problem.
#[macro_export]
macro_rules! boundary_error {
    ($error:ty $(, $($constraints:tt)*)?) => {
        $crate::infra_errors!($error $(, $($constraints)*)?);

        impl $crate::__macro::IntoResponse for $error {
            fn into_response(self) -> $crate::__macro::Response {
                $crate::__macro::IntoResponse::into_response($crate::http::Problem::from(self))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shows_what_an_infra_error_only_names() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = InfraError::unavailable("postgres", io);
        assert_eq!(e.to_string(), "postgres is unavailable");
        assert_eq!(
            ErrorChain(&e).to_string(),
            "postgres is unavailable: refused"
        );
    }

    #[test]
    fn only_the_infra_variant_is_an_infra_failure() {
        #[derive(Debug, thiserror::Error)]
        enum Error {
            #[error("no such thing")]
            NotFound,
            #[error(transparent)]
            Infra(#[from] InfraError),
        }
        crate::infra_errors!(Error);
        assert!(Error::NotFound.as_infra().is_none());
        let e = Error::from(InfraError::unexpected("bug"));
        assert!(matches!(e.as_infra(), Some(InfraError::Unexpected(_))));
    }
}
