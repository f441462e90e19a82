//! `POST /v1/nlu/parse`: the understanding as a service (DESIGN.md §NLU contract), for
//! tools and evaluations. Stateless and read-only; no login needed.

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
    Ok(Json(app.engine.nlu.parse(&req.text, now)))
}
