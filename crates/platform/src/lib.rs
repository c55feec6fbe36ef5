//! Keel's platform: the infrastructure every domain module stands on, with no domain knowledge.
//!
//! Domain crates use it for configuration, PostgreSQL pools and migrations, Redis, the
//! layered cache, rate limiting, the event bus (outbox, JetStream relay and consumers), the
//! HTTP error model, routes and middleware, and idempotency keys.

pub mod backoff;
pub mod breaker;
pub mod bus;
pub mod cache;
pub mod config;
pub mod db;
mod error;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod newtype;
pub mod page;
pub mod ratelimit;
pub mod redis;
pub mod telemetry;

pub use error::{AsInfra, BoxError, ErrorChain, InfraError};

/// What the exported macros name, so the crates using them need not depend on it all.
#[doc(hidden)]
pub mod __macro {
    pub use crate::db::QueryError;
    pub use axum::http::StatusCode;
    pub use axum::response::{IntoResponse, Response};
    pub use deadpool_postgres::PoolError;
    pub use tokio_postgres::Error as PgError;
    pub use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
}

/// The platform's own schema migrations (idempotency keys, the event bus's tables).
pub const MIGRATIONS: &[db::Migration] = &[
    db::Migration {
        module: "platform",
        version: 1,
        name: "idempotency_keys",
        sql: include_str!("../migrations/0001_idempotency_keys.sql"),
    },
    db::Migration {
        module: "platform",
        version: 2,
        name: "bus",
        sql: include_str!("../migrations/0002_bus.sql"),
    },
    db::Migration {
        module: "platform",
        version: 3,
        name: "event archive",
        sql: include_str!("../migrations/0003_event_archive.sql"),
    },
    db::Migration {
        module: "platform",
        version: 4,
        name: "outbox_poll",
        sql: include_str!("../migrations/0004_outbox_poll.sql"),
    },
];
