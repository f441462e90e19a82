//! A fake XFS4IoT service publisher with a card reader, a PIN pad, two printers and a
//! camera, on `127.0.0.1:0`, for tests of the XFS4IoT driver here and in the main crate.
//!
//! It speaks the message format faithfully: every command is acknowledged (or refused in
//! its acknowledge), followed by execute events and one completion with the same
//! `requestId`; `Common.Cancel` completes the cancelled commands as `canceled`; commands of
//! an interface a service does not implement complete as `unsupportedCommand`. What each
//! command does is scripted per command name ([`Outcome`]; one scripted outcome per
//! command received, then canned success), every command received is recorded, and
//! unsolicited events, raw frames and dropped connections can be produced on demand.
//!
//! Endpoints: the publisher at `/xfs4iot/v1.0`, the services at `/xfs4iot/v1.0/<service>`
//! with `<service>` one of [`SERVICES`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::Message;

/// The services of the fake and the XFS4IoT interfaces each implements.
pub const SERVICES: [(&str, &[&str]); 5] = [
    ("cardreader", &["Common", "CardReader", "Storage"]),
    (
        "pinpad",
        &["Common", "Keyboard", "PinPad", "Crypto", "KeyManagement"],
    ),
    ("receiptprinter", &["Common", "Printer"]),
    ("queueprinter", &["Common", "Printer"]),
    ("camera", &["Common", "Camera"]),
];

/// Track 2 of the card in the fake card reader.
pub const TRACK2: &str = "6222021001123456789=2612101";

/// The PIN block the fake PIN pad produces (hex).
pub const PIN_BLOCK: &str = "9A3F1C0B7E2D4A68";

/// Size of the fake camera's pictures.
pub const PICTURE_SIZE: (u32, u32) = (640, 480);

const PUBLISHER_PATH: &str = "/xfs4iot/v1.0";

/// What the fake does with one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Completes with `success` and the command's canned payload (and execute events).
    Success,
    /// Completes with `success` and this payload.
    SuccessWith(Value),
    /// Completes with `completion_code` and, if given, `errorCode` in the payload.
    Error {
        completion_code: String,
        error_code: Option<String>,
    },
    /// Acknowledges and never completes, until `Common.Cancel` completes it `canceled`.
    Never,
    /// Refuses the command in its acknowledge with this `status` (`tooManyRequests`, …).
    Reject(String),
    /// Acknowledges, then drops the connection.
    Disconnect,
    /// Sends malformed frames (bad JSON, a bad header, a binary frame, a completion of an
    /// unknown request) before completing with the canned success.
    Garbage,
}

impl Outcome {
    /// A failed completion: `Outcome::error("commandErrorCode", Some("noMedia"))`.
    pub fn error(completion_code: &str, error_code: Option<&str>) -> Outcome {
        Outcome::Error {
            completion_code: completion_code.to_string(),
            error_code: error_code.map(String::from),
        }
    }
}

/// One open connection to the fake.
struct Conn {
    id: u64,
    service: String,
    tx: mpsc::UnboundedSender<Message>,
    /// Dropping the connection on demand.
    task: AbortHandle,
}

#[derive(Default)]
struct Shared {
    base: String,
    scripts: Mutex<HashMap<String, VecDeque<Outcome>>>,
    received: Mutex<Vec<(String, Value)>>,
    conns: Mutex<Vec<Conn>>,
    next_conn: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running fake XFS4IoT publisher and its services; stops when dropped.
pub struct FakeXfs {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: AbortHandle,
}

impl Drop for FakeXfs {
    fn drop(&mut self) {
        self.accept.abort();
        for c in lock(&self.shared.conns).drain(..) {
            c.task.abort();
        }
    }
}

impl FakeXfs {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> FakeXfs {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            base: format!("ws://{addr}{PUBLISHER_PATH}"),
            ..Shared::default()
        });
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = accept_shared.clone();
                tokio::spawn(accept_one(stream, shared));
            }
        });
        FakeXfs {
            shared,
            addr,
            accept: accept.abort_handle(),
        }
    }

    /// `ws://127.0.0.1:<port>/xfs4iot/v1.0`
    pub fn publisher_url(&self) -> String {
        self.shared.base.clone()
    }

    /// The URI of one of [`SERVICES`].
    pub fn service_url(&self, service: &str) -> String {
        format!("{}/{service}", self.shared.base)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the next `command` received (on any service) does; outcomes queue up in
    /// order, one per command received; with none left the command succeeds.
    pub fn script(&self, command: &str, outcome: Outcome) {
        lock(&self.shared.scripts)
            .entry(command.to_string())
            .or_default()
            .push_back(outcome);
    }

    /// Names of the commands received so far, in order (all services, discovery included).
    pub fn received(&self) -> Vec<String> {
        lock(&self.shared.received)
            .iter()
            .map(|(_, m)| m["header"]["name"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// The commands received so far as `(service, message)`; the publisher is `publisher`.
    pub fn received_commands(&self) -> Vec<(String, Value)> {
        lock(&self.shared.received).clone()
    }

    /// How many times `command` was received.
    pub fn count(&self, command: &str) -> usize {
        self.received().iter().filter(|n| *n == command).count()
    }

    /// Waits until `command` has been received at least `times` times; false after `within`.
    pub async fn wait_for(&self, command: &str, times: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.count(command) >= times {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends an unsolicited message to every client connected to `service`.
    pub fn unsolicited(&self, service: &str, name: &str, payload: Value) {
        let msg = json!({
            "header": {"type": "unsolicited", "name": name, "version": "2.0"},
            "payload": payload,
        });
        self.send_raw(service, &msg.to_string());
    }

    /// Sends a text frame as is to every client connected to `service`.
    pub fn send_raw(&self, service: &str, frame: &str) {
        for c in lock(&self.shared.conns)
            .iter()
            .filter(|c| c.service == service)
        {
            let _ = c.tx.send(Message::Text(frame.to_string().into()));
        }
    }

    /// Drops every connection to `service` (without a close handshake).
    pub fn disconnect(&self, service: &str) {
        lock(&self.shared.conns).retain(|c| {
            if c.service == service {
                c.task.abort();
                false
            } else {
                true
            }
        });
    }

    /// Open connections to `service`.
    pub fn connections(&self, service: &str) -> usize {
        lock(&self.shared.conns)
            .iter()
            .filter(|c| c.service == service)
            .count()
    }
}

/// Notes the path a client connects to (it names the endpoint).
struct CapturePath<'a>(&'a mut String);

impl Callback for CapturePath<'_> {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        *self.0 = request.uri().path().trim_end_matches('/').to_string();
        Ok(response)
    }
}

async fn accept_one(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut path = String::new();
    let callback = CapturePath(&mut path);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let service = if path == PUBLISHER_PATH {
        "publisher".to_string()
    } else {
        match path.strip_prefix(&format!("{PUBLISHER_PATH}/")) {
            Some(s) if SERVICES.iter().any(|(name, _)| *name == s) => s.to_string(),
            _ => return, // unknown endpoint: the socket closes
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let id = {
        let mut n = lock(&shared.next_conn);
        *n += 1;
        *n
    };
    let task = tokio::spawn(serve(ws, service.clone(), shared.clone(), tx.clone(), rx));
    lock(&shared.conns).push(Conn {
        id,
        service,
        tx,
        task: task.abort_handle(),
    });
    let _ = task.await;
    lock(&shared.conns).retain(|c| c.id != id);
}

/// Request id → name of the commands that only `Common.Cancel` completes.
type Never = Arc<Mutex<HashMap<u64, String>>>;

async fn serve(
    ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    service: String,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
) {
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    let never: Never = Arc::default();
    while let Some(Ok(frame)) = stream.next().await {
        let text = match frame {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break,
            _ => continue,
        };
        let session = Session {
            service: &service,
            shared: &shared,
            tx: &tx,
            never: &never,
        };
        if on_text(&text, &session) == Flow::Drop {
            break;
        }
    }
    writer.abort();
}

#[derive(PartialEq)]
enum Flow {
    Continue,
    Drop,
}

fn send(tx: &mpsc::UnboundedSender<Message>, msg: Value) {
    let _ = tx.send(Message::Text(msg.to_string().into()));
}

fn header(kind: &str, name: &str, id: u64) -> Value {
    json!({"type": kind, "name": name, "requestId": id, "version": "2.0"})
}

fn completion(name: &str, id: u64, code: &str, error_code: Option<&str>, payload: Value) -> Value {
    let mut h = header("completion", name, id);
    h["completionCode"] = json!(code);
    let mut payload = if payload.is_object() {
        payload
    } else {
        json!({})
    };
    if let Some(e) = error_code {
        payload["errorCode"] = json!(e);
        h["errorDescription"] = json!(format!("fake {e}"));
    }
    json!({"header": h, "payload": payload})
}

/// One connection as the command handlers see it.
struct Session<'a> {
    service: &'a str,
    shared: &'a Shared,
    tx: &'a mpsc::UnboundedSender<Message>,
    /// Commands in flight that only `Common.Cancel` completes.
    never: &'a Never,
}

fn on_text(text: &str, session: &Session<'_>) -> Flow {
    let Session {
        service,
        shared,
        tx,
        never,
    } = *session;
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        return Flow::Continue; // no request id to acknowledge with
    };
    let h = &msg["header"];
    let name = h["name"].as_str().unwrap_or("").to_string();
    let Some(id) = h["requestId"].as_u64().filter(|id| *id > 0) else {
        if !name.is_empty() {
            send(
                tx,
                json!({"header": {"type": "acknowledge", "name": name, "version": "2.0",
                                   "status": "invalidRequestID"}, "payload": {}}),
            );
        }
        return Flow::Continue;
    };
    if h["type"] != "command" || name.is_empty() {
        let mut ack = header("acknowledge", &name, id);
        ack["status"] = json!("invalidMessage");
        send(tx, json!({"header": ack, "payload": {}}));
        return Flow::Continue;
    }
    lock(&shared.received).push((service.to_string(), msg.clone()));
    if lock(never).contains_key(&id) {
        let mut ack = header("acknowledge", &name, id);
        ack["status"] = json!("invalidRequestID");
        send(tx, json!({"header": ack, "payload": {}}));
        return Flow::Continue;
    }
    let outcome = lock(&shared.scripts)
        .get_mut(&name)
        .and_then(VecDeque::pop_front)
        .unwrap_or(Outcome::Success);
    if let Outcome::Reject(status) = &outcome {
        let mut ack = header("acknowledge", &name, id);
        ack["status"] = json!(status);
        send(tx, json!({"header": ack, "payload": {}}));
        return Flow::Continue;
    }
    send(
        tx,
        json!({"header": header("acknowledge", &name, id), "payload": {}}),
    );

    let interface = name.split('.').next().unwrap_or("");
    let implemented = if service == "publisher" {
        interface == "ServicePublisher" || interface == "Common"
    } else {
        SERVICES
            .iter()
            .any(|(s, ifs)| *s == service && ifs.contains(&interface))
    };
    if !implemented {
        send(
            tx,
            completion(&name, id, "unsupportedCommand", None, json!({})),
        );
        return Flow::Continue;
    }

    match outcome {
        Outcome::Success => succeed(session, &msg, &name, id, None),
        Outcome::SuccessWith(payload) => succeed(session, &msg, &name, id, Some(payload)),
        Outcome::Error {
            completion_code,
            error_code,
        } => send(
            tx,
            completion(
                &name,
                id,
                &completion_code,
                error_code.as_deref(),
                json!({}),
            ),
        ),
        Outcome::Never => {
            lock(never).insert(id, name);
        }
        Outcome::Reject(_) => {}
        Outcome::Disconnect => return Flow::Drop,
        Outcome::Garbage => {
            let _ = tx.send(Message::Text("this is not json".into()));
            send(
                tx,
                json!({"header": {"type": "completion", "name": name, "requestId": "one"}}),
            );
            send(
                tx,
                json!({"header": {"type": "rumour", "name": name, "requestId": id}}),
            );
            let _ = tx.send(Message::Binary(vec![0xde, 0xad].into()));
            send(tx, completion(&name, 999_999, "success", None, json!({})));
            send(
                tx,
                json!({"header": header("event", "Bogus.Event", id), "payload": "not an object"}),
            );
            succeed(session, &msg, &name, id, None);
        }
    }
    Flow::Continue
}

/// Sends the canned execute events and a successful completion of `name`.
fn succeed(session: &Session<'_>, command: &Value, name: &str, id: u64, payload: Option<Value>) {
    let Session {
        service,
        shared,
        tx,
        never,
    } = *session;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let event = |event: &str, payload: Value| {
        send(
            tx,
            json!({"header": header("event", event, id), "payload": payload}),
        )
    };
    let canned = match name {
        "ServicePublisher.GetServices" => {
            let services: Vec<Value> = SERVICES
                .iter()
                .map(|(s, _)| json!({"serviceURI": format!("{}/{s}", shared.base)}))
                .collect();
            json!({"vendorName": "Concierge fake XFS4IoT", "services": services})
        }
        "Common.Capabilities" => {
            let interfaces: Vec<Value> = SERVICES
                .iter()
                .find(|(s, _)| *s == service)
                .map(|(_, ifs)| ifs.iter().map(|i| json!({"name": i})).collect())
                .unwrap_or_else(|| vec![json!({"name": "Common"})]);
            json!({"interfaces": interfaces, "common": {"serviceVersion": "fake-1.0"}})
        }
        "Common.Status" => json!({"common": {"device": "online"}}),
        "CardReader.ReadRawData" => {
            event("CardReader.InsertCardEvent", json!({}));
            event("CardReader.MediaInsertedEvent", json!({}));
            json!({
                "track2": {"status": "ok", "data": b64(TRACK2.as_bytes())},
                "chip": [{"status": "ok", "data": b64(&[0x3B, 0x6E, 0x00, 0x00])}],
            })
        }
        "Keyboard.PinEntry" => {
            for _ in 0..6 {
                event("Keyboard.KeyEvent", json!({"completion": "continue"}));
            }
            event(
                "Keyboard.KeyEvent",
                json!({"completion": "enter", "digit": "enter"}),
            );
            json!({"digits": 6, "completion": "enter"})
        }
        "PinPad.GetPinBlock" => json!({"pinBlock": b64(&hex_bytes(PIN_BLOCK))}),
        "Camera.TakePicture" => json!({"pictureFile": b64(&fake_png())}),
        _ => json!({}),
    };
    if name == "Common.Cancel" {
        cancel(command, tx, never);
    }
    send(
        tx,
        completion(name, id, "success", None, payload.unwrap_or(canned)),
    );
}

/// Completes the commands a `Common.Cancel` names (all of this connection's when it names
/// none) as `canceled`.
fn cancel(command: &Value, tx: &mpsc::UnboundedSender<Message>, never: &Never) {
    let ids: Option<Vec<u64>> = command["payload"]["requestIds"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect());
    let mut never = lock(never);
    let ids = ids.unwrap_or_else(|| never.keys().copied().collect());
    for id in ids {
        if let Some(name) = never.remove(&id) {
            send(tx, completion(&name, id, "canceled", None, json!({})));
        }
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The start of a PNG of [`PICTURE_SIZE`]: signature and header chunk.
fn fake_png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend(PICTURE_SIZE.0.to_be_bytes());
    png.extend(PICTURE_SIZE.1.to_be_bytes());
    png.extend([8, 2, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
    png
}
