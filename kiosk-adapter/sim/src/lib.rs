//! Simulated kiosk devices. Every device kind of a lobby kiosk answers with plausible data;
//! a failure can be scripted for the next call of a device (`fail_next`), so every branch
//! of a flow can be exercised. Calls are idempotent by call id: a repeated call id returns
//! the first result and never prints twice.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use kiosk_protocol::DeviceError;
use serde_json::{json, Value};

/// The device kinds a kiosk may have.
pub const DEVICE_KINDS: [&str; 7] = [
    "id_card",
    "card_reader",
    "pin_pad",
    "receipt_printer",
    "queue_printer",
    "camera",
    "card_dispenser",
];

/// Simulated devices of one kiosk.
#[derive(Default)]
pub struct SimulatedDevices {
    results: Mutex<HashMap<String, Result<Value, DeviceError>>>,
    order: Mutex<VecDeque<String>>,
    failures: Mutex<HashMap<String, VecDeque<String>>>,
    printed: Mutex<u64>,
}

/// How many answered call ids are remembered for idempotency.
const REMEMBERED_CALLS: usize = 1024;

impl SimulatedDevices {
    pub fn new() -> SimulatedDevices {
        SimulatedDevices::default()
    }

    /// Capability strings advertising every simulated device (`device:<kind>`).
    pub fn capabilities() -> Vec<String> {
        DEVICE_KINDS.iter().map(|d| format!("device:{d}")).collect()
    }

    /// Makes the next call on `device` fail with `code` (e.g. `no_card`, `paper_out`,
    /// `read_error`).
    pub fn fail_next(&self, device: &str, code: &str) {
        self.failures
            .lock()
            .unwrap()
            .entry(device.to_string())
            .or_default()
            .push_back(code.to_string());
    }

    /// Receipts and tickets printed so far (for tests of idempotency).
    pub fn printed(&self) -> u64 {
        *self.printed.lock().unwrap()
    }

    /// Runs a call; a repeated `call_id` returns the first result without acting again.
    pub fn handle(
        &self,
        call_id: &str,
        device: &str,
        action: &str,
        args: &Value,
    ) -> Result<Value, DeviceError> {
        if let Some(done) = self.results.lock().unwrap().get(call_id) {
            return done.clone();
        }
        let scripted = self
            .failures
            .lock()
            .unwrap()
            .get_mut(device)
            .and_then(VecDeque::pop_front);
        let result = match scripted {
            Some(code) => Err(DeviceError {
                message: failure_message(&code).to_string(),
                code,
            }),
            None => self.act(device, action, args),
        };
        let mut results = self.results.lock().unwrap();
        let mut order = self.order.lock().unwrap();
        results.insert(call_id.to_string(), result.clone());
        order.push_back(call_id.to_string());
        while order.len() > REMEMBERED_CALLS {
            if let Some(old) = order.pop_front() {
                results.remove(&old);
            }
        }
        result
    }

    fn act(&self, device: &str, action: &str, args: &Value) -> Result<Value, DeviceError> {
        match (device, action) {
            ("id_card", "read") => Ok(json!({
                "name": "张三",
                "id_number": "11010519491231002X",
                "address": "北京市朝阳区建国路1号",
                "valid_until": "2036-01-01",
                "photo_hash": "sha256:5f1d0c7e",
            })),
            ("card_reader", "read") => {
                Ok(json!({"card_number": "6222021001123456789", "card_last4": "6789"}))
            }
            ("card_reader", "eject") | ("card_reader", "retain") => Ok(json!({"done": true})),
            ("pin_pad", "enter_pin") => {
                Ok(json!({"pin_block": "9A3F1C0B7E2D4A68", "format": "ISO-0"}))
            }
            ("receipt_printer", "print") | ("queue_printer", "print_ticket") => {
                *self.printed.lock().unwrap() += 1;
                Ok(
                    json!({"printed": true, "fields": args.get("fields").cloned().unwrap_or(Value::Null)}),
                )
            }
            ("camera", "capture") => {
                Ok(json!({"image_hash": "sha256:9b2e77aa", "width": 640, "height": 480}))
            }
            ("card_dispenser", "dispense") => Ok(json!({"dispensed": true, "card_last4": "4321"})),
            _ => Err(DeviceError {
                code: "unsupported_action".into(),
                message: format!("{device} cannot {action}"),
            }),
        }
    }
}

fn failure_message(code: &str) -> &'static str {
    match code {
        "no_card" => "no card was presented",
        "read_error" => "the card could not be read",
        "paper_out" => "the printer is out of paper",
        "timeout" => "the customer did not act in time",
        "cancelled" => "the customer cancelled",
        _ => "the device failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_call_id_prints_once_and_returns_the_first_result() {
        let d = SimulatedDevices::new();
        let a = d.handle("c1", "receipt_printer", "print", &json!({}));
        let b = d.handle("c1", "receipt_printer", "print", &json!({}));
        assert_eq!(a, b);
        assert_eq!(d.printed(), 1);
    }

    #[test]
    fn a_scripted_failure_hits_the_next_call_only() {
        let d = SimulatedDevices::new();
        d.fail_next("queue_printer", "paper_out");
        let first = d.handle("c1", "queue_printer", "print_ticket", &json!({}));
        assert_eq!(first.unwrap_err().code, "paper_out");
        assert!(d
            .handle("c2", "queue_printer", "print_ticket", &json!({}))
            .is_ok());
    }

    #[test]
    fn an_unknown_action_is_an_error_not_a_panic() {
        let d = SimulatedDevices::new();
        assert_eq!(
            d.handle("c", "camera", "fly", &json!({})).unwrap_err().code,
            "unsupported_action"
        );
    }
}
