//! The states of an order's saga.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where an order is in its saga: `stock_reserved` (when it is placed) → `payment_captured`
/// → `shipment_created` → `confirmed`, or `cancelled` with a reason from any state before
/// the shipment, its earlier steps compensated.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted (a state in the history; an order is stored once its stock is reserved).
    Placed,
    StockReserved,
    PaymentCaptured,
    ShipmentCreated,
    Confirmed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// Whether the saga is over for this order.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Cancelled)
    }

    /// How far along the saga the order is: a state only ever moves to a higher rank, so an
    /// update that would lower it (an event delivered late) is one to ignore. The two final
    /// states share the top rank: neither follows the other.
    pub fn rank(self) -> i16 {
        match self {
            Self::Placed => 0,
            Self::StockReserved => 1,
            Self::PaymentCaptured => 2,
            Self::ShipmentCreated => 3,
            Self::Confirmed | Self::Cancelled => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for &status in OrderStatus::VARIANTS {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
    }

    #[test]
    fn the_saga_only_moves_up_the_ranks() {
        use OrderStatus::*;
        let path = [
            Placed,
            StockReserved,
            PaymentCaptured,
            ShipmentCreated,
            Confirmed,
        ];
        assert!(path.windows(2).all(|w| w[0].rank() < w[1].rank()));
        for before_shipment in [Placed, StockReserved, PaymentCaptured] {
            assert!(before_shipment.rank() < Cancelled.rank());
        }
        assert_eq!(Confirmed.rank(), Cancelled.rank());
        assert!(
            OrderStatus::VARIANTS
                .iter()
                .filter(|s| s.is_final())
                .all(|s| s.rank() == 4)
        );
    }
}
