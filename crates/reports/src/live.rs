//! The live projector: a durable JetStream consumer of the order events that applies each
//! to the active generation, thin over [`crate::project`]. It measures how far behind the
//! writes it runs: `keel_projection_lag_seconds` (the last event's age when applied) and
//! `keel_projection_delay_seconds` (a histogram of the same).

use std::time::Duration;

use contract::OrderEvent;
use platform::{
    InfraError,
    bus::consumer::{ConsumerSpec, Delivery, Handled, HandlerError},
    db::Db,
};
use time::OffsetDateTime;

use crate::project::{self, Applied, ApplyError, StoredEvent};

/// The durable consumer that keeps the read models.
pub const PROJECTOR: ConsumerSpec = ConsumerSpec {
    name: "reports",
    filter: OrderEvent::ALL,
};

/// Applies one delivered event to the active generation.
pub async fn project_event(db: &Db, delivery: Delivery) -> Result<Handled, HandlerError> {
    let occurred_at = delivery.occurred_at.unwrap_or_else(OffsetDateTime::now_utc);
    let event = StoredEvent {
        id: delivery.id,
        subject: &delivery.subject,
        payload: &delivery.payload,
        occurred_at,
    };
    let mut client = db.write().await?;
    let tx = client.transaction().await.map_err(InfraError::from)?;
    let schema = project::active_schema(&tx).await?;
    let applied = match project::apply(&tx, &schema, &event).await {
        Ok(applied) => applied,
        // Dead-lettered, where it waits for a build that knows it (and is replayed from there).
        Err(unknown @ ApplyError::Unknown { .. }) => {
            return Err(HandlerError::Permanent(unknown.to_string()));
        }
        Err(ApplyError::Infra(e)) => return Err(e.into()),
    };
    match applied {
        Applied::Done => tx.commit().await.map_err(InfraError::from)?,
        Applied::Already => {}
        // Its OrderPlaced is delivered alongside (consumers run concurrently): soon.
        Applied::OrderUnknown if !delivery.last_attempt => {
            return Ok(Handled::Later(Duration::from_millis(200)));
        }
        Applied::OrderUnknown => {
            return Err(HandlerError::Permanent(format!(
                "{} for an order never placed",
                delivery.subject
            )));
        }
    }
    let lag = (OffsetDateTime::now_utc() - occurred_at)
        .as_seconds_f64()
        .max(0.0);
    metrics::gauge!("keel_projection_lag_seconds", "projection" => PROJECTOR.name).set(lag);
    metrics::histogram!("keel_projection_delay_seconds", "projection" => PROJECTOR.name)
        .record(lag);
    Ok(Handled::Done)
}
