//! The kiosk device calls of journeys: each call is checked against what its action
//! promises ([`checked`]) and written to `device_calls` with identifiers masked and images
//! and PIN blocks never kept.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::DeviceFailure;
use crate::access::masking::mask_pii;
use crate::store::{now_ms, Db};

/// Who made a device call.
pub struct Caller<'a> {
    pub kiosk_id: &'a str,
    pub session_id: &'a str,
}

/// A device result that does not have the fields its action promises is a device failure
/// (`bad_result`), not a journey that goes on with holes in it.
pub fn checked(
    device: &str,
    action: &str,
    value: serde_json::Value,
) -> Result<serde_json::Value, DeviceFailure> {
    match kiosk_protocol::devices::Action::parse(device, action) {
        Some(a) => match a.check(&value) {
            Ok(()) => Ok(value),
            Err(why) => {
                tracing::warn!(%device, %action, reason = %why, "device result does not fit its action");
                Err(DeviceFailure::Device(kiosk_protocol::DeviceError {
                    code: "bad_result".into(),
                    message: format!("the {device} answered {action} without the expected fields"),
                }))
            }
        },
        None => Ok(value),
    }
}

/// The stable code a flow's `error` slot gets for a failed device call.
pub fn failure_code(e: &DeviceFailure) -> String {
    match e {
        DeviceFailure::NoPeer(_) => "no_device".to_string(),
        DeviceFailure::Timeout(_) => "timeout".to_string(),
        DeviceFailure::Device(d) => d.code.chars().take(64).collect(),
        DeviceFailure::Disconnected => "disconnected".to_string(),
    }
}

/// Result fields never kept, not even masked.
const NEVER_KEPT: [&str; 3] = ["pin_block", "photo", "image"];

/// Writes a device call to `device_calls`: kiosk, session, device, action, outcome, time
/// taken, and the result with identifiers masked. A failure to write is logged, never
/// fatal to the journey.
pub async fn record(
    db: &Db,
    caller: &Caller<'_>,
    device: &str,
    action: &str,
    result: &Result<serde_json::Value, DeviceFailure>,
    took: Duration,
) {
    let (ok, code, masked) = match result {
        Ok(v) => {
            let kept: serde_json::Map<String, serde_json::Value> = v
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !NEVER_KEPT.contains(&k.as_str()))
                .map(|(k, v)| {
                    // Identifiers stay in their masked form (the audit can tell which card);
                    // any other text (a name, an address) is not kept at all.
                    let v = match v {
                        serde_json::Value::String(s) => {
                            let masked = mask_pii(s);
                            serde_json::Value::String(if masked != *s {
                                masked
                            } else {
                                "***".into()
                            })
                        }
                        other => other.clone(),
                    };
                    (k.clone(), v)
                })
                .collect();
            (true, None, serde_json::Value::Object(kept).to_string())
        }
        Err(e) => (false, Some(failure_code(e)), "{}".to_string()),
    };
    let written = sqlx::query(
        "INSERT INTO device_calls (id, kiosk_id, session_id, device, action, ok, code, duration_ms, \
         result_masked, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(caller.kiosk_id)
    .bind(caller.session_id)
    .bind(device)
    .bind(action)
    .bind(i64::from(ok))
    .bind(&code)
    .bind(took.as_millis() as i64)
    .bind(masked)
    .bind(now_ms())
    .execute(&db.pool)
    .await;
    if let Err(e) = written {
        tracing::error!(error = %e, %device, %action, "device call not audited");
    }
}

/// A device result's top-level fields as strings (at most 32, each at most 256 chars).
pub fn fields(value: &Value) -> BTreeMap<String, String> {
    let Some(obj) = value.as_object() else {
        return BTreeMap::new();
    };
    obj.iter()
        .take(32)
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.chars().take(64).collect(), s.chars().take(256).collect())
        })
        .collect()
}
