//! The processes a comparison starts: the profiles' instances and workers and the payment
//! provider, and how it knows they are ready, idle and gone.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

/// How long a worker must look idle: longer than it takes to refresh its outbox gauge (5 s).
const QUIET: Duration = Duration::from_secs(6);

pub(super) fn spawn(command: &mut Command) -> anyhow::Result<Child> {
    Ok(command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// Waits for `base` to answer `/readyz`.
pub(super) async fn ready(base: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{base} was not ready within 30 s")
}

/// SIGTERM, so a worker hands its sagas back and an instance drains; SIGKILL after 15 s.
pub(super) async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Waits until the worker behind `metrics` has nothing left to do — its outbox empty and
/// every consumer caught up, steadily for [`QUIET`] — or `patience` runs out (false).
pub(super) async fn settled(metrics: &str, patience: Duration) -> bool {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + patience;
    let mut quiet_since: Option<Instant> = None;
    while Instant::now() < deadline {
        let text = match http.get(metrics).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if idle(&text) {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= QUIET {
                return true;
            }
        } else {
            quiet_since = None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Whether a worker's metrics say it is idle: an outbox backlog of 0 (the gauge exists once
/// the worker has looked) and no consumer with messages pending.
fn idle(metrics: &str) -> bool {
    let mut backlog = None;
    for line in metrics.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if name == "keel_outbox_backlog" {
            backlog = Some(value);
        } else if name.starts_with("keel_bus_consumer_pending{") && value > 0.0 {
            return false;
        }
    }
    backlog == Some(0.0)
}

#[cfg(test)]
mod tests {
    use super::idle;

    #[test]
    fn a_worker_is_idle_only_with_an_empty_outbox_and_no_consumer_behind() {
        let caught_up = "# TYPE keel_outbox_backlog gauge\nkeel_outbox_backlog 0\n\
                         keel_bus_consumer_pending{consumer=\"saga\"} 0\n";
        assert!(idle(caught_up));
        assert!(!idle("keel_outbox_backlog 12\n"));
        assert!(!idle(
            "keel_outbox_backlog 0\nkeel_bus_consumer_pending{consumer=\"saga\"} 3\n"
        ));
        // Before the worker first looks at its outbox, nothing says it is empty.
        assert!(!idle("keel_bus_consumer_pending{consumer=\"saga\"} 0\n"));
    }
}
