//! Read replicas against clusters of the test's own (`scripts/replica.sh`): reads go to a
//! healthy replica, a read carrying a consistency token goes where that write is visible, and
//! a replica that dies under traffic costs no failed read.

use std::{path::PathBuf, time::Duration};

use platform::{
    InfraError,
    db::{Connection, Db, Lsn, wal_position},
};

use crate::keel_process::free_port;

/// A PostgreSQL cluster made by scripts/replica.sh, stopped and removed on drop.
struct Cluster {
    port: u16,
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
    fn new(role: &str, primary: Option<u16>) -> Self {
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

    fn url(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    fn stop(&self) {
        script(&["stop", &self.dir.display().to_string()]);
    }

    fn start(&self) {
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

async fn execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

/// Where a read ran: `true` on a replica.
async fn on_replica(db: &Db, token: Option<Lsn>) -> Result<bool, InfraError> {
    db.with_read(token, async |c: &Connection| {
        Ok::<_, InfraError>(c.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0))
    })
    .await
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn reads_follow_tokens_to_where_the_write_is_visible_and_survive_a_dead_replica() {
    let primary = Cluster::new("primary", None);
    execute(&primary.url("keel", "postgres"), "CREATE DATABASE shop").await;
    execute(&primary.url("keel", "shop"), "CREATE TABLE notes (id int)").await;
    let replica = Cluster::new("replica", Some(primary.port));

    let mut config = crate::helpers::test_config(primary.url("keel", "shop")).db;
    config.replica_urls = vec![replica.url("keel", "shop")];
    config.acquire_timeout = Duration::from_millis(500);
    let db = Db::connect(&config).unwrap();
    let watch = tokio::spawn(db.clone().watch_replicas(Duration::from_millis(100)));
    eventually("reads reach the replica", async || {
        on_replica(&db, None).await.unwrap()
    })
    .await;

    // Replay paused: a write's token sends its reads to the primary; reads without one stay on
    // the replica, which does not have the write.
    execute(
        &replica.url("postgres", "shop"),
        "SELECT pg_wal_replay_pause()",
    )
    .await;
    let write = db.write().await.unwrap();
    write
        .execute("INSERT INTO notes VALUES (1)", &[])
        .await
        .unwrap();
    let token = wal_position(&write).await.unwrap();
    drop(write);
    let count = async |token: Option<Lsn>| {
        db.with_read(token, async |c: &Connection| {
            let row = c.query_one("SELECT count(*) FROM notes", &[]).await?;
            Ok::<_, InfraError>(row.get::<_, i64>(0))
        })
        .await
        .unwrap()
    };
    for _ in 0..5 {
        assert!(!on_replica(&db, Some(token)).await.unwrap());
        assert_eq!(count(Some(token)).await, 1, "the writer sees its write");
        assert!(on_replica(&db, None).await.unwrap());
        assert_eq!(
            count(None).await,
            0,
            "the paused replica has not replayed it"
        );
    }
    execute(
        &replica.url("postgres", "shop"),
        "SELECT pg_wal_replay_resume()",
    )
    .await;
    eventually("the token's reads return to the replica", async || {
        on_replica(&db, Some(token)).await.unwrap()
    })
    .await;
    assert_eq!(count(Some(token)).await, 1);

    // The replica dies under traffic: no read fails.
    let reads = {
        let db = db.clone();
        tokio::spawn(async move {
            for _ in 0..400 {
                on_replica(&db, None).await.expect("no read fails");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    replica.stop();
    reads.await.unwrap();
    assert!(
        !on_replica(&db, None).await.unwrap(),
        "reads on the primary"
    );

    replica.start();
    eventually("the restarted replica is used again", async || {
        on_replica(&db, None).await.unwrap()
    })
    .await;
    watch.abort();
}
