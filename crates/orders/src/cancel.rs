//! A customer cancelling their order: allowed until it ships. The request is recorded on the
//! order; the saga's runner compensates (refund, stock) at its next step.

use contract::UserId;
use platform::db::Db;

use crate::{Error, Order, OrderId, OrderStatus, query};

/// The reason a customer's cancellation gives.
pub const BY_CUSTOMER: &str = "cancelled by the customer";

/// Asks for order `id` of `user_id` to be cancelled; asking twice is the same as once.
pub(crate) async fn request_cancellation(
    db: &Db,
    user_id: UserId,
    id: OrderId,
) -> Result<Order, Error> {
    let client = db.write().await?;
    let statement = client
        .prepare_cached(
            "UPDATE orders.orders SET cancel_requested_at = now(), cancel_reason = $3
              WHERE id = $1 AND user_id = $2 AND cancel_requested_at IS NULL
                AND status IN ('placed', 'stock_reserved', 'payment_captured')",
        )
        .await?;
    platform::db::timed(
        "orders.request_cancel",
        client.execute(&statement, &[&id, &user_id, &BY_CUSTOMER]),
    )
    .await?;
    drop(client);
    let order = query::get_own_order_on_primary(db, user_id, id).await?;
    match order.status {
        OrderStatus::ShipmentCreated | OrderStatus::Confirmed => Err(Error::AlreadyShipped),
        OrderStatus::Cancelled if order.cancel_reason.as_deref() != Some(BY_CUSTOMER) => {
            Err(Error::AlreadyCancelled)
        }
        _ => Ok(order),
    }
}
