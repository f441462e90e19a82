//! The device broker: sends `device.invoke` to the peer that drives a kiosk's devices and
//! awaits the matching `device.result`, with a call id and a timeout.
//!
//! A kiosk's device peer is its `kiosk-adapter` (role `devices`); a screen peer that declares
//! `device:<kind>` capabilities serves as one while no adapter is connected, but only for
//! the kinds `[live] screen_devices` allows ([`screen_may_drive`]: printers by default;
//! identity and PIN devices answer only through the adapter). Results are matched by call
//! id, kiosk *and* connection, so neither another kiosk nor another peer of the same kiosk
//! can answer a call. Late results (after the timeout) are refused as unknown.
//! [`audit`] checks and records each call a journey makes.

pub mod audit;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kiosk_protocol::{DeviceError, PeerRole, ServerMessage};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::store::Db;
use crate::telemetry::Metrics;

/// The outbound queue of a connected peer.
pub type PeerSender = mpsc::Sender<ServerMessage>;

/// Why a device call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceFailure {
    /// No connected peer of this kiosk drives this device.
    #[error("no connected peer drives `{0}`")]
    NoPeer(String),
    /// The peer did not answer in time.
    #[error("the device did not answer within {0} ms")]
    Timeout(u64),
    /// The peer answered with an error.
    #[error("{}: {}", .0.code, .0.message)]
    Device(DeviceError),
    /// The peer disconnected before answering.
    #[error("the device peer disconnected")]
    Disconnected,
}

struct Peer {
    conn_id: u64,
    role: PeerRole,
    devices: Vec<String>,
    tx: PeerSender,
}

struct Pending {
    kiosk_id: String,
    conn_id: u64,
    tx: oneshot::Sender<Result<Value, DeviceFailure>>,
}

/// Routes device calls to kiosk peers. Shared by all connections of a node.
pub struct DeviceBroker {
    peers: Mutex<HashMap<String, Vec<Peer>>>,
    pending: Mutex<HashMap<String, Pending>>,
    metrics: Metrics,
}

/// What a peer sent back for a call id.
#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    Delivered,
    /// No call with this id is pending for this kiosk (unknown, answered or timed out).
    Unknown,
    /// The call is pending on another peer of this kiosk; it still waits for that one.
    OtherPeer,
}

/// Whether a `screen` peer may drive `device`, given `[live] screen_devices` (`*`: all).
pub fn screen_may_drive(allowed: &[String], device: &str) -> bool {
    allowed.iter().any(|a| a == "*" || a == device)
}

impl DeviceBroker {
    /// A journey's device call: invoked on the kiosk's peer, the result checked against
    /// what the action promises, and the call audited (a failure to audit is logged).
    pub async fn call(
        &self,
        db: &Db,
        caller: &audit::Caller<'_>,
        device: &str,
        action: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, DeviceFailure> {
        let started = std::time::Instant::now();
        let result = self
            .invoke(caller.kiosk_id, device, action, args, timeout)
            .await
            .and_then(|value| audit::checked(device, action, value));
        audit::record(db, caller, device, action, &result, started.elapsed()).await;
        result
    }

    pub fn new(metrics: Metrics) -> DeviceBroker {
        DeviceBroker {
            peers: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Devices named in capabilities: `device:receipt_printer` → `receipt_printer`.
    pub fn devices_in(capabilities: &[String]) -> Vec<String> {
        capabilities
            .iter()
            .filter_map(|c| c.strip_prefix("device:"))
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Registers a connected peer that drives `devices`.
    pub fn attach(
        &self,
        kiosk_id: &str,
        conn_id: u64,
        role: PeerRole,
        devices: Vec<String>,
        tx: PeerSender,
    ) {
        if devices.is_empty() {
            return;
        }
        let mut peers = self.peers.lock().unwrap();
        let list = peers.entry(kiosk_id.to_string()).or_default();
        list.retain(|p| p.conn_id != conn_id);
        list.push(Peer {
            conn_id,
            role,
            devices,
            tx,
        });
    }

    /// Forgets a peer and fails the calls it still owed.
    pub fn detach(&self, kiosk_id: &str, conn_id: u64) {
        {
            let mut peers = self.peers.lock().unwrap();
            if let Some(list) = peers.get_mut(kiosk_id) {
                list.retain(|p| p.conn_id != conn_id);
                if list.is_empty() {
                    peers.remove(kiosk_id);
                }
            }
        }
        let owed: Vec<Pending> = {
            let mut pending = self.pending.lock().unwrap();
            let ids: Vec<String> = pending
                .iter()
                .filter(|(_, p)| p.conn_id == conn_id && p.kiosk_id == kiosk_id)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| pending.remove(&id))
                .collect()
        };
        for p in owed {
            let _ = p.tx.send(Err(DeviceFailure::Disconnected));
        }
    }

    /// The devices each connected peer of a kiosk drives.
    pub fn devices_of(&self, kiosk_id: &str) -> Vec<String> {
        let peers = self.peers.lock().unwrap();
        let mut all: Vec<String> = peers
            .get(kiosk_id)
            .map(|l| l.iter().flat_map(|p| p.devices.clone()).collect())
            .unwrap_or_default();
        all.sort();
        all.dedup();
        all
    }

    /// Runs `action` on `device` of kiosk `kiosk_id` and waits for the result.
    #[tracing::instrument(name = "device", skip(self, args, timeout), fields(call_id))]
    pub async fn invoke(
        &self,
        kiosk_id: &str,
        device: &str,
        action: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<Value, DeviceFailure> {
        let call_id = uuid::Uuid::new_v4().to_string();
        tracing::Span::current().record("call_id", call_id.as_str());
        let timeout_ms = timeout.as_millis() as u64;
        let (peer_tx, conn_id) = {
            let peers = self.peers.lock().unwrap();
            let chosen = peers.get(kiosk_id).and_then(|list| {
                let drives = |p: &&Peer| p.devices.iter().any(|d| d == device);
                list.iter()
                    .filter(drives)
                    .find(|p| p.role == PeerRole::Devices)
                    .or_else(|| list.iter().find(drives))
            });
            match chosen {
                Some(p) => (p.tx.clone(), p.conn_id),
                None => {
                    self.count(kiosk_id, device, "no_peer");
                    return Err(DeviceFailure::NoPeer(device.to_string()));
                }
            }
        };
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(
            call_id.clone(),
            Pending {
                kiosk_id: kiosk_id.to_string(),
                conn_id,
                tx,
            },
        );
        let msg = ServerMessage::DeviceInvoke {
            call_id: call_id.clone(),
            device: device.to_string(),
            action: action.to_string(),
            args,
            timeout_ms,
        };
        if peer_tx.send(msg).await.is_err() {
            self.pending.lock().unwrap().remove(&call_id);
            self.count(kiosk_id, device, "failed");
            return Err(DeviceFailure::Disconnected);
        }
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(DeviceFailure::Disconnected),
            Err(_) => {
                self.pending.lock().unwrap().remove(&call_id);
                Err(DeviceFailure::Timeout(timeout_ms))
            }
        };
        let label = match &outcome {
            Ok(_) => "ok",
            Err(DeviceFailure::Timeout(_)) => "timeout",
            Err(_) => "failed",
        };
        self.count(kiosk_id, device, label);
        outcome
    }

    /// Delivers a `device.result` from connection `conn_id` of `kiosk_id`: only the peer
    /// the call was sent to may answer it.
    pub fn complete(
        &self,
        kiosk_id: &str,
        conn_id: u64,
        call_id: &str,
        result: Result<Value, DeviceError>,
    ) -> Completion {
        let pending = {
            let mut pending = self.pending.lock().unwrap();
            match pending.get(call_id) {
                Some(p) if p.kiosk_id == kiosk_id && p.conn_id == conn_id => {
                    pending.remove(call_id)
                }
                Some(p) if p.kiosk_id == kiosk_id => return Completion::OtherPeer,
                _ => None,
            }
        };
        match pending {
            Some(p) => {
                let _ = p.tx.send(result.map_err(DeviceFailure::Device));
                Completion::Delivered
            }
            None => Completion::Unknown,
        }
    }

    fn count(&self, kiosk_id: &str, device: &str, outcome: &str) {
        // Device names come from peers; bound the label set.
        let device = crate::telemetry::label(device);
        self.metrics
            .device_calls_total
            .with_label_values(&[device, outcome])
            .inc();
        if outcome != "ok" {
            self.metrics.device_error(kiosk_id, device, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_call_is_answered_by_the_matching_result_only() {
        let broker = std::sync::Arc::new(DeviceBroker::new(Metrics::new()));
        let (tx, mut rx) = mpsc::channel(4);
        broker.attach(
            "K1",
            1,
            PeerRole::Devices,
            vec!["receipt_printer".into()],
            tx,
        );
        let b = broker.clone();
        let call = tokio::spawn(async move {
            b.invoke(
                "K1",
                "receipt_printer",
                "print",
                json!({}),
                Duration::from_secs(5),
            )
            .await
        });
        let Some(ServerMessage::DeviceInvoke { call_id, .. }) = rx.recv().await else {
            panic!("no invoke")
        };
        // Another kiosk cannot answer it, nor another peer of the same kiosk.
        assert_eq!(
            broker.complete("K2", 1, &call_id, Ok(json!({}))),
            Completion::Unknown
        );
        assert_eq!(
            broker.complete("K1", 2, &call_id, Ok(json!({"printed": false}))),
            Completion::OtherPeer
        );
        assert_eq!(
            broker.complete("K1", 1, &call_id, Ok(json!({"printed": true}))),
            Completion::Delivered
        );
        assert_eq!(call.await.unwrap(), Ok(json!({"printed": true})));
        // A second answer to the same call is unknown.
        assert_eq!(
            broker.complete("K1", 1, &call_id, Ok(json!({}))),
            Completion::Unknown
        );
    }

    #[tokio::test]
    async fn a_silent_device_times_out_and_its_late_result_is_unknown() {
        let broker = DeviceBroker::new(Metrics::new());
        let (tx, mut rx) = mpsc::channel(4);
        broker.attach("K1", 1, PeerRole::Screen, vec!["camera".into()], tx);
        let out = broker
            .invoke(
                "K1",
                "camera",
                "capture",
                json!({}),
                Duration::from_millis(50),
            )
            .await;
        assert_eq!(out, Err(DeviceFailure::Timeout(50)));
        let Some(ServerMessage::DeviceInvoke { call_id, .. }) = rx.recv().await else {
            panic!("no invoke")
        };
        assert_eq!(
            broker.complete("K1", 1, &call_id, Ok(json!({}))),
            Completion::Unknown
        );
    }

    #[test]
    fn screens_drive_only_the_devices_the_setting_names() {
        let printers = vec!["receipt_printer".to_string()];
        assert!(screen_may_drive(&printers, "receipt_printer"));
        assert!(!screen_may_drive(&printers, "id_card"));
        assert!(!screen_may_drive(&[], "receipt_printer"));
        assert!(screen_may_drive(&["*".to_string()], "pin_pad"));
    }

    #[tokio::test]
    async fn a_device_nobody_drives_fails_at_once() {
        let metrics = Metrics::new();
        let broker = DeviceBroker::new(metrics.clone());
        let out = broker
            .invoke("K1", "camera", "capture", json!({}), Duration::from_secs(1))
            .await;
        assert_eq!(out, Err(DeviceFailure::NoPeer("camera".into())));
        // Counted against the kiosk, for the dashboard's device errors per kiosk.
        let errors = metrics
            .device_errors_total
            .with_label_values(&["K1", "camera", "no_peer"])
            .get();
        assert_eq!(errors, 1);
        assert!(metrics.render().contains(
            r#"concierge_device_errors_total{device="camera",kiosk="K1",outcome="no_peer"} 1"#
        ));
    }

    #[tokio::test]
    async fn the_adapter_is_preferred_over_a_screen_that_simulates_devices() {
        let broker = DeviceBroker::new(Metrics::new());
        let (screen_tx, mut screen_rx) = mpsc::channel(4);
        let (adapter_tx, mut adapter_rx) = mpsc::channel(4);
        broker.attach("K1", 1, PeerRole::Screen, vec!["camera".into()], screen_tx);
        broker.attach(
            "K1",
            2,
            PeerRole::Devices,
            vec!["camera".into()],
            adapter_tx,
        );
        let call = broker.invoke(
            "K1",
            "camera",
            "capture",
            json!({}),
            Duration::from_millis(20),
        );
        let _ = call.await;
        assert!(adapter_rx.try_recv().is_ok());
        assert!(screen_rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_disconnecting_peer_fails_its_open_calls() {
        let broker = std::sync::Arc::new(DeviceBroker::new(Metrics::new()));
        let (tx, mut rx) = mpsc::channel(4);
        broker.attach("K1", 7, PeerRole::Devices, vec!["id_card".into()], tx);
        let b = broker.clone();
        let call = tokio::spawn(async move {
            b.invoke("K1", "id_card", "read", json!({}), Duration::from_secs(5))
                .await
        });
        rx.recv().await.unwrap();
        broker.detach("K1", 7);
        assert_eq!(call.await.unwrap(), Err(DeviceFailure::Disconnected));
    }
}
