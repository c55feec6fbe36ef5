//! The deploy path says what the binary and the router do: every setting the Kubernetes
//! manifests, the compose file and the Dockerfile name is one `keel serve` or `keel worker`
//! takes, the ports they open are the ones they tell Keel to listen on, and every probe
//! path they use is answered. Renamed in the code, a setting fails here, not in a cluster.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;

use crate::helpers::*;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Every file of the deploy path, with its text.
fn deploy_files() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                found.push(path);
            }
        }
    }
    let mut paths = vec![Path::new(ROOT).join("Dockerfile")];
    walk(&Path::new(ROOT).join("deploy/k8s"), &mut paths);
    walk(&Path::new(ROOT).join("deploy/compose"), &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// The `KEEL_*` names in `text`.
fn settings(text: &str) -> Vec<&str> {
    text.match_indices("KEEL_")
        .map(|(at, _)| {
            let rest = &text[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// What `keel <command> --help` prints.
fn help(command: &str) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([command, "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

/// Settings every command reads before its flags are parsed (`platform::telemetry`).
const READ_AT_START: [&str; 1] = ["KEEL_LOG"];

#[test]
fn every_setting_the_deploy_files_name_is_one_keel_takes() {
    let (serve, worker) = (help("serve"), help("worker"));
    let takes = |help: &str, name: &str| {
        READ_AT_START.contains(&name) || help.contains(&format!("[env: {name}="))
    };
    let mut checked = 0;
    for (path, text) in deploy_files() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for name in settings(&text) {
            let known = match file.as_str() {
                "api.yaml" => takes(&serve, name),
                "worker.yaml" => takes(&worker, name),
                _ => takes(&serve, name) || takes(&worker, name),
            };
            assert!(known, "{}: {name} is no setting of keel", path.display());
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} settings found: were the files moved?"
    );
}

/// The value written after `key` (`key: value`, `key=value` or `"key": value`) on its line.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|line| {
            let at = line.find(key)?;
            let rest = line[at + key.len()..].trim_start_matches([':', '=', ' ', '"']);
            Some(
                rest.split([' ', '"', '\\', ',', '}'])
                    .next()
                    .unwrap_or(rest),
            )
        })
        .collect()
}

#[test]
fn the_ports_opened_are_the_ports_keel_listens_on() {
    let text = |path: &str| std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap();
    let port = |address: &str| address.rsplit(':').next().unwrap().to_owned();
    for (file, setting) in [
        ("deploy/k8s/base/api.yaml", "KEEL_LISTEN"),
        ("deploy/k8s/base/worker.yaml", "KEEL_WORKER_LISTEN"),
    ] {
        let manifest = text(file);
        let listen = values(&manifest, &format!("name: {setting}"));
        assert_eq!(listen.len(), 1, "{file} sets {setting} once");
        let listen_on = values(&manifest, "value")
            .into_iter()
            .find(|value| value.starts_with("0.0.0.0:"))
            .map(port);
        let opened: Vec<String> = values(&manifest, "containerPort")
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(opened, [listen_on.clone().unwrap()], "{file}");
    }
    let dockerfile = text("Dockerfile");
    let listens: Vec<String> = ["KEEL_LISTEN", "KEEL_WORKER_LISTEN"]
        .iter()
        .map(|setting| port(values(&dockerfile, setting)[0]))
        .collect();
    let exposed: Vec<String> = dockerfile
        .lines()
        .find(|line| line.starts_with("EXPOSE"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    assert_eq!(
        exposed, listens,
        "the Dockerfile exposes what Keel listens on"
    );
}

#[tokio::test]
async fn every_probe_path_is_answered() {
    let mut paths: Vec<String> = Vec::new();
    for (_, text) in deploy_files() {
        // Kubernetes probes (`path: /readyz`) and compose health checks (`…:8080/readyz`).
        paths.extend(values(&text, "path").iter().map(|p| (*p).to_owned()));
        paths.extend(
            values(&text, "127.0.0.1:8080")
                .iter()
                .map(|p| (*p).to_owned()),
        );
    }
    paths.retain(|path| path.starts_with('/'));
    paths.sort();
    paths.dedup();
    assert!(paths.contains(&"/livez".to_owned()) && paths.contains(&"/readyz".to_owned()));
    let app = spawn_app().await;
    for path in &paths {
        let status = app.get(path, None).await.status();
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // `keel probe`, the image's health check, succeeds on them and fails on anything else.
    let probe = |path: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["probe", &app.url(path)])
            .env("RUST_BACKTRACE", "0")
            .stderr(std::process::Stdio::null())
            .status()
    };
    assert!(probe("/readyz").await.unwrap().success());
    assert!(!probe("/no-such-path").await.unwrap().success());
}
