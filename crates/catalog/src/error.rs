//! The catalog boundary's errors, and their one mapping to problem+json.

use axum::http::StatusCode;
use platform::{InfraError, http::Problem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such product")]
    NotFound,
    #[error("a product with this SKU exists")]
    SkuTaken,
    #[error("{field}: {detail}")]
    InvalidFilter {
        field: &'static str,
        detail: &'static str,
    },
    #[error(transparent)]
    Infra(#[from] InfraError),
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => Problem::not_found("Product"),
            Error::SkuTaken => Problem::new(
                StatusCode::CONFLICT,
                "sku-taken",
                "A product with this SKU exists",
            )
            .detail("sku: another product has this SKU")
            .field("sku", "another product has this SKU"),
            Error::InvalidFilter { field, detail } => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query parameter",
            )
            .detail(format!("{field}: {detail}"))
            .field(field, detail),
            Error::Infra(e) => e.into(),
        }
    }
}

platform::boundary_error!(Error, constraints { "products_sku_key" => Error::SkuTaken });
