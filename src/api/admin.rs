//! Operator routes: kiosks (list, register, revoke), a device call on a kiosk (printer test,
//! reader check), and a session's masked transcript.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kiosk_protocol::PeerRole;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Staff;
use super::json::ApiJson;
use crate::access::kiosks::{self, KioskError};
use crate::access::Role;
use crate::devices::DeviceFailure;
use crate::error::ApiError;
use crate::session::store;
use crate::state::AppState;

/// Roles: admin.
pub async fn list_kiosks(
    State(app): State<AppState>,
    staff: Staff,
) -> Result<Json<Value>, ApiError> {
    staff.require(&[Role::Admin])?;
    let list = kiosks::list(&app.db).await?;
    let with_devices: Vec<Value> = list
        .into_iter()
        .map(|k| {
            let devices = app.broker.devices_of(&k.id);
            json!({"id": k.id, "branch_id": k.branch_id, "enabled": k.enabled, "connected_devices": devices})
        })
        .collect();
    Ok(Json(json!({ "kiosks": with_devices })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    id: String,
    branch: String,
    #[serde(default)]
    role: PeerRole,
}

/// Roles: admin. Registers a kiosk (or adds a token to it); the token is shown only here.
pub async fn register_kiosk(
    State(app): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let admin = staff.require(&[Role::Admin])?;
    let token = kiosks::register(&app.db, &body.id, &body.branch, body.role)
        .await
        .map_err(kiosk_error)?;
    tracing::info!(admin = %admin.name, kiosk_id = %body.id, "kiosk token issued");
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": body.id, "branch": body.branch, "role": kiosks::role_str(body.role), "token": token}),
        ),
    ))
}

/// Roles: admin. Revokes every token of a kiosk.
pub async fn revoke_kiosk(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let admin = staff.require(&[Role::Admin])?;
    let revoked = kiosks::revoke_tokens(&app.db, &id)
        .await
        .map_err(kiosk_error)?;
    tracing::info!(admin = %admin.name, kiosk_id = %id, revoked, "kiosk tokens revoked");
    Ok(Json(json!({"id": id, "revoked": revoked})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeBody {
    device: String,
    action: String,
    #[serde(default)]
    args: Value,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Roles: admin. Runs one device action on a kiosk and returns its result.
pub async fn invoke_device(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InvokeBody>,
) -> Result<Json<Value>, ApiError> {
    staff.require(&[Role::Admin])?;
    for (name, v) in [("device", &body.device), ("action", &body.action)] {
        if v.is_empty() || v.len() > 64 {
            return Err(ApiError::BadRequest(
                "invalid_body",
                format!("{name} must be 1-64 characters"),
            ));
        }
    }
    let timeout = Duration::from_millis(
        body.timeout_ms
            .unwrap_or(app.settings.kiosk.device_timeout_ms)
            .clamp(100, 120_000),
    );
    match app
        .broker
        .invoke(&id, &body.device, &body.action, body.args, timeout)
        .await
    {
        Ok(data) => Ok(Json(json!({"ok": true, "data": data}))),
        Err(DeviceFailure::Device(e)) => Ok(Json(json!({"ok": false, "error": e}))),
        Err(e @ DeviceFailure::NoPeer(_)) => {
            Err(ApiError::Conflict("device_not_connected", e.to_string()))
        }
        Err(e @ DeviceFailure::Timeout(_)) => Err(ApiError::Upstream(
            "device_timeout",
            e.to_string(),
            StatusCode::GATEWAY_TIMEOUT,
        )),
        Err(e @ DeviceFailure::Disconnected) => Err(ApiError::Upstream(
            "device_disconnected",
            e.to_string(),
            StatusCode::BAD_GATEWAY,
        )),
    }
}

/// Roles: teller, remote_expert, admin. The masked transcript of a session.
pub async fn transcript(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    staff.require(&[Role::Teller, Role::RemoteExpert, Role::Admin])?;
    let session = store::load(&app.db, &id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    let lines = store::transcript(&app.db, &id).await?;
    Ok(Json(json!({
        "session_id": session.id,
        "kiosk_id": session.kiosk_id,
        "branch_id": session.branch_id,
        "status": session.status,
        "lines": lines,
    })))
}

fn kiosk_error(e: KioskError) -> ApiError {
    match e {
        KioskError::InvalidId { .. } => ApiError::BadRequest("invalid_id", e.to_string()),
        KioskError::BranchMismatch(..) => ApiError::Conflict("branch_mismatch", e.to_string()),
        KioskError::NotFound(_) => ApiError::NotFound("kiosk"),
        KioskError::Db(e) => ApiError::Internal(e.into()),
    }
}
