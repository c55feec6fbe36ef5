//! A PostgreSQL primary that fails over, of a test's own: `scripts/pg-ha.sh` runs a
//! pg_auto_failover monitor and two nodes on free ports, and the test kills and restarts
//! nodes by name. Dropped, the formation stops every process it started.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::eventually;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/pg-ha.sh");

pub struct Formation {
    dir: PathBuf,
    up: Child,
}

/// Three free ports in a row: the monitor's and its two nodes'.
fn free_ports() -> u16 {
    loop {
        let base = super::free_port();
        if base < 65000
            && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
}

fn script(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg-ha.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Formation {
    /// A formation up with a primary and a synchronous standby, and a `keel` database.
    pub async fn start() -> Self {
        let port = free_ports();
        let dir = std::env::temp_dir().join(format!("keel-pg-ha-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.with_extension("log")).unwrap();
        let up = Command::new("bash")
            .arg(SCRIPT)
            .args(["up", &dir.display().to_string(), &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let formation = Self { dir, up };
        let log = formation.dir.with_extension("log");
        eventually("the formation up", Duration::from_secs(120), async || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("formation up"))
        })
        .await;
        formation
    }

    /// The URL that follows the primary (every node, `target_session_attrs=read-write`).
    pub fn url(&self) -> String {
        script(&["url", &self.dir.display().to_string()])
    }

    /// Each node's `host:port`, node1's first.
    pub fn node_addresses(&self) -> Vec<String> {
        let url = self.url();
        let hosts = url.split('@').nth(1).unwrap_or_default();
        let hosts = hosts.split('/').next().unwrap_or_default();
        hosts.split(',').map(str::to_owned).collect()
    }

    /// The port of the node that takes writes now, as the monitor sees it.
    pub fn primary_port(&self) -> u16 {
        let port = script(&["primary", &self.dir.display().to_string()]);
        port.parse()
            .unwrap_or_else(|_| panic!("one primary: {port:?}"))
    }

    /// The monitor's view of the nodes, for a failure's message.
    pub fn state(&self) -> String {
        script(&["state", &self.dir.display().to_string()])
    }

    /// node1 or node2, whichever is on `port`.
    pub fn node_on(&self, port: u16) -> &'static str {
        let url = self.url();
        let first = url.split(',').next().unwrap_or_default();
        if first.ends_with(&format!(":{port}")) {
            "node1"
        } else {
            "node2"
        }
    }

    /// The node's host lost: its keeper and its PostgreSQL SIGKILLed.
    pub fn kill(&self, node: &str) {
        script(&["kill", &self.dir.display().to_string(), node]);
    }

    /// A killed node back; it rejoins the formation.
    pub fn start_node(&self, node: &str) {
        script(&["start", &self.dir.display().to_string(), node]);
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        // SIGTERM: the script stops the formation on its way out.
        let _ = Command::new("kill").arg(self.up.id().to_string()).status();
        let _ = self.up.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.dir.with_extension("log"));
    }
}
