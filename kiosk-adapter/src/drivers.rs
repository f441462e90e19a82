//! The device drivers of a kiosk PC behind one interface: each driver serves some device
//! kinds (simulated, XFS4IoT, …); [`Drivers`] routes a call to the first driver that serves
//! its kind, bounds it by the server's timeout, and gathers the drivers' unsolicited
//! events (card removed, paper out) into one bounded queue that survives disconnects.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiosk_protocol::DeviceError;
use serde_json::Value;

use crate::sim::SimulatedDevices;

/// A device call in progress.
pub type DeviceFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, DeviceError>> + Send + 'a>>;

/// One way of driving devices.
pub trait Driver: Send + Sync {
    /// The device kinds this driver serves (`card_reader`, `pin_pad`, …).
    fn kinds(&self) -> Vec<String>;
    /// Runs `action` on `device`; a repeated `call_id` returns the first result and never
    /// acts twice.
    fn call<'a>(
        &'a self,
        call_id: &'a str,
        device: &'a str,
        action: &'a str,
        args: &'a Value,
    ) -> DeviceFuture<'a>;
}

impl Driver for SimulatedDevices {
    fn kinds(&self) -> Vec<String> {
        crate::sim::DEVICE_KINDS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn call<'a>(
        &'a self,
        call_id: &'a str,
        device: &'a str,
        action: &'a str,
        args: &'a Value,
    ) -> DeviceFuture<'a> {
        Box::pin(async move { self.handle(call_id, device, action, args) })
    }
}

/// Unsolicited device events kept while the server is unreachable.
pub const MAX_QUEUED_EVENTS: usize = 256;

/// A device event for the server.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    pub device: String,
    pub event: String,
    pub data: Option<Value>,
}

/// The drivers of this kiosk PC.
pub struct Drivers {
    list: Vec<Arc<dyn Driver>>,
    events: Mutex<VecDeque<DeviceEvent>>,
    notify: tokio::sync::Notify,
}

impl Drivers {
    pub fn new(list: Vec<Arc<dyn Driver>>) -> Drivers {
        Drivers {
            list,
            events: Mutex::new(VecDeque::new()),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Only the simulated devices.
    pub fn simulated(sim: Arc<SimulatedDevices>) -> Drivers {
        Drivers::new(vec![sim])
    }

    /// `device:<kind>` for every kind some driver serves.
    pub fn capabilities(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self.list.iter().flat_map(|d| d.kinds()).collect();
        kinds.sort();
        kinds.dedup();
        kinds.into_iter().map(|k| format!("device:{k}")).collect()
    }

    /// Runs a call on the driver of its kind, giving up after `timeout`.
    pub async fn call(
        &self,
        call_id: &str,
        device: &str,
        action: &str,
        args: &Value,
        timeout: Duration,
    ) -> Result<Value, DeviceError> {
        let Some(driver) = self
            .list
            .iter()
            .find(|d| d.kinds().iter().any(|k| k == device))
        else {
            return Err(DeviceError {
                code: "no_device".into(),
                message: format!("this kiosk has no {device}"),
            });
        };
        match tokio::time::timeout(timeout, driver.call(call_id, device, action, args)).await {
            Ok(result) => result,
            Err(_) => Err(DeviceError {
                code: "timeout".into(),
                message: "the device did not finish in time".into(),
            }),
        }
    }

    /// Queues an unsolicited event; the oldest is dropped (with a log line) when full.
    pub fn push_event(&self, e: DeviceEvent) {
        let mut q = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= MAX_QUEUED_EVENTS {
            if let Some(old) = q.pop_front() {
                tracing::warn!(device = %old.device, event = %old.event, "device event dropped: queue full");
            }
        }
        q.push_back(e);
        drop(q);
        self.notify.notify_one();
    }

    /// Takes every queued event (to send them).
    pub fn take_events(&self) -> Vec<DeviceEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect()
    }

    /// Puts events back at the front (the send failed).
    pub fn requeue(&self, events: Vec<DeviceEvent>) {
        let mut q = self.events.lock().unwrap_or_else(|p| p.into_inner());
        for e in events.into_iter().rev() {
            q.push_front(e);
        }
        while q.len() > MAX_QUEUED_EVENTS {
            q.pop_front();
        }
    }

    /// Resolves when an event is queued.
    pub async fn event_queued(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn calls_route_by_kind_and_unknown_kinds_are_an_error() {
        let d = Drivers::simulated(Arc::new(SimulatedDevices::new()));
        let r = d
            .call(
                "c1",
                "pin_pad",
                "enter_pin",
                &json!({}),
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert_eq!(r["pin_block"], "9A3F1C0B7E2D4A68");
        let e = d
            .call("c2", "teleporter", "go", &json!({}), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.code, "no_device");
        assert!(d.capabilities().contains(&"device:camera".to_string()));
    }

    #[test]
    fn the_event_queue_is_bounded_and_keeps_the_newest() {
        let d = Drivers::simulated(Arc::new(SimulatedDevices::new()));
        for i in 0..(MAX_QUEUED_EVENTS + 10) {
            d.push_event(DeviceEvent {
                device: "receipt_printer".into(),
                event: format!("e{i}"),
                data: None,
            });
        }
        let all = d.take_events();
        assert_eq!(all.len(), MAX_QUEUED_EVENTS);
        assert_eq!(all[0].event, "e10");
        assert!(d.take_events().is_empty());
    }
}
