//! Forgetting what the projector no longer needs to remember: the ids of events applied
//! long enough ago that no delivery of them can come again.

use std::time::Duration;

use platform::{InfraError, db::Connection};

use crate::project;

/// Deletes the active generation's `applied_events` rows older than `older_than`, and says
/// how many. Safe once `older_than` exceeds how long an event can be delivered again: the
/// events stream keeps one a week, a rebuild's catch-up looks back minutes.
///
/// Only the active generation: it is read under the lock the live projector takes, so a
/// rebuild cannot switch away from it (and drop it) meanwhile. A generation being built is
/// pruned once it is the active one.
pub async fn forget_applied_events(
    client: &mut Connection,
    older_than: Duration,
) -> Result<u64, InfraError> {
    let tx = client.transaction().await?;
    let schema = project::active_schema(&tx).await?;
    let forgotten = tx
        .execute(
            &format!(
                "DELETE FROM {schema}.applied_events
                  WHERE applied_at < now() - $1::float8 * interval '1 second'"
            ),
            &[&older_than.as_secs_f64()],
        )
        .await?;
    tx.commit().await?;
    Ok(forgotten)
}
