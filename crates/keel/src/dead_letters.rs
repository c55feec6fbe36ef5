//! `keel dlq`: the dead-letter stream for operators — list, replay, drop — with filters by
//! subject, consumer and age.

use platform::{
    InfraError,
    bus::{
        Bus, BusConfig,
        dlq::{DeadLetter, Filter},
    },
};

/// What to do with the dead letters a filter selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    Replay,
    Drop,
}

/// Applies `action` to the dead letters `filter` selects; returns them (for `List`, what is
/// there; otherwise what was replayed or dropped).
pub async fn run(
    config: &BusConfig,
    filter: &Filter,
    action: Action,
) -> Result<Vec<DeadLetter>, InfraError> {
    let bus = Bus::connect(config).await?;
    let letters = bus.dead_letters(filter).await?;
    for letter in &letters {
        match action {
            Action::List => {}
            Action::Replay => {
                bus.replay(letter).await?;
                tracing::info!(sequence = letter.sequence, subject = letter.subject, event = ?letter.event_id, "dead letter replayed");
            }
            Action::Drop => {
                bus.drop_letter(letter).await?;
                tracing::warn!(sequence = letter.sequence, subject = letter.subject, event = ?letter.event_id, reason = letter.reason, "dead letter dropped");
            }
        }
    }
    Ok(letters)
}

/// One line per dead letter: sequence, when, consumer, subject, event id, reason.
pub fn line(letter: &DeadLetter) -> String {
    let at = letter
        .at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let event = letter
        .event_id
        .map_or_else(|| "-".to_owned(), |id| id.to_string());
    format!(
        "{}\t{at}\t{}\t{}\t{event}\t{}",
        letter.sequence, letter.consumer, letter.subject, letter.reason
    )
}
