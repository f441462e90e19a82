//! kiosk-adapter: runs on the kiosk PC and carries Concierge's device requests to the
//! kiosk's hardware.
//!
//! - [`sim`]: simulated devices (the `kiosk-sim` crate: the embedded default; also used by
//!   `concierge chat` and tests), idempotent by call id, with scriptable failures.
//! - [`drivers`]: the drivers behind one interface (routing by device kind, timeouts, the
//!   bounded queue of device events that survives disconnects).
//! - [`xfs4iot`]: the XFS4IoT driver (CEN XFS4IoT JSON over WebSocket): service discovery,
//!   card reader, PIN pad, receipt and queue printers, camera; and a fake XFS4IoT service
//!   for tests.
//! - [`peer`]: the device peer: connects to `/v1/kiosk/ws` as role `devices`, executes
//!   `device.invoke`, answers `device.result`, reconnects with jittered backoff.

pub mod drivers;
pub mod peer;
pub use kiosk_sim as sim;
pub mod xfs4iot;
