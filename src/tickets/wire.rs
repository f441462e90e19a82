//! The messages of the staff WebSocket (`/v1/staff/ws`, served by `crate::api::staff_ws`),
//! one JSON object per text frame with a `type` tag: [`StaffMessage`] from the server to a
//! console, [`StaffRequest`] from a console to the server, [`ErrorCode`] the stable codes of
//! `error` answers. Frames are encoded with their keys in sorted order — the bytes consoles
//! have always received. Every message, with an example, is in `docs/tickets.md`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{Event, TicketError, TicketSummary};
use crate::access::Role;

/// Largest text frame a console may send, in bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Longest ticket id or number a request may name, in bytes.
pub const MAX_TICKET_BYTES: usize = 64;
/// Longest line a person may say to a customer, in characters (the rest is cut).
pub const MAX_SAY_CHARS: usize = 500;

/// An encoded [`StaffMessage`], shared by every console it goes to.
pub type Frame = Arc<str>;

/// What the server sends a staff console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StaffMessage {
    /// First on every connection: who the server takes the person for.
    #[serde(rename = "welcome")]
    Welcome { name: String, roles: Vec<Role> },
    /// Something happened to a ticket the person may work (any node's event).
    #[serde(rename = "ticket.event")]
    TicketEvent {
        ticket: Box<TicketSummary>,
        event: Box<Event>,
    },
    /// A request was carried out.
    #[serde(rename = "ok")]
    Ok {
        /// The request's `type`.
        #[serde(rename = "for")]
        done: Command,
        /// The id of the ticket it was about.
        ticket: String,
    },
    /// A request was refused or could not be read; the connection stays open.
    #[serde(rename = "error")]
    Error { code: ErrorCode, message: String },
    /// The answer to `ping`.
    #[serde(rename = "pong")]
    Pong,
}

/// What a staff console sends the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StaffRequest {
    /// Take a waiting ticket (exactly one of several concurrent accepts wins).
    Accept { ticket: String },
    /// Speak to the customer of a handoff the person owns (trimmed, at most
    /// [`MAX_SAY_CHARS`] kept; empty is `invalid_text`).
    Say {
        ticket: String,
        #[serde(default)]
        text: String,
    },
    /// Hand the customer of a handoff the person owns back to the bot.
    Release { ticket: String },
    /// Is the connection alive? Answered with `pong`.
    Ping,
}

/// The requests that act on a ticket (`ok.for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Accept,
    Say,
    Release,
}

impl StaffRequest {
    /// The ticket the request acts on and what it does with it; `None` for `ping`.
    pub fn command(&self) -> Option<(Command, &str)> {
        match self {
            StaffRequest::Accept { ticket } => Some((Command::Accept, ticket)),
            StaffRequest::Say { ticket, .. } => Some((Command::Say, ticket)),
            StaffRequest::Release { ticket } => Some((Command::Release, ticket)),
            StaffRequest::Ping => None,
        }
    }
}

/// Stable codes of `error` answers. Consoles switch on these; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A text frame over [`MAX_REQUEST_BYTES`].
    FrameTooLarge,
    /// Not JSON, not an object with a string `type`, or a known type with missing or
    /// invalid fields (a ticket over [`MAX_TICKET_BYTES`]).
    MalformedMessage,
    /// A `type` the server does not know.
    UnknownMessageType,
    /// No such ticket, or one the person may not see (not told apart).
    NotFound,
    /// `say` or `release` on a ticket the person does not own.
    NotOwner,
    /// `say` with nothing to say.
    InvalidText,
    /// The ticket cannot take that step from its state.
    IllegalTransition,
    /// Someone else took the ticket first.
    AlreadyClaimed,
    /// The ticket changed at the same moment; reload it.
    StateChanged,
    /// The ticket or request is not valid.
    InvalidTicket,
    /// Something failed inside the server.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::MalformedMessage => "malformed_message",
            ErrorCode::UnknownMessageType => "unknown_message_type",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotOwner => "not_owner",
            ErrorCode::InvalidText => "invalid_text",
            ErrorCode::IllegalTransition => "illegal_transition",
            ErrorCode::AlreadyClaimed => "already_claimed",
            ErrorCode::StateChanged => "state_changed",
            ErrorCode::InvalidTicket => "invalid_ticket",
            ErrorCode::Internal => "internal",
        }
    }
}

impl StaffMessage {
    /// An `error` answer.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> StaffMessage {
        StaffMessage::Error {
            code,
            message: message.into(),
        }
    }

    /// The `error` answer for a refused ticket operation (a database failure says only
    /// that the system is busy; the caller logs it).
    pub fn refused(e: &TicketError) -> StaffMessage {
        use super::model::Conflict;
        match e {
            TicketError::NotFound => StaffMessage::error(ErrorCode::NotFound, "没有这张工单。"),
            TicketError::Conflict(c, m) => {
                let code = match c {
                    Conflict::IllegalTransition => ErrorCode::IllegalTransition,
                    Conflict::AlreadyClaimed => ErrorCode::AlreadyClaimed,
                    Conflict::StateChanged => ErrorCode::StateChanged,
                };
                StaffMessage::error(code, m.as_str())
            }
            TicketError::Invalid(m) => StaffMessage::error(ErrorCode::InvalidTicket, m.as_str()),
            TicketError::Db(_) => {
                StaffMessage::error(ErrorCode::Internal, "系统繁忙，请稍后再试。")
            }
        }
    }

    /// The text frame: JSON with its keys in sorted order.
    pub fn encode(&self) -> Frame {
        // Through `Value` (a sorted map): the same bytes as the `json!` objects consoles
        // were sent before these types existed.
        match serde_json::to_value(self) {
            Ok(v) => v.to_string().into(),
            Err(e) => {
                tracing::error!(error = %e, "staff message not encodable");
                Arc::from(
                    r#"{"code":"internal","message":"系统繁忙，请稍后再试。","type":"error"}"#,
                )
            }
        }
    }
}

/// Why a console's text frame is not a [`StaffRequest`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Over [`MAX_REQUEST_BYTES`] (the length).
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object with a string `type`, or a known type with missing or
    /// invalid fields.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A `type` this server does not know.
    #[error("unknown type `{0}`")]
    UnknownType(String),
}

impl DecodeError {
    /// The `error` answer the console gets.
    pub fn answer(&self) -> StaffMessage {
        match self {
            DecodeError::TooLarge(_) => StaffMessage::error(ErrorCode::FrameTooLarge, "消息太长。"),
            DecodeError::NotJson(_) => {
                StaffMessage::error(ErrorCode::MalformedMessage, "不是合法的 JSON。")
            }
            DecodeError::Malformed(_) => {
                StaffMessage::error(ErrorCode::MalformedMessage, "缺少 ticket 或字段不对。")
            }
            DecodeError::UnknownType(_) => {
                StaffMessage::error(ErrorCode::UnknownMessageType, "不支持的消息类型。")
            }
        }
    }
}

const REQUEST_TYPES: &[&str] = &["accept", "say", "release", "ping"];

/// Decodes one text frame from a console: at most [`MAX_REQUEST_BYTES`], a known `type`,
/// the fields it needs, a ticket of at most [`MAX_TICKET_BYTES`].
pub fn decode(text: &str) -> Result<StaffRequest, DecodeError> {
    if text.len() > MAX_REQUEST_BYTES {
        return Err(DecodeError::TooLarge(text.len()));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(DecodeError::Malformed(
            "a message is a JSON object with a string field `type`".into(),
        ));
    };
    if !REQUEST_TYPES.contains(&kind) {
        return Err(DecodeError::UnknownType(kind.chars().take(64).collect()));
    }
    let request: StaffRequest =
        serde_json::from_value(value).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    match request.command() {
        Some((_, ticket)) if ticket.len() > MAX_TICKET_BYTES => Err(DecodeError::Malformed(
            format!("a ticket has at most {MAX_TICKET_BYTES} bytes"),
        )),
        _ => Ok(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::model::{Conflict, TicketState};
    use serde_json::json;

    fn summary() -> TicketSummary {
        TicketSummary {
            id: "t-1".into(),
            number: "B001-20261125-0042".into(),
            kind: "handoff".into(),
            queue: "counter".into(),
            priority: "normal".into(),
            state: TicketState::New,
            branch_id: "B001".into(),
            assignee: None,
            session_id: Some("s-1".into()),
            first_response_due: Some(1_700_000_300_000),
            resolution_due: Some(1_700_003_600_000),
        }
    }

    fn event() -> Event {
        Event {
            ticket_id: "t-1".into(),
            seq: 1,
            event_id: "e-1".into(),
            kind: "created".into(),
            from: None,
            to: Some("new".into()),
            actor: "kiosk".into(),
            at: 1_700_000_000_000,
            comment: String::new(),
            data: json!({"queue": "counter", "priority": "normal"}),
            chain_seq: 7,
            hash: "ab".into(),
        }
    }

    /// Each server message, and the exact frame the console gets.
    fn server_examples() -> Vec<(StaffMessage, &'static str)> {
        vec![
            (
                StaffMessage::Welcome {
                    name: "chen".into(),
                    roles: vec![Role::Teller, Role::RemoteExpert],
                },
                r#"{"name":"chen","roles":["teller","remote_expert"],"type":"welcome"}"#,
            ),
            (
                StaffMessage::TicketEvent {
                    ticket: Box::new(summary()),
                    event: Box::new(event()),
                },
                concat!(
                    r#"{"event":{"actor":"kiosk","at":1700000000000,"chain_seq":7,"comment":"","#,
                    r#""data":{"priority":"normal","queue":"counter"},"event_id":"e-1","#,
                    r#""from":null,"hash":"ab","kind":"created","seq":1,"ticket_id":"t-1","#,
                    r#""to":"new"},"#,
                    r#""ticket":{"assignee":null,"branch_id":"B001","#,
                    r#""first_response_due":1700000300000,"id":"t-1","kind":"handoff","#,
                    r#""number":"B001-20261125-0042","priority":"normal","queue":"counter","#,
                    r#""resolution_due":1700003600000,"session_id":"s-1","state":"new"},"#,
                    r#""type":"ticket.event"}"#
                ),
            ),
            (
                StaffMessage::Ok {
                    done: Command::Accept,
                    ticket: "t-1".into(),
                },
                r#"{"for":"accept","ticket":"t-1","type":"ok"}"#,
            ),
            (
                StaffMessage::Ok {
                    done: Command::Release,
                    ticket: "t-1".into(),
                },
                r#"{"for":"release","ticket":"t-1","type":"ok"}"#,
            ),
            (
                StaffMessage::error(ErrorCode::NotOwner, "这张工单不在您名下。"),
                r#"{"code":"not_owner","message":"这张工单不在您名下。","type":"error"}"#,
            ),
            (StaffMessage::Pong, r#"{"type":"pong"}"#),
        ]
    }

    #[test]
    fn server_messages_are_the_frames_the_console_reads_and_decode_back() {
        for (msg, frame) in server_examples() {
            assert_eq!(&*msg.encode(), frame);
            let back: StaffMessage = serde_json::from_str(frame).unwrap();
            assert_eq!(back, msg, "{frame}");
        }
    }

    #[test]
    fn requests_are_the_frames_the_console_sends_and_encode_back() {
        let examples = [
            (
                r#"{"type":"accept","ticket":"t-1"}"#,
                StaffRequest::Accept {
                    ticket: "t-1".into(),
                },
            ),
            (
                r#"{"type":"say","ticket":"t-1","text":"您好"}"#,
                StaffRequest::Say {
                    ticket: "t-1".into(),
                    text: "您好".into(),
                },
            ),
            (
                r#"{"type":"release","ticket":"t-1"}"#,
                StaffRequest::Release {
                    ticket: "t-1".into(),
                },
            ),
            (r#"{"type":"ping"}"#, StaffRequest::Ping),
        ];
        for (frame, request) in examples {
            assert_eq!(decode(frame), Ok(request.clone()), "{frame}");
            assert_eq!(serde_json::to_string(&request).unwrap(), frame);
        }
    }

    #[test]
    fn lenient_where_the_console_always_was() {
        // Unknown fields are ignored; `say` without text is decoded (and refused later
        // as `invalid_text`, after the ownership check).
        assert_eq!(decode(r#"{"type":"ping","id":3}"#), Ok(StaffRequest::Ping));
        assert_eq!(
            decode(r#"{"type":"say","ticket":"t"}"#),
            Ok(StaffRequest::Say {
                ticket: "t".into(),
                text: String::new()
            })
        );
    }

    #[test]
    fn bad_frames_get_stable_codes() {
        let code = |text: &str| match decode(text).unwrap_err().answer() {
            StaffMessage::Error { code, .. } => code.as_str(),
            other => panic!("not an error: {other:?}"),
        };
        assert_eq!(code(&"x".repeat(MAX_REQUEST_BYTES + 1)), "frame_too_large");
        assert_eq!(code("{not json"), "malformed_message");
        assert_eq!(code("[1,2]"), "malformed_message");
        assert_eq!(code(r#"{"type":7}"#), "malformed_message");
        assert_eq!(code(r#"{"type":"accept"}"#), "malformed_message");
        assert_eq!(code(r#"{"type":"accept","ticket":5}"#), "malformed_message");
        let long = format!(r#"{{"type":"accept","ticket":"{}"}}"#, "9".repeat(65));
        assert_eq!(code(&long), "malformed_message");
        assert_eq!(
            code(r#"{"type":"dance","ticket":"t"}"#),
            "unknown_message_type"
        );
        // At the limit is fine.
        let id = "9".repeat(MAX_TICKET_BYTES);
        assert!(decode(&format!(r#"{{"type":"release","ticket":"{id}"}}"#)).is_ok());
    }

    #[test]
    fn refusals_keep_their_codes() {
        let code = |e: TicketError| match StaffMessage::refused(&e) {
            StaffMessage::Error { code, .. } => code.as_str(),
            other => panic!("not an error: {other:?}"),
        };
        assert_eq!(code(TicketError::NotFound), "not_found");
        for c in [
            Conflict::IllegalTransition,
            Conflict::AlreadyClaimed,
            Conflict::StateChanged,
        ] {
            assert_eq!(code(TicketError::Conflict(c, "x".into())), c.code());
        }
        assert_eq!(code(TicketError::Invalid("x".into())), "invalid_ticket");
        assert_eq!(code(TicketError::Db(sqlx::Error::PoolTimedOut)), "internal");
    }

    /// The ```json blocks of `docs/tickets.md` under `heading`, up to the next `###`.
    fn doc_examples(heading: &str) -> Vec<String> {
        let doc = include_str!("../../docs/tickets.md");
        let section = doc
            .split(heading)
            .nth(1)
            .expect("the section is in the doc");
        let section = section.split("\n### ").next().unwrap_or_default();
        section
            .split("```json\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn the_documented_examples_are_real_messages() {
        let server = doc_examples("### Server → console");
        assert_eq!(server.len(), 5, "one example per server message");
        for text in server {
            let msg: StaffMessage = serde_json::from_str(&text).expect(&text);
            let compact: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(&*msg.encode(), compact.to_string(), "{text}");
        }
        let console = doc_examples("### Console → server");
        assert_eq!(console.len(), 4, "one example per request");
        for text in console {
            assert!(decode(text.trim()).is_ok(), "{text}");
        }
    }

    #[test]
    fn every_error_code_serializes_as_its_str() {
        use ErrorCode::*;
        for code in [
            FrameTooLarge,
            MalformedMessage,
            UnknownMessageType,
            NotFound,
            NotOwner,
            InvalidText,
            IllegalTransition,
            AlreadyClaimed,
            StateChanged,
            InvalidTicket,
            Internal,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().into())
            );
        }
    }
}
