//! Reports: the CQRS read side. Denormalized read models — an order summary per order, each
//! customer's totals, product sales per day — projected from the order events by a durable
//! JetStream consumer, served from read replicas, and rebuilt from the event log by
//! `keel projections rebuild` while the service runs.
//!
//! Owns the `reports` schema; reads nothing of other modules but their events.

mod day;
mod error;
mod http;
mod live;
mod project;
mod query;
mod rebuild;
mod reconcile;
mod retention;

pub use error::Error;
pub use http::{ApiDoc, routes};
pub use live::{PROJECTOR, project_event};
pub(crate) use query::{
    CustomerStats, DailySales, OrderHistory, OrderSummary, SalesFilter, SalesReport,
};
pub use rebuild::{Rebuilt, rebuild};
pub use reconcile::{Reconciled, reconcile};
pub use retention::forget_applied_events;

use platform::db::{Db, Migration};

/// The reports schema's migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        module: "reports",
        version: 1,
        name: "read models",
        sql: include_str!("../migrations/0001_read_models.sql"),
    },
    Migration {
        module: "reports",
        version: 2,
        name: "applied events expire",
        sql: include_str!("../migrations/0002_applied_events_expire.sql"),
    },
];

/// The reports module: what its routes need.
#[derive(Clone, Debug)]
pub struct Reports {
    pub db: Db,
}
