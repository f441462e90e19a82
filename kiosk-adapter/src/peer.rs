//! The device peer: connects to Concierge's kiosk WebSocket as role `devices`, advertises
//! its devices, runs each `device.invoke` on its driver (concurrently: a PIN entry does not
//! hold up a printer) and answers with `device.result`, and sends queued device events
//! (including those from while it was disconnected). When the connection drops it
//! reconnects with jittered exponential backoff (0.5 s doubling to 30 s).
//!
//! Connections go through a [`Connector`]: `wss://` trusting the Mozilla roots and an
//! optional CA file, with an optional client certificate (mutual TLS); plain `ws://` only to
//! this machine unless allowed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kiosk_connect::{ConnectError, Connector, TlsOptions};
use kiosk_protocol::{ClientMessage, PeerRole, ServerMessage};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::drivers::Drivers;

/// Where and who to connect as.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// `wss://host:port/v1/kiosk/ws` (`ws://` to this machine only, unless allowed)
    pub url: String,
    pub kiosk_id: String,
    pub token: String,
}

/// Why a connection attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The server refused the peer (bad token, unknown kiosk): retrying will not help.
    #[error("refused by the server: {0}")]
    Refused(String),
    /// The connection failed or dropped; retry.
    #[error("connection: {0}")]
    Connection(String),
}

/// The longest a device call may take, whatever the server asks.
const MAX_CALL: Duration = Duration::from_secs(300);

/// [`serve_once_with`] through a connector with the default settings (the Mozilla roots,
/// no client certificate, plain `ws://` to this machine only).
pub async fn serve_once(config: &PeerConfig, drivers: &Arc<Drivers>) -> Result<(), PeerError> {
    serve_once_with(config, &default_connector()?, drivers).await
}

/// Connects through `connector` and serves device calls until the connection ends.
pub async fn serve_once_with(
    config: &PeerConfig,
    connector: &Connector,
    drivers: &Arc<Drivers>,
) -> Result<(), PeerError> {
    let ws = connector.connect(&config.url).await.map_err(|e| match e {
        // Settings, not the network: retrying will not help.
        ConnectError::PlainRemote(_) | ConnectError::BadUrl(_) => PeerError::Refused(e.to_string()),
        e => PeerError::Connection(e.to_string()),
    })?;
    let (mut sink, mut rx) = ws.split();
    let (out, mut outq) = mpsc::channel::<ClientMessage>(64);
    let writer = tokio::spawn(async move {
        while let Some(msg) = outq.recv().await {
            let text = serde_json::to_string(&msg).expect("client messages serialize");
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
    });
    let hello = ClientMessage::Hello {
        kiosk_id: config.kiosk_id.clone(),
        token: Some(config.token.clone()),
        session_id: None,
        role: PeerRole::Devices,
        capabilities: drivers.capabilities(),
    };
    send(&out, hello).await?;
    let result = loop {
        let frame = tokio::select! {
            f = rx.next() => f,
            _ = drivers.event_queued() => {
                flush_events(drivers, &out).await?;
                continue;
            }
        };
        let Some(frame) = frame else { break Ok(()) };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => break Err(PeerError::Connection(e.to_string())),
        };
        let Message::Text(text) = frame else { continue };
        let Ok(msg) = serde_json::from_str::<ServerMessage>(&text) else {
            tracing::warn!("unreadable server message ignored");
            continue;
        };
        match msg {
            ServerMessage::Welcome { .. } => {
                tracing::info!(kiosk_id = %config.kiosk_id, "connected as device peer");
                // Events from while we were away.
                flush_events(drivers, &out).await?;
            }
            ServerMessage::DeviceInvoke {
                call_id,
                device,
                action,
                args,
                timeout_ms,
            } => {
                let drivers = drivers.clone();
                let out = out.clone();
                tokio::spawn(async move {
                    let limit = Duration::from_millis(timeout_ms).min(MAX_CALL);
                    let result = drivers.call(&call_id, &device, &action, &args, limit).await;
                    tracing::info!(%call_id, %device, %action, ok = result.is_ok(), "device call");
                    let (ok, data, error) = match result {
                        Ok(v) => (true, Some(v), None),
                        Err(e) => (false, None, Some(e)),
                    };
                    let _ = out
                        .send(ClientMessage::DeviceResult {
                            call_id,
                            ok,
                            data,
                            error,
                        })
                        .await;
                });
            }
            ServerMessage::Error { code, message } => {
                use kiosk_protocol::ErrorCode::*;
                if matches!(code, Unauthorized | UnknownKiosk | HelloRequired) {
                    break Err(PeerError::Refused(format!("{}: {message}", code.as_str())));
                }
                // A result for a call the server already timed out: dropped, with a log line.
                tracing::warn!(code = code.as_str(), %message, "server reported an error");
            }
            ServerMessage::SessionEnd { reason } => {
                tracing::info!(%reason, "server ended the connection");
                break Ok(());
            }
            _ => {}
        }
    };
    drop(out);
    writer.abort();
    result
}

async fn flush_events(
    drivers: &Drivers,
    out: &mpsc::Sender<ClientMessage>,
) -> Result<(), PeerError> {
    let events = drivers.take_events();
    for (i, e) in events.iter().enumerate() {
        let msg = ClientMessage::DeviceEvent {
            device: e.device.clone(),
            event: e.event.clone(),
            data: e.data.clone(),
        };
        if out.send(msg).await.is_err() {
            drivers.requeue(events[i..].to_vec());
            return Err(PeerError::Connection("writer closed".into()));
        }
    }
    Ok(())
}

async fn send(out: &mpsc::Sender<ClientMessage>, msg: ClientMessage) -> Result<(), PeerError> {
    out.send(msg)
        .await
        .map_err(|_| PeerError::Connection("writer closed".into()))
}

fn default_connector() -> Result<Connector, PeerError> {
    Connector::new(&TlsOptions::default()).map_err(|e| PeerError::Refused(e.to_string()))
}

/// [`run_with`] through a connector with the default settings.
pub async fn run(config: PeerConfig, drivers: Arc<Drivers>) -> PeerError {
    match default_connector() {
        Ok(connector) => run_with(config, connector, drivers).await,
        Err(e) => e,
    }
}

/// Serves forever through `connector`, reconnecting with jittered exponential backoff;
/// returns only when the server refuses the peer's identity or the URL breaks the policy.
pub async fn run_with(
    config: PeerConfig,
    connector: Connector,
    drivers: Arc<Drivers>,
) -> PeerError {
    let mut delay = Duration::from_millis(500);
    loop {
        match serve_once_with(&config, &connector, &drivers).await {
            Err(e @ PeerError::Refused(_)) => return e,
            Err(e) => tracing::warn!(error = %e, "device peer disconnected"),
            Ok(()) => delay = Duration::from_millis(500),
        }
        let jitter = jitter_fraction();
        let wait = delay.mul_f64(0.5 + jitter);
        tracing::info!(wait_ms = wait.as_millis() as u64, "reconnecting");
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// A number in [0, 1) that differs between processes and calls, so kiosks that lost the
/// server together do not all come back in the same instant.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = (nanos as u64 ^ (std::process::id() as u64).rotate_left(17))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}
