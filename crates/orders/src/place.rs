//! Placing an order: stock reserved, prices fixed and the order written in one transaction,
//! at most once per idempotency key.

use accounts::UserId;
use catalog::{ProductCache, Quantity, StockRequest};
use deadpool_postgres::GenericClient;
use platform::{
    InfraError,
    db::Db,
    idempotency::{self, Claim, IdempotencyKey, StoredResponse},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Error, Order, OrderLine, OrderStatus};

/// The most lines one order may have.
pub const MAX_LINES: usize = 50;

/// An order to place. Prices, totals and status are the server's: unknown fields such as
/// `price` or `status` are rejected.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    #[schema(value_type = Vec<LineRequest>, min_items = 1, max_items = 50)]
    pub lines: Lines,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    pub product_id: i64,
    #[schema(value_type = i32, minimum = 1, maximum = 1000)]
    pub quantity: Quantity,
}

/// 1 to 50 lines, each product on one line only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "Vec<LineRequest>")]
pub struct Lines(Vec<LineRequest>);

impl TryFrom<Vec<LineRequest>> for Lines {
    type Error = String;
    fn try_from(lines: Vec<LineRequest>) -> Result<Self, String> {
        if lines.is_empty() || lines.len() > MAX_LINES {
            return Err(format!("must have 1 to {MAX_LINES} lines"));
        }
        let mut ids: Vec<i64> = lines.iter().map(|l| l.product_id).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "product {} is on more than one line; order it once with the total quantity",
                pair[0]
            ));
        }
        Ok(Self(lines))
    }
}

impl Lines {
    pub fn as_slice(&self) -> &[LineRequest] {
        &self.0
    }
}

/// The outcome of [`place_order_once`].
#[derive(Debug)]
pub enum Placed {
    /// A new order and its response, as stored for replays.
    Created(StoredResponse),
    /// The key was used for this request before: its stored response.
    Replayed(StoredResponse),
}

/// Places the order for `user_id`, or replays the response of the request that used `key`
/// before. Only a successful order's response is stored: a request that failed changed
/// nothing, and the same key may run it again. After the commit, the ordered products'
/// cached pages (which show stock) are invalidated.
pub async fn place_order_once(
    db: &Db,
    products: &ProductCache,
    user_id: UserId,
    key: Option<&IdempotencyKey>,
    request: &PlaceOrder,
) -> Result<Placed, Error> {
    let mut client = db.write().await?;
    let pending = match key {
        Some(key) => {
            let fingerprint = idempotency::fingerprint("POST /orders", request)?;
            let scope = format!("user:{user_id}");
            match idempotency::claim(&client, &scope, key, &fingerprint).await? {
                Claim::Fresh(pending) => Some(pending),
                Claim::Replay(stored) => return Ok(Placed::Replayed(stored)),
            }
        }
        None => None,
    };
    let outcome = async {
        let tx = client.transaction().await?;
        let order = place_order(&tx, user_id, request).await?;
        let response = StoredResponse {
            status: axum::http::StatusCode::CREATED,
            location: Some(format!("/orders/{}", order.id)),
            body: serde_json::to_vec(&order).map_err(InfraError::unexpected)?,
        };
        if let Some(pending) = &pending {
            pending.complete(&tx, &response).await?;
        }
        tx.commit().await?;
        Ok::<_, Error>(Placed::Created(response))
    }
    .await;
    if let Ok(Placed::Created(_)) = &outcome {
        products
            .invalidate(request.lines.as_slice().iter().map(|l| l.product_id))
            .await;
    }
    if let (Err(_), Some(pending)) = (&outcome, &pending) {
        if let Err(e) = pending.release(&client).await {
            tracing::warn!(error = %e, "could not release an idempotency key; it expires on its own");
        }
    }
    outcome
}

/// Writes the order inside `tx`: reserves the stock, fixes each line's price, and inserts
/// the order with its lines in one statement.
pub async fn place_order(
    tx: &impl GenericClient,
    user_id: UserId,
    request: &PlaceOrder,
) -> Result<Order, Error> {
    let lines = request.lines.as_slice();
    let requests: Vec<StockRequest> = lines
        .iter()
        .map(|l| StockRequest {
            product_id: l.product_id,
            quantity: l.quantity,
        })
        .collect();
    let reserved = catalog::reserve_stock(tx, &requests).await?;

    let total_cents: i64 = reserved
        .iter()
        .map(|r| r.unit_price_cents * i64::from(r.quantity.get()))
        .sum();
    let line_nos: Vec<i16> = (1..).take(reserved.len()).collect();
    let product_ids: Vec<i64> = reserved.iter().map(|r| r.product_id).collect();
    let names: Vec<&str> = reserved.iter().map(|r| r.name.as_str()).collect();
    let quantities: Vec<i32> = reserved.iter().map(|r| r.quantity.get()).collect();
    let prices: Vec<i64> = reserved.iter().map(|r| r.unit_price_cents).collect();

    let insert = tx
        .prepare_cached(
            "WITH o AS (
                INSERT INTO orders.orders (user_id, total_cents) VALUES ($1, $2)
                RETURNING id, status, created_at
             ), l AS (
                INSERT INTO orders.order_lines
                       (order_id, line_no, product_id, product_name, quantity, unit_price_cents)
                SELECT o.id, l.* FROM o,
                       unnest($3::smallint[], $4::bigint[], $5::text[], $6::integer[], $7::bigint[])
                       AS l (line_no, product_id, product_name, quantity, unit_price_cents)
             )
             SELECT id, status, created_at FROM o",
        )
        .await?;
    let row = tx
        .query_one(
            &insert,
            &[
                &user_id,
                &total_cents,
                &line_nos,
                &product_ids,
                &names,
                &quantities,
                &prices,
            ],
        )
        .await?;
    Ok(Order {
        id: row.get(0),
        status: OrderStatus::parse(row.get(1))
            .ok_or_else(|| InfraError::unexpected("new order with an unknown status"))?,
        total_cents,
        created_at: row.get(2),
        lines: reserved
            .into_iter()
            .map(|r| OrderLine {
                product_id: r.product_id,
                product_name: r.name,
                quantity: r.quantity.get(),
                unit_price_cents: r.unit_price_cents,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product_id: i64) -> LineRequest {
        LineRequest {
            product_id,
            quantity: Quantity::new(1).unwrap(),
        }
    }

    #[test]
    fn an_order_has_one_to_fifty_lines() {
        assert!(Lines::try_from(vec![]).is_err());
        assert!(Lines::try_from((1..=50).map(line).collect::<Vec<_>>()).is_ok());
        assert!(Lines::try_from((1..=51).map(line).collect::<Vec<_>>()).is_err());
    }

    #[test]
    fn a_product_appears_on_one_line() {
        let err = Lines::try_from(vec![line(3), line(4), line(3)]).unwrap_err();
        assert!(err.contains("product 3"));
    }
}
