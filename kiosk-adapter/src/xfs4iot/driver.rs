//! [`XfsDevices`] as one of the kiosk PC's [`Driver`]s, so [`crate::drivers::Drivers`] routes
//! the kinds it found to it. The server's timeout is applied by `Drivers`; a call it stops
//! waiting for still runs to its end here (and is remembered by call id).

use serde_json::Value;

use super::XfsDevices;
use crate::drivers::{DeviceFuture, Driver};

impl Driver for XfsDevices {
    fn kinds(&self) -> Vec<String> {
        XfsDevices::kinds(self)
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn call<'a>(
        &'a self,
        call_id: &'a str,
        device: &'a str,
        action: &'a str,
        args: &'a Value,
    ) -> DeviceFuture<'a> {
        Box::pin(self.handle(call_id, device, action, args))
    }
}
