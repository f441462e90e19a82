//! `concierge eval kiosk`: how well the whole kiosk understands people. The real
//! application is built in this process on a database of its own (the repository's data,
//! the configured settings), a kiosk is registered, and each question of a set
//! ([`set`]) is asked over the kiosk WebSocket as a kiosk screen would, in a fresh session
//! each. What the session did (articles shown, choices offered, the journey started read
//! from the stored session state, device calls, a person asked for) is judged against what
//! the set expects ([`verdict`]).
//!
//! The screen declares every device kind, so a device call comes to it: that alone is a
//! finding, and it answers at once with a failure so the turn can finish.

pub mod set;
pub mod verdict;

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use kiosk_protocol::devices::Action;
use kiosk_protocol::{ClientMessage, DeviceError, HandoffKind, PeerRole, ServerMessage, Ui};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::config::{AsrBackend, Settings, TtsBackend};
use crate::datafile::DataError;
use crate::dialog::engine::Waiting;
use crate::dialog::SessionState;
use crate::startup::Application;
use crate::state::AppState;

use set::Item;
use verdict::{Observed, Report};

/// The kiosk the questions are asked from.
const KIOSK_ID: &str = "EVAL01";
/// After a reply, this long without a message ends the turn (unless the stored state
/// says an effect is still running).
const QUIET: Duration = Duration::from_millis(300);
/// The longest a question may take, from connecting to the end of its turn.
const TURN_TIMEOUT: Duration = Duration::from_secs(30);
/// The knowledge journey: answering a question is not starting a journey.
const KNOWLEDGE_FLOW: &str = "knowledge.question";

/// Why an evaluation could not run (a question that goes wrong is a result, not this).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The set (or the knowledge base it is checked against) has problems.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<DataError>),
    #[error("cannot build the application: {0:#}")]
    Build(anyhow::Error),
    #[error("cannot register the evaluation kiosk: {0}")]
    Kiosk(String),
    #[error("kiosk session: {0}")]
    Session(String),
    #[error("reading the session: {0}")]
    Store(#[from] sqlx::Error),
    #[error("temporary database folder: {0}")]
    Io(#[from] std::io::Error),
}

/// A folder removed when dropped (the evaluation's own database).
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `settings` made fit for an evaluation: listening on a free port of 127.0.0.1, on a
/// fresh SQLite database in a scratch folder (kept until the returned guard drops), and
/// without speech (questions come as text; the screen asks for no voice).
pub fn isolated(mut settings: Settings) -> Result<(Settings, ScratchDir), EvalError> {
    let dir = std::env::temp_dir().join(format!("concierge-eval-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("eval.db").display());
    settings.server.listen = "127.0.0.1:0".into();
    settings.database.url = url.into();
    settings.speech.asr_backend = AsrBackend::Off;
    settings.speech.tts.backend = TtsBackend::Off;
    Ok((settings, ScratchDir(dir)))
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The application under evaluation, serving in this process.
pub struct EvalApp {
    state: AppState,
    url: String,
    token: String,
    stop: CancellationToken,
    served: tokio::task::JoinHandle<()>,
}

impl EvalApp {
    /// Builds and starts the application, and registers the evaluation kiosk in `branch`.
    pub async fn start(settings: Settings, branch: &str) -> Result<EvalApp, EvalError> {
        let app = Application::build(settings)
            .await
            .map_err(EvalError::Build)?;
        let url = format!("ws://127.0.0.1:{}/v1/kiosk/ws", app.port());
        let state = app.state();
        // Questions are asked once every article can be found by meaning too.
        state.knowledge.embedded().await;
        let token = crate::access::kiosks::register(&state.db, KIOSK_ID, branch, PeerRole::Screen)
            .await
            .map_err(|e| EvalError::Kiosk(e.to_string()))?;
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        let served = tokio::spawn(async move {
            if let Err(e) = app
                .run_until_stopped(async move { cancelled.cancelled().await })
                .await
            {
                tracing::error!(error = %e, "the evaluated application stopped");
            }
        });
        Ok(EvalApp {
            state,
            url,
            token,
            stop,
            served,
        })
    }

    /// Asks every question, one fresh session each, and judges the answers.
    pub async fn run(&self, file: &str, items: &[Item]) -> Result<Report, EvalError> {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let seen = self.ask(&item.text).await?;
            outcomes.push(verdict::outcome(item, &seen));
        }
        Ok(Report::new(file, outcomes))
    }

    /// Asks one question in a new session and reports what the kiosk did.
    pub async fn ask(&self, text: &str) -> Result<Observed, EvalError> {
        let deadline = tokio::time::Instant::now() + TURN_TIMEOUT;
        let (mut ws, session_id) = self.open().await?;
        send(&mut ws, &ClientMessage::UserText { text: text.into() }).await?;
        let mut seen = Observed::default();
        let mut replied = false;
        loop {
            let now = tokio::time::Instant::now();
            let wait = if replied {
                QUIET
            } else {
                deadline.saturating_duration_since(now)
            };
            let frame = match tokio::time::timeout(wait, ws.next()).await {
                Ok(frame) => frame,
                Err(_) if !replied => {
                    seen.errors.push("no_reply".into());
                    break;
                }
                Err(_) if now >= deadline || self.settled(&session_id).await? => break,
                Err(_) => continue,
            };
            let Some(Ok(frame)) = frame else { break };
            let Message::Text(t) = frame else { continue };
            let Ok(msg) = serde_json::from_str::<ServerMessage>(&t) else {
                seen.errors.push("unreadable_message".into());
                continue;
            };
            match self.note(&mut ws, &mut seen, msg).await? {
                Turn::Replied => replied = true,
                Turn::Ended => break,
                Turn::Going => {}
            }
        }
        let state = self.stored_state(&session_id).await?;
        seen.journey = self.journey(&state);
        let _ = send(&mut ws, &ClientMessage::SessionClose { reason: None }).await;
        let _ = ws.close(None).await;
        Ok(seen)
    }

    /// Stops the application and waits for it.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.served).await;
    }

    /// Connects, says hello as a screen that drives every device, and waits for the
    /// welcome and the opening reply; returns the session id.
    async fn open(&self) -> Result<(Ws, String), EvalError> {
        let failed = |e: &dyn std::fmt::Display| EvalError::Session(e.to_string());
        let (mut ws, _) = tokio_tungstenite::connect_async(self.url.as_str())
            .await
            .map_err(|e| failed(&e))?;
        let mut capabilities = vec!["text".to_string(), "choices".to_string()];
        for action in Action::ALL {
            let kind = format!("device:{}", action.names().0);
            if !capabilities.contains(&kind) {
                capabilities.push(kind);
            }
        }
        let hello = ClientMessage::Hello {
            kiosk_id: KIOSK_ID.into(),
            token: Some(self.token.clone()),
            session_id: None,
            role: PeerRole::Screen,
            capabilities,
        };
        send(&mut ws, &hello).await?;
        let mut session = None;
        loop {
            let frame = tokio::time::timeout(TURN_TIMEOUT, ws.next())
                .await
                .map_err(|_| failed(&"no welcome in time"))?;
            let Some(Ok(Message::Text(t))) = frame else {
                continue;
            };
            match serde_json::from_str::<ServerMessage>(&t).map_err(|e| failed(&e))? {
                ServerMessage::Welcome { session_id, .. } => session = session_id,
                ServerMessage::BotSay { .. } if session.is_some() => {
                    return Ok((ws, session.unwrap_or_default()))
                }
                ServerMessage::Error { code, message } => {
                    return Err(failed(&format!("{code:?}: {message}")))
                }
                _ => {}
            }
        }
    }

    /// Records one server message; device calls are answered (failed) at once.
    async fn note(
        &self,
        ws: &mut Ws,
        seen: &mut Observed,
        msg: ServerMessage,
    ) -> Result<Turn, EvalError> {
        match msg {
            ServerMessage::BotSay { ui, .. } => {
                if let Some(ui) = ui {
                    self.note_ui(seen, ui);
                }
                return Ok(Turn::Replied);
            }
            ServerMessage::UiShow(ui) => self.note_ui(seen, ui),
            ServerMessage::DeviceInvoke {
                call_id,
                device,
                action,
                ..
            } => {
                seen.devices.push(format!("{device}.{action}"));
                let failed = ClientMessage::DeviceResult {
                    call_id,
                    ok: false,
                    data: None,
                    error: Some(DeviceError {
                        code: "unavailable".into(),
                        message: "the evaluation kiosk has no devices".into(),
                    }),
                };
                send(ws, &failed).await?;
            }
            ServerMessage::Handoff { kind, .. } => {
                seen.handoff = Some(
                    match kind {
                        HandoffKind::Teller => "handoff.teller",
                        HandoffKind::RemoteExpert => "handoff.remote_expert",
                    }
                    .into(),
                );
            }
            ServerMessage::Error { code, .. } => {
                let code = serde_json::to_value(code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "error".into());
                seen.errors.push(code);
            }
            ServerMessage::SessionEnd { .. } => return Ok(Turn::Ended),
            _ => {}
        }
        Ok(Turn::Going)
    }

    fn note_ui(&self, seen: &mut Observed, ui: Ui) {
        if let Some(article) = ui.article {
            seen.articles.push(article.id);
        }
        for choice in ui.choices {
            if self.is_article(&choice.value) {
                seen.clarify.push(choice.value.clone());
            }
            seen.choices.push(choice.value);
        }
    }

    fn is_article(&self, id: &str) -> bool {
        self.state.content.articles.iter().any(|a| a.front.id == id)
    }

    /// Whether the session's turn is over: nothing waits on an effect.
    async fn settled(&self, session_id: &str) -> Result<bool, EvalError> {
        let state = self.stored_state(session_id).await?;
        Ok(state
            .stack
            .last()
            .is_none_or(|f| f.waiting != Waiting::Effect))
    }

    async fn stored_state(&self, session_id: &str) -> Result<SessionState, EvalError> {
        Ok(crate::session::store::load(&self.state.db, session_id)
            .await?
            .map(|r| r.state)
            .unwrap_or_default())
    }

    /// The journey the session started: its outermost running flow, or the flow of the
    /// last understood intent (a journey that already finished); answering a question is
    /// not a journey.
    fn journey(&self, state: &SessionState) -> Option<String> {
        let flows = &self.state.content.dialogs.flows;
        let is_journey = |name: &str| name != KNOWLEDGE_FLOW && flows.contains_key(name);
        state
            .stack
            .iter()
            .map(|f| f.flow.as_str())
            .chain(state.last_intent.as_deref())
            .find(|name| is_journey(name))
            .map(str::to_string)
    }
}

/// Where a turn is after a message.
enum Turn {
    Replied,
    Ended,
    Going,
}

async fn send(ws: &mut Ws, msg: &ClientMessage) -> Result<(), EvalError> {
    let text = serde_json::to_string(msg).map_err(|e| EvalError::Session(e.to_string()))?;
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| EvalError::Session(e.to_string()))
}
