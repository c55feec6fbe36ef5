//! The orders boundary's errors, and their one mapping to problem+json.

use axum::http::StatusCode;
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

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => Problem::not_found("Order"),
            Error::UnknownProduct { line, product_id } => Problem::invalid_field(
                format!("lines[{line}].product_id"),
                format!("there is no product {product_id}"),
            ),
            Error::InsufficientStock {
                line,
                product_id,
                available,
            } => {
                let detail = format!("only {available} of product {product_id} in stock");
                Problem::new(
                    StatusCode::CONFLICT,
                    "insufficient-stock",
                    "Not enough stock",
                )
                .detail(format!("lines[{line}].quantity: {detail}"))
                .field(format!("lines[{line}].quantity"), detail)
            }
            Error::AlreadyShipped => Problem::new(
                StatusCode::CONFLICT,
                "order-shipped",
                "The order has shipped and can no longer be cancelled",
            ),
            Error::AlreadyCancelled => Problem::new(
                StatusCode::CONFLICT,
                "order-cancelled",
                "The order was already cancelled",
            ),
            Error::Idempotency(e) => e.into(),
            Error::Infra(e) => e.into(),
        }
    }
}

platform::boundary_error!(Error);
