//! Identity: who is calling. Sessions are opaque tokens kept in Redis (any instance can
//! serve any request); [`CurrentUser`] resolves one for a handler, [`ReadToken`] tells a read
//! which write it must see. The accounts module creates sessions; every module reads them
//! through this crate.

mod auth;
mod consistency;
mod role;
mod session;

pub use auth::{COOKIE, CurrentUser, authenticate, session_token};
pub use consistency::ReadToken;
pub use role::Role;
pub use session::{SessionConfig, Sessions};
