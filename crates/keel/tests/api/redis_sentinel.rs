//! Redis with a replica and three Sentinels, as the HA topology runs it: the master is
//! SIGKILLed, the Sentinels promote the replica, and Keel follows the new master without a
//! restart — a session made before the failover still logs its user in, one checked lately
//! is honoured during it, and new ones are written to the new master.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use tokio::process::{Child, Command};

use crate::helpers::*;

/// One `redis-server` (master or replica) or `redis-sentinel` of the test's own.
pub(crate) struct Node {
    pub(crate) port: u16,
    pub(crate) child: Child,
}

/// A master, its replica and three Sentinels watching them under the name `keel`, each
/// with its own files in a directory of the test's own.
pub(crate) struct RedisHa {
    pub(crate) master: Node,
    pub(crate) replica: Node,
    pub(crate) sentinels: Vec<Node>,
    dir: std::path::PathBuf,
}

impl RedisHa {
    pub(crate) async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("keel-sentinel-{}", uuid::Uuid::new_v4()));
        for node in ["master", "replica"] {
            std::fs::create_dir_all(dir.join(node)).unwrap();
        }
        let (master_at, replica_at) = (free_port(), free_port());
        let master = redis(master_at, &dir.join("master"), &[]).await;
        let replica_of = [
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master_at.to_string(),
        ];
        let replica = redis(replica_at, &dir.join("replica"), &replica_of).await;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(sentinel(free_port(), master_at, &dir).await);
        }
        Self {
            master,
            replica,
            sentinels,
            dir,
        }
    }

    /// The Sentinels' URLs, as `KEEL_REDIS_SENTINELS` takes them.
    pub(crate) fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port))
            .collect()
    }

    /// Waits until the replica holds everything the master has, as a write a second old
    /// would be (replication is asynchronous).
    pub(crate) async fn replicated(&self) {
        let mut on_master = redis::Client::open(format!("redis://127.0.0.1:{}", self.master.port))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        eventually(
            "the replica to have what the master has",
            Duration::from_secs(10),
            async || {
                let acknowledged: Result<i64, _> = redis::cmd("WAIT")
                    .arg(1)
                    .arg(100)
                    .query_async(&mut on_master)
                    .await;
                acknowledged.is_ok_and(|replicas| replicas == 1)
            },
        )
        .await;
    }

    /// SIGKILLs the master.
    pub(crate) async fn kill_master(&mut self) {
        self.master.child.kill().await.unwrap();
    }

    /// Waits for the Sentinels to promote the replica.
    pub(crate) async fn promoted(&self) {
        eventually(
            "the Sentinels to promote the replica",
            Duration::from_secs(30),
            async || master_port(self.sentinels[0].port).await == Some(self.replica.port),
        )
        .await;
    }
}

impl Drop for RedisHa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn redis(port: u16, dir: &Path, extra: &[String]) -> Node {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (scripts/setup.sh)");
    wait_for_port(port, "redis-server").await;
    Node { port, child }
}

async fn sentinel(port: u16, master: u16, dir: &Path) -> Node {
    // A Sentinel rewrites its configuration file: each its own.
    let config = dir.join(format!("sentinel-{port}.conf"));
    std::fs::write(
        &config,
        format!(
            "port {port}\nbind 127.0.0.1\n\
             sentinel monitor keel 127.0.0.1 {master} 2\n\
             sentinel down-after-milliseconds keel 1000\n\
             sentinel failover-timeout keel 5000\n"
        ),
    )
    .unwrap();
    let child = Command::new("redis-server")
        .arg(&config)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-sentinel is installed (scripts/setup.sh)");
    wait_for_port(port, "redis-sentinel").await;
    Node { port, child }
}

/// The master's port, as the Sentinel at `port` names it.
async fn master_port(port: u16) -> Option<u16> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let (_, master): (String, String) = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg("keel")
        .query_async(&mut conn)
        .await
        .ok()?;
    master.parse().ok()
}

#[tokio::test]
async fn a_redis_failover_is_followed_and_sessions_survive_it() {
    let _busy = MACHINE.read().await;
    let mut redis = RedisHa::start().await;
    let mut config = test_config(create_database().await);
    config.redis.url = format!("redis://127.0.0.1:{}", redis.master.port);
    config.redis.sentinels = redis.sentinel_urls();
    let app = spawn_app_with(config).await;
    let token = app.customer().await;
    let checked = app.customer().await;
    assert_eq!(
        app.get("/accounts/me", Some(&checked)).await.status(),
        StatusCode::OK
    );
    redis.replicated().await;

    redis.kill_master().await;
    let killed = Instant::now();
    // While no master answers, a session this instance checked lately is still honoured.
    assert_eq!(
        app.get("/accounts/me", Some(&checked)).await.status(),
        StatusCode::OK,
        "a checked session is honoured during the failover"
    );
    redis.promoted().await;
    let promoted = killed.elapsed();
    // The session made before the failover works against the new master.
    eventually(
        "the session served again",
        Duration::from_secs(10),
        async || app.get("/accounts/me", Some(&token)).await.status() == StatusCode::OK,
    )
    .await;
    let served = killed.elapsed();
    // And a new session is written there: the app follows the master, not the old address.
    let fresh = app.customer().await;
    assert_eq!(
        app.get("/accounts/me", Some(&fresh)).await.status(),
        StatusCode::OK
    );
    eprintln!(
        "redis master killed: replica promoted after {promoted:?}, the old session served after {served:?}"
    );
}
