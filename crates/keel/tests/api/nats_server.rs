//! A `nats-server` with JetStream of a test's own, on a free port, that the test may stop and
//! restart (its streams kept on disk) without touching the shared one.

use std::{path::PathBuf, process::Stdio};

use tokio::process::{Child, Command};

pub struct NatsServer {
    pub port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        let port = crate::helpers::free_port();
        let store = std::env::temp_dir().join(format!("keel-nats-{}", uuid::Uuid::new_v4()));
        let mut server = Self {
            port,
            store,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port and store (after [`kill`](Self::kill)).
    pub async fn restart(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server is installed (scripts/setup.sh)");
        self.child = Some(child);
        crate::helpers::wait_for_port(self.port, "nats-server").await;
    }

    /// SIGKILL: every connection drops; what JetStream had written survives on disk.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
