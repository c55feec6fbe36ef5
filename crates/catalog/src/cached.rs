//! Products through the layered cache: what `GET /products/{id}` serves, and the
//! invalidation every write that changes what it shows must call.

use bytes::Bytes;
use platform::{
    InfraError,
    cache::{Cache, Loaded},
    db::{Db, Lsn},
};

use crate::{Error, ProductId, query};

/// The product cache: JSON bodies of `GET /products/{id}`, keyed `product:{id}`.
#[derive(Clone, Debug)]
pub struct ProductCache(Cache);

impl ProductCache {
    pub fn new(cache: Cache) -> Self {
        Self(cache)
    }

    /// The product's JSON, from the nearest layer that has it and shows every write up to
    /// the reader's `token`.
    pub async fn get_json(
        &self,
        db: &Db,
        token: Option<Lsn>,
        id: ProductId,
    ) -> Result<Bytes, Error> {
        let mut key = KeyBuf::default();
        let json = self
            .0
            .get_or_load(key.product(id), token, |at_least| async move {
                let (product, as_of) = db
                    .with_read_as_of(at_least, |client| async move {
                        match query::fetch_product(&client, id).await {
                            Ok(product) => Ok(Some(product)),
                            Err(Error::NotFound) => Ok(None),
                            Err(Error::Infra(e)) => Err(e),
                            Err(other) => Err(InfraError::unexpected(other)),
                        }
                    })
                    .await?;
                let value = product
                    .map(|product| serde_json::to_vec(&product).map(Bytes::from))
                    .transpose()
                    .map_err(InfraError::unexpected)?;
                Ok(Loaded { value, as_of })
            })
            .await?;
        json.ok_or(Error::NotFound)
    }

    /// Call after a committed write changed what these products show (fields or stock),
    /// with the write's position ([`Db::written_at`]): it goes with the invalidation, so no
    /// instance refills its cache from a replica that has not replayed the write yet.
    pub async fn invalidate(&self, written_at: Lsn, ids: impl IntoIterator<Item = ProductId>) {
        let keys: Vec<String> = ids.into_iter().map(key).collect();
        self.0.invalidate(&keys, written_at).await;
    }
}

fn key(id: ProductId) -> String {
    KeyBuf::default().product(id).to_owned()
}

/// A product's cache key, written on the stack: every read of a product makes one.
#[derive(Default)]
struct KeyBuf([u8; 28]);

impl KeyBuf {
    /// `product:{id}`.
    fn product(&mut self, id: ProductId) -> &str {
        const PREFIX: &[u8] = b"product:";
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(id.get()).as_bytes();
        let len = PREFIX.len() + digits.len();
        self.0[..PREFIX.len()].copy_from_slice(PREFIX);
        self.0[PREFIX.len()..len].copy_from_slice(digits);
        // Only ASCII was written.
        std::str::from_utf8(&self.0[..len]).unwrap_or("product:?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_product_id_in_decimal() {
        for id in [0, 7, 42, 1_000_000, -3, i64::MAX, i64::MIN] {
            assert_eq!(
                KeyBuf::default().product(ProductId::new(id)),
                format!("product:{id}")
            );
        }
    }
}
