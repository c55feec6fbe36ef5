//! `pages`: product pages only (random ids), the one request shape other load generators
//! can send too — for cross-checking this one against them (`oha --latency-correction`).

use std::{sync::Arc, time::Instant};

use futures_util::{FutureExt, future::BoxFuture};

use crate::run::{Client, Scenario};

#[derive(Debug)]
pub struct Pages {
    pub products: u64,
}

impl Scenario for Pages {
    fn name(&self) -> &'static str {
        "pages"
    }

    fn arrive(self: Arc<Self>, _: u64, due: Instant, client: Client) -> BoxFuture<'static, ()> {
        async move {
            let product = fastrand::u64(1..=self.products.max(1));
            let request = client.http.get(client.url(&format!("/products/{product}")));
            client.send("GET /products/{id}", due, request).await;
        }
        .boxed()
    }
}
