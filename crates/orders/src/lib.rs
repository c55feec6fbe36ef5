//! Orders: placing an order (its lines, prices, stock reservation and `OrderPlaced` event in
//! one transaction, idempotently), the order saga that takes it through payment and shipment
//! to confirmation (or cancels it, compensating), and reading a customer's own orders.
//!
//! Owns the `orders` schema. Stock and prices come from the catalog's Rust API, the customer
//! from `identity::CurrentUser`, payments from the external provider's HTTP API. The events it
//! publishes are the contract crate's.

mod cancel;
mod error;
mod http;
mod lines;
mod order;
pub mod payments;
mod place;
mod query;
pub mod saga;
mod shipping;
mod sweep;
mod worker;

pub use cancel::BY_CUSTOMER;
pub(crate) use cancel::request_cancellation;
pub(crate) use contract::{OrderId, OrderLine, OrderStatus};
pub(crate) use error::Error;
pub use error::PROBLEMS;
pub use http::{ApiDoc, routes};
pub(crate) use lines::LineRequest;
pub(crate) use order::{HistoryEntry, Order};
pub(crate) use place::{PlaceOrder, Placed};
pub(crate) use query::OrderPage;
pub use saga::{OrderMode, Saga, SagaConfig};
pub use sweep::{SweepConfig, sweep};
pub use worker::{SAGA_CONSUMER, handle_order_placed};

use platform::db::{Db, Migration};

/// The orders schema's migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        module: "orders",
        version: 1,
        name: "orders",
        sql: include_str!("../migrations/0001_orders.sql"),
    },
    Migration {
        module: "orders",
        version: 2,
        name: "saga",
        sql: include_str!("../migrations/0002_saga.sql"),
    },
];

/// The orders module: what its routes need.
#[derive(Clone, Debug)]
pub struct Orders {
    pub db: Db,
    /// Orders change stock, which product pages show: each order invalidates its products.
    pub products: catalog::ProductCache,
    /// Runs the saga inline in sync mode.
    pub saga: Saga,
    /// How long an order's idempotency key stays claimed by a request that has not answered.
    pub claims: platform::idempotency::Lease,
}
