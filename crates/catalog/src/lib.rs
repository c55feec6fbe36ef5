//! Catalog: products, their prices and their stock.
//!
//! Owns the `catalog` schema. Other modules reach stock only through [`reserve_stock`], which
//! runs inside their transaction so an order and its stock change commit together.

mod cached;
mod error;
mod http;
mod product;
mod query;
pub mod seed;
mod stock;
mod write;

pub use cached::ProductCache;
pub(crate) use contract::ProductId;
pub(crate) use error::Error;
pub use error::PROBLEMS;
pub use http::{ApiDoc, routes};
pub(crate) use product::{Category, Description, Money, Product, ProductName, Sku};
pub(crate) use query::{ProductFilter, ProductPage};
pub(crate) use stock::StockLevel;
pub use stock::{Quantity, ReserveError, StockRequest, release_stock, reserve_stock};
pub(crate) use write::{NewProduct, ProductChanges};

use std::sync::Arc;

use platform::db::{Db, Migration};

/// The catalog schema's migrations, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    module: "catalog",
    version: 1,
    name: "products",
    sql: include_str!("../migrations/0001_products.sql"),
}];

/// The catalog module: what its routes need, behind one `Arc` (axum clones a route's state
/// for every request).
#[derive(Clone, Debug)]
pub struct Catalog(Arc<CatalogParts>);

#[derive(Debug)]
pub struct CatalogParts {
    pub db: Db,
    pub products: ProductCache,
}

impl Catalog {
    pub fn new(db: Db, products: ProductCache) -> Self {
        Self(Arc::new(CatalogParts { db, products }))
    }
}

impl std::ops::Deref for Catalog {
    type Target = CatalogParts;

    fn deref(&self) -> &CatalogParts {
        &self.0
    }
}
