//! Stock: setting it, and reserving it for an order so that it can never go negative.

use std::collections::HashMap;

use platform::InfraError;
use platform::db::Client;

use crate::{Error, Product, ProductId, product::COLUMNS};

platform::bounded_int!(
    /// How many units of one product an order takes: 1 to 50 000 (an order's at most 50
    /// lines of at most 1000 units, all of one product).
    pub Quantity(i32), 1..=50_000
);

platform::bounded_int!(
    /// Units on hand: 0 to 10 000 000.
    #[derive(Default)]
    pub StockLevel(i32), 0..=10_000_000
);

/// One product and how many of it to reserve.
#[derive(Debug, Clone, Copy)]
pub struct StockRequest {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// A reserved line, with the name and price the product had at that moment.
#[derive(Debug, Clone)]
pub struct ReservedLine {
    pub product_id: ProductId,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: Quantity,
}

/// Why a reservation failed; `line` is the index of the request that failed.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("line {line}: no product {product_id}")]
    UnknownProduct { line: usize, product_id: ProductId },
    #[error("line {line}: only {available} of product {product_id} in stock")]
    Insufficient {
        line: usize,
        product_id: ProductId,
        available: i32,
    },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

platform::infra_errors!(ReserveError);

/// Takes the requested units out of stock, inside the caller's transaction; product ids must
/// be distinct. Nothing is taken unless every line can be served.
///
/// Rows are locked in product-id order, so concurrent orders over the same products queue
/// instead of deadlocking; the update re-checks `on_hand >= quantity` and the table's CHECK
/// constraint backs it, so stock cannot go negative whatever the interleaving.
pub async fn reserve_stock(
    tx: &impl Client,
    requests: &[StockRequest],
) -> Result<Vec<ReservedLine>, ReserveError> {
    let ids: Vec<ProductId> = requests.iter().map(|r| r.product_id).collect();
    let quantities: Vec<i32> = requests.iter().map(|r| r.quantity.get()).collect();
    let lock = tx
        .prepare_cached(
            "SELECT s.product_id, p.name, p.price_cents, s.on_hand
               FROM catalog.stock s JOIN catalog.products p ON p.id = s.product_id
              WHERE s.product_id = ANY($1)
              ORDER BY s.product_id
                FOR UPDATE OF s",
        )
        .await?;
    let rows = platform::db::timed("catalog.lock_stock", tx.query(&lock, &[&ids])).await?;
    let found: HashMap<ProductId, &tokio_postgres::Row> =
        rows.iter().map(|row| (row.get(0), row)).collect();
    let mut reserved = Vec::with_capacity(requests.len());
    for (line, request) in requests.iter().enumerate() {
        let row = found
            .get(&request.product_id)
            .ok_or(ReserveError::UnknownProduct {
                line,
                product_id: request.product_id,
            })?;
        let available: i32 = row.get(3);
        if available < request.quantity.get() {
            return Err(ReserveError::Insufficient {
                line,
                product_id: request.product_id,
                available,
            });
        }
        reserved.push(ReservedLine {
            product_id: request.product_id,
            name: row.get(1),
            unit_price_cents: row.get(2),
            quantity: request.quantity,
        });
    }
    let take = tx
        .prepare_cached(
            "UPDATE catalog.stock s SET on_hand = s.on_hand - r.quantity
               FROM unnest($1::bigint[], $2::integer[]) AS r (product_id, quantity)
              WHERE s.product_id = r.product_id AND s.on_hand >= r.quantity",
        )
        .await?;
    let updated = platform::db::timed(
        "catalog.take_stock",
        tx.execute(&take, &[&ids, &quantities]),
    )
    .await?;
    if updated != requests.len() as u64 {
        // Unreachable while the rows are locked above; kept as a guard, not a code path.
        return Err(InfraError::unexpected("stock changed under a row lock").into());
    }
    Ok(reserved)
}

/// Puts reserved units back on hand (a cancelled order's compensation), inside the caller's
/// transaction. Rows are locked in product-id order, as [`reserve_stock`] does, so a release
/// and a reservation over the same products queue rather than deadlock.
pub async fn release_stock(tx: &impl Client, lines: &[StockRequest]) -> Result<(), InfraError> {
    let ids: Vec<ProductId> = lines.iter().map(|r| r.product_id).collect();
    let quantities: Vec<i32> = lines.iter().map(|r| r.quantity.get()).collect();
    let lock = tx
        .prepare_cached(
            "SELECT product_id FROM catalog.stock WHERE product_id = ANY($1)
              ORDER BY product_id FOR UPDATE",
        )
        .await?;
    platform::db::timed("catalog.lock_stock", tx.execute(&lock, &[&ids])).await?;
    let release = tx
        .prepare_cached(
            "UPDATE catalog.stock s SET on_hand = s.on_hand + r.quantity
               FROM unnest($1::bigint[], $2::integer[]) AS r (product_id, quantity)
              WHERE s.product_id = r.product_id",
        )
        .await?;
    platform::db::timed(
        "catalog.release_stock",
        tx.execute(&release, &[&ids, &quantities]),
    )
    .await?;
    Ok(())
}

/// Sets the units on hand of `product_id`; returns the product as it now is.
pub(crate) async fn set_stock(
    db: &impl Client,
    product_id: ProductId,
    level: StockLevel,
) -> Result<Product, Error> {
    let statement = db
        .prepare_cached(&format!(
            "WITH s AS (
                UPDATE catalog.stock SET on_hand = $2 WHERE product_id = $1 RETURNING *
             )
             SELECT {COLUMNS} FROM catalog.products p JOIN s ON s.product_id = p.id"
        ))
        .await?;
    let row = platform::db::timed(
        "catalog.set_stock",
        db.query_opt(&statement, &[&product_id, &level.get()]),
    )
    .await?
    .ok_or(Error::NotFound)?;
    Ok(Product::from_row(&row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_bounded() {
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(50_000).unwrap().get(), 50_000);
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-3).is_err());
        assert!(Quantity::new(50_001).is_err());
        assert!(Quantity::new(i64::MAX).is_err());
    }

    #[test]
    fn stock_levels_are_bounded() {
        assert!(StockLevel::new(0).is_ok());
        assert!(StockLevel::new(-1).is_err());
        assert!(StockLevel::new(i64::from(StockLevel::MAX) + 1).is_err());
    }
}
