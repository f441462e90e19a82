//! `/healthz` (the process runs), `/readyz` (database reachable, data loaded),
//! `/metrics` (Prometheus text) and `/v1/locale` (the branch time zone the pages show times
//! in). Open to all: no secrets, no personal data.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::AppState;
use crate::store::Db;
use crate::telemetry::Metrics;

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
    let draining = app.draining.is_cancelled() || app.shutdown.is_cancelled();
    let ready = database && !draining;
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
        "shutting_down": draining,
    }));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

/// Reads the gauges of shared state from the database (at scrape time). A failed query
/// is logged and leaves the previous values.
pub async fn refresh_gauges(metrics: &Metrics, db: &Db) {
    if let Err(e) = try_refresh(metrics, db).await {
        tracing::warn!(error = %format!("{e:#}"), "metrics: reading the database failed");
    }
}

async fn try_refresh(metrics: &Metrics, db: &Db) -> anyhow::Result<()> {
    use anyhow::Context;
    use sqlx::Row;
    let open = "state NOT IN ('resolved', 'closed', 'cancelled')";
    let waiting = sqlx::query(
        "SELECT kind, COUNT(*) AS n FROM tickets \
         WHERE state = 'new' AND kind IN ('handoff', 'handoff_remote') GROUP BY kind",
    )
    .fetch_all(&db.pool)
    .await
    .context("count waiting handoffs")?;
    for kind in ["handoff", "handoff_remote"] {
        metrics.handoffs_waiting.with_label_values(&[kind]).set(0);
    }
    for row in waiting {
        let kind: String = row.try_get("kind")?;
        metrics
            .handoffs_waiting
            .with_label_values(&[&kind])
            .set(row.try_get("n")?);
    }
    // A stage is still pending while its deadline has not been met: the first response
    // until someone answers, the resolution while the ticket is open.
    for (stage, pending) in [
        ("response", "first_response_at IS NULL"),
        ("resolution", "1 = 1"),
    ] {
        let row = sqlx::query(&format!(
            "SELECT \
               COALESCE(SUM(CASE WHEN warned_{stage}_at IS NOT NULL \
                 AND escalated_{stage}_at IS NULL THEN 1 ELSE 0 END), 0) AS at_risk, \
               COALESCE(SUM(CASE WHEN escalated_{stage}_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
                 AS breached \
             FROM tickets WHERE {open} AND {pending}"
        ))
        .fetch_one(&db.pool)
        .await
        .context("count tickets at SLA risk")?;
        for status in ["at_risk", "breached"] {
            metrics
                .tickets_sla
                .with_label_values(&[stage, status])
                .set(row.try_get(status)?);
        }
    }
    for (state, n) in crate::ports::outbox::counts(db).await? {
        metrics.outbox_rows.with_label_values(&[&state]).set(n);
    }
    Ok(())
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    // The shared-state gauges are read now, bounded so a slow database cannot hold the
    // scrape (the previous values are served then).
    let refreshed = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        refresh_gauges(&app.metrics, &app.db),
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
