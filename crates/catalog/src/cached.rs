//! Products through the layered cache: what `GET /products/{id}` serves, and the
//! invalidation every write that changes what it shows must call.

use bytes::Bytes;
use platform::{InfraError, cache::Cache, db::Db};

use crate::{Error, ProductId, query};

/// The product cache: JSON bodies of `GET /products/{id}`, keyed `product:{id}`.
#[derive(Clone, Debug)]
pub struct ProductCache(Cache);

impl ProductCache {
    pub fn new(cache: Cache) -> Self {
        Self(cache)
    }

    pub fn cache(&self) -> &Cache {
        &self.0
    }

    /// The product's JSON, from the nearest layer that has it.
    pub async fn get_json(&self, db: &Db, id: ProductId) -> Result<Bytes, Error> {
        let json = self
            .0
            .get_or_load(&key(id), || async move {
                match query::get_product(db, id).await {
                    Ok(product) => serde_json::to_vec(&product)
                        .map(|json| Some(Bytes::from(json)))
                        .map_err(InfraError::unexpected),
                    Err(Error::NotFound) => Ok(None),
                    Err(Error::Infra(e)) => Err(e),
                    Err(other) => Err(InfraError::unexpected(other)),
                }
            })
            .await?;
        json.ok_or(Error::NotFound)
    }

    /// Call after a committed write changed what these products show (fields or stock).
    pub async fn invalidate(&self, ids: impl IntoIterator<Item = ProductId>) {
        let keys: Vec<String> = ids.into_iter().map(key).collect();
        self.0.invalidate(&keys).await;
    }
}

fn key(id: ProductId) -> String {
    format!("product:{id}")
}
