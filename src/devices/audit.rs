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

/// What of a device result the audit keeps, at any depth: identifiers in their masked
/// form (the audit can tell which card), no other text (a name, an address), no field of
/// [`NEVER_KEPT`]; numbers that read as identifiers are masked like text.
fn kept(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            let masked = mask_pii(s);
            Value::String(if masked != *s { masked } else { "***".into() })
        }
        Value::Number(n) => {
            let text = n.to_string();
            let masked = mask_pii(&text);
            if masked != text {
                Value::String(masked)
            } else {
                v.clone()
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(kept).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| !NEVER_KEPT.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), kept(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

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
        Ok(v) => (true, None, kept(v).to_string()),
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

#[cfg(test)]
mod tests {
    use super::kept;
    use serde_json::json;

    #[test]
    fn identifiers_are_masked_at_any_depth_and_nothing_else_is_kept() {
        let result = json!({
            "status": "ok",
            "holder": {"name": "张三", "id_number": "110101199003071234",
                       "cards": ["6222021234567890123", {"pan": 6222021234567890u64}]},
            "tries": 2,
            "pin_block": "0412AC89",
            "nested": {"photo": "iVBORw0KGgo="}
        });
        let text = kept(&result).to_string();
        for raw in [
            "110101199003071234",
            "6222021234567890123",
            "6222021234567890",
            "张三",
            "0412AC89",
            "iVBOR",
        ] {
            assert!(!text.contains(raw), "{raw} kept in {text}");
        }
        let kept = kept(&result);
        assert_eq!(kept["tries"], 2);
        assert_eq!(kept["status"], "***");
        assert!(kept["holder"]["id_number"].as_str().unwrap().contains('*'));
        assert!(kept["nested"].as_object().unwrap().is_empty());
    }
}
