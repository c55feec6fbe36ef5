//! The reports boundary's errors, and their one mapping to problem+json.

use platform::{InfraError, http::Problem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("another rebuild of the read models is running")]
    RebuildRunning,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            // No request starts a rebuild: were one to meet this, it would be a bug.
            e @ Error::RebuildRunning => Problem::internal(e),
            Error::Infra(e) => e.into(),
        }
    }
}

platform::boundary_error!(Error);
