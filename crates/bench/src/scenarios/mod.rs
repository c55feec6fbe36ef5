//! The workloads, built from `keel seed`'s users (`user{n}@demo.keel`) and products (ids
//! 1..=N): `browse` (product pages and listings, one order in eleven arrivals), `checkout`
//! (log in, read a product, order it with a key, read the order back), `mixed` (checkouts
//! among browsing, in a share you choose) and `flash-sale` (many buyers, one product, few
//! units: it counts oversells, which must be 0); `orders`, keyed orders alone; and `pages`,
//! product pages alone, to cross-check against other load generators.

mod browse;
mod checkout;
mod flash_sale;
mod mixed;
mod orders;
mod pages;

pub use browse::Browse;
pub use checkout::Checkout;
pub use flash_sale::{FlashSale, SaleOutcome};
pub use mixed::Mixed;
pub use orders::Orders;
pub use pages::Pages;

use std::time::Instant;

use serde_json::json;

use crate::run::Client;

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

pub(crate) async fn login(client: &Client, email: &str) -> anyhow::Result<String> {
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
async fn order(
    client: &Client,
    since: Instant,
    token: &str,
    product: u64,
) -> Option<(u16, bytes::Bytes)> {
    let request = client
        .http
        .post(client.url("/orders"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid_like())
        .json(&json!({ "lines": [ { "product_id": product, "quantity": 1 } ] }));
    client.send("POST /orders", since, request).await
}

/// A fresh idempotency key: 128 random bits in hex.
pub(crate) fn uuid_like() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
