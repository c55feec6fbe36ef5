//! Shipments: the saga's last real step. A shipment is recorded — its carrier picked by the
//! order's id, its tracking number made from it; no carrier is called — in the same
//! transaction that moves the order on, so an order has a shipment exactly when its status
//! says so.

use platform::InfraError;
use platform::db::Client;

use contract::ShipmentCreated;

use crate::OrderId;

/// The carriers orders are spread over.
const CARRIERS: [&str; 3] = ["dhl", "ups", "postnl"];

/// Records the shipment of `order_id` inside `tx`.
pub(crate) async fn create_shipment(
    tx: &impl Client,
    order_id: OrderId,
) -> Result<ShipmentCreated, InfraError> {
    let carrier = CARRIERS[order_id.get().unsigned_abs() as usize % CARRIERS.len()];
    let tracking_number = format!("{}-{order_id:010}", carrier.to_uppercase());
    let insert = tx
        .prepare_cached(
            "INSERT INTO orders.shipments (order_id, carrier, tracking_number) VALUES ($1, $2, $3)",
        )
        .await?;
    tx.execute(&insert, &[&order_id, &carrier, &tracking_number])
        .await?;
    Ok(ShipmentCreated {
        order_id,
        carrier: carrier.to_owned(),
        tracking_number,
    })
}
