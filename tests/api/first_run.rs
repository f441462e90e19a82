//! `scripts/run`, the README's run command: its syntax, its help, and the first-run set-up
//! (the demo kiosk and its kept token, the sandbox bank) against the test build of the
//! binary (`CONCIERGE_BIN`, `--setup-only --no-models`: no build, no packages, no network).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::*;

fn script() -> std::path::PathBuf {
    project_root().join("scripts/run")
}

/// Text of both output streams.
fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the script and the sandbox seed file in `root`, a stand-in for a fresh clone
/// (the script works from the folder above its own, so `data/` lands in `root`).
fn fresh_root(root: &Path) {
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    std::fs::create_dir_all(root.join("deploy/sandbox")).unwrap();
    std::fs::copy(script(), root.join("scripts/run")).unwrap();
    std::fs::copy(
        project_root().join("deploy/sandbox/customers.yaml"),
        root.join("deploy/sandbox/customers.yaml"),
    )
    .unwrap();
}

/// `scripts/run --setup-only --no-models [extra]` in `root` with the test build.
fn setup_only(root: &Path, extra: &[&str]) -> Output {
    let out = Command::new("bash")
        .arg(root.join("scripts/run"))
        .args(["--setup-only", "--no-models"])
        .args(extra)
        .env("CONCIERGE_BIN", env!("CARGO_BIN_EXE_concierge"))
        .env_remove("CONCIERGE_DATABASE_URL")
        .env_remove("RUST_LOG")
        .current_dir(root)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    out
}

/// The token in the printed kiosk URL (`/kiosk?kiosk=DEMO01&token=…`).
fn url_token(stdout: &str, base: &str) -> String {
    let prefix = format!("{base}/kiosk?kiosk=DEMO01&token=");
    let line = stdout
        .lines()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with(&prefix)))
        .unwrap_or_else(|| panic!("no {prefix}… in:\n{stdout}"));
    line[prefix.len()..].to_string()
}

/// How many tokens the demo kiosk has (revoking them all says how many there were).
fn revoke_count(root: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_concierge"))
        .args(["kiosk", "revoke", "--id", "DEMO01"])
        .env_remove("CONCIERGE_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    text(&out).0.trim().to_string()
}

#[test]
fn first_run_script_parses_and_explains_itself() {
    let out = Command::new("bash")
        .arg("-n")
        .arg(script())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let meta = std::fs::metadata(script()).unwrap();
    assert!(
        meta.permissions().mode() & 0o111 != 0,
        "scripts/run is not executable"
    );

    let out = Command::new(script()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let (help, _) = text(&out);
    for word in [
        "Usage: scripts/run",
        "--listen ADDR",
        "--setup-only",
        "--no-build",
        "--no-models",
        "CONCIERGE_BIN",
        "data/demo-kiosk.token",
    ] {
        assert!(help.contains(word), "help lacks {word}:\n{help}");
    }

    let out = Command::new(script()).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("unknown option --bogus"));
}

#[test]
fn first_run_registers_the_demo_kiosk_once_and_reuses_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fresh_root(root);

    // First run: registers, keeps the token 0600, seeds the sandbox bank.
    let out = setup_only(root, &[]);
    let (stdout, stderr) = text(&out);
    let token = url_token(&stdout, "http://127.0.0.1:8080");
    assert!(token.starts_with("ck_") && token.len() > 20, "{token}");
    let token_file = root.join("data/demo-kiosk.token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "token file mode {mode:o}");
    assert!(
        stdout.contains(&format!(
            "{} chat --kiosk DEMO01 --token {token}\n",
            env!("CARGO_BIN_EXE_concierge")
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("registering the demo kiosk DEMO01"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sandbox bank: 2 customers and 3 cards"),
        "{stderr}"
    );
    assert!(root.join("data/concierge.db").exists());

    // Second run: same token, nothing registered or seeded again.
    let out = setup_only(root, &["--listen", "0.0.0.0:9000"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(url_token(&stdout, "http://127.0.0.1:9000"), token);
    assert!(
        stdout.contains(&format!("--token {token} --url http://127.0.0.1:9000")),
        "{stdout}"
    );
    assert!(stderr.contains("already registered"), "{stderr}");
    assert!(!stderr.contains("registering"), "{stderr}");
    assert!(!stderr.contains("sandbox bank:"), "{stderr}");
    assert_eq!(revoke_count(root), "revoked 1 token(s) of kiosk DEMO01");

    // The token file lost (the kiosk still registered): a new token, no second seeding.
    std::fs::remove_file(&token_file).unwrap();
    let out = setup_only(root, &[]);
    let (stdout, stderr) = text(&out);
    let new_token = url_token(&stdout, "http://127.0.0.1:8080");
    assert_ne!(new_token, token);
    assert!(stderr.contains("issuing a new token"), "{stderr}");
    assert!(!stderr.contains("sandbox bank:"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap().trim(),
        new_token
    );
}
