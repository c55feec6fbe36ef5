//! Applying one order event to one generation of the read models. The live projector and
//! the rebuild both come through here, so a read model built either way is the same.
//!
//! Each generation records the events it applied (in the same transaction as their effect),
//! so applying one twice changes nothing. Status only moves forward along the saga, so
//! events applied out of order cannot take a summary back.

use deadpool_postgres::GenericClient;
use orders::events::{OrderCancelled, OrderPlaced};
use platform::InfraError;
use serde::Deserialize;
use time::OffsetDateTime;

/// An event as the projection needs it, from JetStream or from the event log.
#[derive(Debug)]
pub(crate) struct StoredEvent<'a> {
    pub(crate) id: i64,
    /// Under the bus prefix: `orders.placed`.
    pub(crate) subject: &'a str,
    pub(crate) payload: &'a [u8],
    pub(crate) occurred_at: OffsetDateTime,
}

/// What applying an event did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Done,
    /// This generation had applied it before: nothing to do.
    Already,
    /// It is about an order this generation has not seen placed yet; nothing changed.
    OrderUnknown,
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error("{subject} event {id} does not parse: {reason}")]
    Malformed {
        subject: String,
        id: i64,
        reason: String,
    },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<tokio_postgres::Error> for ApplyError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApplyError::Infra(e.into())
    }
}

/// The fields every order step event carries.
#[derive(Deserialize)]
struct OrderStep {
    order_id: i64,
}

/// Applies `event` to the generation in `schema`, inside the caller's transaction. The
/// caller rolls back unless it is [`Applied::Done`].
pub(crate) async fn apply(
    tx: &impl GenericClient,
    schema: &str,
    event: &StoredEvent<'_>,
) -> Result<Applied, ApplyError> {
    let first_time = tx
        .prepare_cached(&format!(
            "INSERT INTO {schema}.applied_events VALUES ($1) ON CONFLICT DO NOTHING"
        ))
        .await?;
    if tx.execute(&first_time, &[&event.id]).await? == 0 {
        return Ok(Applied::Already);
    }
    let known = match event.subject {
        "orders.placed" => {
            placed(tx, schema, &parse::<OrderPlaced>(event)?, event).await?;
            true
        }
        "orders.payment_captured" => advance(tx, schema, event, "payment_captured", 2).await?,
        "orders.shipment_created" => advance(tx, schema, event, "shipment_created", 3).await?,
        "orders.confirmed" => confirmed(tx, schema, event).await?,
        "orders.cancelled" => {
            let cancelled = parse::<OrderCancelled>(event)?;
            cancelled_order(tx, schema, cancelled.order_id, event.occurred_at).await?
        }
        // Events no read model needs are recorded as applied all the same.
        _ => true,
    };
    if known {
        return Ok(Applied::Done);
    }
    // Not applied after all: a later try (a redelivery, the rebuild's catch-up) must not find
    // it marked.
    let undo = tx
        .prepare_cached(&format!(
            "DELETE FROM {schema}.applied_events WHERE event_id = $1"
        ))
        .await?;
    tx.execute(&undo, &[&event.id]).await?;
    Ok(Applied::OrderUnknown)
}

fn parse<'de, T: Deserialize<'de>>(event: &'de StoredEvent<'_>) -> Result<T, ApplyError> {
    serde_json::from_slice(event.payload).map_err(|e| ApplyError::Malformed {
        subject: event.subject.to_owned(),
        id: event.id,
        reason: e.to_string(),
    })
}

async fn placed(
    tx: &impl GenericClient,
    schema: &str,
    order: &OrderPlaced,
    event: &StoredEvent<'_>,
) -> Result<(), ApplyError> {
    let statement = tx
        .prepare_cached(&format!(
            "WITH s AS (
                INSERT INTO {schema}.order_summaries
                    (order_id, customer_id, customer_name, status, status_rank, total_cents,
                     line_count, item_count, lines, placed_at, updated_at)
                VALUES ($1, $2, $3, 'stock_reserved', 1, $4, $5, $6, $7, $8, $8)
                ON CONFLICT (order_id) DO NOTHING
             )
             INSERT INTO {schema}.customer_stats AS c
                 (customer_id, customer_name, orders_placed, last_order_at)
             VALUES ($2, $3, 1, $8)
             ON CONFLICT (customer_id) DO UPDATE
                SET orders_placed = c.orders_placed + 1,
                    customer_name = EXCLUDED.customer_name,
                    last_order_at = greatest(c.last_order_at, EXCLUDED.last_order_at)"
        ))
        .await?;
    let name = order.customer_name.clone().unwrap_or_default();
    let items: i64 = order.lines.iter().map(|l| i64::from(l.quantity)).sum();
    let lines = serde_json::to_value(&order.lines).map_err(InfraError::unexpected)?;
    platform::db::timed(
        "reports.project_placed",
        tx.execute(
            &statement,
            &[
                &order.order_id,
                &order.user_id,
                &name,
                &order.total_cents,
                &(order.lines.len() as i32),
                &(items as i32),
                &lines,
                &order.placed_at.unwrap_or(event.occurred_at),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// Moves the order's summary forward to `status`; false when there is no summary yet.
async fn advance(
    tx: &impl GenericClient,
    schema: &str,
    event: &StoredEvent<'_>,
    status: &str,
    rank: i16,
) -> Result<bool, ApplyError> {
    let step = parse::<OrderStep>(event)?;
    let statement = tx
        .prepare_cached(&format!(
            "WITH u AS (
                UPDATE {schema}.order_summaries
                   SET status = $2, status_rank = $3, updated_at = $4,
                       projected_at = clock_timestamp()
                 WHERE order_id = $1 AND status_rank < $3
             )
             SELECT EXISTS (SELECT 1 FROM {schema}.order_summaries WHERE order_id = $1)"
        ))
        .await?;
    let row = platform::db::timed(
        "reports.project_step",
        tx.query_one(
            &statement,
            &[&step.order_id, &status, &rank, &event.occurred_at],
        ),
    )
    .await?;
    Ok(row.get(0))
}

/// The order is a sale: its summary, its customer's spending and its products' daily sales.
async fn confirmed(
    tx: &impl GenericClient,
    schema: &str,
    event: &StoredEvent<'_>,
) -> Result<bool, ApplyError> {
    let step = parse::<OrderStep>(event)?;
    let statement = tx
        .prepare_cached(&format!(
            "WITH o AS (
                UPDATE {schema}.order_summaries
                   SET status = 'confirmed', status_rank = 4, updated_at = $2,
                       projected_at = clock_timestamp()
                 WHERE order_id = $1 AND status_rank < 4
             RETURNING customer_id, total_cents, placed_at, lines
             ), c AS (
                UPDATE {schema}.customer_stats s
                   SET orders_confirmed = s.orders_confirmed + 1,
                       spent_cents = s.spent_cents + o.total_cents
                  FROM o WHERE s.customer_id = o.customer_id
             ), p AS (
                INSERT INTO {schema}.product_sales_daily AS d
                    (day, product_id, product_name, units, revenue_cents, orders)
                SELECT (o.placed_at AT TIME ZONE 'UTC')::date, l.product_id, l.product_name,
                       l.quantity, l.quantity * l.unit_price_cents, 1
                  FROM o, jsonb_to_recordset(o.lines)
                       AS l (product_id bigint, product_name text, quantity bigint,
                             unit_price_cents bigint)
                ON CONFLICT (day, product_id) DO UPDATE
                   SET units = d.units + EXCLUDED.units,
                       revenue_cents = d.revenue_cents + EXCLUDED.revenue_cents,
                       orders = d.orders + 1,
                       product_name = EXCLUDED.product_name
             )
             SELECT EXISTS (SELECT 1 FROM {schema}.order_summaries WHERE order_id = $1)"
        ))
        .await?;
    let row = platform::db::timed(
        "reports.project_confirmed",
        tx.query_one(&statement, &[&step.order_id, &event.occurred_at]),
    )
    .await?;
    Ok(row.get(0))
}

async fn cancelled_order(
    tx: &impl GenericClient,
    schema: &str,
    order_id: i64,
    at: OffsetDateTime,
) -> Result<bool, ApplyError> {
    let statement = tx
        .prepare_cached(&format!(
            "WITH o AS (
                UPDATE {schema}.order_summaries
                   SET status = 'cancelled', status_rank = 4, updated_at = $2,
                       projected_at = clock_timestamp()
                 WHERE order_id = $1 AND status_rank < 4
             RETURNING customer_id
             ), c AS (
                UPDATE {schema}.customer_stats s
                   SET orders_cancelled = s.orders_cancelled + 1
                  FROM o WHERE s.customer_id = o.customer_id
             )
             SELECT EXISTS (SELECT 1 FROM {schema}.order_summaries WHERE order_id = $1)"
        ))
        .await?;
    let row = platform::db::timed(
        "reports.project_cancelled",
        tx.query_one(&statement, &[&order_id, &at]),
    )
    .await?;
    Ok(row.get(0))
}

/// The schema of generation `n`.
pub(crate) fn schema(n: i32) -> String {
    format!("reports_g{n}")
}
