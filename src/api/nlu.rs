//! `POST /v1/nlu/parse`: the understanding as a service (DESIGN.md §NLU contract), for
//! tools and evaluations. Stateless and read-only; no login needed, so it is rate-limited per
//! node (`[server] nlu_parse_per_sec`, 429 `rate_limited`), and the parse runs on the
//! blocking pool, never on the executor that serves kiosks.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::json::ApiJson;
use crate::error::ApiError;
use crate::nlu::Parse;
use crate::state::AppState;

/// Longest text accepted, in characters.
pub const MAX_PARSE_CHARS: usize = 2000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseRequest {
    pub text: String,
    /// Reference time for relative dates (RFC 3339); default now, branch time.
    #[serde(default)]
    pub now: Option<String>,
}

pub async fn parse(
    State(app): State<AppState>,
    ApiJson(req): ApiJson<ParseRequest>,
) -> Result<Json<Parse>, ApiError> {
    if let Err(wait) = app.nlu_parse_limit.try_take() {
        return Err(ApiError::RateLimited(
            "rate_limited",
            wait.as_secs_f64().ceil().max(1.0) as u64,
        ));
    }
    if req.text.trim().is_empty() {
        return Err(ApiError::BadRequest("empty_text", "text is empty".into()));
    }
    let chars = req.text.chars().count();
    if chars > MAX_PARSE_CHARS {
        return Err(ApiError::BadRequest(
            "text_too_long",
            format!("text has {chars} characters; at most {MAX_PARSE_CHARS} are accepted"),
        ));
    }
    let now = match &req.now {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t).map_err(|_| {
            ApiError::BadRequest("bad_now", format!("now `{t}` is not an RFC 3339 time"))
        })?,
        None => crate::domain::clock::now_local(),
    };
    let engine = app.engine.clone();
    let parse = tokio::task::spawn_blocking(move || engine.nlu.parse(&req.text, now))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("parse task: {e}")))?;
    Ok(Json(parse))
}
