//! The `kiosk-adapter` binary's TLS settings as an installer meets them: plain ws:// to
//! another machine, or a missing CA file, stop it at once with a clear message (exit 2),
//! before any connection is attempted; `--insecure` lets plain ws:// through, with a warning.

use std::process::Command;

fn adapter(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiosk-adapter"))
        .args(["--kiosk", "K001", "--token", "t"])
        .args(args)
        .env_remove("KIOSK_ADAPTER_URL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn plain_ws_to_another_machine_is_refused_without_insecure() {
    let (code, err) = adapter(&["--url", "ws://concierge.bank.example/v1/kiosk/ws"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("refusing plain ws://"), "{err}");
    assert!(err.contains("--insecure"), "{err}");
}

#[test]
fn an_unreadable_ca_file_is_named() {
    let (code, err) = adapter(&[
        "--url",
        "wss://concierge.bank.example/v1/kiosk/ws",
        "--ca-file",
        "/nonexistent/bank-ca.pem",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/bank-ca.pem"), "{err}");
}

#[test]
fn with_insecure_plain_ws_to_another_machine_is_attempted_with_a_warning() {
    // TEST-NET-1: nothing answers there, so the adapter keeps retrying instead of exiting.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiosk-adapter"))
        .args(["--kiosk", "K001", "--token", "t", "--insecure"])
        .args(["--url", "ws://192.0.2.1:9/v1/kiosk/ws"])
        .env_remove("KIOSK_ADAPTER_URL")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(running, "the adapter exited: {err}");
    assert!(!err.contains("refusing plain ws://"), "{err}");
    assert!(err.contains("not encrypted"), "{err}");
}
