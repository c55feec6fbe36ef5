//! The command line as an operator writes it: settings from the environment.

use std::process::Command;

/// `keel serve` with `env`, and a database URL that fails right after the command line
/// parsed: exit 2 is clap refusing a setting, exit 1 the database URL.
fn serve_with(env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("serve")
        .env("KEEL_DATABASE_URL", "postgres://%zz")
        .envs(env.iter().copied())
        .output()
        .expect("keel runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn booleans_read_as_people_write_them() {
    for on in ["1", "0", "true", "false", "yes", "no", "on", "off"] {
        let (code, stderr) = serve_with(&[("KEEL_RATE_LIMIT_OFF", on)]);
        assert_eq!(code, 1, "KEEL_RATE_LIMIT_OFF={on} refused: {stderr}");
        assert!(stderr.contains("KEEL_DATABASE_URL"), "{stderr}");
    }
    let (code, stderr) = serve_with(&[("KEEL_RATE_LIMIT_OFF", "maybe")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("maybe"), "{stderr}");
}
