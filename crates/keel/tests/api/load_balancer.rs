//! Two instances behind nginx, run with the very configuration `deploy/nginx.conf` ships:
//! requests spread over both (not `/metrics`: it is per instance), the rate limits key on
//! the client (not on nginx, not on what the client writes in `X-Forwarded-For`) and are
//! shared by the instances, and an instance that stops is skipped without one failed
//! request.

use std::{collections::HashSet, net::IpAddr, path::PathBuf, process::Stdio};

use reqwest::{Response, StatusCode};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::helpers::*;

/// An nginx of the test's own, on a free port, in front of `instances`.
pub(crate) struct Nginx {
    port: u16,
    dir: PathBuf,
    _child: Child,
}

impl Nginx {
    /// Runs `scripts/nginx.sh`, as `scripts/run.sh` does, as one process: killing it on drop
    /// (or when a test fails) then leaves no workers behind.
    pub(crate) async fn start(instances: &[&str], upstream_idle: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("keel-nginx-{}", uuid::Uuid::new_v4()));
        let child = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/nginx.sh"
        ))
        .arg(&dir)
        .arg(format!("127.0.0.1:{port}"))
        .args(
            instances
                .iter()
                .map(|base| base.trim_start_matches("http://")),
        )
        .env("NGINX_DIRECTIVES", "master_process off;")
        .env("NGINX_UPSTREAM_IDLE", upstream_idle)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("scripts/nginx.sh runs (nginx is installed by scripts/setup.sh)");
        wait_for_port(port, "nginx").await;
        Self {
            port,
            dir,
            _child: child,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which instance answered: each draws its own request-id prefix.
pub(crate) fn instance(response: &Response) -> String {
    let id = response.headers()["x-request-id"].to_str().unwrap();
    id.split('-').next().unwrap().to_owned()
}

#[tokio::test]
async fn nginx_spreads_requests_shares_limits_and_skips_a_stopped_instance() {
    let mut config = test_config(create_database().await);
    config.rate_limits.rate_login = "5/60s".parse().unwrap();
    config.rate_limits.trusted_proxies =
        vec![platform::ratelimit::parse_proxy("127.0.0.1").unwrap()];
    let mut first = spawn_app_with(config.clone()).await;
    let second = spawn_app_with(config).await;
    let nginx = Nginx::start(&[&first.address, &second.address], "20s").await;
    // The client comes from another loopback address than nginx's, as it would from
    // another host: 127.0.0.1 is the trusted proxy, 127.0.0.2 is not.
    let client = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();

    let mut answered_by = HashSet::new();
    for _ in 0..10 {
        let response = client.get(nginx.url("/products")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        answered_by.insert(instance(&response));
    }
    assert_eq!(
        answered_by.len(),
        2,
        "both instances served: {answered_by:?}"
    );
    // Metrics are scraped from each instance, not through the balancer.
    let metrics = client.get(nginx.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::NOT_FOUND);
    assert_eq!(second.get("/metrics", None).await.status(), StatusCode::OK);

    // Five logins a minute per client, whichever instance answers and whatever the client
    // claims to forward for.
    let attempt = json!({ "email": "who@example.com", "password": "guess guess" });
    let mut guessed_on = HashSet::new();
    for n in 0..5 {
        let response = client
            .post(nginx.url("/sessions"))
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .json(&attempt)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        guessed_on.insert(instance(&response));
    }
    assert_eq!(guessed_on.len(), 2, "the guesses went to both instances");
    // The quota is spent on both: each instance refuses the sixth, through nginx or asked
    // directly by the same client (which keys the same: nginx's X-Forwarded-For names it).
    let through_nginx = client
        .post(nginx.url("/sessions"))
        .json(&attempt)
        .send()
        .await
        .unwrap();
    assert_eq!(through_nginx.status(), StatusCode::TOO_MANY_REQUESTS);
    for app in [&first, &second] {
        let direct = client
            .post(app.url("/sessions"))
            .json(&attempt)
            .send()
            .await
            .unwrap();
        assert_eq!(
            direct.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{} allowed a sixth guess",
            app.address
        );
    }

    // One instance stops (SIGTERM's path: it drains and closes its connections); nginx's
    // pooled connections to it fail and every request goes to the other.
    first.shut_down();
    first.served.take().unwrap().await.unwrap().unwrap();
    let survivor = {
        let response = second.get("/products", None).await;
        instance(&response)
    };
    for _ in 0..10 {
        let response = client.get(nginx.url("/products")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(instance(&response), survivor);
    }
}
