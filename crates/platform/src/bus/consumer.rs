//! Durable JetStream consumers: explicit acks, bounded redelivery with backoff, and a
//! dead-letter stream for messages that keep failing.
//!
//! JetStream delivers at least once, so handlers make their effect idempotent; most do it
//! with [`mark_processed`] in the transaction of the effect.

use std::{future::Future, time::Duration};

use crate::db::Client;
use async_nats::jetstream::{
    AckKind,
    consumer::{AckPolicy, pull},
    message::PublishMessage as Publish,
};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{ErrorChain, InfraError, backoff::Backoff};

use super::Bus;

/// One delivery of an event to a handler.
#[derive(Debug)]
pub struct Delivery {
    /// The event's id (its outbox id and `Nats-Msg-Id`).
    pub id: i64,
    /// The subject under the prefix, e.g. `orders.placed`.
    pub subject: String,
    pub payload: Bytes,
    /// 1 on the first delivery.
    pub attempt: i64,
    /// Whether a failure now sends the message to the dead-letter stream.
    pub last_attempt: bool,
    /// When the event was written (its transaction's start), if the relay said.
    pub occurred_at: Option<time::OffsetDateTime>,
}

/// What a handler made of a delivery.
#[derive(Debug)]
pub enum Handled {
    /// Done (or already done before): ack it.
    Done,
    /// Not yet possible (a dependency is recovering): deliver it again after the delay.
    Later(Duration),
}

/// Why a handler could not process a delivery.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// It can never succeed (a payload that does not parse): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
    /// It may succeed later: redelivered with backoff until the last attempt.
    #[error(transparent)]
    Transient(#[from] InfraError),
}

/// A durable consumer of some event subjects.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The durable name, unique per purpose (`order-saga`, `reports`).
    pub name: &'static str,
    /// The event subjects it takes, under the prefix: `orders.placed`, `orders.*`, `>`.
    pub filter: &'static str,
}

/// Records that `consumer` processed `message_id`, in the caller's transaction. Returns
/// false when it already had: the caller rolls back and acks, the effect is already there.
pub async fn mark_processed(
    tx: &impl Client,
    consumer: &str,
    message_id: i64,
) -> Result<bool, InfraError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO bus.processed_messages (consumer, message_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    Ok(tx.execute(&statement, &[&consumer, &message_id]).await? == 1)
}

/// Forgets the messages processed more than `retention` ago: JetStream no longer holds them
/// (the events stream's max age is that long), so none can be delivered again.
pub async fn forget_processed(
    client: &impl Client,
    retention: Duration,
) -> Result<u64, InfraError> {
    let statement = client
        .prepare_cached(
            "DELETE FROM bus.processed_messages
              WHERE processed_at < now() - $1::float8 * interval '1 second'",
        )
        .await?;
    Ok(client
        .execute(&statement, &[&retention.as_secs_f64()])
        .await?)
}

/// Feeds the consumer's messages to `handle`, `concurrency` at a time, until `stop`; then
/// finishes those in hand and returns. A lost connection or a missing stream is retried;
/// unacked messages come back after the ack wait, to this process or another.
pub async fn run<H, F>(bus: Bus, spec: ConsumerSpec, handle: H, stop: CancellationToken)
where
    H: Fn(Delivery) -> F + Clone,
    F: Future<Output = Result<Handled, HandlerError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    while !stop.is_cancelled() {
        let wait = backoff.next_delay();
        if let Err(e) = consume(&bus, &spec, handle.clone(), &stop).await {
            tracing::warn!(consumer = spec.name, error = %e, retry_in = ?wait, "consumer stopped");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Messages delivered and not yet acknowledged, per consumer. A message put back with a
/// delay (`Handled::Later`) holds its slot until it is redelivered, so a small cap lets
/// waiting orders (a provider outage, a busy lease) block new ones behind them; how many
/// run at once is bounded by the concurrency instead.
const MAX_ACK_PENDING: i64 = 20_000;

/// Handles messages until the stream fails or `stop` is cancelled; then takes no new
/// message and returns once those in hand are handled (messages fetched and not yet handed
/// out are redelivered to the next consumer after the ack wait).
async fn consume<H, F>(
    bus: &Bus,
    spec: &ConsumerSpec,
    handle: H,
    stop: &CancellationToken,
) -> Result<(), InfraError>
where
    H: Fn(Delivery) -> F + Clone,
    F: Future<Output = Result<Handled, HandlerError>>,
{
    let stream = bus.events_stream().await?;
    bus.dead_letter_stream().await?;
    let config = bus.config();
    // Create or update, so a changed setting takes effect at the next start.
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(spec.name.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            max_deliver: config.max_deliver,
            max_ack_pending: MAX_ACK_PENDING,
            filter_subject: bus.subject(spec.filter),
            ..Default::default()
        })
        .await
        .map_err(|e| InfraError::unavailable("nats", e))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| InfraError::unavailable("nats", e))?;
    tracing::info!(consumer = spec.name, "consuming");
    let prefix = format!("{}.events.", config.nats_prefix);
    let mut failure = None;
    messages
        .take_until(stop.cancelled())
        .take_while(|message| {
            let go_on = match message {
                Ok(_) => true,
                Err(e) => {
                    failure = Some(e.to_string());
                    false
                }
            };
            std::future::ready(go_on)
        })
        .filter_map(|message| std::future::ready(message.ok()))
        .for_each_concurrent(config.concurrency, |message| {
            let handle = handle.clone();
            let prefix = &prefix;
            async move { deliver(bus, spec, prefix, message, handle).await }
        })
        .await;
    if stop.is_cancelled() && failure.is_none() {
        return Ok(());
    }
    Err(InfraError::unavailable(
        "nats",
        failure.unwrap_or_else(|| "message stream ended".into()),
    ))
}

async fn deliver<H, F>(
    bus: &Bus,
    spec: &ConsumerSpec,
    prefix: &str,
    message: async_nats::jetstream::Message,
    handle: H,
) where
    H: Fn(Delivery) -> F,
    F: Future<Output = Result<Handled, HandlerError>>,
{
    let started = std::time::Instant::now();
    let info = message.info().ok();
    let attempt = info.as_ref().map_or(1, |i| i.delivered);
    if let Some(info) = &info {
        // Messages in the stream this consumer has yet to be handed: its lag.
        metrics::gauge!("keel_bus_consumer_pending", "consumer" => spec.name)
            .set(info.pending as f64);
    }
    if attempt > 1 {
        metrics::counter!("keel_bus_redeliveries_total", "consumer" => spec.name).increment(1);
    }
    let max = bus.config().max_deliver;
    // The outbox id: the message id, or on a replayed dead letter (whose message id must
    // differ from the original's) its own header.
    let id = message.headers.as_ref().and_then(|h| {
        h.get(super::dlq::EVENT_ID)
            .or_else(|| h.get(async_nats::header::NATS_MESSAGE_ID))
            .and_then(|v| v.as_str().parse::<i64>().ok())
    });
    let occurred_at = message
        .headers
        .as_ref()
        .and_then(|h| h.get(super::relay::OCCURRED_AT))
        .and_then(|v| v.as_str().parse::<i128>().ok())
        .and_then(|micros| time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).ok());
    let subject = message.subject.as_str();
    let span = tracing::info_span!(
        "delivery",
        consumer = spec.name,
        subject,
        event_id = id,
        attempt
    );
    let result = match id {
        Some(id) => {
            handle(Delivery {
                id,
                subject: subject.strip_prefix(prefix).unwrap_or(subject).to_owned(),
                payload: message.payload.clone(),
                attempt,
                last_attempt: attempt >= max,
                occurred_at,
            })
            .instrument(span)
            .await
        }
        None => Err(HandlerError::Permanent(
            "no numeric Nats-Msg-Id header".into(),
        )),
    };
    metrics::histogram!("keel_bus_handle_seconds", "consumer" => spec.name)
        .record(started.elapsed());
    let outcome = |outcome: &'static str| {
        metrics::counter!("keel_bus_deliveries_total", "consumer" => spec.name, "outcome" => outcome)
            .increment(1);
    };
    let ack = match result {
        Ok(Handled::Done) => {
            outcome("done");
            AckKind::Ack
        }
        Ok(Handled::Later(delay)) => {
            outcome("later");
            AckKind::Nak(Some(delay))
        }
        Err(HandlerError::Transient(e)) if attempt < max => {
            outcome("retry");
            let delay = redelivery_delay(attempt);
            tracing::warn!(consumer = spec.name, id, attempt, error = %ErrorChain(&e), retry_in = ?delay, "handler failed");
            AckKind::Nak(Some(delay))
        }
        Err(e) => {
            // The whole chain: the dead-letter reason is for operators, never clients.
            let reason = ErrorChain(&e).to_string();
            tracing::error!(
                consumer = spec.name,
                id,
                attempt,
                reason,
                "dead-lettering message"
            );
            if let Err(e) = dead_letter(bus, spec, &message, id, &reason).await {
                // Not acked: it is redelivered once the dead-letter stream is reachable.
                tracing::warn!(error = %e, "dead-letter publish failed");
                return;
            }
            outcome("dead_lettered");
            AckKind::Term
        }
    };
    if let Err(e) = message.ack_with(ack).await {
        tracing::warn!(consumer = spec.name, id, error = %e, "ack failed; the message comes back");
    }
}

async fn dead_letter(
    bus: &Bus,
    spec: &ConsumerSpec,
    message: &async_nats::jetstream::Message,
    id: Option<i64>,
    reason: &str,
) -> Result<(), InfraError> {
    let unavailable =
        |e: async_nats::jetstream::context::PublishError| InfraError::unavailable("nats", e);
    let event = message
        .subject
        .as_str()
        .rsplit_once(".events.")
        .map_or("unknown", |(_, event)| event);
    let mut publish = Publish::build()
        .payload(message.payload.clone())
        .header("Keel-Dlq-Reason", reason.replace(['\r', '\n'], " "))
        .header("Keel-Dlq-Consumer", spec.name)
        .header("Keel-Dlq-Subject", message.subject.as_str());
    if let Some(id) = id {
        publish = publish.header(super::dlq::EVENT_ID, id.to_string());
    }
    if let Some(at) = message
        .headers
        .as_ref()
        .and_then(|h| h.get(super::relay::OCCURRED_AT))
    {
        publish = publish.header(super::relay::OCCURRED_AT, at.as_str());
    }
    bus.jetstream()
        .send_publish(
            bus.dead_letter_subject(&format!("{}.{event}", spec.name)),
            publish,
        )
        .await
        .map_err(unavailable)?
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Exponential redelivery delay for failed handlers: 1 s, 2 s, 4 s ... capped at 60 s.
fn redelivery_delay(attempt: i64) -> Duration {
    crate::backoff::doubling(attempt, Duration::from_secs(1), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_backs_off_and_caps() {
        assert_eq!(redelivery_delay(1), Duration::from_secs(1));
        assert_eq!(redelivery_delay(3), Duration::from_secs(4));
        assert_eq!(redelivery_delay(50), Duration::from_secs(60));
    }
}
