//! An order as the API shows it.

use contract::{OrderId, OrderLine, OrderStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Order {
    #[schema(value_type = i64)]
    pub id: OrderId,
    pub status: OrderStatus,
    /// Why the order was cancelled, once it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// Sum of the lines, in cents.
    pub total_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub lines: Vec<OrderLine>,
    /// Every state the order went through, oldest first (on a single order only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
}

/// A state an order reached, and when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct HistoryEntry {
    pub status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}
