//! A JSON body extractor whose rejections are our JSON errors (axum's are plain text).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Like `axum::Json`, answering bad bodies with `invalid_body` / `body_too_large`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(match &rejection {
                JsonRejection::BytesRejection(_)
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    ApiError::BadRequest(
                        "body_too_large",
                        "the body is larger than this route accepts".into(),
                    )
                }
                JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(
                    "invalid_body",
                    "send Content-Type: application/json".into(),
                ),
                _ => ApiError::BadRequest("invalid_body", rejection.body_text()),
            }),
        }
    }
}
