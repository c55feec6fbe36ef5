//! Orders: placing an order (its lines, prices and stock reservation in one transaction,
//! idempotently) and reading a customer's own orders.
//!
//! Owns the `orders` schema. Stock and prices come from the catalog's Rust API, identity from
//! the accounts module's `CurrentUser`.

mod error;
mod http;
mod order;
mod place;
mod query;

pub use error::Error;
pub use http::{ApiDoc, router};
pub use order::{Order, OrderId, OrderLine, OrderStatus};
pub use place::{LineRequest, Lines, MAX_LINES, PlaceOrder, Placed, place_order, place_order_once};
pub use query::{OrderPage, OrderPageRequest, get_order, list_orders};

use platform::db::{Db, Migration};

/// The orders schema's migrations, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    module: "orders",
    version: 1,
    name: "orders",
    sql: include_str!("../migrations/0001_orders.sql"),
}];

/// The orders module: what its routes need.
#[derive(Clone, Debug)]
pub struct Orders {
    pub db: Db,
    pub sessions: accounts::Sessions,
    /// Orders change stock, which product pages show: each order invalidates its products.
    pub products: catalog::ProductCache,
}
