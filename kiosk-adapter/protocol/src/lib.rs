//! Wire types of the Concierge kiosk protocol, version 1.
//!
//! This crate owns the JSON messages exchanged over `/v1/kiosk/ws` between the Concierge
//! service and its kiosk peers (the kiosk screen and the `kiosk-adapter` device peer). It is
//! serde only, so both ends (and any test) share exactly one definition of the wire format.
//! The normative text, with an example of every message, is `docs/protocol.md`.
//!
//! Text frames carry one JSON object each, internally tagged by `type`. Binary frames carry
//! audio: PCM16 little-endian mono at 16 kHz, at most 100 ms per frame.

pub mod devices;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this crate describes; sent in `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The only audio sample rate the server accepts.
pub const AUDIO_SAMPLE_RATE: u32 = 16_000;

/// Which peer of a kiosk a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PeerRole {
    /// The customer-facing screen (or `concierge chat`): owns the conversation session.
    #[default]
    Screen,
    /// The `kiosk-adapter` on the kiosk PC: executes device calls, reports device events.
    Devices,
}

/// A message from a kiosk peer to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ClientMessage {
    /// First message on every connection: who the kiosk is and what it can do.
    #[serde(rename = "hello")]
    Hello {
        kiosk_id: String,
        /// The kiosk's device token (may instead come as `Authorization: Bearer`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// A session to resume (screen peers only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        #[serde(default)]
        role: PeerRole,
        /// Features of the peer, e.g. `text`, `choices`, `audio`, `device:receipt_printer`.
        #[serde(default)]
        capabilities: Vec<String>,
    },
    /// The customer typed a sentence.
    #[serde(rename = "user.text")]
    UserText { text: String },
    /// The customer tapped a choice; `value` is the choice's `value`.
    #[serde(rename = "user.choice")]
    UserChoice { value: String },
    /// Binary audio frames follow until `audio.end`.
    #[serde(rename = "audio.start")]
    AudioStart { sample_rate: u32 },
    /// The end of an utterance streamed as binary frames.
    #[serde(rename = "audio.end")]
    AudioEnd,
    /// The outcome of a `device.invoke`.
    #[serde(rename = "device.result")]
    DeviceResult {
        call_id: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<DeviceError>,
    },
    /// Something happened on a device without being asked (card inserted, paper out…).
    #[serde(rename = "device.event")]
    DeviceEvent {
        device: String,
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<Value>,
    },
    /// The customer is done (walked away, pressed "finish"): the session ends.
    #[serde(rename = "session.close")]
    SessionClose {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Keep-alive; answered by `pong`.
    #[serde(rename = "ping")]
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
}

/// A message from the server to a kiosk peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerMessage {
    /// The answer to `hello`.
    #[serde(rename = "welcome")]
    Welcome {
        /// The conversation session (absent for device peers, which have none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        resumed: bool,
        protocol: u32,
        limits: Limits,
    },
    /// The assistant says something.
    #[serde(rename = "bot.say")]
    BotSay {
        turn_id: String,
        text: String,
        /// What to speak when it differs from `text` (readings of numbers, names).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speak: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ui: Option<Ui>,
    },
    /// The bot's speech for a turn follows as binary frames (PCM16 LE mono at
    /// `sample_rate`) until `bot.audio_end`. Sent only to screens announcing `speaker`.
    #[serde(rename = "bot.audio")]
    BotAudio {
        turn_id: String,
        sample_rate: u32,
        /// The length of the whole clip.
        duration_ms: u32,
        /// False while the bot reads something the customer must hear in full (a risk
        /// disclosure): speaking over it does not stop it.
        interruptible: bool,
        /// The clip itself (PCM16 LE): never part of the JSON; the server's writer sends it
        /// as binary frames of at most 100 ms right after this message, then `bot.audio_end`.
        #[serde(skip)]
        pcm: Vec<u8>,
    },
    /// The last binary frame of the bot's speech for `turn_id` has been sent.
    #[serde(rename = "bot.audio_end")]
    BotAudioEnd { turn_id: String },
    /// Stop playing the bot's speech for `turn_id` now: the customer started talking.
    #[serde(rename = "bot.stop")]
    BotStop { turn_id: String },
    /// Recognised so far (speech).
    #[serde(rename = "asr.partial")]
    AsrPartial { text: String },
    /// Recognised, final (speech).
    #[serde(rename = "asr.final")]
    AsrFinal { text: String },
    /// Show a screen (forms, sensitive values).
    #[serde(rename = "ui.show")]
    UiShow(Ui),
    /// Run an action on a kiosk device and answer with `device.result`.
    #[serde(rename = "device.invoke")]
    DeviceInvoke {
        call_id: String,
        device: String,
        action: String,
        #[serde(default)]
        args: Value,
        timeout_ms: u64,
    },
    /// A person (teller, remote expert) speaking to the customer during a handoff.
    #[serde(rename = "agent.say")]
    AgentSay { text: String },
    /// The state of a handoff to a person.
    #[serde(rename = "handoff")]
    Handoff {
        kind: HandoffKind,
        ticket_number: String,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_link: Option<String>,
    },
    /// The session ends (or, for `shutdown`, is suspended: reconnect and resume).
    #[serde(rename = "session.end")]
    SessionEnd { reason: String },
    /// Something was wrong; `code` is stable, `message` is for people.
    #[serde(rename = "error")]
    Error { code: ErrorCode, message: String },
    /// The answer to `ping`.
    #[serde(rename = "pong")]
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
}

/// Limits the server enforces on this connection, announced in `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_text_frame_bytes: usize,
    pub max_binary_frame_bytes: usize,
    pub max_user_text_chars: usize,
}

/// UI hints: a screen, fields and choices to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Ui {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
    /// Values on this screen are never spoken and the screen hides itself after a timeout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// A knowledge article shown in full (the reply speaks only its summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub article: Option<ArticleView>,
}

/// A knowledge article on screen, cited by id and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ArticleView {
    pub id: String,
    pub version: i64,
    pub title: String,
    /// Markdown; the page renders it as text (never as HTML).
    pub body: String,
}

/// A labelled value (or input) on a screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A button the customer can tap; tapping sends `user.choice {value}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub label: String,
    pub value: String,
}

/// Why a device call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceError {
    pub code: String,
    pub message: String,
}

/// Who a handoff goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffKind {
    Teller,
    RemoteExpert,
}

/// Stable error codes of `error` frames. Clients switch on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON or misses a required field.
    MalformedMessage,
    /// The JSON has a `type` this protocol version does not know.
    UnknownMessageType,
    /// A text frame exceeded `max_text_frame_bytes`.
    TextFrameTooLarge,
    /// A binary frame exceeded `max_binary_frame_bytes`.
    BinaryFrameTooLarge,
    /// `user.text` longer than `max_user_text_chars`, or empty.
    InvalidText,
    /// The first message was not `hello`, or `hello` came twice.
    HelloRequired,
    /// No token, or a token that does not belong to this kiosk or was revoked.
    Unauthorized,
    /// The kiosk id is not registered (or is disabled).
    UnknownKiosk,
    /// The session id belongs to another kiosk.
    SessionForbidden,
    /// This message is not allowed for this peer role (e.g. `user.text` from a device peer).
    NotAllowedForRole,
    /// A `device.result` for a call id that is not pending (unknown, answered or timed out).
    UnknownCallId,
    /// Audio frames without `audio.start`, or a sample rate other than 16 kHz.
    InvalidAudio,
    /// The buffered utterance exceeded the maximum utterance length.
    AudioTooLong,
    /// Speech recognition is not available on this server; use text or choices.
    AsrUnavailable,
    /// An audio stream ended without speech the server could recognise.
    NoSpeech,
    /// Recognition of an utterance failed (busy or engine error); say it again or tap.
    AsrFailed,
    /// Too many messages in too short a time.
    RateLimited,
    /// Something failed inside the server; the turn was not completed.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedMessage => "malformed_message",
            ErrorCode::UnknownMessageType => "unknown_message_type",
            ErrorCode::TextFrameTooLarge => "text_frame_too_large",
            ErrorCode::BinaryFrameTooLarge => "binary_frame_too_large",
            ErrorCode::InvalidText => "invalid_text",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::UnknownKiosk => "unknown_kiosk",
            ErrorCode::SessionForbidden => "session_forbidden",
            ErrorCode::NotAllowedForRole => "not_allowed_for_role",
            ErrorCode::UnknownCallId => "unknown_call_id",
            ErrorCode::InvalidAudio => "invalid_audio",
            ErrorCode::AudioTooLong => "audio_too_long",
            ErrorCode::AsrUnavailable => "asr_unavailable",
            ErrorCode::NoSpeech => "no_speech",
            ErrorCode::AsrFailed => "asr_failed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Why a text frame could not be turned into a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, not an object, or a known type with missing/invalid fields.
    Malformed(String),
    /// A JSON object whose `type` is not part of protocol v1.
    UnknownType(String),
}

impl DecodeError {
    /// The wire error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Malformed(_) => ErrorCode::MalformedMessage,
            DecodeError::UnknownType(_) => ErrorCode::UnknownMessageType,
        }
    }
}

const CLIENT_TYPES: &[&str] = &[
    "hello",
    "user.text",
    "user.choice",
    "audio.start",
    "audio.end",
    "device.result",
    "device.event",
    "session.close",
    "ping",
];

/// Decodes one client text frame, telling an unknown `type` apart from a malformed message.
pub fn decode_client(text: &str) -> Result<ClientMessage, DecodeError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(DecodeError::Malformed(
            "a message must be a JSON object with a string field `type`".into(),
        ));
    };
    if !CLIENT_TYPES.contains(&kind) {
        return Err(DecodeError::UnknownType(kind.to_string()));
    }
    serde_json::from_value(value).map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_round_trips_with_defaults() {
        let msg = decode_client(r#"{"type":"hello","kiosk_id":"K1"}"#).unwrap();
        assert_eq!(
            msg,
            ClientMessage::Hello {
                kiosk_id: "K1".into(),
                token: None,
                session_id: None,
                role: PeerRole::Screen,
                capabilities: vec![],
            }
        );
    }

    #[test]
    fn an_unknown_type_is_told_apart_from_malformed_json() {
        assert_eq!(
            decode_client(r#"{"type":"user.dance"}"#),
            Err(DecodeError::UnknownType("user.dance".into()))
        );
        assert!(matches!(
            decode_client("{not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_client(r#"{"type":"user.text"}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_client("[1,2]"),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn server_messages_carry_their_type_tag() {
        let json = serde_json::to_value(ServerMessage::Error {
            code: ErrorCode::UnknownCallId,
            message: "x".into(),
        })
        .unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["code"], "unknown_call_id");
        let ui = serde_json::to_value(ServerMessage::UiShow(Ui {
            screen: Some("balance".into()),
            sensitive: true,
            ..Ui::default()
        }))
        .unwrap();
        assert_eq!(ui["type"], "ui.show");
        assert_eq!(ui["sensitive"], true);
    }

    #[test]
    fn every_error_code_serializes_as_its_str() {
        use ErrorCode::*;
        for code in [
            MalformedMessage,
            UnknownMessageType,
            TextFrameTooLarge,
            BinaryFrameTooLarge,
            InvalidText,
            HelloRequired,
            Unauthorized,
            UnknownKiosk,
            SessionForbidden,
            NotAllowedForRole,
            UnknownCallId,
            InvalidAudio,
            AudioTooLong,
            AsrUnavailable,
            NoSpeech,
            AsrFailed,
            RateLimited,
            Internal,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().into())
            );
        }
    }
}
