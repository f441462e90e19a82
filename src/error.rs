//! The one error type of the HTTP API. Clients get `{"error": {"code", "message"}}` with a
//! stable code; internal causes are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or a parameter is invalid.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// 401: no valid credentials.
    #[error("authentication required")]
    Unauthorized,
    /// 403: authenticated, but the route does not admit this role.
    #[error("your role may not use this")]
    Forbidden,
    /// 403 with a reason: the role may act, but not on this (e.g. approving one's own text).
    #[error("{1}")]
    Refused(&'static str, String),
    /// 404: no such resource.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: conflicts with the current state.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// 429: too many calls; try again after this many seconds (also in `Retry-After`).
    #[error("too many requests; try again in {1} s")]
    RateLimited(&'static str, u64),
    /// 502/504: a device or backend did not answer as needed.
    #[error("{1}")]
    Upstream(&'static str, String, StatusCode),
    /// 500: something failed inside; details only in the log.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Refused(code, _) => (StatusCode::FORBIDDEN, code),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(code, _) => (StatusCode::CONFLICT, code),
            ApiError::RateLimited(code, _) => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::Upstream(code, _, status) => (*status, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "internal error");
        }
        let mut body = json!({"error": {"code": code, "message": self.to_string()}});
        if let ApiError::RateLimited(_, retry_after) = &self {
            body["retry_after"] = json!(retry_after);
        }
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited(_, retry_after) = &self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
