//! Our device calls on real XFS4IoT services.
//!
//! [`XfsDevices::discover`] asks the service publisher for its services
//! (`ServicePublisher.GetServices`), asks each service which interfaces it implements
//! (`Common.Capabilities`; the URI's last segment when a service does not say) and keeps
//! one connection per service it uses:
//!
//! | our kind          | XFS4IoT interface(s)  | commands                                        |
//! |-------------------|-----------------------|-------------------------------------------------|
//! | `card_reader`     | CardReader            | `CardReader.ReadRawData`, `CardReader.Move`     |
//! | `pin_pad`         | Keyboard + PinPad     | `Keyboard.PinEntry`, `PinPad.GetPinBlock`       |
//! | `receipt_printer` | Printer               | `Printer.PrintForm` (or `Printer.PrintRaw`)     |
//! | `queue_printer`   | a second Printer      | `Printer.PrintForm` (or `Printer.PrintRaw`)     |
//! | `camera`          | Camera                | `Camera.TakePicture`                            |
//!
//! Which Printer service is which: the first whose URI's last segment contains the
//! configured hint (`receipt`, `queue`; case-insensitive); printers matching no hint fill
//! the roles left, receipt first, in the publisher's order.
//!
//! Results have exactly the shapes of [`crate::sim`] for the same device and action, so
//! dialog flows do not care which driver served them. Card and PIN data never reach the
//! logs: the card number is returned (the server needs it) but only its last four digits
//! are logged; key events are counted, never kept; the camera's picture is hashed and
//! dropped. Events: `card_removed`, `paper_low`, `paper_out`, `offline` (the service says
//! so, or its connection was lost) and `online` (it is back). Calls are idempotent by call id (a repeat returns the first result and never
//! prints twice, also while the first is still running), and a call runs to its end even
//! when the caller stops waiting. A lost connection is reopened on the next call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use kiosk_protocol::DeviceError;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::Instrument;

use super::client::{Completion, XfsClient, XfsError, XfsMessage};
use super::{device_error, map_failure, DeviceEvent};

/// How one printer is recognised and what it prints.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterSetup {
    /// A fragment of the Printer service's URI (its last segment, case-insensitive) that
    /// marks this printer, e.g. `receipt` for `ws://kiosk:5846/xfs4iot/v1.0/ReceiptPrinter`.
    pub uri_hint: String,
    /// The form (loaded on the service) printed with `Printer.PrintForm`; the call's fields
    /// fill its fields, and the service does the character encoding. `None` prints the
    /// fields as `name: value` lines of UTF-8 text with `Printer.PrintRaw`.
    pub form_name: Option<String>,
    /// The media definition for `Printer.PrintForm`, if the form needs one.
    pub media_name: Option<String>,
    /// `mediaControl` of `Printer.PrintForm` (e.g. `{"cut": true}`), if any.
    pub media_control: Option<Value>,
}

/// Settings of the XFS4IoT driver.
#[derive(Debug, Clone, PartialEq)]
pub struct XfsConfig {
    /// Opening a WebSocket to the publisher or a service.
    pub connect_timeout: Duration,
    /// `ServicePublisher.GetServices` and `Common.Capabilities` during discovery.
    pub discover_timeout: Duration,
    /// Commands that wait for the customer (card insertion, PIN entry), unless the call
    /// gives its own timeout.
    pub customer_timeout: Duration,
    /// Commands that only wait for the machine (card move, PIN block, print, picture).
    pub device_timeout: Duration,
    /// The card reader's retain storage unit (`CardReader.Move` target of `retain`).
    pub retain_unit: String,
    /// The key that encrypts PIN blocks (`PinPad.GetPinBlock` `key`).
    pub pin_key: String,
    pub pin_min_len: u32,
    pub pin_max_len: u32,
    /// `Camera.TakePicture` `camera`: `person`, `room` or `exitSlot`.
    pub camera: String,
    pub receipt_printer: PrinterSetup,
    pub queue_printer: PrinterSetup,
}

impl Default for XfsConfig {
    fn default() -> XfsConfig {
        XfsConfig {
            connect_timeout: Duration::from_secs(3),
            discover_timeout: Duration::from_secs(5),
            customer_timeout: Duration::from_secs(60),
            device_timeout: Duration::from_secs(20),
            retain_unit: "unit1".into(),
            pin_key: "PinKey01".into(),
            pin_min_len: 6,
            pin_max_len: 6,
            camera: "person".into(),
            receipt_printer: PrinterSetup {
                uri_hint: "receipt".into(),
                form_name: Some("ConciergeReceipt".into()),
                media_name: None,
                media_control: Some(json!({"cut": true})),
            },
            queue_printer: PrinterSetup {
                uri_hint: "queue".into(),
                form_name: Some("ConciergeTicket".into()),
                media_name: None,
                media_control: Some(json!({"cut": true})),
            },
        }
    }
}

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    /// The service publisher could not be reached or did not answer.
    #[error("service publisher: {0}")]
    Publisher(#[from] XfsError),
    /// `ServicePublisher.GetServices` completed with an error.
    #[error("ServicePublisher.GetServices failed: {0}")]
    GetServices(String),
}

/// How many answered call ids are remembered for idempotency.
const REMEMBERED_CALLS: usize = 1024;

/// Device events buffered for slow subscribers (older ones are dropped for them).
const EVENT_CAPACITY: usize = 256;

type CallResult = Result<Value, DeviceError>;

/// One XFS4IoT service we use, and its (re)opened connection.
struct Service {
    uri: String,
    /// Our device kinds this service serves.
    kinds: Vec<&'static str>,
    conn: tokio::sync::Mutex<Option<XfsClient>>,
}

impl Service {
    /// The open connection, reopened if it was lost.
    async fn client(
        &self,
        events: &broadcast::Sender<DeviceEvent>,
        connect_timeout: Duration,
    ) -> Result<XfsClient, DeviceError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, unsolicited) = XfsClient::connect(&self.uri, connect_timeout)
            .await
            .map_err(|e| {
                tracing::warn!(uri = %self.uri, error = %e, "XFS4IoT service unreachable");
                device_error("connection_lost")
            })?;
        forward_events(unsolicited, self.kinds.clone(), events.clone());
        if conn.is_some() {
            // It had been lost (and reported `offline`).
            for kind in &self.kinds {
                let _ = events.send(DeviceEvent {
                    device: kind.to_string(),
                    event: "online".into(),
                    data: None,
                });
            }
        }
        *conn = Some(client.clone());
        Ok(client)
    }
}

#[derive(Default)]
struct Calls {
    results: HashMap<String, watch::Receiver<Option<CallResult>>>,
    order: VecDeque<String>,
}

struct Inner {
    config: XfsConfig,
    by_kind: HashMap<&'static str, Arc<Service>>,
    calls: Mutex<Calls>,
    events: broadcast::Sender<DeviceEvent>,
    /// The card number of the last card read: ISO-0 PIN blocks are bound to it.
    last_pan: Mutex<Option<String>>,
}

/// The kiosk's devices behind XFS4IoT services.
pub struct XfsDevices {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for XfsDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services: HashMap<_, _> = self
            .inner
            .by_kind
            .iter()
            .map(|(k, s)| (*k, s.uri.as_str()))
            .collect();
        f.debug_struct("XfsDevices")
            .field("services", &services)
            .finish()
    }
}

/// A service as discovery found it.
struct Probed {
    uri: String,
    interfaces: Vec<String>,
    client: XfsClient,
    unsolicited: mpsc::Receiver<XfsMessage>,
}

impl XfsDevices {
    /// Discovers the services behind `publisher_url` (e.g. `ws://127.0.0.1:5846/xfs4iot/v1.0`)
    /// with default settings; `timeout` bounds each connection and discovery command.
    pub async fn discover(
        publisher_url: &str,
        timeout: Duration,
    ) -> Result<XfsDevices, DiscoverError> {
        let config = XfsConfig {
            connect_timeout: timeout,
            discover_timeout: timeout,
            ..XfsConfig::default()
        };
        XfsDevices::discover_with(publisher_url, config).await
    }

    /// Discovers the services behind `publisher_url` with explicit settings. A service
    /// that cannot be reached or identified is skipped (with a log line); its device kinds
    /// are then simply not served.
    #[tracing::instrument(skip(config), err)]
    pub async fn discover_with(
        publisher_url: &str,
        config: XfsConfig,
    ) -> Result<XfsDevices, DiscoverError> {
        let (publisher, _unsolicited) =
            XfsClient::connect(publisher_url, config.connect_timeout).await?;
        let services = publisher
            .command(
                "ServicePublisher.GetServices",
                json!({}),
                config.discover_timeout,
            )
            .await?;
        if !services.is_success() {
            return Err(DiscoverError::GetServices(services.completion_code));
        }
        drop(publisher);
        let uris: Vec<String> = services
            .payload
            .get("services")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|s| s.get("serviceURI").and_then(Value::as_str))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();

        let mut probed = Vec::new();
        for uri in uris {
            match probe(&uri, &config).await {
                Ok(p) => probed.push(p),
                Err(e) => tracing::warn!(%uri, error = %e, "XFS4IoT service skipped"),
            }
        }

        let roles = assign_roles(&probed, &config);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let mut by_kind = HashMap::new();
        for (index, p) in probed.into_iter().enumerate() {
            let kinds: Vec<&'static str> = roles
                .iter()
                .filter(|(_, i)| *i == index)
                .map(|(k, _)| *k)
                .collect();
            if kinds.is_empty() {
                tracing::info!(uri = %p.uri, interfaces = ?p.interfaces, "XFS4IoT service not used");
                continue;
            }
            tracing::info!(uri = %p.uri, ?kinds, "XFS4IoT service used");
            forward_events(p.unsolicited, kinds.clone(), events.clone());
            let service = Arc::new(Service {
                uri: p.uri,
                kinds: kinds.clone(),
                conn: tokio::sync::Mutex::new(Some(p.client)),
            });
            for kind in kinds {
                by_kind.insert(kind, service.clone());
            }
        }
        Ok(XfsDevices {
            inner: Arc::new(Inner {
                config,
                by_kind,
                calls: Mutex::new(Calls::default()),
                events,
                last_pan: Mutex::new(None),
            }),
        })
    }

    /// The device kinds found, in the order of [`crate::sim::DEVICE_KINDS`].
    pub fn kinds(&self) -> Vec<&'static str> {
        crate::sim::DEVICE_KINDS
            .iter()
            .copied()
            .filter(|k| self.inner.by_kind.contains_key(k))
            .collect()
    }

    /// Capability strings for the kinds found (`device:<kind>`).
    pub fn capabilities(&self) -> Vec<String> {
        self.kinds()
            .into_iter()
            .map(|k| format!("device:{k}"))
            .collect()
    }

    /// The service URI that serves `kind`, if any.
    pub fn service_uri(&self, kind: &str) -> Option<&str> {
        self.inner.by_kind.get(kind).map(|s| s.uri.as_str())
    }

    /// Unsolicited device events (`card_removed`, `paper_low`, `paper_out`, `offline`) from
    /// now on. Each subscriber gets every event; one that lags loses the oldest.
    pub fn events(&self) -> broadcast::Receiver<DeviceEvent> {
        self.inner.events.subscribe()
    }

    /// Calls `sink` with every device event from now on (on a task of its own, until these
    /// devices are dropped), e.g. to queue them for the server.
    pub fn on_event(&self, sink: impl Fn(DeviceEvent) + Send + Sync + 'static) {
        let mut rx = self.events();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => sink(e),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(dropped = n, "device events dropped: consumer too slow")
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Runs a call with the configured timeouts; a repeated `call_id` returns the first
    /// result without acting again.
    pub async fn handle(
        &self,
        call_id: &str,
        device: &str,
        action: &str,
        args: &Value,
    ) -> Result<Value, DeviceError> {
        self.run_call(call_id, device, action, args, None).await
    }

    /// Like [`XfsDevices::handle`], with the time the customer-facing command may take
    /// (the server's timeout for the call), so the device gives up in step with the server.
    pub async fn handle_with_timeout(
        &self,
        call_id: &str,
        device: &str,
        action: &str,
        args: &Value,
        timeout: Duration,
    ) -> Result<Value, DeviceError> {
        self.run_call(call_id, device, action, args, Some(timeout))
            .await
    }

    #[tracing::instrument(skip(self, args, timeout))]
    async fn run_call(
        &self,
        call_id: &str,
        device: &str,
        action: &str,
        args: &Value,
        timeout: Option<Duration>,
    ) -> CallResult {
        let mut done = {
            let mut calls = self.inner.calls.lock().unwrap_or_else(|p| p.into_inner());
            match calls.results.get(call_id) {
                Some(done) => {
                    tracing::info!("repeated call id: the first result is returned");
                    done.clone()
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    calls.results.insert(call_id.to_string(), rx.clone());
                    calls.order.push_back(call_id.to_string());
                    while calls.order.len() > REMEMBERED_CALLS {
                        if let Some(old) = calls.order.pop_front() {
                            calls.results.remove(&old);
                        }
                    }
                    // The call runs on its own task: it completes (and is remembered) even
                    // if our caller stops waiting, so a retry never acts twice.
                    let inner = self.inner.clone();
                    let (device, action, args) =
                        (device.to_string(), action.to_string(), args.clone());
                    tokio::spawn(
                        async move {
                            let result = inner.act(&device, &action, &args, timeout).await;
                            match &result {
                                Ok(_) => tracing::info!("device call done"),
                                Err(e) => tracing::warn!(code = %e.code, "device call failed"),
                            }
                            let _ = tx.send(Some(result));
                        }
                        .instrument(tracing::Span::current()),
                    );
                    rx
                }
            }
        };
        let result = match done.wait_for(Option::is_some).await {
            Ok(result) => result.clone(),
            Err(_) => None,
        };
        result.unwrap_or_else(|| Err(device_error("hardware_error")))
    }
}

impl Inner {
    async fn act(
        &self,
        device: &str,
        action: &str,
        args: &Value,
        timeout: Option<Duration>,
    ) -> CallResult {
        if !self.by_kind.contains_key(device) {
            return Err(DeviceError {
                code: "no_device".into(),
                message: super::failure_message("no_device").into(),
            });
        }
        let customer = timeout.unwrap_or(self.config.customer_timeout);
        let machine = timeout.unwrap_or(self.config.device_timeout);
        match (device, action) {
            ("card_reader", "read") => self.read_card(customer).await,
            ("card_reader", "eject") => self.move_card("exit", machine).await,
            ("card_reader", "retain") => {
                let unit = self.config.retain_unit.clone();
                self.move_card(&unit, machine).await
            }
            ("pin_pad", "enter_pin") => self.enter_pin(customer).await,
            ("receipt_printer", "print") => {
                self.print(
                    "receipt_printer",
                    &self.config.receipt_printer,
                    args,
                    machine,
                )
                .await
            }
            ("queue_printer", "print_ticket") => {
                self.print("queue_printer", &self.config.queue_printer, args, machine)
                    .await
            }
            ("camera", "capture") => self.capture(machine).await,
            _ => Err(DeviceError {
                code: "unsupported_action".into(),
                message: format!("{device} cannot {action}"),
            }),
        }
    }

    /// Runs one command on the service of `kind`; anything but `success` is an error in our
    /// codes.
    async fn run(
        &self,
        kind: &str,
        command: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Completion, DeviceError> {
        let service = self
            .by_kind
            .get(kind)
            .ok_or_else(|| device_error("no_device"))?;
        let client = service
            .client(&self.events, self.config.connect_timeout)
            .await?;
        let completion = client
            .command(command, payload, timeout)
            .await
            .map_err(|e| {
                tracing::warn!(command, error = %e, "XFS4IoT command failed");
                device_error(match e {
                    XfsError::Timeout { .. } => "timeout",
                    XfsError::Connect { .. } | XfsError::ConnectionLost => "connection_lost",
                    XfsError::Rejected { status, .. } if status == "tooManyRequests" => {
                        "device_not_ready"
                    }
                    XfsError::Rejected { .. } => "unsupported",
                })
            })?;
        if completion.is_success() {
            return Ok(completion);
        }
        let code = map_failure(
            &completion.completion_code,
            completion.error_code.as_deref(),
        );
        tracing::warn!(
            command,
            completion_code = %completion.completion_code,
            error_code = completion.error_code.as_deref().unwrap_or(""),
            description = completion.error_description.as_deref().unwrap_or(""),
            code,
            "XFS4IoT command completed with an error"
        );
        Err(device_error(code))
    }

    async fn read_card(&self, timeout: Duration) -> CallResult {
        let c = self
            .run(
                "card_reader",
                "CardReader.ReadRawData",
                json!({"track2": true, "chip": true}),
                timeout,
            )
            .await?;
        let track2 = c.payload.get("track2");
        let status = track2
            .and_then(|t| t.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("ok");
        let pan = track2
            .filter(|_| status == "ok")
            .and_then(|t| t.get("data"))
            .and_then(Value::as_str)
            .and_then(decode_base64)
            .and_then(|bytes| pan_from_track2(&String::from_utf8_lossy(&bytes)));
        let Some(pan) = pan else {
            tracing::warn!(track2_status = status, "no card number in the track 2 data");
            return Err(device_error("read_error"));
        };
        let last4 = pan[pan.len() - 4..].to_string();
        tracing::info!(card_last4 = %last4, "card read");
        *self.last_pan.lock().unwrap_or_else(|p| p.into_inner()) = Some(pan.clone());
        Ok(json!({"card_number": pan, "card_last4": last4}))
    }

    async fn move_card(&self, to: &str, timeout: Duration) -> CallResult {
        self.run("card_reader", "CardReader.Move", json!({"to": to}), timeout)
            .await?;
        // The card was returned or retained: no PIN block may be bound to it any more.
        *self.last_pan.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(json!({"done": true}))
    }

    /// `Keyboard.PinEntry` (the PIN stays in the PIN pad), then `PinPad.GetPinBlock` in
    /// ISO-0 bound to the card just read.
    async fn enter_pin(&self, timeout: Duration) -> CallResult {
        let pan = self
            .last_pan
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(pan) = pan else {
            tracing::warn!("PIN entry without a card read: an ISO-0 PIN block needs the PAN");
            return Err(device_error("no_card"));
        };
        let mut keys = Map::new();
        for key in [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "clear",
            "backspace",
        ] {
            keys.insert(key.into(), json!({"terminate": false}));
        }
        for key in ["enter", "cancel"] {
            keys.insert(key.into(), json!({"terminate": true}));
        }
        let entry = self
            .run(
                "pin_pad",
                "Keyboard.PinEntry",
                json!({
                    "minLen": self.config.pin_min_len,
                    "maxLen": self.config.pin_max_len,
                    "autoEnd": false,
                    "activeKeys": keys,
                }),
                timeout,
            )
            .await?;
        let how = entry.payload.get("completion").and_then(Value::as_str);
        tracing::info!(
            key_events = entry.events.len(),
            completion = how.unwrap_or(""),
            "PIN entered"
        );
        if how == Some("cancel") {
            return Err(device_error("cancelled"));
        }
        let block = self
            .run(
                "pin_pad",
                "PinPad.GetPinBlock",
                json!({
                    // ISO-0: the PAN without its check digit.
                    "customerData": &pan[..pan.len() - 1],
                    "format": "iso0",
                    "key": self.config.pin_key,
                }),
                self.config.device_timeout,
            )
            .await?;
        let Some(bytes) = block
            .payload
            .get("pinBlock")
            .and_then(Value::as_str)
            .and_then(decode_base64)
            .filter(|b| !b.is_empty())
        else {
            tracing::warn!("PinPad.GetPinBlock returned no PIN block");
            return Err(device_error("hardware_error"));
        };
        Ok(json!({"pin_block": hex_upper(&bytes), "format": "ISO-0"}))
    }

    async fn print(
        &self,
        kind: &str,
        setup: &PrinterSetup,
        args: &Value,
        timeout: Duration,
    ) -> CallResult {
        let fields = print_fields(args);
        let (command, payload) = match &setup.form_name {
            Some(form) => {
                let mut p = json!({"formName": form, "fields": fields});
                if let Some(media) = &setup.media_name {
                    p["mediaName"] = json!(media);
                }
                if let Some(control) = &setup.media_control {
                    p["mediaControl"] = control.clone();
                }
                ("Printer.PrintForm", p)
            }
            None => {
                let text = render_text(&fields);
                let data = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                ("Printer.PrintRaw", json!({"inputData": "no", "data": data}))
            }
        };
        self.run(kind, command, payload, timeout).await?;
        Ok(json!({
            "printed": true,
            "fields": args.get("fields").cloned().unwrap_or(Value::Null),
        }))
    }

    async fn capture(&self, timeout: Duration) -> CallResult {
        let c = self
            .run(
                "camera",
                "Camera.TakePicture",
                json!({"camera": self.config.camera}),
                timeout,
            )
            .await?;
        let Some(image) = c
            .payload
            .get("pictureFile")
            .and_then(Value::as_str)
            .and_then(decode_base64)
            .filter(|b| !b.is_empty())
        else {
            tracing::warn!("Camera.TakePicture returned no picture");
            return Err(device_error("hardware_error"));
        };
        let hash = Sha256::digest(&image);
        let (width, height) = match image_size(&image) {
            Some((w, h)) => (json!(w), json!(h)),
            None => (Value::Null, Value::Null),
        };
        Ok(json!({
            "image_hash": format!("sha256:{}", hex_lower(&hash)),
            "width": width,
            "height": height,
        }))
    }
}

/// Connects to a service and asks which interfaces it implements.
async fn probe(uri: &str, config: &XfsConfig) -> Result<Probed, XfsError> {
    let (client, unsolicited) = XfsClient::connect(uri, config.connect_timeout).await?;
    let mut interfaces = match client
        .command("Common.Capabilities", json!({}), config.discover_timeout)
        .await
    {
        Ok(c) if c.is_success() => interfaces_of(&c.payload),
        Ok(c) => {
            tracing::warn!(%uri, code = %c.completion_code, "Common.Capabilities failed");
            Vec::new()
        }
        Err(XfsError::Timeout { .. }) => {
            tracing::warn!(%uri, "Common.Capabilities timed out");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    if interfaces.is_empty() {
        interfaces = interfaces_from_uri(uri);
    }
    Ok(Probed {
        uri: uri.to_string(),
        interfaces,
        client,
        unsolicited,
    })
}

/// Interface names from a `Common.Capabilities` completion: `interfaces[].name` (top level
/// or under `common`), else the interface-specific capability sections present.
fn interfaces_of(payload: &Value) -> Vec<String> {
    let list = payload
        .get("interfaces")
        .or_else(|| payload.pointer("/common/interfaces"))
        .and_then(Value::as_array);
    if let Some(list) = list {
        return list
            .iter()
            .filter_map(|i| i.get("name").and_then(Value::as_str))
            .map(String::from)
            .collect();
    }
    [
        ("cardReader", "CardReader"),
        ("keyboard", "Keyboard"),
        ("pinPad", "PinPad"),
        ("printer", "Printer"),
        ("camera", "Camera"),
    ]
    .iter()
    .filter(|(section, _)| payload.get(*section).is_some())
    .map(|(_, name)| name.to_string())
    .collect()
}

/// A guess from the URI's last segment, for services that do not describe themselves.
fn interfaces_from_uri(uri: &str) -> Vec<String> {
    let last = last_segment(uri);
    let names: &[&str] = if last.contains("cardreader") || last.contains("idc") {
        &["CardReader"]
    } else if last.contains("pinpad") || last.contains("keyboard") || last.contains("encryptor") {
        &["Keyboard", "PinPad"]
    } else if last.contains("printer") || last.contains("ptr") {
        &["Printer"]
    } else if last.contains("camera") {
        &["Camera"]
    } else {
        &[]
    };
    names.iter().map(|n| n.to_string()).collect()
}

fn last_segment(uri: &str) -> String {
    uri.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Which probed service (by index) serves each of our kinds.
fn assign_roles(probed: &[Probed], config: &XfsConfig) -> Vec<(&'static str, usize)> {
    let has = |p: &Probed, name: &str| p.interfaces.iter().any(|i| i == name);
    let mut roles = Vec::new();
    if let Some(i) = probed.iter().position(|p| has(p, "CardReader")) {
        roles.push(("card_reader", i));
    }
    let pin_pad = probed
        .iter()
        .position(|p| has(p, "Keyboard") && has(p, "PinPad"))
        .or_else(|| probed.iter().position(|p| has(p, "Keyboard")));
    if let Some(i) = pin_pad {
        roles.push(("pin_pad", i));
    }
    if let Some(i) = probed.iter().position(|p| has(p, "Camera")) {
        roles.push(("camera", i));
    }
    let printers: Vec<usize> = (0..probed.len())
        .filter(|i| has(&probed[*i], "Printer"))
        .collect();
    let by_hint = |hint: &str, taken: Option<usize>| {
        let hint = hint.to_ascii_lowercase();
        printers.iter().copied().find(|i| {
            Some(*i) != taken && !hint.is_empty() && last_segment(&probed[*i].uri).contains(&hint)
        })
    };
    let mut receipt = by_hint(&config.receipt_printer.uri_hint, None);
    let mut queue = by_hint(&config.queue_printer.uri_hint, receipt);
    let (hinted_receipt, hinted_queue) = (receipt, queue);
    let mut rest = printers
        .iter()
        .copied()
        .filter(|i| Some(*i) != hinted_receipt && Some(*i) != hinted_queue);
    if receipt.is_none() {
        receipt = rest.next();
    }
    if queue.is_none() {
        queue = rest.next();
    }
    if let Some(i) = receipt {
        roles.push(("receipt_printer", i));
    }
    if let Some(i) = queue {
        roles.push(("queue_printer", i));
    }
    roles
}

/// Turns a service's unsolicited messages into our device events; when the connection
/// ends, its devices are reported `offline`.
fn forward_events(
    mut unsolicited: mpsc::Receiver<XfsMessage>,
    kinds: Vec<&'static str>,
    events: broadcast::Sender<DeviceEvent>,
) {
    if kinds.is_empty() {
        return;
    }
    tokio::spawn(async move {
        while let Some(msg) = unsolicited.recv().await {
            for e in map_unsolicited(&msg, &kinds) {
                tracing::info!(device = %e.device, event = %e.event, "device event");
                let _ = events.send(e);
            }
        }
        for kind in &kinds {
            let _ = events.send(DeviceEvent {
                device: kind.to_string(),
                event: "offline".into(),
                data: Some(json!({"reason": "connection_lost"})),
            });
        }
    });
}

/// Our events for one unsolicited XFS4IoT message of a service serving `kinds`.
pub(crate) fn map_unsolicited(msg: &XfsMessage, kinds: &[&'static str]) -> Vec<DeviceEvent> {
    let p = &msg.payload;
    let event = |kind: &str, name: &str, data: Option<Value>| DeviceEvent {
        device: kind.to_string(),
        event: name.to_string(),
        data,
    };
    let printers = || kinds.iter().filter(|k| k.ends_with("_printer"));
    let paper = |level: &str| match level {
        "low" => Some("paper_low"),
        "out" => Some("paper_out"),
        _ => None,
    };
    let mut out = Vec::new();
    match msg.header.name.as_str() {
        "CardReader.MediaRemovedEvent" => {
            if kinds.contains(&"card_reader") {
                out.push(event("card_reader", "card_removed", None));
            }
        }
        "Printer.PaperThresholdEvent" => {
            let threshold = p.get("threshold").and_then(Value::as_str).unwrap_or("");
            if let Some(name) = paper(threshold) {
                let source = p.get("paperSource").cloned().unwrap_or(Value::Null);
                for k in printers() {
                    out.push(event(k, name, Some(json!({"paper_source": source}))));
                }
            }
        }
        "Common.StatusChangedEvent" => {
            let state = p.pointer("/common/device").and_then(Value::as_str);
            match state {
                Some(
                    state
                    @ ("offline" | "powerOff" | "noDevice" | "hardwareError" | "fraudAttempt"),
                ) => {
                    for k in kinds {
                        out.push(event(k, "offline", Some(json!({"state": state}))));
                    }
                }
                Some("online") => {
                    for k in kinds {
                        out.push(event(k, "online", None));
                    }
                }
                _ => {}
            }
            if let Some(sources) = p.pointer("/printer/paper").and_then(Value::as_object) {
                for (source, level) in sources {
                    if let Some(name) = level.as_str().and_then(paper) {
                        for k in printers() {
                            out.push(event(k, name, Some(json!({"paper_source": source}))));
                        }
                    }
                }
            }
        }
        other => tracing::debug!(name = other, "unsolicited XFS4IoT message not mapped"),
    }
    out
}

/// The fields to print: `args.fields` when it is an object, else the call's arguments;
/// values become strings (arrays of strings stay arrays: XFS4IoT form fields take both).
fn print_fields(args: &Value) -> Map<String, Value> {
    let source = match args.get("fields") {
        Some(Value::Object(fields)) => fields,
        _ => match args {
            Value::Object(all) => all,
            _ => return Map::new(),
        },
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    source
        .iter()
        .filter(|(k, v)| k.as_str() != "timeout_ms" && k.as_str() != "fields" && !v.is_null())
        .map(|(k, v)| {
            let value = match v {
                Value::Array(items) => Value::Array(items.iter().map(|i| json!(text(i))).collect()),
                other => Value::String(text(other)),
            };
            (k.clone(), value)
        })
        .collect()
}

/// `name: value` lines for `Printer.PrintRaw`.
fn render_text(fields: &Map<String, Value>) -> String {
    let mut text = String::new();
    for (name, value) in fields {
        let value = match value {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.push_str(&format!("{name}: {value}\n"));
    }
    text.push('\n');
    text
}

/// The PAN of track 2 data (`;PAN=YYMM…?`, or the chip's `PAN D YYMM…` form): the digits
/// before the separator, 12 to 19 of them.
fn pan_from_track2(track: &str) -> Option<String> {
    let body = track.trim().trim_start_matches(';');
    let pan = body.split(['=', 'D', 'd']).next()?;
    let valid = (12..=19).contains(&pan.len()) && pan.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| pan.to_string())
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Width and height of a PNG, JPEG or BMP picture, read from its header.
fn image_size(image: &[u8]) -> Option<(u32, u32)> {
    let be16 = |i: usize| Some(u16::from_be_bytes([*image.get(i)?, *image.get(i + 1)?]) as u32);
    let be32 = |i: usize| Some(u32::from_be_bytes(image.get(i..i + 4)?.try_into().ok()?));
    let le32 = |i: usize| Some(i32::from_le_bytes(image.get(i..i + 4)?.try_into().ok()?));
    if image.starts_with(b"\x89PNG\r\n\x1a\n") && image.get(12..16) == Some(b"IHDR") {
        return Some((be32(16)?, be32(20)?));
    }
    if image.starts_with(b"BM") {
        return Some((le32(18)?.unsigned_abs(), le32(22)?.unsigned_abs()));
    }
    if image.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 3 < image.len() {
            if image[i] != 0xFF {
                return None;
            }
            let marker = image[i + 1];
            if marker == 0xFF {
                i += 1;
                continue;
            }
            if (0xD0..=0xD9).contains(&marker) || marker == 0x01 {
                i += 2;
                continue;
            }
            let is_frame = (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker);
            if is_frame {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + be16(i + 2)? as usize;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xfs4iot::client::{Header, MessageType};

    #[test]
    fn the_card_number_is_the_digits_before_the_separator() {
        assert_eq!(
            pan_from_track2("6222021001123456789=2612101").as_deref(),
            Some("6222021001123456789")
        );
        assert_eq!(
            pan_from_track2(";6222021001123456789=2612101?").as_deref(),
            Some("6222021001123456789")
        );
        assert_eq!(
            pan_from_track2("6222021001123456789D2612101").as_deref(),
            Some("6222021001123456789")
        );
        assert_eq!(pan_from_track2("12AB=99"), None);
        assert_eq!(pan_from_track2("=2612"), None);
    }

    #[test]
    fn picture_sizes_come_from_png_jpeg_and_bmp_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(640u32.to_be_bytes());
        png.extend(480u32.to_be_bytes());
        assert_eq!(image_size(&png), Some((640, 480)));

        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01,
            0xE0, 0x02, 0x80,
        ];
        assert_eq!(image_size(&jpeg), Some((640, 480)));

        let mut bmp = vec![b'B', b'M'];
        bmp.resize(18, 0);
        bmp.extend(320i32.to_le_bytes());
        bmp.extend((-240i32).to_le_bytes());
        assert_eq!(image_size(&bmp), Some((320, 240)));

        assert_eq!(image_size(b"GIF89a"), None);
    }

    #[test]
    fn print_fields_are_strings_from_fields_or_from_the_arguments() {
        let f = print_fields(&json!({"fields": {"amount": 12.5, "name": "张三"}}));
        assert_eq!(f["amount"], "12.5");
        assert_eq!(f["name"], "张三");
        let f = print_fields(&json!({"ticket": "A012", "waiting": 3, "timeout_ms": 9}));
        assert_eq!(f["ticket"], "A012");
        assert_eq!(f["waiting"], "3");
        assert!(!f.contains_key("timeout_ms"));
        assert_eq!(render_text(&f), "ticket: A012\nwaiting: 3\n\n");
    }

    fn unsolicited(name: &str, payload: Value) -> XfsMessage {
        XfsMessage {
            header: Header {
                kind: MessageType::Unsolicited,
                name: name.into(),
                request_id: None,
                version: Some("2.0".into()),
                timeout: None,
                status: None,
                completion_code: None,
                error_description: None,
            },
            payload,
        }
    }

    #[test]
    fn status_changes_map_to_offline_and_paper_levels() {
        let e = map_unsolicited(
            &unsolicited(
                "Common.StatusChangedEvent",
                json!({"common": {"device": "powerOff"}}),
            ),
            &["camera"],
        );
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].device.as_str(), e[0].event.as_str()),
            ("camera", "offline")
        );

        let e = map_unsolicited(
            &unsolicited(
                "Common.StatusChangedEvent",
                json!({"printer": {"paper": {"upper": "out"}}}),
            ),
            &["queue_printer"],
        );
        assert_eq!(e[0].event, "paper_out");

        let e = map_unsolicited(
            &unsolicited(
                "Common.StatusChangedEvent",
                json!({"common": {"device": "deviceBusy"}}),
            ),
            &["camera"],
        );
        assert!(e.is_empty());
    }

    #[test]
    fn interfaces_come_from_capabilities_or_the_uri() {
        assert_eq!(
            interfaces_of(&json!({"interfaces": [{"name": "Common"}, {"name": "Printer"}]})),
            vec!["Common", "Printer"]
        );
        assert_eq!(
            interfaces_of(&json!({"common": {"interfaces": [{"name": "Camera"}]}})),
            vec!["Camera"]
        );
        assert_eq!(
            interfaces_of(&json!({"common": {}, "cardReader": {"type": "motor"}})),
            vec!["CardReader"]
        );
        assert_eq!(
            interfaces_from_uri("ws://h:1/xfs4iot/v1.0/ReceiptPrinter"),
            vec!["Printer"]
        );
    }
}
