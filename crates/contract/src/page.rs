//! Which page of a customer's orders to read: the orders themselves and their read model
//! page the same way, newest first, by order id.

use platform::page::PageSize;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::OrderId;

/// Which page of a customer's orders, newest first.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderPageRequest {
    /// The `next_after` of the previous page.
    #[param(value_type = Option<i64>)]
    pub after: Option<OrderId>,
    /// Page size (default 20).
    #[param(schema_with = PageSize::schema)]
    pub limit: Option<PageSize>,
}

impl OrderPageRequest {
    /// The page size, and the id the page starts below (the newest order for the first).
    pub fn keyset(&self) -> (PageSize, OrderId) {
        (
            self.limit.unwrap_or_default(),
            self.after.unwrap_or(OrderId::new(i64::MAX)),
        )
    }
}
