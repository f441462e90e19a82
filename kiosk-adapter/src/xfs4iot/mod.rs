//! The XFS4IoT driver: drives a kiosk's real devices through the CEN XFS4IoT standard
//! (JSON messages over WebSocket), plus a fake XFS4IoT service to test it against.
//!
//! Layout:
//! - [`client`]: one XFS4IoT service endpoint: request ids, the reader task that routes
//!   acknowledge / events / completion by request id, unsolicited messages, per-command
//!   timeouts with `Common.Cancel`, connection loss.
//! - [`devices`]: [`XfsDevices`]: service discovery through the service publisher, and our
//!   device calls (`card_reader.read`, `pin_pad.enter_pin`, …) mapped onto XFS4IoT commands,
//!   with results shaped exactly like [`crate::sim`]'s, idempotent by call id, and unsolicited
//!   XFS4IoT events mapped to our device events.
//! - `driver`: [`XfsDevices`] implements [`crate::drivers::Driver`].
//! - [`fake`]: [`FakeXfs`], a scriptable XFS4IoT service publisher with a card reader, a PIN
//!   pad, two printers and a camera on `127.0.0.1:0`, for tests here and in the main crate.
//!
//! What this module owns besides: the mapping from XFS4IoT completion codes and
//! command error codes to our stable device error codes ([`device_error`]).
//!
//! Message names follow the XFS4IoT specification as implemented by the public KAL
//! XFS4IoT framework (`Framework/Core/*`): `ServicePublisher.GetServices`,
//! `Common.Capabilities`, `Common.Cancel`, `CardReader.ReadRawData`, `CardReader.Move`,
//! `Keyboard.PinEntry`, `PinPad.GetPinBlock`, `Printer.PrintForm`, `Printer.PrintRaw`,
//! `Camera.TakePicture`; unsolicited `CardReader.MediaRemovedEvent`,
//! `Printer.PaperThresholdEvent`, `Common.StatusChangedEvent`.

pub mod client;
pub mod devices;
mod driver;
pub mod fake;

pub use client::{Completion, Header, MessageType, XfsClient, XfsError, XfsMessage};
pub use devices::{DiscoverError, PrinterSetup, XfsConfig, XfsDevices};
pub use fake::{FakeXfs, Outcome};

use kiosk_protocol::DeviceError;
use serde_json::Value;

/// An unsolicited event of a device, in our vocabulary (`card_removed`, `paper_low`,
/// `paper_out`, `offline`, `online`), ready to become a `device.event` for the server.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    /// Our device kind (`card_reader`, `receipt_printer`, …).
    pub device: String,
    /// Our event name.
    pub event: String,
    /// Details that are safe to send (never card or key data).
    pub data: Option<Value>,
}

/// A device error with our stable `code` and a customer-safe Chinese message.
pub fn device_error(code: &str) -> DeviceError {
    DeviceError {
        code: code.to_string(),
        message: failure_message(code).to_string(),
    }
}

/// The Chinese text for one of our device error codes.
pub fn failure_message(code: &str) -> &'static str {
    match code {
        "no_card" => "没有检测到银行卡",
        "read_error" => "银行卡无法读取",
        "paper_out" => "打印机缺纸",
        "timeout" => "操作超时",
        "cancelled" => "操作已取消",
        "device_not_ready" => "设备暂时不可用",
        "hardware_error" => "设备故障",
        "unsupported" => "设备不支持该操作",
        "connection_lost" => "与设备服务的连接已断开",
        "no_device" => "本机没有该设备",
        _ => "设备操作失败",
    }
}

/// Maps a failed XFS4IoT completion to our stable code. The command-specific `errorCode`
/// (payload) is more precise than the `completionCode` and wins when it is known.
pub fn map_failure(completion_code: &str, error_code: Option<&str>) -> &'static str {
    if let Some(code) = error_code.and_then(map_error_code) {
        return code;
    }
    match completion_code {
        "timeOut" => "timeout",
        "canceled" => "cancelled",
        "deviceNotReady" | "sequenceError" | "userError" => "device_not_ready",
        "unsupportedCommand" | "unsupportedData" | "invalidCommand" | "invalidData" => {
            "unsupported"
        }
        _ => "hardware_error",
    }
}

/// Command error codes (CardReader, Keyboard, PinPad, Printer, Camera) we know.
fn map_error_code(error_code: &str) -> Option<&'static str> {
    Some(match error_code {
        "noMedia" => "no_card",
        "invalidMedia" | "cardTooShort" | "cardTooLong" | "securityFail" | "cardCollision" => {
            "read_error"
        }
        "paperOut" => "paper_out",
        "entryTimeout" => "timeout",
        "noPin" => "cancelled",
        "mediaJam" | "mediaJammed" | "paperJammed" | "shutterFail" | "tonerOut"
        | "mediaRetained" | "cameraInoperable" | "mediaFull" => "hardware_error",
        "keyNotFound" | "keyNoValue" | "accessDenied" | "useViolation" | "dukptOverflow"
        | "invalidKeyLength" => "device_not_ready",
        "cameraNotSupported"
        | "formatNotSupported"
        | "algorithmNotSupported"
        | "cryptoMethodNotSupported"
        | "keyNotSupported"
        | "keyInvalid" => "unsupported",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_error_code_wins_over_the_completion_code() {
        assert_eq!(map_failure("commandErrorCode", Some("noMedia")), "no_card");
        assert_eq!(
            map_failure("commandErrorCode", Some("paperOut")),
            "paper_out"
        );
        assert_eq!(
            map_failure("commandErrorCode", Some("invalidMedia")),
            "read_error"
        );
        assert_eq!(map_failure("timeOut", None), "timeout");
        assert_eq!(map_failure("canceled", None), "cancelled");
        assert_eq!(map_failure("deviceNotReady", None), "device_not_ready");
        assert_eq!(map_failure("unsupportedCommand", None), "unsupported");
        assert_eq!(
            map_failure("commandErrorCode", Some("somethingNew")),
            "hardware_error"
        );
    }

    #[test]
    fn every_code_has_a_chinese_message() {
        for code in [
            "no_card",
            "read_error",
            "paper_out",
            "timeout",
            "cancelled",
            "device_not_ready",
            "hardware_error",
            "unsupported",
            "connection_lost",
        ] {
            assert_ne!(failure_message(code), failure_message("?"), "{code}");
        }
    }
}
