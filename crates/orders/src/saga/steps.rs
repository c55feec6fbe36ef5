//! The saga's steps as database transitions. Each moves an order from one status to the next
//! with a compare-and-set on the status, writes the history row and the step's event in the
//! same transaction, and renews the runner's lease; a runner that lost a race changes nothing.

use std::time::Duration;

use catalog::{Quantity, StockRequest};
use platform::db::Client;
use platform::{
    InfraError,
    bus::{consumer::mark_processed, outbox},
    db::Db,
};
use time::OffsetDateTime;
use tokio_postgres::types::Json;

use crate::{OrderId, OrderLine, OrderStatus};

/// The consumer name saga deliveries are recorded under.
pub(crate) const CONSUMER: &str = "order-saga";

/// What a step needs to know about its order.
#[derive(Debug)]
pub(crate) struct SagaOrder {
    pub(crate) id: OrderId,
    pub(crate) status: OrderStatus,
    pub(crate) total_cents: i64,
    pub(crate) cancel_reason: Option<String>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) lines: Vec<OrderLine>,
}

/// Whether this runner may work on the order now.
#[derive(Debug)]
pub(crate) enum Claim {
    Claimed,
    /// The saga is over.
    Finished(OrderStatus),
    /// Another runner holds the lease for this long still.
    Busy(Duration),
}

fn status(text: &str) -> Result<OrderStatus, InfraError> {
    OrderStatus::parse(text)
        .ok_or_else(|| InfraError::unexpected(format!("order with unknown status {text:?}")))
}

/// Takes the order's lease unless a live runner holds it.
pub(crate) async fn claim(db: &Db, id: OrderId, lease: Duration) -> Result<Claim, InfraError> {
    let client = db.write().await?;
    let statement = client
        .prepare_cached(
            "WITH claimed AS (
                UPDATE orders.orders SET saga_lease_until = now() + $2::float8 * interval '1 second'
                 WHERE id = $1 AND status NOT IN ('confirmed', 'cancelled')
                   AND (saga_lease_until IS NULL OR saga_lease_until < now())
                RETURNING id
             )
             SELECT o.status, EXISTS (SELECT 1 FROM claimed),
                    coalesce(extract(epoch FROM o.saga_lease_until - now()), 0)::float8
               FROM orders.orders o WHERE o.id = $1",
        )
        .await?;
    let row = platform::db::timed(
        "orders.saga_claim",
        client.query_opt(&statement, &[&id, &lease.as_secs_f64()]),
    )
    .await?
    .ok_or_else(|| InfraError::unexpected(format!("the saga of order {id}: no such order")))?;
    let current = status(row.get(0))?;
    Ok(if row.get(1) {
        Claim::Claimed
    } else if current.is_final() {
        Claim::Finished(current)
    } else {
        Claim::Busy(Duration::from_secs_f64(row.get::<_, f64>(2).max(0.1)))
    })
}

/// The order as the next step needs it.
pub(crate) async fn load(db: &Db, id: OrderId) -> Result<SagaOrder, InfraError> {
    let client = db.write().await?;
    let statement = client
        .prepare_cached(
            "SELECT o.status, o.total_cents, o.cancel_reason, o.created_at,
                    (SELECT coalesce(json_agg(json_build_object(
                                'product_id', l.product_id, 'product_name', l.product_name,
                                'quantity', l.quantity, 'unit_price_cents', l.unit_price_cents)
                            ORDER BY l.line_no), '[]')
                       FROM orders.order_lines l WHERE l.order_id = o.id)
               FROM orders.orders o WHERE o.id = $1",
        )
        .await?;
    let row = platform::db::timed("orders.saga_load", client.query_one(&statement, &[&id])).await?;
    let Json(lines): Json<Vec<OrderLine>> = row.get(4);
    Ok(SagaOrder {
        id,
        status: status(row.get(0))?,
        total_cents: row.get(1),
        cancel_reason: row.get(2),
        created_at: row.get(3),
        lines,
    })
}

/// Moves `order` from `from` to `to` (compare-and-set), recording `note` in its history.
/// Returns the open transaction for the step's own writes, or `None` if the order was no
/// longer in `from` (another runner got there first).
pub(crate) async fn advance<'c>(
    client: &'c mut platform::db::Connection,
    id: OrderId,
    from: OrderStatus,
    to: OrderStatus,
    note: Option<&str>,
    lease: Duration,
) -> Result<Option<platform::db::Transaction<'c>>, InfraError> {
    let tx = client.transaction().await?;
    let statement = tx
        .prepare_cached(
            "WITH moved AS (
                UPDATE orders.orders
                   SET status = $3, updated_at = now(),
                       saga_lease_until = CASE WHEN $3 IN ('confirmed', 'cancelled') THEN NULL
                                               ELSE now() + $5::float8 * interval '1 second' END
                 WHERE id = $1 AND status = $2
                   -- A cancellation requested meanwhile stops every step but the cancel.
                   AND (cancel_requested_at IS NULL OR $3 = 'cancelled')
                RETURNING id
             )
             INSERT INTO orders.order_history (order_id, status, note)
             SELECT id, $3, $4 FROM moved",
        )
        .await?;
    let moved = platform::db::timed(
        "orders.saga_advance",
        tx.execute(
            &statement,
            &[
                &id,
                &from.as_str(),
                &to.as_str(),
                &note,
                &lease.as_secs_f64(),
            ],
        ),
    )
    .await?;
    Ok((moved == 1).then_some(tx))
}

/// Records why the order must be cancelled (the first reason wins), so a runner that
/// resumes it later compensates instead of going on.
pub(crate) async fn request_cancel(db: &Db, id: OrderId, reason: &str) -> Result<(), InfraError> {
    let client = db.write().await?;
    let statement = client
        .prepare_cached(
            "UPDATE orders.orders SET cancel_requested_at = now(), cancel_reason = $2
              WHERE id = $1 AND cancel_requested_at IS NULL",
        )
        .await?;
    client.execute(&statement, &[&id, &reason]).await?;
    Ok(())
}

/// Lets another runner (a redelivery) take the order before the lease runs out.
pub(crate) async fn release_lease(db: &Db, id: OrderId) -> Result<(), InfraError> {
    let client = db.write().await?;
    let statement = client
        .prepare_cached("UPDATE orders.orders SET saga_lease_until = NULL WHERE id = $1")
        .await?;
    client.execute(&statement, &[&id]).await?;
    Ok(())
}

/// Writes the charge's id on the order.
pub(crate) async fn set_charge(
    tx: &impl Client,
    id: OrderId,
    charge_id: &str,
) -> Result<(), InfraError> {
    let statement = tx
        .prepare_cached("UPDATE orders.orders SET charge_id = $2 WHERE id = $1")
        .await?;
    tx.execute(&statement, &[&id, &charge_id]).await?;
    Ok(())
}

/// Puts the order's stock back (the compensation of its reservation).
pub(crate) async fn release_stock(tx: &impl Client, lines: &[OrderLine]) -> Result<(), InfraError> {
    let requests = lines
        .iter()
        .map(|l| {
            Quantity::new(i64::from(l.quantity))
                .map(|quantity| StockRequest {
                    product_id: l.product_id,
                    quantity,
                })
                .map_err(|e| InfraError::unexpected(format!("stored quantity: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    catalog::release_stock(tx, &requests).await
}

/// Appends the step's event, and marks the delivery that drove the saga as processed when
/// the saga ends here.
pub(crate) async fn finish_step(
    tx: &impl Client,
    event: &impl outbox::Event,
    delivery: Option<i64>,
) -> Result<(), InfraError> {
    outbox::append(tx, event).await?;
    if let Some(message_id) = delivery {
        mark_processed(tx, CONSUMER, message_id).await?;
    }
    Ok(())
}
