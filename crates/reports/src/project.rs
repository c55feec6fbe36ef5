//! Applying one order event to one generation of the read models. The live projector and
//! the rebuild both come through here, so a read model built either way is the same.
//!
//! Each generation records the events it applied (in the same transaction as their effect),
//! so applying one twice changes nothing. Status only moves forward along the saga (its
//! rank), so events applied out of order cannot take a summary back. A subject this build
//! does not know is an error, never an event marked applied and dropped.

use contract::{OrderEvent, OrderId, OrderPlaced, OrderStatus, UnknownEvent};
use platform::InfraError;
use platform::db::Client;
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

impl<'a> From<&'a platform::bus::event_log::LoggedEvent> for StoredEvent<'a> {
    fn from(logged: &'a platform::bus::event_log::LoggedEvent) -> Self {
        Self {
            id: logged.id,
            subject: &logged.subject,
            payload: logged.payload.as_bytes(),
            occurred_at: logged.occurred_at,
        }
    }
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
    /// Not an order event this build knows, or one whose payload does not parse: counted in
    /// `keel_projection_unknown_events_total`.
    #[error("event {id}: {reason}")]
    Unknown { id: i64, reason: UnknownEvent },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

platform::infra_errors!(ApplyError);

/// Applies `event` to the generation in `schema`, inside the caller's transaction. The
/// caller rolls back unless it is [`Applied::Done`].
pub(crate) async fn apply(
    tx: &impl Client,
    schema: &str,
    event: &StoredEvent<'_>,
) -> Result<Applied, ApplyError> {
    let first_time = tx
        .prepare_cached(&format!(
            "INSERT INTO {schema}.applied_events VALUES ($1) ON CONFLICT DO NOTHING"
        ))
        .await?;
    let decoded = OrderEvent::decode(event.subject, event.payload).map_err(|reason| {
        metrics::counter!("keel_projection_unknown_events_total").increment(1);
        ApplyError::Unknown {
            id: event.id,
            reason,
        }
    })?;
    if tx.execute(&first_time, &[&event.id]).await? == 0 {
        return Ok(Applied::Already);
    }
    let at = event.occurred_at;
    let known = match decoded {
        OrderEvent::Placed(order) => {
            placed(tx, schema, &order, at).await?;
            true
        }
        OrderEvent::PaymentCaptured(e) => {
            advance(tx, schema, e.order_id, OrderStatus::PaymentCaptured, at).await?
        }
        OrderEvent::ShipmentCreated(e) => {
            advance(tx, schema, e.order_id, OrderStatus::ShipmentCreated, at).await?
        }
        OrderEvent::Confirmed(e) => {
            advance(tx, schema, e.order_id, OrderStatus::Confirmed, at).await?
        }
        OrderEvent::Cancelled(e) => {
            advance(tx, schema, e.order_id, OrderStatus::Cancelled, at).await?
        }
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

async fn placed(
    tx: &impl Client,
    schema: &str,
    order: &OrderPlaced,
    at: OffsetDateTime,
) -> Result<(), ApplyError> {
    let statement = tx
        .prepare_cached(&format!(
            "WITH s AS (
                INSERT INTO {schema}.order_summaries
                    (order_id, customer_id, customer_name, status, status_rank, total_cents,
                     line_count, item_count, lines, placed_at, updated_at)
                VALUES ($1, $2, $3, $9, $10, $4, $5, $6, $7, $8, $8)
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
                &order.placed_at.unwrap_or(at),
                &OrderStatus::StockReserved.as_str(),
                &OrderStatus::StockReserved.rank(),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// Moves the order's summary forward to `status` — never back: its rank must rise — with
/// what that status means for the other read models; false when there is no summary yet.
async fn advance(
    tx: &impl Client,
    schema: &str,
    order_id: OrderId,
    status: OrderStatus,
    at: OffsetDateTime,
) -> Result<bool, ApplyError> {
    let (effects, name) = match status {
        // A sale: the customer's spending and the products' daily sales.
        OrderStatus::Confirmed => (
            format!(
                ", c AS (
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
                 )"
            ),
            "reports.project_confirmed",
        ),
        OrderStatus::Cancelled => (
            format!(
                ", c AS (
                    UPDATE {schema}.customer_stats s
                       SET orders_cancelled = s.orders_cancelled + 1
                      FROM o WHERE s.customer_id = o.customer_id
                 )"
            ),
            "reports.project_cancelled",
        ),
        _ => (String::new(), "reports.project_step"),
    };
    let statement = tx
        .prepare_cached(&format!(
            "WITH o AS (
                UPDATE {schema}.order_summaries
                   SET status = $2, status_rank = $3, updated_at = $4,
                       projected_at = clock_timestamp()
                 WHERE order_id = $1 AND status_rank < $3
             RETURNING customer_id, total_cents, placed_at, lines
             ){effects}
             SELECT EXISTS (SELECT 1 FROM {schema}.order_summaries WHERE order_id = $1)"
        ))
        .await?;
    let row = platform::db::timed(
        name,
        tx.query_one(
            &statement,
            &[&order_id, &status.as_str(), &status.rank(), &at],
        ),
    )
    .await?;
    Ok(row.get(0))
}

/// The schema of the active generation, held in the caller's transaction: other
/// projections share the hold, a rebuild's switch waits for it.
pub(crate) async fn active_schema(tx: &impl Client) -> Result<String, InfraError> {
    let statement = tx
        .prepare_cached(
            "SELECT generation FROM reports.generations WHERE state = 'active' FOR SHARE",
        )
        .await?;
    Ok(schema(tx.query_one(&statement, &[]).await?.get(0)))
}

/// Of the event ids `logged`, those the generation in `schema` has not applied, in id order.
pub(crate) async fn unapplied(
    tx: &impl Client,
    schema: &str,
    logged: &[i64],
) -> Result<Vec<i64>, InfraError> {
    let rows = tx
        .query(
            &format!(
                "SELECT id FROM unnest($1::bigint[]) AS r (id)
                  WHERE NOT EXISTS (SELECT 1 FROM {schema}.applied_events a WHERE a.event_id = r.id)
                  ORDER BY id"
            ),
            &[&logged],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The schema of generation `n`.
pub(crate) fn schema(n: i32) -> String {
    format!("reports_g{n}")
}
