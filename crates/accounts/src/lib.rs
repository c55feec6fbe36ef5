//! Accounts: who a user is and how they prove it.
//!
//! Users live in the `accounts` schema. A login starts a session in the identity crate's
//! store; other modules learn who is calling through `identity::CurrentUser`, never from
//! this module.

mod error;
mod http;
mod login;
mod password;
mod register;
pub mod seed;
mod user;

pub use error::{Error, PROBLEMS};
pub use http::{ApiDoc, routes};
pub(crate) use login::{LoginRequest, LoginResponse, login};
pub use register::promote_to_admin;
pub(crate) use register::{RegisterRequest, register};
pub use user::Email;
pub(crate) use user::User;

use identity::Sessions;
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
