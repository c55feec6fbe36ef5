//! The accounts boundary's errors, and their one mapping to problem+json.

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

platform::problem_types! {
    /// POST /accounts: the email (trimmed, lower-cased) belongs to another account; log in.
    EMAIL_TAKEN = (CONFLICT, "email-taken", "An account with this email exists");
    /// POST /sessions: no account has this email and password. Both cases answer alike, so
    /// the answer does not tell which emails have accounts.
    INVALID_CREDENTIALS = (UNAUTHORIZED, "invalid-credentials", "Wrong email or password");
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::EmailTaken => Problem::new(EMAIL_TAKEN)
                .detail("email: an account with this email exists; log in instead")
                .field("email", "an account with this email exists"),
            Error::InvalidCredentials => Problem::new(INVALID_CREDENTIALS),
            Error::UnknownUser => Problem::not_found("user"),
            Error::Infra(e) => e.into(),
        }
    }
}

platform::boundary_error!(Error, constraints { "users_email_key" => Error::EmailTaken });
