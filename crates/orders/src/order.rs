//! An order as the API shows it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

pub type OrderId = i64;

/// Where an order is in its life. The order saga adds the later states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted, with its stock reserved.
    Placed,
}

impl OrderStatus {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "placed" => Some(Self::Placed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Order {
    pub id: OrderId,
    pub status: OrderStatus,
    /// Sum of the lines, in cents.
    pub total_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub lines: Vec<OrderLine>,
}

/// One line, with the product's name and price as they were when ordered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    pub product_id: i64,
    pub product_name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}
