//! A transaction-mode PgBouncer of the test's own, run by `scripts/pgbouncer.sh` from the
//! shipped configuration, in front of the shared PostgreSQL: one the test may restart.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use crate::helpers::*;

pub(crate) struct PgBouncer {
    pub(crate) port: u16,
    dir: PathBuf,
    child: Child,
    upstream: String,
}

impl PgBouncer {
    pub(crate) async fn start() -> Self {
        let upstream = server_url();
        let upstream = upstream.rsplit('@').next().unwrap().trim_end_matches('/');
        Self::in_front_of(upstream).await
    }

    /// A PgBouncer in front of the server at `upstream` (`host:port`).
    pub(crate) async fn in_front_of(upstream: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("keel-pgbouncer-{}", uuid::Uuid::new_v4()));
        let port = free_port();
        let child = spawn(&dir, port, upstream).await;
        Self {
            port,
            dir,
            child,
            upstream: upstream.to_owned(),
        }
    }

    /// `database_url` (a database on the shared server) reached through this PgBouncer.
    pub(crate) fn url_for(&self, database_url: &str) -> String {
        let database = database_url.rsplit('/').next().unwrap();
        format!("postgres://keel:keel@127.0.0.1:{}/{database}", self.port)
    }

    /// Restarts it as its service manager does: SIGINT (safe shutdown: transactions under
    /// way finish, then every client connection is closed), then a new process on the same
    /// port. Returns how long it was away.
    pub(crate) async fn restart(&mut self) -> Duration {
        let pid = self.child.id().unwrap().to_string();
        let started = std::time::Instant::now();
        let signalled = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(signalled.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("PgBouncer shuts down")
            .unwrap();
        self.child = spawn(&self.dir, self.port, &self.upstream).await;
        started.elapsed()
    }
}

async fn spawn(dir: &std::path::Path, port: u16, upstream: &str) -> Child {
    let child = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/pgbouncer.sh"
    ))
    .arg(dir)
    .arg(format!("127.0.0.1:{port}"))
    .arg(upstream)
    // The test's database comes and goes: keep no idle server connection to it.
    .env("PGBOUNCER_MIN_POOL_SIZE", "0")
    .env("PGBOUNCER_SERVER_IDLE_TIMEOUT", "2")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .expect("scripts/pgbouncer.sh runs (pgbouncer is installed by scripts/setup.sh)");
    wait_for_port(port, "pgbouncer").await;
    child
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
