//! Registering a customer account, and promoting an account to admin (operators only).

use platform::db::Db;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{Accounts, Email, Error, User, password, user::Name};

/// A new account. The role cannot be chosen: every account starts as a customer, and an
/// unknown field such as `role` is rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterRequest {
    #[schema(schema_with = Email::schema)]
    pub email: Email,
    #[schema(schema_with = Name::schema)]
    pub name: Name,
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 128)]
    pub password: password::Password,
}

/// Creates a customer account.
pub(crate) async fn register(accounts: &Accounts, request: RegisterRequest) -> Result<User, Error> {
    let hash = password::hash(request.password.expose().to_owned()).await?;
    let db = accounts.db.write().await?;
    let statement = db
        .prepare_cached(
            "INSERT INTO accounts.users (email, name, password_hash) VALUES ($1, $2, $3)
             RETURNING id, email, name, role, created_at",
        )
        .await?;
    let row = platform::db::timed(
        "accounts.insert_user",
        db.query_one(
            &statement,
            &[&request.email.as_str(), &request.name.as_str(), &hash],
        ),
    )
    .await?;
    Ok(User::from_row(&row))
}

/// Makes the account with `email` an admin. Reached from the CLI, never from the API.
pub async fn promote_to_admin(db: &Db, email: &Email) -> Result<User, Error> {
    let db = db.write().await?;
    let row = db
        .query_opt(
            "UPDATE accounts.users SET role = 'admin' WHERE email = $1
             RETURNING id, email, name, role, created_at",
            &[&email.as_str()],
        )
        .await?
        .ok_or(Error::UnknownUser)?;
    Ok(User::from_row(&row))
}
