//! The accounts boundary's errors, and their one mapping to problem+json.

use axum::http::StatusCode;
use platform::{InfraError, http::Problem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("an account with this email exists")]
    EmailTaken,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("no such user")]
    UnknownUser,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::EmailTaken => Problem::new(
                StatusCode::CONFLICT,
                "email-taken",
                "An account with this email exists",
            )
            .detail("email: an account with this email exists; log in instead")
            .field("email", "an account with this email exists"),
            Error::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "Wrong email or password",
            ),
            Error::UnknownUser => Problem::not_found("User"),
            Error::Infra(e) => e.into(),
        }
    }
}

platform::boundary_error!(Error, constraints { "users_email_key" => Error::EmailTaken });
