//! Operator routes: kiosks (list, register, revoke), a diagnostic device call on a kiosk
//! (only the actions of [`DIAGNOSTICS`]: printer tests, reader status; results masked and
//! written to `device_calls`), and a session's masked transcript. Staff scoped to a branch
//! reach only that branch's kiosks and sessions; others are answered "not found".

use std::time::{Duration, Instant};

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
use crate::devices::audit::{self, Caller};
use crate::devices::DeviceFailure;
use crate::error::ApiError;
use crate::session::store;
use crate::state::AppState;

/// Roles: admin (only their branch's kiosks when scoped to one).
pub async fn list_kiosks(
    State(app): State<AppState>,
    staff: Staff,
) -> Result<Json<Value>, ApiError> {
    let admin = staff.require(&[Role::Admin])?;
    let list = kiosks::list(&app.db).await?;
    let with_devices: Vec<Value> = list
        .into_iter()
        .filter(|k| admin.branch.as_ref().is_none_or(|b| &k.branch_id == b))
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
/// An admin scoped to a branch registers kiosks of that branch only, and adds tokens only
/// to their own branch's kiosks: anything else is refused (403 `other_branch`).
pub async fn register_kiosk(
    State(app): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let admin = staff.require(&[Role::Admin])?;
    if let Some(branch) = &admin.branch {
        let existing = kiosks::find(&app.db, &body.id).await?;
        if &body.branch != branch || existing.is_some_and(|k| &k.branch_id != branch) {
            return Err(ApiError::Refused(
                "other_branch",
                format!("you may register kiosks of branch {branch} only"),
            ));
        }
    }
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

/// Roles: admin (of the kiosk's branch when scoped to one; others are answered "not
/// found"). Revokes every token of a kiosk.
pub async fn revoke_kiosk(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let admin = staff.require(&[Role::Admin])?;
    if let Some(branch) = &admin.branch {
        let kiosk = kiosks::find(&app.db, &id).await?;
        if kiosk.is_none_or(|k| &k.branch_id != branch) {
            return Err(ApiError::NotFound("kiosk"));
        }
    }
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

/// The device actions an operator may run from the admin route: diagnostics that read no
/// customer data (printer test pages, reader status). Reading an ID card or a bank card,
/// taking a PIN or a picture, retaining or dispensing a card are journeys' business only.
pub const DIAGNOSTICS: [(&str, &str); 5] = [
    ("receipt_printer", "print"),
    ("queue_printer", "print_ticket"),
    ("document_printer", "print"),
    ("card_reader", "status"),
    ("id_card", "status"),
];

/// Result fields never returned or kept, not even masked.
const NEVER_SHOWN: [&str; 3] = ["pin_block", "photo", "image"];

/// Roles: admin (of the kiosk's branch when scoped to one). Runs one diagnostic device
/// action on a kiosk and returns its result, masked; the call is written to
/// `device_calls` with the session column `admin:<name>`.
pub async fn invoke_device(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InvokeBody>,
) -> Result<Json<Value>, ApiError> {
    let admin = staff.require(&[Role::Admin])?;
    for (name, v) in [("device", &body.device), ("action", &body.action)] {
        if v.is_empty() || v.len() > 64 {
            return Err(ApiError::BadRequest(
                "invalid_body",
                format!("{name} must be 1-64 characters"),
            ));
        }
    }
    if !DIAGNOSTICS.contains(&(body.device.as_str(), body.action.as_str())) {
        return Err(ApiError::Refused(
            "action_not_allowed",
            format!(
                "only diagnostic actions run from here: {}",
                DIAGNOSTICS.map(|(d, a)| format!("{d}.{a}")).join(", ")
            ),
        ));
    }
    if let Some(branch) = &admin.branch {
        let kiosk = kiosks::find(&app.db, &id).await?;
        if kiosk.is_none_or(|k| &k.branch_id != branch) {
            return Err(ApiError::NotFound("kiosk"));
        }
    }
    let timeout = Duration::from_millis(
        body.timeout_ms
            .unwrap_or(app.settings.kiosk.device_timeout_ms)
            .clamp(100, 120_000),
    );
    let started = Instant::now();
    let result = app
        .broker
        .invoke(&id, &body.device, &body.action, body.args, timeout)
        .await;
    let caller = Caller {
        kiosk_id: &id,
        session_id: &format!("admin:{}", admin.name),
    };
    audit::record(
        &app.db,
        &caller,
        &body.device,
        &body.action,
        &result,
        started.elapsed(),
    )
    .await;
    tracing::info!(target: "security", event = "admin_device_call", admin = %admin.name,
        kiosk_id = %id, device = %body.device, action = %body.action, ok = result.is_ok(),
        "operator device call");
    match result {
        Ok(data) => Ok(Json(json!({"ok": true, "data": masked(data)}))),
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

/// A device result as an operator sees it: every string masked, PIN blocks and pictures
/// left out, at every depth.
fn masked(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(crate::access::mask_pii(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(masked).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(k, _)| !NEVER_SHOWN.contains(&k.as_str()))
                .map(|(k, v)| (k, masked(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Roles: teller, remote_expert, admin (of the session's branch when scoped to one). The
/// masked transcript of a session; another branch's session is "not found".
pub async fn transcript(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(&[Role::Teller, Role::RemoteExpert, Role::Admin])?;
    let session = store::load(&app.db, &id)
        .await?
        .filter(|s| user.branch.as_deref().is_none_or(|b| b == s.branch_id))
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

/// Roles: teller, remote_expert, admin (of the session's branch when scoped to one). The
/// session's compliance record ([`crate::record`]); the view is written down first.
/// Another branch's session is "not found".
pub async fn record(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<crate::record::Record>, ApiError> {
    let user = staff.require(&[Role::Teller, Role::RemoteExpert, Role::Admin])?;
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(ApiError::BadRequest(
            "invalid_id",
            "a session id is up to 64 letters, digits and dashes".into(),
        ));
    }
    crate::record::view(
        &app.db,
        &app.tickets,
        &id,
        &user.name,
        user.branch.as_deref(),
    )
    .await
    .map_err(ApiError::Internal)?
    .map(Json)
    .ok_or(ApiError::NotFound("session"))
}

fn kiosk_error(e: KioskError) -> ApiError {
    match e {
        KioskError::InvalidId { .. } => ApiError::BadRequest("invalid_id", e.to_string()),
        KioskError::BranchMismatch(..) => ApiError::Conflict("branch_mismatch", e.to_string()),
        KioskError::NotFound(_) => ApiError::NotFound("kiosk"),
        KioskError::Db(e) => ApiError::Internal(e.into()),
    }
}
