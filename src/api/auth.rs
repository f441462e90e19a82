//! Staff authentication: `POST /v1/auth/login` (name + password → bearer token),
//! `POST /v1/auth/logout`, `GET /v1/auth/me`, and the [`Staff`] extractor every staff route
//! uses, with [`Staff::require`] stating the roles a route admits.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::ApiJson;
use crate::access::staff::{self, StaffUser};
use crate::access::Role;
use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated staff member of a request (401 without a live bearer token).
pub struct Staff {
    pub user: StaffUser,
    pub token: String,
}

impl Staff {
    /// 403 unless the user holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<&StaffUser, ApiError> {
        if self.user.has_any(roles) {
            Ok(&self.user)
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let user = staff::authenticate(&app.db, &token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Staff { user, token })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    name: String,
    password: String,
}

/// Any role (public route): exchanges a name and password for a bearer token.
pub async fn login(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<Value>, ApiError> {
    if body.name.len() > 256 || body.password.len() > 256 {
        return Err(ApiError::BadRequest(
            "invalid_body",
            "name or password too long".into(),
        ));
    }
    let ttl = app.settings.auth.staff_token_ttl_secs;
    match staff::login(&app.db, &body.name, &body.password, ttl).await {
        Ok(Some((token, expires_at, user))) => {
            tracing::info!(user = %user.name, "staff login");
            Ok(Json(json!({
                "token": token,
                "expires_at": expires_at,
                "user": user,
            })))
        }
        Ok(None) => {
            tracing::warn!(user = %body.name.chars().take(64).collect::<String>(), "failed staff login");
            Err(ApiError::Unauthorized)
        }
        Err(e) => Err(ApiError::Internal(e.into())),
    }
}

/// Any staff role: revokes the token used.
pub async fn logout(State(app): State<AppState>, staff: Staff) -> Result<Json<Value>, ApiError> {
    staff::logout(&app.db, &staff.token).await?;
    Ok(Json(json!({"ok": true})))
}

/// Any staff role: who am I.
pub async fn me(staff: Staff) -> Json<StaffUser> {
    Json(staff.user)
}
