//! Reads: where each runs (a replica that has the reader's token, else the primary), how
//! new what it read is, and running it again when its connection dies under it.

use std::{future::Future, sync::Arc, time::Duration};

use super::{Connection, Db, Lsn, timed};
use crate::{AsInfra, InfraError};

impl Db {
    /// Runs `read` on a healthy replica that has replayed `token` (any healthy one without a
    /// token), else on the primary. A read a replica fails with an infrastructure error runs
    /// again on the primary (reads are safe to repeat): a replica can be up yet unable to
    /// answer, cancelling a query that conflicts with replay or not yet having replayed the
    /// schema the query needs. One whose connection died is also taken out until its next
    /// good check. A read whose connection to the primary is lost under it runs again, once.
    /// The domain's own answers (no such order) are returned wherever they came from.
    ///
    /// `read` gets the connection by value (shared, so this can still tell afterwards whether
    /// it died): a closure over a borrowed connection would need higher-ranked lifetimes,
    /// which rustc cannot yet prove `Send` for inside an axum handler.
    pub async fn with_read<T, E, F, Fut>(&self, token: Option<Lsn>, read: F) -> Result<T, E>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<InfraError> + AsInfra,
    {
        self.read_on(token, |connection, _| read(connection)).await
    }

    /// [`Db::with_read`], telling `read` where it runs.
    async fn read_on<T, E, F, Fut>(&self, token: Option<Lsn>, read: F) -> Result<T, E>
    where
        F: Fn(Arc<Connection>, Target) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<InfraError> + AsInfra,
    {
        if let Some(replica) = self.inner.replicas.pick(token) {
            // Loaded before the read starts, so what it reads is at least this new.
            let replayed = replica.replayed();
            // A replica that cannot be reached is skipped at once: the primary can serve.
            match replica.pool.acquire_within("replica", Duration::ZERO).await {
                Ok(connection) => {
                    let connection = Arc::new(connection);
                    let result = read(connection.clone(), Target::Replica(replayed)).await;
                    let failure = result.as_ref().err().and_then(AsInfra::as_infra);
                    let Some(failure) = failure else {
                        metrics::counter!("keel_db_reads_total", "target" => "replica")
                            .increment(1);
                        return result;
                    };
                    tracing::debug!(
                        replica = replica.name,
                        error = ?failure,
                        "a replica failed a read; it runs again on the primary"
                    );
                    metrics::counter!(
                        "keel_db_replica_failed_reads_total",
                        "replica" => replica.name.clone()
                    )
                    .increment(1);
                    if connection.is_closed() || connection.is_abandoned() {
                        self.inner.replicas.mark_down(replica);
                    }
                }
                Err(_) => self.inner.replicas.mark_down(replica),
            }
        }
        metrics::counter!("keel_db_reads_total", "target" => "primary").increment(1);
        // A connection that dies under the read (a pooler restarted, the server closed it)
        // is left behind and the read runs again on another. A pooler's restart closes every
        // connection at once, and the pool may hand out a second one before its closing is
        // seen: a few tries, a few milliseconds apart so that the pool's other connections
        // hear of their closing first.
        let mut tries = 1;
        loop {
            let connection = Arc::new(self.read().await?);
            let result = read(connection.clone(), Target::Primary).await;
            // A server that stopped answering is not asked again: the read has used its
            // deadline, and the breaker now speaks for the server.
            if result.is_ok()
                || tries == READ_TRIES
                || connection.is_abandoned()
                || alive(&connection).await
            {
                return result;
            }
            tries += 1;
            metrics::counter!("keel_db_read_retries_total").increment(1);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// [`Db::with_read`], also telling how new the state it read is: every write whose
    /// consistency token is at most the returned position is visible in it. A cache keeps
    /// this with what it stores, to know whether an entry may serve a reader's token.
    pub async fn with_read_as_of<T, E, F, Fut>(
        &self,
        token: Option<Lsn>,
        read: F,
    ) -> Result<(T, Lsn), E>
    where
        F: Fn(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<InfraError> + AsInfra,
    {
        if !self.has_replicas() {
            // Every read runs on the primary, which shows every write committed before the
            // read began: the newest token heard of is a safe `as_of`, and asking the server
            // for its position would double the round trips of every cache load.
            let as_of = self.heard(token);
            let value = self.with_read(token, read).await?;
            return Ok((value, as_of));
        }
        let read = &read;
        self.read_on(token, |connection: Arc<Connection>, target| async move {
            let as_of = match target {
                // As far as the replica had replayed when last checked (every 250 ms), read
                // before the query began: a lower bound that costs no second statement, and
                // a cache entry that claims less than it has is only refreshed sooner.
                Target::Replica(replayed) => replayed,
                // Read before the query, so the query's snapshot is at least this new.
                Target::Primary => visible_position(&connection).await?,
            };
            // Wherever it runs, it also has `token` (that is how the server was chosen).
            let as_of = token.map_or(as_of, |token| as_of.max(token));
            Ok((read(connection).await?, as_of))
        })
        .await
    }
}

/// Where a read runs.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A replica that had replayed this far at its last check.
    Replica(Lsn),
    Primary,
}

/// Tries of a read whose connections die under it.
const READ_TRIES: usize = 3;

/// Whether a connection whose statement just failed still works. A server or pooler that
/// shuts down sends its error before it closes the socket, so `is_closed` alone can still
/// say no: an empty statement asks (a round trip, on the error path only).
async fn alive(connection: &Connection) -> bool {
    !connection.is_closed() && connection.batch_execute("").await.is_ok()
}

/// A position every write with a token up to it is visible at, for a query run next on
/// `client`. A replica has applied everything up to its replay position. On the primary a
/// commit's WAL is inserted a moment before the commit becomes visible, so the insert
/// position is only safe for tokens *below* it: hence one less.
async fn visible_position(client: &Connection) -> Result<Lsn, InfraError> {
    let statement = client
        .prepare_cached(
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text
                         ELSE pg_current_wal_insert_lsn()::text END, pg_is_in_recovery()",
        )
        .await?;
    let row = timed("visible_position", client.query_one(&statement, &[])).await?;
    let position: Lsn = row
        .get::<_, Option<&str>>(0)
        .unwrap_or("0/0")
        .parse()
        .map_err(InfraError::unexpected)?;
    Ok(if row.get::<_, bool>(1) {
        position
    } else {
        Lsn(position.0.saturating_sub(1))
    })
}
