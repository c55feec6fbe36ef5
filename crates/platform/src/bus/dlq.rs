//! The dead-letter stream, for operators: what is in it, and putting messages back. A message
//! lands there after its last delivery failed (or at once, for a failure no retry can fix),
//! with its reason, consumer and original subject in headers. Replaying republishes it on
//! its original subject with its event id, so every consumer's record of what it processed
//! makes the replay idempotent like any redelivery; then it leaves the dead-letter stream.

use std::time::Duration;

use async_nats::jetstream::{message::PublishMessage as Publish, message::StreamMessage};
use time::OffsetDateTime;

use super::{Bus, relay::OCCURRED_AT};
use crate::InfraError;

/// The event id a republished message carries when its `Nats-Msg-Id` must differ from the
/// original's (JetStream would drop it as a duplicate inside its de-duplication window).
pub const EVENT_ID: &str = "Keel-Event-Id";

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// When it was dead-lettered.
    pub at: OffsetDateTime,
    /// The consumer whose handler gave up on it.
    pub consumer: String,
    /// The event subject under the bus prefix: `orders.placed`.
    pub subject: String,
    pub event_id: Option<i64>,
    pub reason: String,
    message: StreamMessage,
}

/// Which dead letters an operator means.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filter {
    /// Only this event subject (`orders.placed`).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only dead letters of this consumer (`order-saga`, `reports`).
    #[arg(long)]
    pub consumer: Option<String>,
    /// Only those dead-lettered longer ago than this (`10m`).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub older_than: Option<Duration>,
}

impl Filter {
    fn matches(&self, letter: &DeadLetter, now: OffsetDateTime) -> bool {
        self.subject.as_deref().is_none_or(|s| s == letter.subject)
            && self
                .consumer
                .as_deref()
                .is_none_or(|c| c == letter.consumer)
            && self.older_than.is_none_or(|age| now - letter.at >= age)
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> InfraError {
    InfraError::unavailable("nats", e)
}

impl Bus {
    /// The dead letters `filter` selects, oldest first.
    pub async fn dead_letters(&self, filter: &Filter) -> Result<Vec<DeadLetter>, InfraError> {
        let mut stream = self.dead_letter_stream().await?;
        let state = stream.info().await.map_err(unavailable)?.state.clone();
        let events_prefix = format!("{}.events.", self.config().nats_prefix);
        let now = OffsetDateTime::now_utc();
        let mut letters = Vec::new();
        if state.messages == 0 {
            return Ok(letters);
        }
        for sequence in state.first_sequence..=state.last_sequence {
            // A gap is a letter already replayed or dropped.
            let Ok(message) = stream.get_raw_message(sequence).await else {
                continue;
            };
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            let subject = header("Keel-Dlq-Subject");
            let letter = DeadLetter {
                sequence,
                at: message.time,
                consumer: header("Keel-Dlq-Consumer"),
                subject: subject
                    .strip_prefix(&events_prefix)
                    .unwrap_or(&subject)
                    .to_owned(),
                event_id: header(EVENT_ID).parse().ok(),
                reason: header("Keel-Dlq-Reason"),
                message,
            };
            if filter.matches(&letter, now) {
                letters.push(letter);
            }
        }
        Ok(letters)
    }

    /// Puts `letter` back on its original subject, then deletes it from the dead letters.
    pub async fn replay(&self, letter: &DeadLetter) -> Result<(), InfraError> {
        let Some(id) = letter.event_id else {
            return Err(InfraError::unexpected(format!(
                "dead letter {} has no event id to replay under",
                letter.sequence
            )));
        };
        let mut publish = Publish::build()
            .payload(letter.message.payload.clone())
            .message_id(format!("{id}.replay.{}", letter.sequence))
            .header(EVENT_ID, id.to_string());
        if let Some(at) = letter.message.headers.get(OCCURRED_AT) {
            publish = publish.header(OCCURRED_AT, at.as_str());
        }
        self.jetstream()
            .send_publish(self.subject(&letter.subject), publish)
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        self.drop_letter(letter).await
    }

    /// Deletes `letter` from the dead letters.
    pub async fn drop_letter(&self, letter: &DeadLetter) -> Result<(), InfraError> {
        self.dead_letter_stream()
            .await?
            .delete_message(letter.sequence)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
