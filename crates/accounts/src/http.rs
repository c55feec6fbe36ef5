//! The accounts routes: thin handlers over the service functions.

use axum::{
    extract::{FromRef, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use identity::{COOKIE, CurrentUser, Sessions};
use platform::http::{Json, Policy, Problem, Routes};
use utoipa::OpenApi;

use crate::{Accounts, Error, LoginRequest, LoginResponse, RegisterRequest, User, login, register};

/// The accounts routes. Registering and logging in spend the login quota, by client address.
pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
    Sessions: FromRef<S>,
{
    Routes::new()
        .post("/accounts", register_account, Policy::LOGIN)
        .get("/accounts/me", me, Policy::READ)
        .post("/sessions", log_in, Policy::LOGIN)
        .delete("/sessions/current", log_out, Policy::WRITE)
}

#[derive(Debug, OpenApi)]
#[openapi(
    paths(register_account, me, log_in, log_out),
    components(schemas(User, RegisterRequest, LoginRequest, LoginResponse, identity::Role))
)]
pub struct ApiDoc;

/// Register a customer account.
#[utoipa::path(post, path = "/accounts", tag = "accounts", request_body = RegisterRequest,
    responses((status = 201, body = User), (status = 409, description = "email taken", body = Problem),
              (status = 422, description = "invalid field", body = Problem)))]
async fn register_account(
    State(accounts): State<Accounts>,
    Json(request): Json<RegisterRequest>,
) -> Result<Response, Error> {
    let user = register::register(&accounts, request).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, "/accounts/me")],
        axum::Json(user),
    )
        .into_response())
}

/// The current user.
#[utoipa::path(get, path = "/accounts/me", tag = "accounts", security(("session" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem)))]
async fn me(
    State(accounts): State<Accounts>,
    user: CurrentUser,
) -> Result<axum::Json<User>, Error> {
    Ok(axum::Json(login::current_user(&accounts, &user).await?))
}

/// Log in: a new session token, also set as an HttpOnly cookie.
#[utoipa::path(post, path = "/sessions", tag = "accounts", request_body = LoginRequest,
    responses((status = 201, body = LoginResponse), (status = 401, body = Problem)))]
async fn log_in(
    State(accounts): State<Accounts>,
    Json(request): Json<LoginRequest>,
) -> Result<Response, Error> {
    let session = login::login(&accounts, request).await?;
    let cookie = format!(
        "{COOKIE}={}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
        session.token, session.expires_in
    );
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie_header(&cookie)?)],
        axum::Json(session),
    )
        .into_response())
}

/// Log out: the session token stops working at once.
#[utoipa::path(delete, path = "/sessions/current", tag = "accounts", security(("session" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
async fn log_out(State(accounts): State<Accounts>, user: CurrentUser) -> Result<Response, Error> {
    login::logout(&accounts, &user).await?;
    let expired = format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax");
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookie_header(&expired)?)],
    )
        .into_response())
}

fn cookie_header(cookie: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(cookie).map_err(|e| Error::Infra(platform::InfraError::unexpected(e)))
}
