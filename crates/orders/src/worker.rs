//! The saga's message handler: thin, like the HTTP handlers, over [`Saga::run`].

use std::time::Duration;

use contract::OrderPlaced;
use platform::bus::{
    consumer::{ConsumerSpec, Delivery, Handled, HandlerError},
    outbox::Event,
};

use crate::saga::{Progress, Runner, Saga};

/// The durable consumer that runs order sagas.
pub const SAGA_CONSUMER: ConsumerSpec = ConsumerSpec {
    name: crate::saga::CONSUMER,
    filter: OrderPlaced::SUBJECT,
};

/// Runs the saga of the order an `OrderPlaced` event names.
pub async fn handle_order_placed(saga: &Saga, delivery: Delivery) -> Result<Handled, HandlerError> {
    let event: OrderPlaced = serde_json::from_slice(&delivery.payload)
        .map_err(|e| HandlerError::Permanent(format!("not an OrderPlaced event: {e}")))?;
    let runner = Runner {
        inline: false,
        delivery: Some(delivery.id),
        last_attempt: delivery.last_attempt,
    };
    match saga.run(event.order_id, runner).await? {
        Progress::Finished(_) => Ok(Handled::Done),
        Progress::Waiting(_) if delivery.last_attempt => Err(HandlerError::Permanent(format!(
            "order {} still waiting after {} deliveries (payment provider unreachable?)",
            event.order_id, delivery.attempt
        ))),
        // Waits grow with each delivery, so the deliveries JetStream allows span minutes
        // (2 s, 4 s, ... 60 s: about five minutes over ten deliveries).
        Progress::Waiting(delay) => Ok(Handled::Later(delay.max(waiting_delay(delivery.attempt)))),
    }
}

fn waiting_delay(attempt: i64) -> Duration {
    platform::backoff::doubling(attempt, Duration::from_secs(2), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_minute() {
        assert_eq!(waiting_delay(1), Duration::from_secs(2));
        assert_eq!(waiting_delay(2), Duration::from_secs(4));
        assert_eq!(waiting_delay(5), Duration::from_secs(32));
        assert_eq!(waiting_delay(6), Duration::from_secs(60));
        assert_eq!(waiting_delay(40), Duration::from_secs(60));
    }
}
