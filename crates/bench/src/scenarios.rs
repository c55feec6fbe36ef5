//! The workloads, built from `keel seed`'s users (`user{n}@demo.keel`) and products (ids
//! 1..=N): `browse` (product pages and listings, one order in eleven arrivals) and
//! `flash-sale` (many buyers, one product, few units: it counts oversells, which must be 0).

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

use crate::run::{Client, Scenario};

/// The seeded users' password.
pub const PASSWORD: &str = "keel-demo-password";

/// Logs in `count` seeded customers (user1…); their session tokens.
pub async fn customers(client: &Client, count: u64) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::new();
    for n in 1..=count {
        tokens.push(login(client, &format!("user{n}@demo.keel")).await?);
    }
    Ok(tokens)
}

async fn login(client: &Client, email: &str) -> anyhow::Result<String> {
    let response = client
        .http
        .post(client.url("/sessions"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "logging in {email}: {} (are the users seeded, and is the login limit high enough?)",
        response.status()
    );
    let session: serde_json::Value = response.json().await?;
    session["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no token in the session"))
}

/// A keyed `POST /orders` of one unit of `product`, recorded as `POST /orders`.
async fn order(client: &Client, since: Instant, token: &str, product: u64) -> Option<u16> {
    let request = client
        .http
        .post(client.url("/orders"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid_like())
        .json(&json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }));
    client
        .send("POST /orders", since, request)
        .await
        .map(|(status, _)| status)
}

/// A fresh idempotency key: 128 random bits in hex.
fn uuid_like() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Product pages (random ids), listings (every fifth arrival) and an order (every eleventh).
#[derive(Debug)]
pub struct Browse {
    pub products: u64,
    pub tokens: Vec<String>,
}

impl Scenario for Browse {
    fn name(&self) -> &'static str {
        "browse"
    }

    fn arrive(self: Arc<Self>, n: u64, due: Instant, client: Client) -> BoxFuture<'static, ()> {
        async move {
            let product = fastrand::u64(1..=self.products.max(1));
            if n % 11 == 10 && !self.tokens.is_empty() {
                let token = &self.tokens[(n as usize / 11) % self.tokens.len()];
                order(&client, due, token, product).await;
            } else if n % 5 == 0 {
                let request = client.http.get(client.url("/products?limit=20"));
                client.send("GET /products", due, request).await;
            } else {
                let request = client.http.get(client.url(&format!("/products/{product}")));
                client.send("GET /products/{id}", due, request).await;
            }
        }
        .boxed()
    }
}

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
            match order(&client, due, token, self.product).await {
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
