//! An async client for one XFS4IoT service endpoint (a WebSocket URI such as
//! `ws://host:port/xfs4iot/v1.0/cardreader`).
//!
//! It owns the message envelope (`header` + `payload`), request ids (increasing from 1 per
//! connection), and the two tasks of a connection: a writer fed by a channel and one reader
//! that routes `acknowledge`, `event` and `completion` messages to the command with the same
//! `requestId`, and `unsolicited` messages to a bounded channel. A command that does not
//! complete within its timeout is cancelled with `Common.Cancel` and fails with
//! [`XfsError::Timeout`]; when the connection ends every command in flight fails with
//! [`XfsError::ConnectionLost`]. Malformed frames are logged (without their content, which
//! may be card data) and ignored.
//!
//! Version notes: since XFS4IoT 2023-2 (message version 2.0) the command timeout, the
//! acknowledge `status` and the completion's `completionCode` / `errorDescription` live in
//! the header; earlier services put them in the payload. We send the header form and read
//! both.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;

/// The message version we send in command headers.
pub const MESSAGE_VERSION: &str = "2.0";

/// Unsolicited messages kept for the consumer; more are dropped with a log line.
pub const UNSOLICITED_CAPACITY: usize = 64;

/// Event names remembered per command (for diagnostics); more are counted only.
const MAX_EVENT_NAMES: usize = 64;

/// How long a `Common.Cancel` sent after a timeout may take before we stop listening.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// The `type` of an XFS4IoT message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageType {
    Command,
    Acknowledge,
    Event,
    Completion,
    Unsolicited,
}

/// The `header` of an XFS4IoT message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// `Interface.Command`, e.g. `CardReader.ReadRawData`.
    pub name: String,
    /// Absent (or 0) on unsolicited messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Commands only: milliseconds the service may take (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Acknowledges only: absent when the command was accepted, else `invalidMessage`,
    /// `invalidRequestID` or `tooManyRequests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Completions only (message version 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_code: Option<String>,
    /// Completions only (message version 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// One XFS4IoT message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XfsMessage {
    pub header: Header,
    #[serde(default)]
    pub payload: Value,
}

impl XfsMessage {
    /// The request id, treating 0 as none (unsolicited).
    pub fn request_id(&self) -> Option<u64> {
        self.header.request_id.filter(|id| *id != 0)
    }
}

/// How a command ended, successful or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub name: String,
    pub request_id: u64,
    /// `success`, `commandErrorCode`, `canceled`, `timeOut`, `deviceNotReady`, …
    pub completion_code: String,
    /// The command-specific `errorCode` of the payload (`noMedia`, `paperOut`, …).
    pub error_code: Option<String>,
    pub error_description: Option<String>,
    pub payload: Value,
    /// Names of the execute events the command sent before completing, in order (never
    /// their payloads: key events must not be kept).
    pub events: Vec<String>,
}

impl Completion {
    /// Reads a completion message, from the header (2.0) or the payload (earlier versions).
    pub fn from_message(msg: XfsMessage, events: Vec<String>) -> Completion {
        let payload = msg.payload;
        let from_payload = |key: &str| payload.get(key).and_then(Value::as_str).map(String::from);
        let completion_code = msg
            .header
            .completion_code
            .clone()
            .or_else(|| from_payload("completionCode"))
            .unwrap_or_else(|| {
                tracing::warn!(name = %msg.header.name, "completion without completionCode");
                "internalError".to_string()
            });
        Completion {
            request_id: msg.header.request_id.unwrap_or(0),
            error_code: from_payload("errorCode"),
            error_description: msg
                .header
                .error_description
                .clone()
                .or_else(|| from_payload("errorDescription")),
            name: msg.header.name,
            completion_code,
            payload,
            events,
        }
    }

    pub fn is_success(&self) -> bool {
        self.completion_code == "success"
    }
}

/// Why a command did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XfsError {
    /// The WebSocket connection could not be opened.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The connection ended (or was already closed) before the command completed.
    #[error("the connection to the XFS4IoT service was lost")]
    ConnectionLost,
    /// No completion within the timeout; `Common.Cancel` was sent.
    #[error("{name} did not complete within {ms} ms")]
    Timeout { name: String, ms: u64 },
    /// The service refused the command in its acknowledge (`tooManyRequests`, …).
    #[error("{name} was rejected: {status}")]
    Rejected { name: String, status: String },
}

/// A command waiting for its completion.
struct Pending {
    name: String,
    events: Vec<String>,
    done: Option<oneshot::Sender<Result<Completion, XfsError>>>,
}

/// What the reader and writer tasks share with the client handles.
struct Shared {
    url: String,
    /// `None` once the connection has ended: no new command may wait on it.
    pending: Mutex<Option<HashMap<u64, Pending>>>,
}

impl Shared {
    /// Fails every command in flight and refuses new ones. Idempotent.
    fn shut_down(&self, why: &str) {
        let drained = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(map) = drained {
            tracing::info!(url = %self.url, in_flight = map.len(), why, "XFS4IoT connection ended");
            for (_, mut p) in map {
                if let Some(done) = p.done.take() {
                    let _ = done.send(Err(XfsError::ConnectionLost));
                }
            }
        }
    }

    fn is_closed(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Routes one message from the service.
    fn dispatch(&self, msg: XfsMessage, unsolicited: &mpsc::Sender<XfsMessage>) {
        let kind = msg.header.kind;
        if kind == MessageType::Unsolicited {
            return self.forward_unsolicited(msg, unsolicited);
        }
        let Some(id) = msg.request_id() else {
            if kind == MessageType::Event {
                self.forward_unsolicited(msg, unsolicited);
            } else {
                tracing::warn!(name = %msg.header.name, ?kind, "message without requestId ignored");
            }
            return;
        };
        let mut guard = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let Some(map) = guard.as_mut() else { return };
        match kind {
            MessageType::Unsolicited => {}
            MessageType::Command => {
                tracing::warn!(name = %msg.header.name, "command from the service ignored");
            }
            MessageType::Acknowledge => {
                let status = msg.header.status.clone().or_else(|| {
                    msg.payload
                        .get("status")
                        .and_then(Value::as_str)
                        .map(String::from)
                });
                match status.as_deref() {
                    None | Some("ok") => {}
                    Some(status) => {
                        if let Some(mut p) = map.remove(&id) {
                            if let Some(done) = p.done.take() {
                                let _ = done.send(Err(XfsError::Rejected {
                                    name: p.name,
                                    status: status.to_string(),
                                }));
                            }
                        } else {
                            tracing::debug!(id, "acknowledge for an unknown request");
                        }
                    }
                }
            }
            MessageType::Event => match map.get_mut(&id) {
                Some(p) if p.events.len() < MAX_EVENT_NAMES => {
                    p.events.push(msg.header.name.clone())
                }
                Some(_) => {}
                None => {
                    tracing::debug!(id, name = %msg.header.name, "event for an unknown request")
                }
            },
            MessageType::Completion => match map.remove(&id) {
                Some(mut p) => {
                    let events = std::mem::take(&mut p.events);
                    if let Some(done) = p.done.take() {
                        let _ = done.send(Ok(Completion::from_message(msg, events)));
                    }
                }
                None => {
                    tracing::debug!(id, name = %msg.header.name, "completion for an unknown request")
                }
            },
        }
    }

    fn forward_unsolicited(&self, msg: XfsMessage, unsolicited: &mpsc::Sender<XfsMessage>) {
        if let Err(mpsc::error::TrySendError::Full(m)) = unsolicited.try_send(msg) {
            tracing::warn!(url = %self.url, name = %m.header.name, "unsolicited message dropped: queue full");
        }
    }
}

/// Aborts the reader task when the last client handle goes away (the writer ends by
/// itself when its channel closes, and closes the socket).
struct ReaderGuard(AbortHandle);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Removes a command's pending entry however its caller ends (completion, timeout, or the
/// caller's future being dropped).
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(map) = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            map.remove(&self.id);
        }
    }
}

/// A connection to one XFS4IoT service. Cheap to clone; the connection closes when the
/// last clone is dropped.
#[derive(Clone)]
pub struct XfsClient {
    shared: Arc<Shared>,
    out: mpsc::Sender<Message>,
    next_id: Arc<AtomicU64>,
    _reader: Arc<ReaderGuard>,
}

impl std::fmt::Debug for XfsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XfsClient")
            .field("url", &self.shared.url)
            .finish()
    }
}

impl XfsClient {
    /// Opens a connection. Unsolicited messages (and events of no known command) arrive on
    /// the returned receiver, which ends when the connection does.
    #[tracing::instrument(skip(connect_timeout), err)]
    pub async fn connect(
        url: &str,
        connect_timeout: Duration,
    ) -> Result<(XfsClient, mpsc::Receiver<XfsMessage>), XfsError> {
        let connect_err = |reason: String| XfsError::Connect {
            url: url.to_string(),
            reason,
        };
        let (ws, _) = tokio::time::timeout(
            connect_timeout,
            // Small request/response messages: no Nagle delay.
            tokio_tungstenite::connect_async_with_config(url, None, true),
        )
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
        let (mut sink, mut stream) = ws.split();
        let shared = Arc::new(Shared {
            url: url.to_string(),
            pending: Mutex::new(Some(HashMap::new())),
        });
        let (out, mut outq) = mpsc::channel::<Message>(64);
        let (unsolicited_tx, unsolicited_rx) = mpsc::channel(UNSOLICITED_CAPACITY);

        let writer_shared = shared.clone();
        tokio::spawn(async move {
            while let Some(frame) = outq.recv().await {
                if let Err(e) = sink.send(frame).await {
                    tracing::warn!(error = %e, "XFS4IoT write failed");
                    writer_shared.shut_down("write failed");
                    return;
                }
            }
            let _ = sink.close().await;
        });

        let reader_shared = shared.clone();
        let reader = tokio::spawn(async move {
            let why = loop {
                let frame = match stream.next().await {
                    None => break "closed by the service",
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "XFS4IoT read failed");
                        break "read failed";
                    }
                    Some(Ok(frame)) => frame,
                };
                match frame {
                    Message::Text(text) => match serde_json::from_str::<XfsMessage>(&text) {
                        Ok(msg) => reader_shared.dispatch(msg, &unsolicited_tx),
                        Err(e) => tracing::warn!(
                            url = %reader_shared.url,
                            len = text.len(),
                            error = %e,
                            "malformed XFS4IoT message ignored"
                        ),
                    },
                    Message::Binary(b) => tracing::warn!(
                        url = %reader_shared.url,
                        len = b.len(),
                        "binary frame ignored (XFS4IoT messages are text)"
                    ),
                    Message::Close(_) => break "closed by the service",
                    _ => {}
                }
            };
            reader_shared.shut_down(why);
        });

        let client = XfsClient {
            shared,
            out,
            next_id: Arc::new(AtomicU64::new(1)),
            _reader: Arc::new(ReaderGuard(reader.abort_handle())),
        };
        Ok((client, unsolicited_rx))
    }

    /// The service URI this client is connected to.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// Whether the connection has ended (commands would fail with `ConnectionLost`).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Sends a command and waits for its completion (successful or not) for at most
    /// `timeout`, which is also sent to the service as the command's timeout. On timeout
    /// the command is cancelled with `Common.Cancel` (sent before this returns).
    pub async fn command(
        &self,
        name: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Completion, XfsError> {
        let (id, done) = self.register(name)?;
        let guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        self.send_command(id, name, payload, timeout).await?;
        let result = match tokio::time::timeout(timeout, done).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(XfsError::ConnectionLost),
            Err(_) => {
                drop(guard);
                self.cancel(id).await;
                return Err(XfsError::Timeout {
                    name: name.to_string(),
                    ms: timeout.as_millis() as u64,
                });
            }
        };
        drop(guard);
        result
    }

    /// Sends `Common.Cancel` for `request_id` and lets its completion arrive in the
    /// background.
    async fn cancel(&self, request_id: u64) {
        let Ok((id, done)) = self.register("Common.Cancel") else {
            return;
        };
        let payload = json!({ "requestIds": [request_id] });
        if self
            .send_command(id, "Common.Cancel", payload, CANCEL_WAIT)
            .await
            .is_err()
        {
            return;
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let guard = PendingGuard {
                shared: &shared,
                id,
            };
            match tokio::time::timeout(CANCEL_WAIT, done).await {
                Ok(Ok(Ok(c))) if !c.is_success() => {
                    tracing::warn!(request_id, code = %c.completion_code, "Common.Cancel failed")
                }
                Ok(_) => {}
                Err(_) => tracing::warn!(request_id, "Common.Cancel did not complete"),
            }
            drop(guard);
        });
    }

    fn register(
        &self,
        name: &str,
    ) -> Result<(u64, oneshot::Receiver<Result<Completion, XfsError>>), XfsError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut guard = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let map = guard.as_mut().ok_or(XfsError::ConnectionLost)?;
        map.insert(
            id,
            Pending {
                name: name.to_string(),
                events: Vec::new(),
                done: Some(tx),
            },
        );
        Ok((id, rx))
    }

    async fn send_command(
        &self,
        id: u64,
        name: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<(), XfsError> {
        let msg = XfsMessage {
            header: Header {
                kind: MessageType::Command,
                name: name.to_string(),
                request_id: Some(id),
                version: Some(MESSAGE_VERSION.to_string()),
                timeout: Some((timeout.as_millis() as u64).max(1)),
                status: None,
                completion_code: None,
                error_description: None,
            },
            payload: if payload.is_null() {
                json!({})
            } else {
                payload
            },
        };
        let text = serde_json::to_string(&msg).expect("XFS4IoT messages serialize");
        tracing::debug!(id, name, "XFS4IoT command");
        self.out
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| XfsError::ConnectionLost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_reads_the_header_form_and_the_older_payload_form() {
        let v2: XfsMessage = serde_json::from_value(json!({
            "header": {"type": "completion", "name": "CardReader.Move", "requestId": 7,
                       "version": "2.0", "completionCode": "commandErrorCode",
                       "errorDescription": "no card"},
            "payload": {"errorCode": "noMedia"}
        }))
        .unwrap();
        let c = Completion::from_message(v2, vec![]);
        assert_eq!(c.completion_code, "commandErrorCode");
        assert_eq!(c.error_code.as_deref(), Some("noMedia"));
        assert_eq!(c.error_description.as_deref(), Some("no card"));
        assert_eq!(c.request_id, 7);

        let v1: XfsMessage = serde_json::from_value(json!({
            "header": {"type": "completion", "name": "Printer.PrintForm", "requestId": 8},
            "payload": {"completionCode": "success"}
        }))
        .unwrap();
        assert!(Completion::from_message(v1, vec![]).is_success());
    }

    #[test]
    fn a_command_header_serializes_like_the_specification() {
        let msg = XfsMessage {
            header: Header {
                kind: MessageType::Command,
                name: "Common.Cancel".into(),
                request_id: Some(3),
                version: Some("2.0".into()),
                timeout: Some(1000),
                status: None,
                completion_code: None,
                error_description: None,
            },
            payload: json!({"requestIds": [2]}),
        };
        assert_eq!(
            serde_json::to_value(&msg).unwrap(),
            json!({"header": {"type": "command", "name": "Common.Cancel", "requestId": 3,
                              "version": "2.0", "timeout": 1000},
                   "payload": {"requestIds": [2]}})
        );
    }

    #[test]
    fn unknown_message_types_and_bad_request_ids_are_malformed() {
        for bad in [
            r#"{"header": {"type": "gossip", "name": "X.Y", "requestId": 1}}"#,
            r#"{"header": {"type": "completion", "name": "X.Y", "requestId": "one"}}"#,
            r#"{"payload": {}}"#,
            "not json",
        ] {
            assert!(serde_json::from_str::<XfsMessage>(bad).is_err(), "{bad}");
        }
    }
}
