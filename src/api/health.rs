//! `/healthz` (the process runs), `/readyz` (database reachable, data loaded),
//! `/metrics` (Prometheus text) and `/v1/locale` (the branch time zone the pages show times
//! in). Open to all: no secrets, no personal data.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// The pages' locale: Chinese formats, 24-hour clock, in the branch's time zone.
pub async fn locale(State(app): State<AppState>) -> impl IntoResponse {
    Json(json!({
        "locale": "zh-CN",
        "time_zone": app.settings.branch.time_zone,
        "hour_cycle": "h23",
    }))
}

pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let database = app.db.ping().await;
    let shutting_down = app.shutdown.is_cancelled();
    let ready = database && !shutting_down;
    let body = Json(json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": if database { "ok" } else { "unreachable" },
        "data": {
            "intents": app.content.dialogs.nlu.intents.len(),
            "responses": app.content.dialogs.responses.len(),
            "articles": app.knowledge.index().len(),
            "voices": app.content.voices.len(),
        },
        // Speech is optional: a node without it serves text and taps (never "not ready").
        "speech": {
            "recognition": app.speech.asr.as_ref().map(|a| a.name()),
            "vad": if app.speech.silero.is_some() { "silero" } else { "energy" },
            "synthesis": app.speech.tts.is_some(),
            "notes": app.speech.notes,
        },
        // Embeddings are optional too: without them understanding and search are lexical.
        "embedding": {
            "backend": app.settings.embedding.backend.as_str(),
            "model": app.embedder.as_ref().map(|e| e.model_id()),
            "notes": crate::embedding::setup::notes(
                &app.settings.embedding,
                &app.settings.speech.models_dir,
                app.embedder.is_some(),
            ),
            // The knowledge base's passage vectors: loaded, embedded, still to embed.
            "articles": app.knowledge.embedding_status(),
            "intents_by_meaning": app.understanding.by_meaning(),
        },
        "shutting_down": shutting_down,
    }));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    // The shared-state gauges are read now, bounded so a slow database cannot hold the
    // scrape (the previous values are served then).
    let refreshed = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        app.metrics.refresh(&app.db),
    )
    .await;
    if refreshed.is_err() {
        tracing::warn!("metrics: reading the database took over 2 s");
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
}
