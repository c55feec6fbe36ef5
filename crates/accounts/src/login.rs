//! Logging in and out, and reading the current user.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use identity::CurrentUser;

use crate::{Accounts, Email, Error, User, password};

/// An email and password; the example is one of `keel seed`'s demo customers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "user1@demo.keel", "password": "keel-demo-password"}))]
pub(crate) struct LoginRequest {
    #[schema(schema_with = Email::schema)]
    pub email: Email,
    #[schema(value_type = String, format = Password, min_length = 1, max_length = 1024)]
    pub password: LoginPassword,
}

/// A password offered at login: only bounded, so a huge one cannot buy a long hash.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct LoginPassword(String);

impl std::fmt::Debug for LoginPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginPassword(..)")
    }
}

impl TryFrom<String> for LoginPassword {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.chars().count() {
            0 => Err("must not be empty".into()),
            1..=1024 => Ok(Self(text)),
            _ => Err("must be at most 1024 characters".into()),
        }
    }
}

/// A new session. The token also comes as the `keel_session` cookie.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoginResponse {
    pub token: String,
    pub token_type: &'static str,
    /// Seconds the session lives without use.
    pub expires_in: u64,
    pub user: User,
}

/// Checks the credentials and starts a new session.
pub(crate) async fn login(
    accounts: &Accounts,
    request: LoginRequest,
) -> Result<LoginResponse, Error> {
    let db = accounts.db.write().await?;
    let statement = db
        .prepare_cached(
            "SELECT id, email, name, role, created_at, password_hash
               FROM accounts.users WHERE email = $1",
        )
        .await?;
    let row = platform::db::timed(
        "accounts.user_by_email",
        db.query_opt(&statement, &[&request.email.as_str()]),
    )
    .await?;
    drop(db);
    let stored = row.as_ref().map(|r| r.get::<_, String>("password_hash"));
    if !password::verify(request.password.0, stored).await? {
        return Err(Error::InvalidCredentials);
    }
    let user = row
        .as_ref()
        .map(User::from_row)
        .ok_or(Error::InvalidCredentials)?;
    let token = accounts
        .sessions
        .create(user.id, user.role, &user.name)
        .await?;
    Ok(LoginResponse {
        token,
        token_type: "Bearer",
        expires_in: accounts.sessions.ttl().as_secs(),
        user,
    })
}

/// Ends the caller's session.
pub(crate) async fn logout(accounts: &Accounts, user: &CurrentUser) -> Result<(), Error> {
    Ok(accounts.sessions.revoke(user.token()).await?)
}

/// The caller's account.
pub(crate) async fn current_user(accounts: &Accounts, user: &CurrentUser) -> Result<User, Error> {
    let db = accounts.db.read().await?;
    let statement = db
        .prepare_cached(
            "SELECT id, email, name, role, created_at FROM accounts.users WHERE id = $1",
        )
        .await?;
    let row = platform::db::timed(
        "accounts.session_user",
        db.query_opt(&statement, &[&user.id]),
    )
    .await?
    .ok_or(Error::UnknownUser)?;
    Ok(User::from_row(&row))
}
