//! The orders boundary's errors, and their one mapping to problem+json.

use catalog::ReserveError;
use contract::ProductId;
use platform::{InfraError, http::Problem, idempotency::IdempotencyError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such order")]
    NotFound,
    #[error("line {line}: no product {product_id}")]
    UnknownProduct { line: usize, product_id: ProductId },
    #[error("line {line}: only {available} of product {product_id} in stock")]
    InsufficientStock {
        line: usize,
        product_id: ProductId,
        available: i32,
    },
    #[error("the order has shipped and can no longer be cancelled")]
    AlreadyShipped,
    #[error("the order was already cancelled")]
    AlreadyCancelled,
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<ReserveError> for Error {
    fn from(e: ReserveError) -> Self {
        match e {
            ReserveError::UnknownProduct { line, product_id } => {
                Error::UnknownProduct { line, product_id }
            }
            ReserveError::Insufficient {
                line,
                product_id,
                available,
            } => Error::InsufficientStock {
                line,
                product_id,
                available,
            },
            ReserveError::Infra(e) => Error::Infra(e),
        }
    }
}

platform::problem_types! {
    /// POST /orders: a line names a product the catalog does not hold (`errors` names the
    /// line). The order's shape is valid; the catalog's state decides, as with stock.
    UNKNOWN_PRODUCT = (CONFLICT, "unknown-product", "No such product");
    /// POST /orders: a line asks for more than is in stock (`errors` names the line and says
    /// how many are left). Nothing was reserved.
    INSUFFICIENT_STOCK = (CONFLICT, "insufficient-stock", "Not enough stock");
    /// POST /orders/{id}/cancel: the order has shipped and can no longer be cancelled.
    ORDER_SHIPPED = (CONFLICT, "order-shipped", "The order has shipped and can no longer be cancelled");
    /// POST /orders/{id}/cancel: the order was cancelled before (by the customer, a declined
    /// payment or its payment deadline).
    ORDER_CANCELLED = (CONFLICT, "order-cancelled", "The order was already cancelled");
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => Problem::not_found("order"),
            Error::UnknownProduct { line, product_id } => {
                let detail = format!("there is no product {product_id}");
                Problem::new(UNKNOWN_PRODUCT)
                    .detail(format!("lines[{line}].product_id: {detail}"))
                    .field(format!("lines[{line}].product_id"), detail)
            }
            Error::InsufficientStock {
                line,
                product_id,
                available,
            } => {
                let detail = format!("only {available} of product {product_id} in stock");
                Problem::new(INSUFFICIENT_STOCK)
                    .detail(format!("lines[{line}].quantity: {detail}"))
                    .field(format!("lines[{line}].quantity"), detail)
            }
            Error::AlreadyShipped => Problem::new(ORDER_SHIPPED),
            Error::AlreadyCancelled => Problem::new(ORDER_CANCELLED),
            Error::Idempotency(e) => e.into(),
            Error::Infra(e) => e.into(),
        }
    }
}

platform::boundary_error!(Error);
