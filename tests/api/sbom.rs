//! `scripts/sbom` (CycloneDX 1.5) run the way CI runs it: the document's shape, every Rust
//! package with its `pkg:cargo` purl and Cargo.lock checksum, the three models with their
//! source wheels, the web assets with their sha256, and what an installed models folder
//! adds — or a `file:line` error when its manifest is broken.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::project_root;

/// Runs the script with `models_dir`; its exit status, stdout and stderr.
fn sbom(models_dir: &Path) -> (bool, String, String) {
    let out = Command::new("python3")
        .arg(project_root().join("scripts/sbom"))
        .arg("--models-dir")
        .arg(models_dir)
        .output()
        .expect("python3 runs scripts/sbom");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn components(bom: &Value) -> &Vec<Value> {
    bom["components"].as_array().expect("components")
}

#[test]
fn the_sbom_is_cyclonedx_1_5_with_crates_models_and_web_assets() {
    let empty = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = sbom(empty.path());
    assert!(ok, "scripts/sbom failed: {stderr}");
    let bom: Value = serde_json::from_str(&stdout).expect("the SBOM is JSON");
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    assert!(bom["serialNumber"]
        .as_str()
        .is_some_and(|s| s.starts_with("urn:uuid:")));
    assert_eq!(
        bom["metadata"]["component"]["purl"],
        "pkg:cargo/concierge@0.1.0"
    );
    let all = components(&bom);

    // Every bom-ref once, and every dependency edge between known refs.
    let mut refs = BTreeSet::new();
    refs.insert(bom["metadata"]["component"]["bom-ref"].as_str().unwrap());
    for c in all {
        let r = c["bom-ref"].as_str().expect("bom-ref");
        assert!(refs.insert(r), "bom-ref {r} twice");
    }
    for d in bom["dependencies"].as_array().expect("dependencies") {
        for r in std::iter::once(&d["ref"]).chain(d["dependsOn"].as_array().unwrap()) {
            assert!(refs.contains(r.as_str().unwrap()), "unknown ref {r}");
        }
    }

    // Rust packages: purl, licence, and Cargo.lock's checksum for registry crates.
    let crates: Vec<&Value> = all.iter().filter(|c| c["type"] == "library").collect();
    assert!(crates.len() > 100, "{} crates", crates.len());
    for c in &crates {
        let purl = c["purl"].as_str().unwrap();
        assert_eq!(
            purl,
            format!(
                "pkg:cargo/{}@{}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap()
            )
        );
        assert!(
            !c["licenses"].as_array().unwrap().is_empty(),
            "{purl}: no licence"
        );
    }
    let axum = crates
        .iter()
        .find(|c| c["name"] == "axum")
        .expect("axum in the SBOM");
    let lock = std::fs::read_to_string(project_root().join("Cargo.lock")).unwrap();
    let sum = axum["hashes"][0]["content"]
        .as_str()
        .expect("axum's sha256");
    assert!(
        lock.contains(&format!("checksum = \"{sum}\"")),
        "axum's hash is not Cargo.lock's"
    );

    // The three models, from their pinned wheels.
    let models: Vec<&Value> = all
        .iter()
        .filter(|c| c["type"] == "machine-learning-model")
        .collect();
    let names: BTreeSet<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["multilingual-e5-small", "silero-vad", "whisper-base"])
    );
    for m in &models {
        assert!(m["purl"].as_str().unwrap().starts_with("pkg:pypi/"), "{m}");
        assert_eq!(m["licenses"][0]["license"]["id"], "MIT", "{m}");
        for w in m["pedigree"]["ancestors"].as_array().unwrap() {
            assert!(w["purl"].as_str().unwrap().starts_with("pkg:pypi/"), "{w}");
            assert_eq!(w["hashes"][0]["content"].as_str().unwrap().len(), 64, "{w}");
        }
        for f in m["components"].as_array().unwrap() {
            // Nothing installed in the empty folder: the reference sha256 of each file.
            assert_eq!(f["hashes"][0]["content"].as_str().unwrap().len(), 64, "{f}");
            assert!(f["properties"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "concierge:installed" && p["value"] == "false"));
        }
    }
    let whisper = models.iter().find(|m| m["name"] == "whisper-base").unwrap();
    assert_eq!(
        whisper["pedigree"]["ancestors"].as_array().unwrap().len(),
        2
    );

    // Web assets, hashed.
    let studio = all
        .iter()
        .find(|c| c["name"] == "web/assets/studio.js")
        .expect("studio.js in the SBOM");
    let bytes = std::fs::read(project_root().join("web/assets/studio.js")).unwrap();
    assert_eq!(
        studio["hashes"][0]["content"].as_str().unwrap(),
        hex::encode(Sha256::digest(&bytes))
    );
    // Vendored third-party code is described as the npm package it came from.
    let uplot = all
        .iter()
        .find(|c| c["name"] == "web/assets/vendor/uplot/uPlot.esm.js")
        .expect("the vendored uPlot in the SBOM");
    assert_eq!(uplot["purl"], "pkg:npm/uplot@1.6.32", "{uplot}");
    assert_eq!(uplot["licenses"][0]["license"]["id"], "MIT", "{uplot}");
    assert!(
        all.iter()
            .filter(|c| c["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("web/assets/vendor/")))
            .all(|c| c["purl"].is_string()),
        "every vendored file names its package"
    );
    // espeak-ng: an external program, GPL, not linked.
    let espeak = all.iter().find(|c| c["name"] == "espeak-ng").unwrap();
    assert_eq!(espeak["scope"], "optional");
}

#[test]
fn installed_models_are_described_from_their_manifest_and_a_broken_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = r#"{"files": [{"name": "ggml-silero-v6.2.3.bin", "bytes": 885102,
        "sha256": "1111111111111111111111111111111111111111111111111111111111111111",
        "source": "silero-vad==6.2.3 silero_vad_16k.safetensors converted to ggml"}]}"#;
    std::fs::write(dir.path().join("manifest.json"), manifest).unwrap();
    let (ok, stdout, stderr) = sbom(dir.path());
    assert!(ok, "{stderr}");
    let bom: Value = serde_json::from_str(&stdout).unwrap();
    let silero = components(&bom)
        .iter()
        .find(|c| c["name"] == "silero-vad")
        .unwrap();
    let file = &silero["components"][0];
    assert_eq!(
        file["hashes"][0]["content"],
        "1111111111111111111111111111111111111111111111111111111111111111"
    );
    let props = file["properties"].as_array().unwrap();
    assert!(props
        .iter()
        .any(|p| p["name"] == "concierge:installed" && p["value"] == "true"));
    // Not the reference conversion: said, with the expected sha256.
    assert!(props
        .iter()
        .any(|p| p["name"] == "concierge:differs_from_reference"));

    std::fs::write(
        dir.path().join("manifest.json"),
        "{\n  \"files\": [\n  oops\n",
    )
    .unwrap();
    let (ok, _, stderr) = sbom(dir.path());
    assert!(!ok);
    assert!(stderr.contains("manifest.json:3:"), "{stderr}");
}
