//! PostgreSQL clusters of a test's own (`scripts/replica.sh`): a primary or a streaming
//! replica on free ports, which a test may pause, stop and start without touching the shared
//! server.

use std::path::PathBuf;

use super::free_port;

/// A PostgreSQL cluster made by scripts/replica.sh, stopped and removed on drop.
pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
}

fn script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/replica.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "replica.sh {args:?}");
}

impl Cluster {
    pub fn new(role: &str, primary: Option<u16>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("keel-pg-{role}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let (p, d) = (port.to_string(), dir.display().to_string());
        match primary {
            None => script(&["primary", &p, &d]),
            Some(primary) => script(&["replica", &primary.to_string(), &p, &d]),
        }
        Self { port, dir }
    }

    pub fn url(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn stop(&self) {
        script(&["stop", &self.dir.display().to_string()]);
    }

    pub fn start(&self) {
        script(&[
            "start",
            &self.port.to_string(),
            &self.dir.display().to_string(),
        ]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

/// The one text value `sql` returns.
pub async fn text(url: &str, sql: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.unwrap().get(0)
}
