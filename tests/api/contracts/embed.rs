//! The sentence-embedding port (`Embedder`): one contract for the local e5 model (with the
//! fetched model file; skipped with a printed reason without it, unless
//! `CONCIERGE_REQUIRE_MODELS=1`), for the OpenAI-compatible backend against a fake
//! `/embeddings` server on loopback, and for both behind the cache. Server failures (500,
//! HTML, vectors of the wrong length or number, nobody listening) are `EmbedError::Remote`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use concierge::config::Settings;
use concierge::embedding::cache::CachedEmbedder;
use concierge::embedding::local::LocalEmbedder;
use concierge::embedding::openai::OpenAiEmbedder;
use concierge::embedding::{dot, EmbedError, Embedder, Kind, MAX_CHARS, MAX_TEXTS};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{models_dir, project_root};

fn texts(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

/// What every embedder does: names its model, one normalised vector of `dim()` per text in
/// order, the same text the same vector, query and passage apart, nothing for nothing,
/// and too much refused.
async fn embedder_contract(e: &dyn Embedder) {
    assert!(!e.model_id().is_empty());
    let dim = e.dim();
    let input = texts(&["我的U盾坏了", "ATM吞卡了怎么办", "我的U盾坏了"]);
    let q = e.embed(&input, Kind::Query).await.unwrap();
    assert_eq!(q.len(), 3);
    for v in &q {
        assert_eq!(v.len(), dim);
        assert!((dot(v, v) - 1.0).abs() < 1e-4);
    }
    assert!(dot(&q[0], &q[2]) > 0.9999, "the same text, the same vector");
    assert!(dot(&q[0], &q[1]) < 0.999, "other texts, other vectors");
    let p = e.embed(&input[..1], Kind::Passage).await.unwrap();
    assert!(dot(&q[0], &p[0]) < 0.9999, "query and passage differ");
    assert!(e.embed(&[], Kind::Query).await.unwrap().is_empty());
    let many = vec!["x".to_string(); MAX_TEXTS + 1];
    let err = e.embed(&many, Kind::Passage).await.unwrap_err();
    assert!(matches!(err, EmbedError::TooLarge(_)), "{err}");
    let long = vec!["字".repeat(MAX_CHARS + 1)];
    let err = e.embed(&long, Kind::Passage).await.unwrap_err();
    assert!(matches!(err, EmbedError::TooLarge(_)), "{err}");
}

fn settings() -> Settings {
    Settings::for_tests("sqlite::memory:", &project_root())
}

#[tokio::test]
async fn the_local_model_meets_the_embedder_contract() {
    let Some(dir) = models_dir("the_local_model_meets_the_embedder_contract") else {
        return;
    };
    let e = LocalEmbedder::load(&dir.join(concierge::speech::models::E5), 2).unwrap();
    embedder_contract(&e).await;
    let cached = CachedEmbedder::new(Arc::new(e), 100);
    embedder_contract(&cached).await;
    embedder_contract(&cached).await;
    assert!(cached.stats().hits >= 4, "{:?}", cached.stats());
}

/// The OpenAI-compatible backend at `base_url`, expecting 8 dimensions.
fn openai(base_url: &str) -> OpenAiEmbedder {
    let mut s = settings().embedding;
    s.openai_base_url = base_url.into();
    s.openai_model = "e5-test".into();
    s.openai_dimensions = 8;
    s.openai_timeout_ms = 5000;
    OpenAiEmbedder::new(&s)
}

#[tokio::test]
async fn the_openai_backend_meets_the_embedder_contract() {
    let url = fake_embedder(Behaviour::Embed).await;
    let e = openai(&url);
    assert_eq!(e.model_id(), "openai:e5-test");
    embedder_contract(&e).await;
    embedder_contract(&CachedEmbedder::new(Arc::new(e), 100)).await;
}

#[tokio::test]
async fn openai_server_failures_are_remote_errors() {
    for behaviour in [
        Behaviour::Fail,
        Behaviour::Garbage,
        Behaviour::WrongDimension,
        Behaviour::WrongCount,
    ] {
        let url = fake_embedder(behaviour).await;
        let err = openai(&url)
            .embed(&texts(&["转账5万要多久到账", "余额"]), Kind::Query)
            .await
            .unwrap_err();
        assert!(matches!(err, EmbedError::Remote(_)), "{err}");
        if behaviour == Behaviour::WrongDimension {
            assert!(
                err.to_string().contains("3 dimensions, 8 expected"),
                "{err}"
            );
        }
        if behaviour == Behaviour::WrongCount {
            assert!(err.to_string().contains("1 vectors for 2 texts"), "{err}");
        }
    }
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = openai(&format!("http://127.0.0.1:{port}/v1"))
        .embed(&texts(&["余额"]), Kind::Query)
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::Remote(_)), "{err}");
}

// ---------------------------------------------------------------------------------------
// The fake embedding server.

/// How the fake embedding server answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    /// 8 dimensions from the sha256 of each input (prefix included), in reverse order with
    /// their indexes (the client sorts them).
    Embed,
    /// 500.
    Fail,
    /// 200 with HTML.
    Garbage,
    /// Vectors of 3 dimensions.
    WrongDimension,
    /// One vector fewer than inputs.
    WrongCount,
}

fn fake_vector(text: &str, dim: usize) -> Vec<f32> {
    let h = Sha256::digest(text.as_bytes());
    (0..dim).map(|i| f32::from(h[i]) - 127.5).collect()
}

async fn embeddings(State(behaviour): State<Behaviour>, Json(body): Json<Value>) -> Response {
    let inputs: Vec<String> = match &body["input"] {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => return (StatusCode::BAD_REQUEST, "no input").into_response(),
    };
    let dim = match behaviour {
        Behaviour::Fail => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Behaviour::Garbage => return "<html>not json</html>".into_response(),
        Behaviour::WrongDimension => 3,
        _ => 8,
    };
    let keep = if behaviour == Behaviour::WrongCount {
        inputs.len() - 1
    } else {
        inputs.len()
    };
    let data: Vec<Value> = inputs
        .iter()
        .take(keep)
        .enumerate()
        .rev()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": fake_vector(t, dim)}))
        .collect();
    Json(
        json!({"object": "list", "model": body["model"], "data": data,
                "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    )
    .into_response()
}

/// Starts a fake OpenAI-compatible embedding server on 127.0.0.1:0; its base URL (…/v1).
async fn fake_embedder(behaviour: Behaviour) -> String {
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state(behaviour);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}
