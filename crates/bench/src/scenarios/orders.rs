//! `orders`: keyed orders only, one unit of a random product each, from customers logged in
//! before the run — the write path at a rate held whatever the saga does behind it.

use std::{sync::Arc, time::Instant};

use futures_util::{FutureExt, future::BoxFuture};

use super::order;
use crate::run::{Client, Scenario};

#[derive(Debug)]
pub struct Orders {
    pub products: u64,
    pub tokens: Vec<String>,
}

impl Scenario for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn arrive(self: Arc<Self>, n: u64, due: Instant, client: Client) -> BoxFuture<'static, ()> {
        async move {
            let product = fastrand::u64(1..=self.products.max(1));
            let token = &self.tokens[n as usize % self.tokens.len()];
            order(&client, due, token, product).await;
        }
        .boxed()
    }
}
