//! The reports boundary's errors, and their one mapping to problem+json.

use axum::http::StatusCode;
use platform::{InfraError, http::Problem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {detail}")]
    InvalidQuery {
        field: &'static str,
        detail: &'static str,
    },
    #[error("another rebuild of the read models is running")]
    RebuildRunning,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidQuery { field, detail } => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query parameter",
            )
            .detail(format!("{field}: {detail}"))
            .field(field, detail),
            // Not reachable from a request; mapped for completeness.
            Error::RebuildRunning => Problem::new(
                StatusCode::CONFLICT,
                "rebuild-running",
                "A rebuild is running",
            ),
            Error::Infra(e) => e.into(),
        }
    }
}

platform::boundary_error!(Error);
