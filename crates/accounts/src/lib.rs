//! Accounts: who a user is and how they prove it.
//!
//! Users live in the `accounts` schema; sessions are opaque tokens in Redis, so any instance
//! can serve any request. Other modules learn who is calling through [`CurrentUser`].

mod auth;
mod consistency;
mod error;
mod http;
mod login;
mod password;
mod register;
pub mod seed;
mod session;
mod user;

pub use auth::{COOKIE, CurrentUser, authenticate, session_token};
pub use consistency::ReadToken;
pub use error::Error;
pub use http::{ApiDoc, router};
pub use login::{LoginRequest, LoginResponse, current_user, login, logout};
pub use password::Password;
pub use register::{RegisterRequest, promote_to_admin, register};
pub use session::{SessionConfig, Sessions};
pub use user::{Email, Name, Role, User, UserId, display_name};

use platform::db::{Db, Migration};

/// The accounts schema's migrations, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    module: "accounts",
    version: 1,
    name: "users",
    sql: include_str!("../migrations/0001_users.sql"),
}];

/// The accounts module: what its routes and other modules need.
#[derive(Clone, Debug)]
pub struct Accounts {
    pub db: Db,
    pub sessions: Sessions,
}
