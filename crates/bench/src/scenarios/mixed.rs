//! `mixed`: browsing with checkouts among it, in a share the caller chooses.

use std::{sync::Arc, time::Instant};

use futures_util::{FutureExt, future::BoxFuture};

use super::{Browse, Checkout};
use crate::run::{Client, Scenario};

/// One arrival in `checkout_every` is a checkout; the rest browse.
#[derive(Debug)]
pub struct Mixed {
    pub browse: Arc<Browse>,
    pub checkout: Checkout,
    pub checkout_every: u64,
}

impl Scenario for Mixed {
    fn name(&self) -> &'static str {
        "mixed"
    }

    fn arrive(self: Arc<Self>, n: u64, due: Instant, client: Client) -> BoxFuture<'static, ()> {
        async move {
            if n % self.checkout_every.max(1) == 0 {
                self.checkout.purchase(n, due, &client).await;
            } else {
                Arc::clone(&self.browse).arrive(n, due, client).await;
            }
        }
        .boxed()
    }
}
