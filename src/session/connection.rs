//! One kiosk WebSocket connection, from `hello` to close.
//!
//! Three parts joined by channels: the **reader** (this function's loop: decodes and checks
//! every frame, answers protocol-level messages itself), the **turn worker** (screen peers
//! only: runs turns in order, see [`super::turn`]) and the **writer** (the only task that
//! writes to the socket). The loop is generic over `Stream`/`Sink`, so it runs on any
//! transport that yields [`Frame`]s.
//!
//! Bad input never closes the connection unless it is about identity (hello, token, kiosk,
//! session ownership): the peer gets an `error` frame with a stable code and goes on.
//!
//! A connection cannot outlive its right to exist: its token is checked again every
//! `[live] recheck_secs` (revoked: `session.end {reason: "revoked"}`, close 1008), the
//! writer pings every `ping_secs` and a peer silent for `dead_peer_secs` (or whose writes
//! stall that long) is closed, and one kiosk holds at most `max_connections_per_kiosk`
//! connections on a node. An unknown kiosk and a wrong token get the same `unauthorized`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use kiosk_protocol::{
    decode_client, ClientMessage, ErrorCode, Limits, PeerRole, ServerMessage, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::audio::{AudioInput, Refusal};
use super::rate::TokenBucket;
use super::store::{self, SessionRecord};
use super::turn::{VoiceOut, Worker, WorkerEnd};
use crate::access::kiosks::{self, KioskAuth};
use crate::devices::{self, Completion, DeviceBroker};
use crate::dialog::SessionState;
use crate::domain::names::{KioskId, SessionId};
use crate::live::{self, Input, Kick};
use crate::speech::pipeline::{ListenEvent, VoiceState};
use crate::state::AppState;
use crate::store::now_ms;

/// A transport-neutral WebSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame with code and reason (sent), or received from the peer.
    Close(u16, String),
    /// Transport-level ping/pong, answered by the transport itself.
    Control,
}

/// Close codes used by the server.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
}

/// The close code for a connection kicked for `reason` ([`live::reason`]).
fn kicked_close(reason: &str) -> u16 {
    match reason {
        live::reason::REVOKED => close::POLICY,
        live::reason::LAGGING => close::GOING_AWAY,
        _ => close::NORMAL,
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Runs a connection until it ends. `bearer` is the token from the `Authorization` header.
pub async fn run<S, E>(app: AppState, socket: S, bearer: Option<String>)
where
    S: Stream<Item = Result<Frame, E>> + Sink<Frame> + Send + 'static,
    E: std::fmt::Display,
{
    let conn_id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (sink, stream) = socket.split();
    let (out_tx, out_rx) = mpsc::channel::<ServerMessage>(64);
    let close_with = Arc::new(Mutex::new((close::NORMAL, String::new())));
    let gone = CancellationToken::new();
    let writer = Writer {
        sink,
        ping_every: app.settings.live.ping_every(),
        stall: app.settings.live.dead_after(),
        gone: gone.clone(),
    };
    let writer = tokio::spawn(writer.run(out_rx, close_with.clone()));
    let span = tracing::info_span!(
        "kiosk_conn",
        conn_id,
        kiosk_id = tracing::field::Empty,
        session_id = tracing::field::Empty
    );
    Connection {
        app,
        conn_id,
        out: out_tx,
        voice: None,
        close_with,
        limits_bucket: TokenBucket::new(0, 0),
        gone,
        refused_devices: Vec::new(),
    }
    .serve(stream, bearer)
    .instrument(span)
    .await;
    let _ = writer.await;
}

/// The only task that writes to the socket: messages in order, a ping every `ping_secs`;
/// a write that stalls for `dead_peer_secs` (a peer that stopped reading) ends it, and
/// `gone` tells the reader.
struct Writer<K> {
    sink: K,
    ping_every: Duration,
    /// The longest one write may take.
    stall: Duration,
    gone: CancellationToken,
}

impl<K: Sink<Frame> + Unpin> Writer<K> {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<ServerMessage>,
        close_with: Arc<Mutex<(u16, String)>>,
    ) {
        let every = self.ping_every;
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = ping.tick() => {
                    if self.put(Frame::Control).await {
                        continue;
                    }
                    return self.gone.cancel();
                }
            };
            let Some(msg) = msg else { break };
            if !self.message(msg).await {
                return self.gone.cancel();
            }
            // What else is queued goes out with it: one write to the socket, not one each.
            while let Ok(msg) = rx.try_recv() {
                if !self.message(msg).await {
                    return self.gone.cancel();
                }
            }
            if !self.flush().await {
                return self.gone.cancel();
            }
        }
        let (code, reason) = close_with.lock().unwrap().clone();
        if self.put(Frame::Close(code, reason)).await {
            let _ = tokio::time::timeout(self.stall, self.sink.close()).await;
        }
    }

    /// Queues one message (and the bot's voice after its `bot.audio`) for the socket, to
    /// be flushed by [`Self::flush`]; false if the peer is gone or stalled.
    async fn message(&mut self, msg: ServerMessage) -> bool {
        let text = serde_json::to_string(&msg).expect("server messages serialize");
        if !self.feed(Frame::Text(text)).await {
            return false;
        }
        // The bot's voice: the clip follows its `bot.audio` as binary frames of 100 ms.
        if let ServerMessage::BotAudio {
            turn_id,
            sample_rate,
            pcm,
            ..
        } = msg
        {
            let frame_bytes = (sample_rate as usize / 10).max(1) * 2;
            for chunk in pcm.chunks(frame_bytes) {
                if !self.feed(Frame::Binary(chunk.to_vec())).await {
                    return false;
                }
            }
            let end = ServerMessage::BotAudioEnd { turn_id };
            let text = serde_json::to_string(&end).expect("server messages serialize");
            return self.feed(Frame::Text(text)).await;
        }
        true
    }

    /// Queues one frame within `dead_peer_secs` (the transport writes once its buffer
    /// fills, or at [`Self::flush`]).
    async fn feed(&mut self, frame: Frame) -> bool {
        self.within_stall(|sink| sink.feed(frame)).await
    }

    /// Writes what is queued within `dead_peer_secs`.
    async fn flush(&mut self) -> bool {
        self.within_stall(|sink| sink.flush()).await
    }

    async fn within_stall<'s, F>(&'s mut self, op: impl FnOnce(&'s mut K) -> F) -> bool
    where
        F: std::future::Future<Output = Result<(), K::Error>> + 's,
    {
        match tokio::time::timeout(self.stall, op(&mut self.sink)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::info!("kiosk stopped reading; connection closed");
                false
            }
        }
    }

    /// Writes one frame within `dead_peer_secs`.
    async fn put(&mut self, frame: Frame) -> bool {
        self.within_stall(|sink| sink.send(frame)).await
    }
}

struct Connection {
    app: AppState,
    conn_id: u64,
    out: mpsc::Sender<ServerMessage>,
    /// What the bot is saying on this screen (for barge-in).
    voice: Option<Arc<VoiceState>>,
    close_with: Arc<Mutex<(u16, String)>>,
    limits_bucket: TokenBucket,
    /// Cancelled when the writer gave up (the peer stopped reading).
    gone: CancellationToken,
    /// `device:<kind>` capabilities of a screen that `[live] screen_devices` does not allow
    /// (told once, after the welcome).
    refused_devices: Vec<String>,
}

/// What the hello established.
struct Peer {
    kiosk_id: KioskId,
    role: PeerRole,
    /// What the peer said it can do (`speaker`, `audio`, `elder`, devices…).
    capabilities: Vec<String>,
}

/// How the reader loop ended.
enum ReaderEnd {
    /// The peer went away or closed; nothing more can be sent.
    Gone,
    /// The server ends the connection and tells the peer why.
    Tell(String, u16),
}

impl Connection {
    async fn serve<R, E>(mut self, mut stream: R, bearer: Option<String>)
    where
        R: Stream<Item = Result<Frame, E>> + Unpin,
        E: std::fmt::Display,
    {
        let k = &self.app.settings.kiosk;
        self.limits_bucket = TokenBucket::new(k.rate_per_sec, k.rate_burst);
        let hello_timeout = Duration::from_secs(k.hello_timeout_secs);
        let first = tokio::select! {
            f = tokio::time::timeout(hello_timeout, stream.next()) => f,
            _ = self.app.shutdown.cancelled() => return self.finish(close::GOING_AWAY, "shutdown"),
        };
        let hello = match first {
            Ok(Some(Ok(Frame::Text(text)))) if text.len() <= k.max_text_frame_bytes => {
                decode_client(&text)
            }
            Ok(Some(Ok(Frame::Text(_)))) => {
                self.error(ErrorCode::TextFrameTooLarge, "消息过大。").await;
                return self.finish(close::POLICY, "text frame too large");
            }
            Ok(Some(Ok(Frame::Close(..)))) | Ok(None) | Ok(Some(Err(_))) => {
                return self.finish(close::NORMAL, "")
            }
            Ok(Some(Ok(_))) => Err(kiosk_protocol::DecodeError::Malformed("binary".into())),
            Err(_) => {
                self.error(ErrorCode::HelloRequired, "连接后请先发送 hello。")
                    .await;
                return self.finish(close::POLICY, "hello timeout");
            }
        };
        let Ok(ClientMessage::Hello {
            kiosk_id,
            token,
            session_id,
            role,
            capabilities,
        }) = hello
        else {
            self.error(ErrorCode::HelloRequired, "连接后的第一条消息必须是 hello。")
                .await;
            return self.finish(close::POLICY, "hello required");
        };
        let token = token.or(bearer);
        let Some(mut peer) = self.authenticate(&kiosk_id, token.as_deref(), role).await else {
            return;
        };
        tracing::Span::current().record("kiosk_id", peer.kiosk_id.as_str());
        let live = &self.app.settings.live;
        let Some(_admitted) = self
            .app
            .hub
            .admit(&peer.kiosk_id, live.max_connections_per_kiosk)
        else {
            tracing::warn!("kiosk already holds its maximum of connections here; refused");
            self.error(ErrorCode::RateLimited, "该设备的连接数已达上限。")
                .await;
            return self.finish(close::POLICY, "too many connections");
        };
        let kick = Kick::new();
        let _recheck = live::recheck(live.recheck_every(), kick.clone(), {
            let (db, id) = (self.app.db.clone(), peer.kiosk_id.to_string());
            move || {
                let (db, id, token) = (db.clone(), id.clone(), token.clone());
                async move {
                    let auth = kiosks::authenticate(&db, &id, token.as_deref(), role).await?;
                    Ok::<_, sqlx::Error>(matches!(auth, KioskAuth::Ok(_)))
                }
            }
        });
        peer.capabilities = capabilities
            .iter()
            .take(64)
            .map(|c| c.chars().take(64).collect())
            .collect();
        let devices = self.allowed_devices(&peer);
        let role_label = kiosks::role_str(peer.role);
        self.app
            .metrics
            .peers_open
            .with_label_values(&[role_label])
            .inc();
        self.app.broker.attach(
            &peer.kiosk_id,
            self.conn_id,
            peer.role,
            devices,
            self.out.clone(),
        );
        match peer.role {
            PeerRole::Screen => {
                self.serve_screen(&mut stream, &peer, session_id, &kick)
                    .await
            }
            PeerRole::Devices => {
                self.welcome(None, false).await;
                let end = self.read_loop(&mut stream, &peer, None, &kick).await;
                self.tell(end).await;
            }
        }
        self.app.broker.detach(&peer.kiosk_id, self.conn_id);
        self.app
            .metrics
            .peers_open
            .with_label_values(&[role_label])
            .dec();
    }

    async fn serve_screen<R, E>(
        &mut self,
        stream: &mut R,
        peer: &Peer,
        session_id: Option<String>,
        kick: &Kick,
    ) where
        R: Stream<Item = Result<Frame, E>> + Unpin,
        E: std::fmt::Display,
    {
        let Some((session, resumed)) = self.open_session(peer, session_id).await else {
            return;
        };
        tracing::Span::current().record("session_id", session.id.as_str());
        let (in_tx, in_rx) = mpsc::channel::<Input>(16);
        self.app
            .hub
            .take_over(
                &session.id,
                &peer.kiosk_id,
                self.conn_id,
                kick.clone(),
                in_tx.clone(),
            )
            .await;
        // Re-read after taking over: a replaced connection may have finished a turn meanwhile.
        let state = match store::load(&self.app.db, &session.id).await {
            Ok(Some(s)) => s.state,
            _ => session.state.clone(),
        };
        self.app.metrics.sessions_open.inc();
        self.welcome(Some(session.id.clone()), resumed).await;
        let Ok(session_id) = SessionId::parse(&session.id) else {
            tracing::error!("a stored session id does not have the shape of one");
            self.error(ErrorCode::Internal, "系统繁忙，请稍后再试。")
                .await;
            return;
        };
        let worker = Worker {
            app: self.app.clone(),
            session_id,
            kiosk_id: peer.kiosk_id.clone(),
            branch_id: session.branch_id.clone(),
            state: state.clone(),
            out: self.out.clone(),
            handoff: None,
            voice: self.voice_out(peer),
            kick: kick.clone(),
        };
        let opening = if resumed {
            state.last_reply.clone()
        } else {
            Some(self.app.engine.opening())
        };
        if let Some(reply) = &opening {
            // A resumed session's last reply goes out again under its own turn id, so a
            // kiosk can tell whether the input it sent before the break was answered (the
            // id changed) or never reached the session (the same id: send it again).
            let stored_turn = if resumed {
                store::last_bot_turn(&self.app.db, &session.id)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "the last reply's turn could not be read");
                        None
                    })
            } else {
                None
            };
            let turn_id = stored_turn.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            if !resumed {
                let mut opened = state.clone();
                opened.last_reply = Some(reply.clone());
                let line = store::NewLine {
                    speaker: store::Speaker::Bot,
                    kind: "text",
                    text: &reply.text,
                    turn_id: Some(&turn_id),
                };
                if let Err(e) =
                    store::record(&self.app.db, &session.id, &[line], Some(&opened), None).await
                {
                    tracing::error!(error = %e, "opening line could not be stored");
                }
            }
            worker.say(&turn_id, reply).await;
        }
        // The worker gets the latest state including the opening reply.
        let worker = Worker {
            state: match store::load(&self.app.db, &session.id).await {
                Ok(Some(s)) => s.state,
                _ => state,
            },
            ..worker
        };
        let ended = CancellationToken::new();
        let worker_ended = ended.clone();
        let worker_task = tokio::spawn(
            async move {
                let end = worker.run(in_rx).await;
                worker_ended.cancel();
                end
            }
            .in_current_span(),
        );
        let end = tokio::select! {
            end = self.read_loop(stream, peer, Some(&in_tx), kick) => Some(end),
            _ = ended.cancelled() => None,
        };
        drop(in_tx);
        // In-flight and queued turns finish before the session is told it ends.
        let worker_end = worker_task.await.unwrap_or(WorkerEnd::Detached);
        self.app.hub.release(&session.id, self.conn_id);
        self.app.metrics.sessions_open.dec();
        match (worker_end, end) {
            (WorkerEnd::Ended(reason), _) => {
                self.tell(ReaderEnd::Tell(reason, close::NORMAL)).await
            }
            (WorkerEnd::Detached, Some(end)) => self.tell(end).await,
            (WorkerEnd::Detached, None) => {}
        }
    }

    /// Checks the kiosk and its token; on failure sends the error and closes. An unknown
    /// kiosk and a wrong token get the same answer, so kiosk ids cannot be enumerated.
    async fn authenticate(
        &mut self,
        kiosk_id: &str,
        token: Option<&str>,
        role: PeerRole,
    ) -> Option<Peer> {
        let Ok(id) = KioskId::parse(kiosk_id) else {
            return self.refuse(kiosk_id).await;
        };
        match kiosks::authenticate(&self.app.db, kiosk_id, token, role).await {
            Ok(KioskAuth::Ok(_)) => Some(Peer {
                kiosk_id: id,
                role,
                capabilities: Vec::new(),
            }),
            Ok(KioskAuth::UnknownKiosk | KioskAuth::BadToken) => self.refuse(kiosk_id).await,
            Err(e) => {
                tracing::error!(error = %e, "kiosk authentication failed");
                self.error(ErrorCode::Internal, "系统繁忙，请稍后再试。")
                    .await;
                self.finish(close::GOING_AWAY, "internal");
                None
            }
        }
    }

    /// Refuses a hello: one code and message, whether the kiosk or the token was wrong.
    async fn refuse(&mut self, kiosk_id: &str) -> Option<Peer> {
        tracing::warn!(
            kiosk_id = %kiosk_id.chars().take(64).collect::<String>(),
            "hello refused: unknown or disabled kiosk, or a wrong or revoked token"
        );
        self.error(ErrorCode::Unauthorized, "设备凭证无效或已吊销。")
            .await;
        self.finish(close::POLICY, "unauthorized");
        None
    }

    /// The devices a peer declared that it may drive: all for an adapter; for a screen,
    /// those `[live] screen_devices` allows (the others are remembered to be refused).
    fn allowed_devices(&mut self, peer: &Peer) -> Vec<String> {
        let declared = DeviceBroker::devices_in(&peer.capabilities);
        if peer.role == PeerRole::Devices {
            return declared;
        }
        let allowed = &self.app.settings.live.screen_devices;
        let (ok, refused): (Vec<String>, Vec<String>) = declared
            .into_iter()
            .partition(|d| devices::screen_may_drive(allowed, d));
        if !refused.is_empty() {
            tracing::warn!(devices = ?refused, "a screen declared devices only the adapter may drive; ignored");
        }
        self.refused_devices = refused;
        ok
    }

    /// Resumes the requested session when it is this kiosk's, live and not idle too long;
    /// otherwise starts a new one. Another kiosk's session is refused.
    async fn open_session(
        &mut self,
        peer: &Peer,
        requested: Option<String>,
    ) -> Option<(SessionRecord, bool)> {
        let db = &self.app.db;
        let idle_ms = (self.app.settings.kiosk.session_idle_timeout_secs * 1000) as i64;
        let existing = match requested.as_deref().filter(|id| id.len() <= 64) {
            Some(id) => store::load(db, id).await,
            None => Ok(None),
        };
        let result = match existing {
            Ok(Some(s)) if s.kiosk_id != *peer.kiosk_id => {
                tracing::warn!(session_id = %s.id, owner = %s.kiosk_id, "resume of another kiosk's session refused");
                self.error(ErrorCode::SessionForbidden, "该会话不属于本设备。")
                    .await;
                self.finish(close::POLICY, "session forbidden");
                return None;
            }
            Ok(Some(s)) if s.status == store::ACTIVE && now_ms() - s.updated_at <= idle_ms => {
                Ok((s, true))
            }
            Ok(Some(s)) => {
                if s.status == store::ACTIVE {
                    let _ = store::record(db, &s.id, &[], None, Some("expired")).await;
                }
                Err(s.branch_id)
            }
            Ok(None) => Err(String::new()),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                self.error(ErrorCode::Internal, "系统繁忙，请稍后再试。")
                    .await;
                self.finish(close::GOING_AWAY, "internal");
                return None;
            }
        };
        match result {
            Ok(found) => Some(found),
            Err(_) => {
                let branch = match kiosks::find(db, &peer.kiosk_id).await {
                    Ok(Some(k)) => k.branch_id,
                    _ => String::new(),
                };
                match store::create(db, &peer.kiosk_id, &branch, &SessionState::default()).await {
                    Ok(s) => Some((s, false)),
                    Err(e) => {
                        tracing::error!(error = %e, "session could not be created");
                        self.error(ErrorCode::Internal, "系统繁忙，请稍后再试。")
                            .await;
                        self.finish(close::GOING_AWAY, "internal");
                        None
                    }
                }
            }
        }
    }

    /// Reads frames until the peer goes (or falls silent for `dead_peer_secs`), the
    /// connection is kicked or the server shuts down.
    async fn read_loop<R, E>(
        &mut self,
        stream: &mut R,
        peer: &Peer,
        inputs: Option<&mpsc::Sender<Input>>,
        kick: &Kick,
    ) -> ReaderEnd
    where
        R: Stream<Item = Result<Frame, E>> + Unpin,
        E: std::fmt::Display,
    {
        let (mut audio, mut heard) = AudioInput::new(&self.app.settings.kiosk);
        let silence = self.app.settings.live.dead_after();
        let mut heard_from = Instant::now();
        loop {
            let frame = tokio::select! {
                f = stream.next() => f,
                Some(event) = heard.recv() => {
                    self.heard(event, inputs).await;
                    continue;
                }
                reason = kick.kicked() => return ReaderEnd::Tell(reason.into(), kicked_close(reason)),
                _ = self.app.shutdown.cancelled() => return ReaderEnd::Tell("shutdown".into(), close::GOING_AWAY),
                _ = self.gone.cancelled() => return ReaderEnd::Gone,
                _ = tokio::time::sleep_until(heard_from + silence) => {
                    tracing::info!("kiosk silent too long (no frame, no pong); connection closed");
                    self.finish(close::GOING_AWAY, "peer timeout");
                    return ReaderEnd::Gone;
                }
            };
            heard_from = Instant::now();
            let frame = match frame {
                None | Some(Ok(Frame::Close(..))) => return ReaderEnd::Gone,
                Some(Err(e)) => {
                    tracing::info!(error = %e, "connection dropped");
                    return ReaderEnd::Gone;
                }
                Some(Ok(Frame::Control)) => continue,
                Some(Ok(f)) => f,
            };
            // Audio frames are limited by audio time, other messages by count.
            let allowed = match &frame {
                Frame::Binary(b) => audio.allow(b.len()),
                _ => self.limits_bucket.take(),
            };
            if !allowed {
                self.error(ErrorCode::RateLimited, "操作太频繁，请稍后再试。")
                    .await;
                continue;
            }
            let input = match frame {
                Frame::Binary(bytes) => {
                    if let Err((code, message)) = audio.frame(&bytes).await {
                        self.error(code, message).await;
                    }
                    continue;
                }
                Frame::Text(text) => self.text_frame(&text, peer, &mut audio, inputs).await,
                Frame::Close(..) | Frame::Control => continue,
            };
            if let (Some(input), Some(tx)) = (input, inputs) {
                if tx.try_send(input).is_err() {
                    self.error(ErrorCode::RateLimited, "请稍等，上一句话还在处理中。")
                        .await;
                }
            }
        }
    }

    /// A text frame: checked (size, shape, what the peer's role may send), then handled;
    /// what the session must handle in order comes back as an input.
    async fn text_frame(
        &mut self,
        text: &str,
        peer: &Peer,
        audio: &mut AudioInput,
        inputs: Option<&mpsc::Sender<Input>>,
    ) -> Option<Input> {
        if text.len() > self.app.settings.kiosk.max_text_frame_bytes {
            self.error(ErrorCode::TextFrameTooLarge, "消息过大。").await;
            return None;
        }
        let msg = match decode_client(text) {
            Ok(m) => m,
            Err(e) => {
                let code = e.code();
                self.error(
                    code,
                    match code {
                        ErrorCode::UnknownMessageType => "不支持的消息类型。",
                        _ => "消息格式不正确。",
                    },
                )
                .await;
                return None;
            }
        };
        let screen_only = matches!(
            msg,
            ClientMessage::UserText { .. }
                | ClientMessage::UserChoice { .. }
                | ClientMessage::AudioStart { .. }
                | ClientMessage::AudioEnd
                | ClientMessage::SessionClose { .. }
        );
        if screen_only && peer.role != PeerRole::Screen {
            self.error(ErrorCode::NotAllowedForRole, "设备端不能发送会话消息。")
                .await;
            return None;
        }
        match self.message(msg, peer, audio, inputs).await {
            Ok(input) => input,
            Err((code, message)) => {
                self.error(code, message).await;
                None
            }
        }
    }

    /// One decoded message.
    async fn message(
        &mut self,
        msg: ClientMessage,
        peer: &Peer,
        audio: &mut AudioInput,
        inputs: Option<&mpsc::Sender<Input>>,
    ) -> Result<Option<Input>, Refusal> {
        let limits = &self.app.settings.kiosk;
        Ok(match msg {
            ClientMessage::Hello { .. } => {
                return Err((ErrorCode::HelloRequired, "hello 只需发送一次。"))
            }
            ClientMessage::Ping { nonce } => {
                let _ = self.out.send(ServerMessage::Pong { nonce }).await;
                None
            }
            ClientMessage::UserText { text } => {
                let chars = text.trim().chars().count();
                if chars == 0 || chars > limits.max_user_text_chars {
                    return Err((ErrorCode::InvalidText, "文字不能为空，也不能太长。"));
                }
                Some(Input::Text(text.trim().to_string()))
            }
            ClientMessage::UserChoice { value } => {
                if value.is_empty() || value.len() > 200 {
                    return Err((ErrorCode::InvalidText, "选项无效。"));
                }
                Some(Input::Choice(value))
            }
            ClientMessage::AudioStart { sample_rate } => {
                audio.start(sample_rate, &self.app.speech, self.voice.as_ref())?;
                None
            }
            ClientMessage::AudioEnd => audio.end()?,
            ClientMessage::DeviceResult {
                call_id,
                ok,
                data,
                error,
            } => {
                self.device_result(peer, &call_id, ok, data, error)?;
                None
            }
            ClientMessage::DeviceEvent { device, event, .. } => {
                if device.len() > 64 || event.len() > 64 {
                    return Err((ErrorCode::MalformedMessage, "设备事件字段过长。"));
                }
                tracing::info!(%device, %event, "device event");
                let input = Input::DeviceEvent { device, event };
                if inputs.is_some() {
                    Some(input)
                } else {
                    // A device peer's event goes to the kiosk's screen sessions.
                    for session in self.app.hub.sessions_of(&peer.kiosk_id) {
                        let _ = session.try_send(input.clone());
                    }
                    None
                }
            }
            ClientMessage::SessionClose { reason } => Some(Input::Close {
                reason: reason.map(|r| r.chars().take(64).collect()),
            }),
        })
    }

    /// A device peer answers a call of the broker.
    fn device_result(
        &self,
        peer: &Peer,
        call_id: &str,
        ok: bool,
        data: Option<serde_json::Value>,
        error: Option<kiosk_protocol::DeviceError>,
    ) -> Result<(), Refusal> {
        let result = if ok {
            Ok(data.unwrap_or(serde_json::Value::Null))
        } else {
            Err(error.unwrap_or(kiosk_protocol::DeviceError {
                code: "unknown".into(),
                message: "device reported failure without details".into(),
            }))
        };
        let call = call_id.chars().take(64).collect::<String>();
        match self
            .app
            .broker
            .complete(&peer.kiosk_id, self.conn_id, call_id, result)
        {
            Completion::Delivered => Ok(()),
            Completion::Unknown => {
                tracing::warn!(call_id = %call, "device result for no pending call");
                Err((
                    ErrorCode::UnknownCallId,
                    "没有等待中的该设备调用（可能已超时）。",
                ))
            }
            Completion::OtherPeer => {
                tracing::warn!(call_id = %call, role = kiosks::role_str(peer.role), "device result from a peer the call was not sent to; refused");
                Err((ErrorCode::NotAllowedForRole, "该设备调用不是发给本连接的。"))
            }
        }
    }

    /// The screen's voice: synthesis for a `speaker`, the state barge-in reads.
    fn voice_out(&mut self, peer: &Peer) -> Option<VoiceOut> {
        let has = |c: &str| peer.capabilities.iter().any(|x| x == c);
        let state = Arc::new(VoiceState::default());
        self.voice = Some(state.clone());
        let tts = if has("speaker") {
            self.app.speech.tts.clone()
        } else {
            None
        };
        Some(VoiceOut {
            tts,
            elder: has("elder"),
            state,
        })
    }

    /// Something the listener heard: tell the screen, then hand it to the turn worker.
    async fn heard(&self, event: ListenEvent, inputs: Option<&mpsc::Sender<Input>>) {
        match event {
            ListenEvent::Partial(text) => {
                let _ = self.out.send(ServerMessage::AsrPartial { text }).await;
            }
            ListenEvent::Stop(turn_id) => {
                let _ = self.out.send(ServerMessage::BotStop { turn_id }).await;
            }
            ListenEvent::Final(heard) => {
                let _ = self
                    .out
                    .send(ServerMessage::AsrFinal {
                        text: heard.text.clone(),
                    })
                    .await;
                if let Some(tx) = inputs {
                    // Waits rather than drops: an utterance is never lost.
                    let _ = tx.send(Input::Speech(Box::new(heard))).await;
                }
            }
            ListenEvent::Backchannel(heard) => {
                if let Some(tx) = inputs {
                    let _ = tx.send(Input::Backchannel(heard.text)).await;
                }
            }
            ListenEvent::NoSpeech => {
                self.error(
                    ErrorCode::NoSpeech,
                    "没有听清您说的话，请靠近话筒再说一遍，或直接点选屏幕上的按钮。",
                )
                .await;
            }
            ListenEvent::Failed(e) => {
                tracing::warn!(error = %e, "utterance not recognised");
                self.error(
                    ErrorCode::AsrFailed,
                    "语音识别暂时繁忙，请再说一遍，或直接点选屏幕上的按钮。",
                )
                .await;
            }
        }
    }

    async fn welcome(&mut self, session_id: Option<String>, resumed: bool) {
        let k = &self.app.settings.kiosk;
        let _ = self
            .out
            .send(ServerMessage::Welcome {
                session_id,
                resumed,
                protocol: PROTOCOL_VERSION,
                limits: Limits {
                    max_text_frame_bytes: k.max_text_frame_bytes,
                    max_binary_frame_bytes: k.max_binary_frame_bytes,
                    max_user_text_chars: k.max_user_text_chars,
                },
            })
            .await;
        if !self.refused_devices.is_empty() {
            self.refused_devices.clear();
            self.error(
                ErrorCode::NotAllowedForRole,
                "屏幕端不能驱动身份证、银行卡、密码键盘等设备，这些设备须由设备适配器连接。",
            )
            .await;
        }
    }

    async fn error(&self, code: ErrorCode, message: &str) {
        super::send_error(&self.app.metrics, &self.out, code, message).await;
    }

    async fn tell(&self, end: ReaderEnd) {
        if let ReaderEnd::Tell(reason, code) = end {
            let _ = self
                .out
                .send(ServerMessage::SessionEnd {
                    reason: reason.clone(),
                })
                .await;
            self.finish(code, &reason);
        }
    }

    /// Sets the close frame the writer sends once every sender is gone.
    fn finish(&self, code: u16, reason: &str) {
        *self.close_with.lock().unwrap() = (code, reason.to_string());
    }
}
