//! A real `keel serve` process for the tests that need one of their own: its metrics, CPU
//! and global tracing are its own, and it can be started with any environment.

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::*;

/// A `keel serve` process on its own port and database, seeded.
pub struct KeelProcess {
    pub child: tokio::process::Child,
    pub base: String,
    pub database_url: String,
    /// Its log lines so far (stderr).
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl KeelProcess {
    pub async fn start(products: u32, env: &[(&str, &str)]) -> Self {
        Self::start_on(seeded_database(products).await, env).await
    }

    /// A `keel serve` process on an existing database (another instance of the same
    /// deployment, or one that replaces a killed one).
    pub async fn start_on(database_url: String, env: &[(&str, &str)]) -> Self {
        Self::start_at(database_url, free_port(), env).await
    }

    /// A `keel serve` process on `port` (the one a stopped instance had, behind a balancer).
    pub async fn start_at(database_url: String, port: u16, env: &[(&str, &str)]) -> Self {
        let keel = env!("CARGO_BIN_EXE_keel");
        let mut command = tokio::process::Command::new(keel);
        command
            .arg("serve")
            .env("KEEL_LISTEN", format!("127.0.0.1:{port}"))
            .env("KEEL_DATABASE_URL", &database_url)
            .env("KEEL_REDIS_PREFIX", format!("diag:{port}:"))
            .env("KEEL_RATE_LIMIT_OFF", "true")
            .env("KEEL_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        wait_for_port(port, "keel serve").await;
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            database_url,
            logs,
        }
    }
}

/// A new database, migrated and seeded by `keel seed` with `products` and 20 users.
pub async fn seeded_database(products: u32) -> String {
    let database_url = create_database().await;
    let seeded = tokio::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["seed", "--products", &products.to_string(), "--users", "20"])
        .env("KEEL_DATABASE_URL", &database_url)
        .env("KEEL_LOG", "warn")
        .status()
        .await
        .unwrap();
    assert!(seeded.success());
    database_url
}

/// A `keel worker` process that the test can signal, with `env` over quick test defaults
/// (short leases and acknowledgement waits, metrics on a free port).
pub fn keel_worker(env: &[(&str, &str)]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("worker")
        .env("KEEL_BUS_ACK_WAIT", "2s")
        .env("KEEL_SAGA_LEASE", "2s")
        .env("KEEL_WORKER_LISTEN", "127.0.0.1:0")
        .env("KEEL_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the keel binary runs")
}

/// A seeded customer's session token.
pub async fn login(base: &str, email: &str) -> String {
    let session: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/sessions"))
        .json(&json!({ "email": email, "password": "keel-demo-password" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["token"].as_str().unwrap().to_owned()
}
