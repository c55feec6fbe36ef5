//! `browse`: what most visitors do.

use std::{sync::Arc, time::Instant};

use futures_util::{FutureExt, future::BoxFuture};

use super::order;
use crate::run::{Client, Scenario};

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
