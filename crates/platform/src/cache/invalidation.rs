//! The listener that keeps this instance's L1 in step with writes made on any instance.
//!
//! It subscribes to the invalidation channel and drops each key it hears of. Whenever it
//! (re)subscribes it clears all of L1, because messages published while it was not
//! listening are lost: after a Redis outage no instance keeps serving what it may have
//! missed. A Redis that hangs without closing the connection delays invalidations by at most
//! `l1_ttl`, the time any L1 entry lives.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::{Cache, CacheMode};
use crate::{backoff::Backoff, db::Lsn};

impl Cache {
    /// Starts the listener and waits up to `wait` for its first subscription, so that an
    /// instance does not serve from L1 before it can hear of writes; abort the handle to stop
    /// it. If Redis is down it keeps trying in the background.
    pub async fn start_invalidation_listener(&self, wait: Duration) -> JoinHandle<()> {
        let cache = self.clone();
        let (subscribed, first) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(async move {
            if cache.mode() == CacheMode::Layered {
                cache.listen(subscribed).await;
            }
        });
        let _ = tokio::time::timeout(wait, first).await;
        handle
    }

    async fn listen(&self, subscribed: tokio::sync::oneshot::Sender<()>) {
        let mut subscribed = Some(subscribed);
        let channel = self.channel();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match self.inner.redis.pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        self.clear_l1();
                        if let Some(first) = subscribed.take() {
                            let _ = first.send(());
                        }
                        backoff.reset();
                        tracing::info!(channel, "listening for cache invalidations");
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Ok(payload) = message.get_payload::<String>() else {
                                continue;
                            };
                            // The write's token first, then one key per line.
                            let mut lines = payload.lines();
                            if let Some(written_at) =
                                lines.next().and_then(|lsn| lsn.parse::<u64>().ok())
                            {
                                self.written_at(Lsn(written_at));
                            }
                            for key in lines {
                                self.invalidate_l1(key);
                            }
                        }
                        tracing::warn!("cache invalidation channel closed; resubscribing");
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot subscribe to cache invalidations"),
                },
                Err(e) => tracing::debug!(error = %e, "cannot connect for cache invalidations"),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}
