//! Reading a customer's own orders, each with its lines (and, for one order, its history),
//! in one query.

use contract::{OrderPageRequest, UserId};
use platform::{
    db::{Connection, Db, Lsn},
    page::Page,
};
use serde::Serialize;
use tokio_postgres::types::Json;
use utoipa::ToSchema;

use crate::{Error, HistoryEntry, Order, OrderId, OrderLine, OrderStatus};

/// The columns every order query selects; the lines come aggregated as JSON, so a page of
/// orders with all their lines is one round trip and one index scan per order.
macro_rules! order_columns {
    () => {
        "SELECT o.id, o.status, o.total_cents, o.created_at,
            (SELECT coalesce(json_agg(json_build_object(
                        'product_id', l.product_id, 'product_name', l.product_name,
                        'quantity', l.quantity, 'unit_price_cents', l.unit_price_cents)
                    ORDER BY l.line_no), '[]')
               FROM orders.order_lines l WHERE l.order_id = o.id),
            o.cancel_reason"
    };
}

const SELECT: &str = concat!(order_columns!(), " FROM orders.orders o");

/// One order also shows its history; `$2` may be NULL (any owner) for the saga's own reads.
const SELECT_ONE: &str = concat!(
    order_columns!(),
    ", (SELECT json_agg(json_build_object('status', h.status, 'note', h.note,
                'at', to_char(h.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
            ORDER BY h.id)
         FROM orders.order_history h WHERE h.order_id = o.id)
     FROM orders.orders o
    WHERE o.id = $1 AND ($2::bigint IS NULL OR o.user_id = $2)"
);

fn order_from_row(row: &tokio_postgres::Row) -> Result<Order, Error> {
    let Json(lines): Json<Vec<OrderLine>> = row.get(4);
    let history = if row.len() > 6 {
        row.get::<_, Option<Json<Vec<HistoryEntry>>>>(6)
            .map(|Json(h)| h)
    } else {
        None
    };
    Ok(Order {
        id: row.get(0),
        status: OrderStatus::parse(row.get(1)).ok_or_else(|| {
            platform::InfraError::unexpected(format!(
                "order with unknown status {:?}",
                row.get::<_, &str>(1)
            ))
        })?,
        cancel_reason: row.get(5),
        total_cents: row.get(2),
        created_at: row.get(3),
        lines,
        history,
    })
}

/// The order `id`, if it belongs to `user_id`; another user's order is as absent as a
/// missing one, so ids reveal nothing.
/// Read on a replica that has `token` (the caller's newest write), or on the primary.
pub(crate) async fn get_order(
    db: &Db,
    token: Option<Lsn>,
    user_id: UserId,
    id: OrderId,
) -> Result<Order, Error> {
    db.with_read(token, |client| async move {
        fetch_one(&client, Some(user_id), id).await
    })
    .await
}

/// The order `id` of `user_id` as the primary has it, for the request that just changed it.
pub(crate) async fn get_own_order_on_primary(
    db: &Db,
    user_id: UserId,
    id: OrderId,
) -> Result<Order, Error> {
    fetch_one(&db.write().await?, Some(user_id), id).await
}

/// The order `id` as the primary has it, for the request that just ran its saga.
pub(crate) async fn get_order_by_id(db: &Db, id: OrderId) -> Result<Order, Error> {
    fetch_one(&db.write().await?, None, id).await
}

async fn fetch_one(
    client: &Connection,
    user_id: Option<UserId>,
    id: OrderId,
) -> Result<Order, Error> {
    let statement = client.prepare_cached(SELECT_ONE).await?;
    let row = platform::db::timed(
        "orders.order_by_id",
        client.query_opt(&statement, &[&id, &user_id]),
    )
    .await?
    .ok_or(Error::NotFound)?;
    order_from_row(&row)
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderPage {
    pub items: Vec<Order>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub next_after: Option<OrderId>,
}

/// The orders of `user_id`, newest first, in keyset pages over `(user_id, id DESC)`.
pub(crate) async fn list_orders(
    db: &Db,
    token: Option<Lsn>,
    user_id: UserId,
    page: &OrderPageRequest,
) -> Result<OrderPage, Error> {
    let (size, before) = page.keyset();
    let limit = size.get();
    let rows = db
        .with_read(token, |client| async move {
            let statement = client
                .prepare_cached(&format!(
                    "{SELECT} WHERE o.user_id = $1 AND o.id < $2 ORDER BY o.id DESC LIMIT $3"
                ))
                .await?;
            Ok::<_, Error>(
                platform::db::timed(
                    "orders.orders_page",
                    client.query(&statement, &[&user_id, &before, &limit]),
                )
                .await?,
            )
        })
        .await?;
    let items = rows
        .iter()
        .map(order_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let Page { items, next_after } = Page::keyset(items, size, |o| o.id);
    Ok(OrderPage { items, next_after })
}
