//! An order's lines as sent: 1 to 50, each a product and a quantity; lines of one product
//! become one, in the place of the first.

use catalog::{Quantity, ReserveError, StockRequest};
use contract::ProductId;
use platform::http::Object;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most lines one order may have.
pub(crate) const MAX_LINES: usize = 50;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineRequest {
    #[schema(value_type = i64)]
    pub product_id: ProductId,
    #[schema(schema_with = LineQuantity::schema)]
    pub quantity: LineQuantity,
}

platform::bounded_int!(
    /// How many units one order line asks for.
    pub(crate) LineQuantity(i32), 1..=1000
);

/// 1 to 50 lines. Lines of one product become one, with their total quantity, in the place
/// of the first: the order holds each product once, as stock is taken once per product.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Vec<Object<LineRequest>>")]
pub(crate) struct Lines {
    /// As sent: what an idempotency key's request is compared by.
    sent: Vec<LineRequest>,
    /// One per product, in the order of their first lines.
    products: Vec<StockRequest>,
    /// For each of `products`, the index of its first line as sent.
    first_line: Vec<usize>,
}

impl TryFrom<Vec<Object<LineRequest>>> for Lines {
    type Error = String;
    fn try_from(sent: Vec<Object<LineRequest>>) -> Result<Self, String> {
        Self::try_from(
            sent.into_iter()
                .map(|Object(line)| line)
                .collect::<Vec<_>>(),
        )
    }
}

impl TryFrom<Vec<LineRequest>> for Lines {
    type Error = String;
    fn try_from(sent: Vec<LineRequest>) -> Result<Self, String> {
        if sent.is_empty() || sent.len() > MAX_LINES {
            return Err(format!("must have 1 to {MAX_LINES} lines"));
        }
        let mut products: Vec<StockRequest> = Vec::with_capacity(sent.len());
        let mut first_line = Vec::with_capacity(sent.len());
        for (index, line) in sent.iter().enumerate() {
            let units = i64::from(line.quantity.get());
            match products
                .iter_mut()
                .find(|p| p.product_id == line.product_id)
            {
                // At most 50 lines of 1000: the total always fits.
                Some(product) => {
                    product.quantity = Quantity::new(i64::from(product.quantity.get()) + units)?;
                }
                None => {
                    products.push(StockRequest {
                        product_id: line.product_id,
                        quantity: Quantity::new(units)?,
                    });
                    first_line.push(index);
                }
            }
        }
        Ok(Self {
            sent,
            products,
            first_line,
        })
    }
}

impl Serialize for Lines {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.sent.serialize(serializer)
    }
}

impl Lines {
    /// Each product once, with its total quantity.
    pub(crate) fn products(&self) -> &[StockRequest] {
        &self.products
    }

    /// A reservation's failure, naming the line as sent rather than the product's index.
    pub(crate) fn as_sent(&self, error: ReserveError) -> ReserveError {
        let sent = |line: usize| self.first_line.get(line).copied().unwrap_or(line);
        match error {
            ReserveError::UnknownProduct { line, product_id } => ReserveError::UnknownProduct {
                line: sent(line),
                product_id,
            },
            ReserveError::Insufficient {
                line,
                product_id,
                available,
            } => ReserveError::Insufficient {
                line: sent(line),
                product_id,
                available,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product_id: i64) -> LineRequest {
        LineRequest {
            product_id: ProductId::new(product_id),
            quantity: LineQuantity::new(1).unwrap(),
        }
    }

    #[test]
    fn an_order_has_one_to_fifty_lines() {
        assert!(Lines::try_from(Vec::<LineRequest>::new()).is_err());
        assert!(Lines::try_from((1..=50).map(line).collect::<Vec<_>>()).is_ok());
        assert!(Lines::try_from((1..=51).map(line).collect::<Vec<_>>()).is_err());
    }

    #[test]
    fn lines_of_one_product_are_one_line_in_the_place_of_the_first() {
        let lines = Lines::try_from(vec![line(3), line(4), line(3), line(3)]).unwrap();
        let products: Vec<(i64, i32)> = lines
            .products()
            .iter()
            .map(|p| (p.product_id.get(), p.quantity.get()))
            .collect();
        assert_eq!(products, [(3, 3), (4, 1)]);
        let failed = lines.as_sent(ReserveError::Insufficient {
            line: 1,
            product_id: ProductId::new(4),
            available: 0,
        });
        assert!(matches!(failed, ReserveError::Insufficient { line: 1, .. }));
        let fifty = vec![
            LineRequest {
                product_id: ProductId::new(9),
                quantity: LineQuantity::new(1000).unwrap(),
            };
            50
        ];
        assert_eq!(
            Lines::try_from(fifty).unwrap().products()[0].quantity.get(),
            50_000
        );
    }
}
