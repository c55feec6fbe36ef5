//! Embedded schema migrations, one ordered list per module, applied once each under an
//! advisory lock so that instances starting together do not race.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// One schema change of one module. `sql` is embedded with `include_str!`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub module: &'static str,
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("migration {module} v{version} ({name}) was changed after it was applied")]
    Changed {
        module: &'static str,
        version: i32,
        name: &'static str,
    },
    #[error("migration {module} v{version} ({name}) failed")]
    Failed {
        module: &'static str,
        version: i32,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("could not read or lock the migration history")]
    History(#[from] tokio_postgres::Error),
}

/// Any constant will do, as long as it is Keel's alone.
const LOCK_ID: i64 = 0x006b_6565_6c6d_6967; // "keelmig"

/// Applies every migration not yet applied, in order; returns how many ran.
pub async fn migrate(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<usize, MigrationError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS platform;
             CREATE TABLE IF NOT EXISTS platform.schema_migrations (
                 module     text        NOT NULL,
                 version    integer     NOT NULL,
                 name       text        NOT NULL,
                 checksum   bytea       NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (module, version)
             )",
        )
        .await
        .or_else(ignore_concurrent_create)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_ID])
        .await?;
    let result = apply_pending(client, migrations).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_ID])
        .await?;
    result
}

async fn apply_pending(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<usize, MigrationError> {
    let mut applied = 0;
    for m in migrations {
        let checksum = Sha256::digest(m.sql.as_bytes()).to_vec();
        let row = client
            .query_opt(
                "SELECT checksum FROM platform.schema_migrations WHERE module = $1 AND version = $2",
                &[&m.module, &m.version],
            )
            .await?;
        if let Some(row) = row {
            if row.get::<_, Vec<u8>>(0) != checksum {
                return Err(MigrationError::Changed {
                    module: m.module,
                    version: m.version,
                    name: m.name,
                });
            }
            continue;
        }
        let failed = |source| MigrationError::Failed {
            module: m.module,
            version: m.version,
            name: m.name,
            source,
        };
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO platform.schema_migrations (module, version, name, checksum) VALUES ($1, $2, $3, $4)",
            &[&m.module, &m.version, &m.name, &checksum],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            module = m.module,
            version = m.version,
            name = m.name,
            "migration applied"
        );
        applied += 1;
    }
    Ok(applied)
}

/// Two instances creating the history table at the same moment race on the catalog's unique
/// index; the loser's error means the table exists, which is all it wanted.
fn ignore_concurrent_create(e: tokio_postgres::Error) -> Result<(), tokio_postgres::Error> {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION || *c == SqlState::DUPLICATE_OBJECT => Ok(()),
        _ => Err(e),
    }
}
