//! The typed device actions of a lobby kiosk: which device kinds exist, what each action
//! takes and what its result must contain. Drivers produce these results; the server checks
//! every `device.result` against them before a journey sees it, so a driver bug becomes a
//! clear `bad_result` error instead of a missing slot three steps later.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An ID card read (`id_card.read`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdCard {
    pub name: String,
    pub id_number: String,
    pub address: String,
    pub valid_until: String,
    pub photo_hash: String,
}

/// A bank card read (`card_reader.read`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankCard {
    pub card_number: String,
    pub card_last4: String,
}

/// A PIN entered on the PIN pad (`pin_pad.enter_pin`): only the encrypted block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinBlock {
    pub pin_block: String,
    pub format: String,
}

/// A receipt or queue ticket printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Printed {
    pub printed: bool,
}

/// A picture taken (`camera.capture`): a hash, never the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capture {
    pub image_hash: String,
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
}

/// A card moved (`card_reader.eject` / `retain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub done: bool,
}

/// A card dispensed (`card_dispenser.dispense`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispensed {
    pub dispensed: bool,
    pub card_last4: String,
}

/// Every action a journey may ask of a kiosk device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    IdCardRead,
    CardRead,
    CardEject,
    CardRetain,
    PinEnter,
    ReceiptPrint,
    TicketPrint,
    DocumentPrint,
    CameraCapture,
    CardDispense,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::IdCardRead,
        Action::CardRead,
        Action::CardEject,
        Action::CardRetain,
        Action::PinEnter,
        Action::ReceiptPrint,
        Action::TicketPrint,
        Action::DocumentPrint,
        Action::CameraCapture,
        Action::CardDispense,
    ];

    /// (device kind, action name) as written in flows and on the wire.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Action::IdCardRead => ("id_card", "read"),
            Action::CardRead => ("card_reader", "read"),
            Action::CardEject => ("card_reader", "eject"),
            Action::CardRetain => ("card_reader", "retain"),
            Action::PinEnter => ("pin_pad", "enter_pin"),
            Action::ReceiptPrint => ("receipt_printer", "print"),
            Action::TicketPrint => ("queue_printer", "print_ticket"),
            Action::DocumentPrint => ("document_printer", "print"),
            Action::CameraCapture => ("camera", "capture"),
            Action::CardDispense => ("card_dispenser", "dispense"),
        }
    }

    pub fn parse(device: &str, action: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.names() == (device, action))
    }

    /// Checks a result against this action's type; the reason when it does not fit.
    pub fn check(self, data: &Value) -> Result<(), String> {
        fn fits<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), String> {
            serde_json::from_value::<T>(v.clone())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        match self {
            Action::IdCardRead => fits::<IdCard>(data),
            Action::CardRead => fits::<BankCard>(data),
            Action::CardEject | Action::CardRetain => fits::<Moved>(data),
            Action::PinEnter => fits::<PinBlock>(data),
            Action::ReceiptPrint | Action::TicketPrint | Action::DocumentPrint => {
                fits::<Printed>(data)
            }
            Action::CameraCapture => fits::<Capture>(data),
            Action::CardDispense => fits::<Dispensed>(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_are_checked_against_their_action() {
        let a = Action::parse("card_reader", "read").unwrap();
        assert!(a
            .check(&json!({"card_number": "6222021001123456789", "card_last4": "6789"}))
            .is_ok());
        let e = a.check(&json!({"card": "6222"})).unwrap_err();
        assert!(e.contains("card_number"), "{e}");
        assert!(Action::parse("camera", "fly").is_none());
        assert_eq!(
            Action::parse("pin_pad", "enter_pin"),
            Some(Action::PinEnter)
        );
    }
}
