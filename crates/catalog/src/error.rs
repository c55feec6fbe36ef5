//! The catalog boundary's errors, and their one mapping to problem+json.

use platform::{InfraError, http::Problem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such product")]
    NotFound,
    #[error("a product with this SKU exists")]
    SkuTaken,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

platform::problem_types! {
    /// POST /products: another product has this SKU.
    SKU_TAKEN = (CONFLICT, "sku-taken", "A product with this SKU exists");
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => Problem::not_found("product"),
            Error::SkuTaken => Problem::new(SKU_TAKEN)
                .detail("sku: another product has this SKU")
                .field("sku", "another product has this SKU"),
            Error::Infra(e) => e.into(),
        }
    }
}

platform::boundary_error!(Error, constraints { "products_sku_key" => Error::SkuTaken });
