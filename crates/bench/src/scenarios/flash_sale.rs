//! `flash-sale`: many buyers, one product, a few units.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Instant,
};

use futures_util::{FutureExt, future::BoxFuture};
use serde::Serialize;
use serde_json::json;

use super::{customers, login, order, uuid_like};
use crate::run::{Client, Scenario};

/// Every arrival a buyer ordering one unit of the sale's product.
#[derive(Debug)]
pub struct FlashSale {
    pub product: u64,
    pub tokens: Vec<String>,
    pub accepted: AtomicU64,
    pub sold_out: AtomicU64,
}

/// How the sale ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SaleOutcome {
    pub units: i64,
    pub accepted: u64,
    /// Refused with 409 `insufficient-stock`.
    pub sold_out: u64,
    /// Units on hand after the run, as the API shows them.
    pub stock_left: i64,
    /// Orders accepted past the units there were: must be 0.
    pub oversold: u64,
}

impl FlashSale {
    /// Creates the sale's product (as the seeded admin) with `units` on hand.
    pub async fn prepare(client: &Client, buyers: u64, units: i64) -> anyhow::Result<Self> {
        let admin = login(client, "admin@demo.keel").await?;
        let sku = format!("SALE-{}", &uuid_like()[..12]);
        let response = client
            .http
            .post(client.url("/products"))
            .bearer_auth(&admin)
            .json(
                &json!({ "sku": sku, "name": "Flash sale", "category": "sale",
                           "price_cents": 100, "stock": units }),
            )
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "creating the sale's product: {}",
            response.status()
        );
        let created: serde_json::Value = response.json().await?;
        Ok(Self {
            product: created["id"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("no id for the sale's product"))?,
            tokens: customers(client, buyers).await?,
            accepted: AtomicU64::new(0),
            sold_out: AtomicU64::new(0),
        })
    }

    /// The sale's outcome, once the run has ended.
    pub async fn outcome(&self, client: &Client, units: i64) -> anyhow::Result<SaleOutcome> {
        let product: serde_json::Value = client
            .http
            .get(client.url(&format!("/products/{}", self.product)))
            .send()
            .await?
            .json()
            .await?;
        let accepted = self.accepted.load(Relaxed);
        Ok(SaleOutcome {
            units,
            accepted,
            sold_out: self.sold_out.load(Relaxed),
            stock_left: product["stock"].as_i64().unwrap_or(-1),
            oversold: accepted.saturating_sub(u64::try_from(units).unwrap_or(0)),
        })
    }
}

impl Scenario for FlashSale {
    fn name(&self) -> &'static str {
        "flash-sale"
    }

    fn arrive(self: Arc<Self>, n: u64, due: Instant, client: Client) -> BoxFuture<'static, ()> {
        async move {
            let token = &self.tokens[n as usize % self.tokens.len()];
            match order(&client, due, token, self.product)
                .await
                .map(|(status, _)| status)
            {
                Some(status) if (200..300).contains(&status) => {
                    self.accepted.fetch_add(1, Relaxed);
                }
                Some(409) => {
                    self.sold_out.fetch_add(1, Relaxed);
                }
                _ => {}
            }
        }
        .boxed()
    }
}
