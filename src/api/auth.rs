//! Staff authentication: `POST /v1/auth/login` (name + password → bearer token),
//! `POST /v1/auth/logout`, `GET /v1/auth/me`, and the [`Staff`] extractor every staff route
//! uses, with [`Staff::require`] stating the roles a route admits. Logins are throttled per
//! client address and per typed name (429 `login_throttled` / `login_busy` with
//! `retry_after` and a `Retry-After` header); refusals and failures are security events
//! (tracing target `security`) that name the typed name only by its keyed tag.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::ApiJson;
use crate::access::staff::{self, StaffError, StaffUser};
use crate::access::throttle::Refusal;
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

/// The client address a login is throttled by: the peer, or the last `X-Forwarded-For`
/// hop when `login.trust_forwarded_for` is set (behind a proxy).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = app
            .settings
            .login
            .trust_forwarded_for
            .then(|| parts.headers.get("x-forwarded-for")?.to_str().ok())
            .flatten()
            .and_then(|v| v.rsplit(',').next()?.trim().parse::<IpAddr>().ok());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(
            forwarded
                .or(peer)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// Any role (public route): exchanges a name and password for a bearer token.
pub async fn login(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    if body.name.len() > 256 || body.password.len() > 256 {
        return Err(ApiError::BadRequest(
            "invalid_body",
            "name or password too long".into(),
        ));
    }
    let guard = &app.login;
    let attempt = match guard.admit(ip, &body.name) {
        Ok(a) => a,
        Err(refusal) => {
            tracing::warn!(target: "security", event = "login_throttled", %ip,
                name_tag = %guard.name_tag(&body.name), retry_after = refusal.retry_after(),
                "staff login refused: too many failures");
            return Ok(refused(&refusal));
        }
    };
    let ttl = app.settings.auth.staff_token_ttl_secs;
    match staff::login(&app.db, guard, &body.name, &body.password, ttl).await {
        Ok(Some((token, expires_at, user))) => {
            guard.succeeded(&attempt);
            tracing::info!(target: "security", event = "login", user = %user.name, %ip, "staff login");
            Ok(Json(json!({
                "token": token,
                "expires_at": expires_at,
                "user": user,
            }))
            .into_response())
        }
        Ok(None) => {
            tracing::warn!(target: "security", event = "login_failed", %ip,
                name_tag = %attempt.name_tag(), "failed staff login");
            Err(ApiError::Unauthorized)
        }
        Err(StaffError::Refused(refusal)) => {
            tracing::warn!(target: "security", event = "login_busy", %ip,
                name_tag = %attempt.name_tag(), "staff login refused: hashing slots busy");
            Ok(refused(&refusal))
        }
        Err(e) => Err(ApiError::Internal(e.into())),
    }
}

/// 429 with the refusal's code, `retry_after` in the body and a `Retry-After` header.
fn refused(refusal: &Refusal) -> Response {
    let retry = refusal.retry_after();
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({
            "error": {"code": refusal.code(), "message": refusal.to_string()},
            "retry_after": retry,
        })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    response
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
