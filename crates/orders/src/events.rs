//! The events the orders module publishes (through the outbox), in the domain's words.
//! Other modules (read models, notifications) react to these, never to the orders tables.

use platform::bus::outbox::Event;
use serde::{Deserialize, Serialize};

use crate::{OrderId, OrderLine};

/// An order was accepted with its stock reserved; the saga takes it from here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub user_id: i64,
    /// The customer's name when they ordered (absent in events written before it was added).
    #[serde(default)]
    pub customer_name: Option<String>,
    /// When the order was placed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub placed_at: Option<time::OffsetDateTime>,
    pub total_cents: i64,
    pub lines: Vec<OrderLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PaymentCaptured {
    pub order_id: OrderId,
    pub charge_id: String,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShipmentCreated {
    pub order_id: OrderId,
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub order_id: OrderId,
}

/// The saga ended the order; what it had done was compensated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: OrderId,
    pub reason: String,
    /// Whether a refund was asked of the payment provider.
    pub refunded: bool,
    pub lines: Vec<OrderLine>,
}

macro_rules! subjects {
    ($($event:ident => $subject:literal),* $(,)?) => {
        $(impl Event for $event {
            fn subject(&self) -> &'static str {
                $subject
            }
        })*
    };
}

subjects! {
    OrderPlaced => "orders.placed",
    PaymentCaptured => "orders.payment_captured",
    ShipmentCreated => "orders.shipment_created",
    OrderConfirmed => "orders.confirmed",
    OrderCancelled => "orders.cancelled",
}
