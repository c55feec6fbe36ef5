//! The events the orders module publishes (through the outbox), in the domain's words. Each
//! carries its subject as a constant; a consumer decodes a delivery into [`OrderEvent`] and
//! matches on it, so a subject it does not know is an error it sees, never a silent skip.

use platform::bus::outbox::Event;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{OrderId, ProductId, UserId};

/// One line, with the product's name and price as they were when ordered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    #[schema(value_type = i64)]
    pub product_id: ProductId,
    pub product_name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

/// An order was accepted with its stock reserved; the saga takes it from here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub user_id: UserId,
    /// The customer's name when they ordered (absent in events written before it was added).
    #[serde(default)]
    pub customer_name: Option<String>,
    /// When the order was placed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub placed_at: Option<OffsetDateTime>,
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

impl Event for OrderPlaced {
    const SUBJECT: &'static str = "orders.placed";
}
impl Event for PaymentCaptured {
    const SUBJECT: &'static str = "orders.payment_captured";
}
impl Event for ShipmentCreated {
    const SUBJECT: &'static str = "orders.shipment_created";
}
impl Event for OrderConfirmed {
    const SUBJECT: &'static str = "orders.confirmed";
}
impl Event for OrderCancelled {
    const SUBJECT: &'static str = "orders.cancelled";
}

/// Any order event, decoded from its subject and payload.
#[derive(Debug, Clone)]
pub enum OrderEvent {
    Placed(OrderPlaced),
    PaymentCaptured(PaymentCaptured),
    ShipmentCreated(ShipmentCreated),
    Confirmed(OrderConfirmed),
    Cancelled(OrderCancelled),
}

/// Why a delivery is not an order event this build understands.
#[derive(Debug, thiserror::Error)]
pub enum UnknownEvent {
    /// A subject no event here has: published by a newer (or older) build.
    #[error("no order event has the subject {0:?}")]
    Subject(String),
    #[error("{subject} payload does not parse: {reason}")]
    Payload {
        subject: &'static str,
        reason: String,
    },
}

impl OrderEvent {
    /// The subject filter that takes every order event.
    pub const ALL: &'static str = "orders.>";

    /// The subjects of every order event, for consumers that list what they take.
    pub const SUBJECTS: [&'static str; 5] = [
        OrderPlaced::SUBJECT,
        PaymentCaptured::SUBJECT,
        ShipmentCreated::SUBJECT,
        OrderConfirmed::SUBJECT,
        OrderCancelled::SUBJECT,
    ];

    /// Decodes an event by its subject (without the bus's prefix).
    pub fn decode(subject: &str, payload: &[u8]) -> Result<Self, UnknownEvent> {
        fn parse<E: Event + serde::de::DeserializeOwned>(
            payload: &[u8],
        ) -> Result<E, UnknownEvent> {
            serde_json::from_slice(payload).map_err(|e| UnknownEvent::Payload {
                subject: E::SUBJECT,
                reason: e.to_string(),
            })
        }
        Ok(match subject {
            OrderPlaced::SUBJECT => Self::Placed(parse(payload)?),
            PaymentCaptured::SUBJECT => Self::PaymentCaptured(parse(payload)?),
            ShipmentCreated::SUBJECT => Self::ShipmentCreated(parse(payload)?),
            OrderConfirmed::SUBJECT => Self::Confirmed(parse(payload)?),
            OrderCancelled::SUBJECT => Self::Cancelled(parse(payload)?),
            other => return Err(UnknownEvent::Subject(other.to_owned())),
        })
    }

    /// The order the event is about.
    pub fn order_id(&self) -> OrderId {
        match self {
            Self::Placed(e) => e.order_id,
            Self::PaymentCaptured(e) => e.order_id,
            Self::ShipmentCreated(e) => e.order_id,
            Self::Confirmed(e) => e.order_id,
            Self::Cancelled(e) => e.order_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_decode_by_their_subject() {
        let confirmed = serde_json::to_vec(&OrderConfirmed {
            order_id: OrderId::new(7),
        })
        .unwrap();
        let event = OrderEvent::decode(OrderConfirmed::SUBJECT, &confirmed).unwrap();
        assert!(matches!(event, OrderEvent::Confirmed(_)));
        assert_eq!(event.order_id(), OrderId::new(7));
        // The same payload under another subject is that event, or does not parse as it.
        assert!(matches!(
            OrderEvent::decode(OrderPlaced::SUBJECT, &confirmed),
            Err(UnknownEvent::Payload {
                subject: "orders.placed",
                ..
            })
        ));
    }

    #[test]
    fn an_unknown_subject_is_an_error_not_a_skip() {
        assert!(matches!(
            OrderEvent::decode("orders.renamed", b"{}"),
            Err(UnknownEvent::Subject(s)) if s == "orders.renamed"
        ));
        let mut subjects = OrderEvent::SUBJECTS.to_vec();
        subjects.sort_unstable();
        subjects.dedup();
        assert_eq!(subjects.len(), OrderEvent::SUBJECTS.len());
    }
}
