//! `checkout`: one customer's purchase, start to end — log in (a password check: the
//! costliest request Keel serves), read a product, order it with an idempotency key, read
//! the order back.

use std::{sync::Arc, time::Instant};

use futures_util::{FutureExt, future::BoxFuture};
use serde_json::json;

use super::{PASSWORD, order};
use crate::run::{Client, Scenario};

/// Each arrival a seeded customer (`user{n}`, in turn over `users`) buying one product.
#[derive(Debug)]
pub struct Checkout {
    pub users: u64,
    pub products: u64,
}

impl Checkout {
    /// One purchase; the first request's latency runs from `due`.
    pub(crate) async fn purchase(&self, n: u64, due: Instant, client: &Client) {
        let email = format!("user{}@demo.keel", n % self.users.max(1) + 1);
        let request = client
            .http
            .post(client.url("/sessions"))
            .json(&json!({ "email": email, "password": PASSWORD }));
        let Some((201, session)) = client.send("POST /sessions", due, request).await else {
            return;
        };
        let Some(token) = serde_json::from_slice::<serde_json::Value>(&session)
            .ok()
            .and_then(|session| session["token"].as_str().map(str::to_owned))
        else {
            return;
        };
        let product = fastrand::u64(1..=self.products.max(1));
        let request = client.http.get(client.url(&format!("/products/{product}")));
        client
            .send("GET /products/{id}", Instant::now(), request)
            .await;
        let Some((202, placed)) = order(client, Instant::now(), &token, product).await else {
            return;
        };
        let Some(id) = serde_json::from_slice::<serde_json::Value>(&placed)
            .ok()
            .and_then(|order| order["id"].as_i64())
        else {
            return;
        };
        let request = client
            .http
            .get(client.url(&format!("/orders/{id}")))
            .bearer_auth(&token);
        client
            .send("GET /orders/{id}", Instant::now(), request)
            .await;
    }
}

impl Scenario for Checkout {
    fn name(&self) -> &'static str {
        "checkout"
    }

    fn arrive(self: Arc<Self>, n: u64, due: Instant, client: Client) -> BoxFuture<'static, ()> {
        async move { self.purchase(n, due, &client).await }.boxed()
    }
}
