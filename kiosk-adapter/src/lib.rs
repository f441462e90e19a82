//! kiosk-adapter: runs on the kiosk PC and carries Concierge's device requests to the
//! kiosk's hardware.
//!
//! - [`sim`]: simulated devices (the embedded default; also used by `concierge chat` and
//!   tests), idempotent by call id, with scriptable failures.
//! - [`peer`]: the device peer: connects to `/v1/kiosk/ws` as role `devices`, executes
//!   `device.invoke`, answers `device.result`, reconnects with jittered backoff.

pub mod peer;
pub mod sim;
