//! A `nats-server` with JetStream of a test's own, on a free port, that the test may stop and
//! restart (its streams kept on disk) without touching the shared one; and a cluster of
//! three such servers.

use std::{path::PathBuf, process::Stdio};

use tokio::process::{Child, Command};

pub struct NatsServer {
    pub port: u16,
    store: PathBuf,
    /// Further arguments: a cluster member's name and routes.
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        Self::start_with(crate::helpers::free_port(), Vec::new()).await
    }

    async fn start_with(port: u16, args: Vec<String>) -> Self {
        let store = std::env::temp_dir().join(format!("keel-nats-{}", uuid::Uuid::new_v4()));
        let mut server = Self {
            port,
            store,
            args,
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
            .args(&self.args)
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

/// Three JetStream servers in one cluster (routes between all of them), as
/// `scripts/nats-cluster.sh` runs them.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    pub async fn start() -> Self {
        let ports: Vec<u16> = (0..3).map(|_| crate::helpers::free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| crate::helpers::free_port()).collect();
        let all_routes = routes
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let name = format!("keel-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut nodes = Vec::new();
        for (n, (&port, &route)) in ports.iter().zip(&routes).enumerate() {
            let args = vec![
                "--server_name".to_owned(),
                format!("{name}-{n}"),
                "--cluster_name".to_owned(),
                name.clone(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{route}"),
                "--routes".to_owned(),
                all_routes.clone(),
            ];
            nodes.push(NatsServer::start_with(port, args).await);
        }
        Self { nodes }
    }

    /// Every node's URL, comma-separated, as `KEEL_NATS_URL` takes them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
