//! HTTP and WebSocket routes. Every route states the roles it admits (see [`auth`]); errors
//! are JSON (`{"error": {"code", "message"}}`) with stable codes; every response carries an
//! `x-request-id` that also appears on the request's log lines.

pub mod admin;
pub mod auth;
pub mod branch;
pub mod health;
pub mod json;
pub mod kiosk_ws;
pub mod knowledge;
pub mod nlu;
pub mod origin;
pub mod pages;
pub mod reports;
pub mod staff_ws;
pub mod tickets;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest JSON body any route accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The read and write buffers of one WebSocket connection. The transport's default (128
/// KiB each) made most of an idle kiosk session's memory once its reads had walked through
/// the buffer; a kiosk's frames are small (a 100 ms audio frame is 3.2 KB) and a larger
/// message still grows the buffer while it is read.
pub const WS_BUFFER_BYTES: usize = 8 * 1024;

/// Knowledge routes accept article bodies up to `knowledge.max_body_bytes` (plus the rest of
/// the JSON); a larger body is refused before it is read.
fn knowledge_routes(state: &AppState) -> Router<AppState> {
    let limit = state.settings.knowledge.max_body_bytes + 32 * 1024;
    Router::new()
        .route("/v1/knowledge/search", get(knowledge::search))
        .route("/v1/knowledge/hit-test", get(knowledge::hit_test))
        .route(
            "/v1/knowledge/articles",
            get(knowledge::list).post(knowledge::create),
        )
        .route(
            "/v1/knowledge/articles/{id}",
            get(knowledge::get_article).put(knowledge::update),
        )
        .route(
            "/v1/knowledge/articles/{id}/versions",
            get(knowledge::versions),
        )
        .route(
            "/v1/knowledge/articles/{id}/versions/{v}",
            get(knowledge::version),
        )
        .route(
            "/v1/knowledge/articles/{id}/versions/{v}/submit",
            post(knowledge::submit),
        )
        .route(
            "/v1/knowledge/articles/{id}/versions/{v}/approve",
            post(knowledge::approve),
        )
        .route(
            "/v1/knowledge/articles/{id}/versions/{v}/reject",
            post(knowledge::reject),
        )
        .route("/v1/knowledge/articles/{id}/diff", get(knowledge::diff))
        .route(
            "/v1/knowledge/articles/{id}/history",
            get(knowledge::history),
        )
        .route(
            "/v1/knowledge/articles/{id}/rollback",
            post(knowledge::rollback),
        )
        .route(
            "/v1/knowledge/articles/{id}/retire",
            post(knowledge::retire),
        )
        .route(
            "/v1/knowledge/synonyms",
            get(knowledge::synonyms).put(knowledge::put_synonyms),
        )
        .route(
            "/v1/knowledge/golden",
            get(knowledge::golden).put(knowledge::put_golden),
        )
        .layer(DefaultBodyLimit::max(limit))
}

/// A handler that panicked answers 500 with our error body; the panic is logged.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(panic = what, "a request handler panicked");
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/locale", get(health::locale))
        .route("/v1/kiosk/ws", get(kiosk_ws::upgrade))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/me", get(auth::me))
        .route(
            "/v1/admin/kiosks",
            get(admin::list_kiosks).post(admin::register_kiosk),
        )
        .route("/v1/admin/kiosks/{id}/revoke", post(admin::revoke_kiosk))
        .route(
            "/v1/admin/kiosks/{id}/devices/invoke",
            post(admin::invoke_device),
        )
        .route("/v1/sessions/{id}/transcript", get(admin::transcript))
        .route("/v1/sessions/{id}/record", get(admin::record))
        .route("/v1/reports/{name}", get(reports::report))
        .route("/v1/nlu/parse", post(nlu::parse))
        .route("/v1/staff/ws", get(staff_ws::upgrade))
        .route("/v1/appointments", get(branch::appointments))
        .route("/v1/queue", get(branch::queue))
        .route("/v1/queue/call-next", post(branch::call_next))
        .route("/v1/tickets", get(tickets::list).post(tickets::create))
        .route("/v1/tickets/{id}", get(tickets::detail))
        .route("/v1/tickets/{id}/claim", post(tickets::claim))
        .route("/v1/tickets/{id}/transition", post(tickets::transition))
        .route("/v1/tickets/{id}/comments", post(tickets::comment))
        .route("/v1/tickets/{id}/reassign", post(tickets::reassign))
        .merge(knowledge_routes(&state))
        .merge(pages::routes())
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let path = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "unmatched".into());
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            let span =
                tracing::info_span!("request", method = %req.method(), path, request_id = id);
            // A caller that traces (the bank's gateway) gets this request in its trace.
            let parent = req
                .headers()
                .get(crate::telemetry::trace::TRACEPARENT)
                .and_then(|v| v.to_str().ok());
            crate::telemetry::trace::continue_trace(&span, parent);
            span
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

async fn count_responses(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(req).await.into_response();
    app.metrics
        .http_responses_total
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        status = response.status().as_u16(),
        "response"
    );
    response
}
