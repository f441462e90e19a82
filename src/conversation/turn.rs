//! The turn worker of a screen session: takes the customer's inputs one at a time, runs the
//! NLU and the dialog engine, stores the transcript lines and the new state in one
//! transaction, then sends the reply. Inputs queue behind a turn in progress, so a turn that
//! waits on a device never blocks the connection's reader (which must deliver the result).

use std::time::Instant;

use kiosk_protocol::{ErrorCode, ServerMessage};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::effects;
use super::store::{self, NewLine, Speaker};
use crate::dialog::{BotReply, Effect, EffectResult, Engine, Outcome, SessionState, TurnInput};
use crate::state::AppState;

/// Something the customer (or the kiosk) did that the session must handle in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    Choice(String),
    /// An utterance of this many bytes of 16 kHz PCM16 ended (recognition is off).
    Audio {
        bytes: usize,
    },
    /// An utterance, recognised and corrected.
    Speech(Box<crate::speech::Heard>),
    /// A backchannel (嗯, 好) said over the bot: recorded, not a turn.
    Backchannel(String),
    /// A device reported something (card inserted, paper out).
    DeviceEvent {
        device: String,
        event: String,
    },
    /// Something happened to this session's handoff ticket (accepted, a line from the
    /// person, handed back).
    Ticket(Box<crate::tickets::SessionEvent>),
    /// The customer closed the session.
    Close {
        reason: Option<String>,
    },
}

/// How the worker ended the session, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEnd {
    /// The input queue closed (disconnect, shutdown, replaced): the session stays resumable.
    Detached,
    /// The conversation ended (`completed`, `closed`): the session is over.
    Ended(String),
}

/// Everything the worker needs about its session.
pub struct Worker {
    pub app: AppState,
    pub session_id: String,
    pub kiosk_id: String,
    pub branch_id: String,
    pub state: SessionState,
    pub out: mpsc::Sender<ServerMessage>,
    /// The live handoff of this session, if any.
    pub handoff: Option<LiveHandoff>,
    /// The screen's voice (synthesis when it has a speaker; barge-in state).
    pub voice: Option<VoiceOut>,
}

/// How the bot speaks on one screen.
#[derive(Clone)]
pub struct VoiceOut {
    /// `None` when the screen has no `speaker` or synthesis is off.
    pub tts: Option<std::sync::Arc<crate::speech::tts::Tts>>,
    /// The screen is in elder-friendly mode: the slower voice.
    pub elder: bool,
    pub state: std::sync::Arc<crate::speech::pipeline::VoiceState>,
}

/// A handoff ticket waiting for, or owned by, a person.
#[derive(Debug, Clone)]
pub struct LiveHandoff {
    pub ticket_id: String,
    pub number: String,
    pub remote: bool,
    /// Who took it; while set, the bot stays silent and relays.
    pub staff: Option<String>,
    /// When the customer is told nobody has accepted yet (once).
    pub deadline: Option<tokio::time::Instant>,
}

impl Worker {
    /// Processes inputs until the queue closes or the conversation ends.
    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>) -> WorkerEnd {
        self.recover().await;
        self.resume_handoff().await;
        let inactivity = std::time::Duration::from_secs(self.app.settings.branch.inactivity_secs);
        loop {
            let waiting = self.handoff.as_ref().and_then(|h| h.deadline);
            let human = self.handoff.as_ref().is_some_and(|h| h.staff.is_some());
            // Silence matters only while a journey waits for the customer.
            let input = if let Some(deadline) = waiting {
                match tokio::time::timeout_at(deadline, inputs.recv()).await {
                    Ok(i) => i,
                    Err(_) => {
                        self.nobody_accepted().await;
                        continue;
                    }
                }
            } else if Engine::in_flow(&self.state) && !human {
                match tokio::time::timeout(inactivity, inputs.recv()).await {
                    Ok(i) => i,
                    Err(_) => {
                        if let Some(end) = self.idle().await {
                            return WorkerEnd::Ended(end);
                        }
                        continue;
                    }
                }
            } else {
                inputs.recv().await
            };
            let Some(input) = input else {
                return WorkerEnd::Detached;
            };
            let turn_id = uuid::Uuid::new_v4().to_string();
            let span = tracing::info_span!("turn", %turn_id);
            if let Some(end) = self.handle(input, &turn_id).instrument(span).await {
                return WorkerEnd::Ended(end);
            }
        }
    }

    async fn handle(&mut self, input: Input, turn_id: &str) -> Option<String> {
        let human = self.handoff.as_ref().is_some_and(|h| h.staff.is_some());
        match input {
            Input::Text(text) if human => self.relay_to_staff(&text, "text").await,
            Input::Speech(heard) if human => self.relay_to_staff(&heard.text, "speech").await,
            Input::Speech(heard) => {
                if !heard.changes.is_empty() {
                    let note = format!("语音识别原文：{}", heard.raw_text);
                    let lines = [NewLine {
                        speaker: Speaker::System,
                        kind: "asr",
                        text: &note,
                        turn_id: Some(turn_id),
                    }];
                    self.store(&lines, None, None).await;
                }
                self.turn(TurnInput::Text(heard.text), turn_id).await
            }
            Input::Backchannel(text) => {
                let note = format!("顾客在播报时附和：{text}");
                let lines = [NewLine {
                    speaker: Speaker::System,
                    kind: "asr",
                    text: &note,
                    turn_id: None,
                }];
                self.store(&lines, None, None).await;
                None
            }
            Input::Choice(value) if human => self.relay_to_staff(&value, "choice").await,
            Input::Ticket(e) => self.ticket_event(*e).await,
            Input::Text(text) => self.turn(TurnInput::Text(text), turn_id).await,
            Input::Choice(value) => self.turn(TurnInput::Choice(value), turn_id).await,
            Input::Audio { bytes } => {
                let ms = bytes / 32;
                let note = format!("收到语音 {ms} 毫秒，语音识别未开启，未能识别");
                let lines = [NewLine {
                    speaker: Speaker::System,
                    kind: "audio",
                    text: &note,
                    turn_id: Some(turn_id),
                }];
                self.store(&lines, None, None).await;
                self.error(
                    ErrorCode::AsrUnavailable,
                    "语音识别暂未开启，请直接输入文字或点选屏幕上的按钮。",
                )
                .await;
                None
            }
            Input::DeviceEvent { device, event } => {
                let text = format!("{device}: {event}");
                let lines = [NewLine {
                    speaker: Speaker::System,
                    kind: "device_event",
                    text: &text,
                    turn_id: None,
                }];
                self.store(&lines, None, None).await;
                None
            }
            Input::Close { reason } => {
                let text = format!("客户结束会话（{}）", reason.as_deref().unwrap_or("closed"));
                let lines = [NewLine {
                    speaker: Speaker::System,
                    kind: "session",
                    text: &text,
                    turn_id: None,
                }];
                self.store(&lines, None, Some("closed")).await;
                // Whoever has (or will take) the handoff should know nobody is there.
                if let Some(h) = &self.handoff {
                    let left = self
                        .app
                        .tickets
                        .store
                        .note(
                            &h.ticket_id,
                            crate::tickets::store::NewEvent {
                                kind: "customer_left",
                                from: None,
                                to: None,
                                actor: "kiosk",
                                comment: "客户已结束自助机会话",
                                data: serde_json::json!({"reason": reason}),
                            },
                        )
                        .await;
                    if let Err(e) = left {
                        tracing::error!(error = %e, "customer_left not recorded on the ticket");
                    }
                }
                Some("closed".into())
            }
        }
    }

    async fn turn(&mut self, input: TurnInput, turn_id: &str) -> Option<String> {
        let metrics = self.app.metrics.clone();
        let started = Instant::now();
        let engine = self.app.engine.clone();

        let nlu_started = Instant::now();
        let mut understood = engine.understand(&input);
        metrics.observe("nlu", nlu_started);
        self.second_opinion(&input, &mut understood);

        let dialog_started = Instant::now();
        let mut next = self.state.clone();
        let outcome = engine.respond(&mut next, &input, understood.as_ref());
        metrics.observe("dialog", dialog_started);
        tracing::info!(
            intent = understood
                .as_ref()
                .map(|m| m.intent.name.as_str())
                .unwrap_or("-"),
            confidence = understood
                .as_ref()
                .map(|m| m.intent.confidence)
                .unwrap_or(0.0),
            "turn understood"
        );
        let (kind, said) = match &input {
            TurnInput::Text(t) => ("text", t.as_str()),
            TurnInput::Choice(v) => ("choice", v.as_str()),
        };
        let customer = NewLine {
            speaker: Speaker::Customer,
            kind,
            text: said,
            turn_id: Some(turn_id),
        };
        let end = self.deliver(turn_id, Some(customer), next, outcome).await?;
        metrics.observe("turn", started);
        metrics.turns_total.with_label_values(&["ok"]).inc();
        end
    }

    /// Stores and sends an outcome, then carries out its effect and continues with the
    /// engine until it needs the customer again. Lines and state are stored in one
    /// transaction before their replies are sent, so a resumed session continues from the
    /// last stored step. Server actions run back to back without a store in between (one
    /// commit per turn in the common case); before a device call everything so far is stored
    /// and sent, since the customer must see "请插入银行卡" before the reader waits. `None`
    /// when storing failed (the customer was told); otherwise the end reason, if it ended.
    async fn deliver(
        &mut self,
        turn_id: &str,
        first: Option<NewLine<'_>>,
        mut next: SessionState,
        mut outcome: Outcome,
    ) -> Option<Option<String>> {
        let engine = self.app.engine.clone();
        let mut lines: Vec<(Speaker, &'static str, String)> = Vec::new();
        if let Some(f) = &first {
            let kind = if f.kind == "choice" { "choice" } else { "text" };
            lines.push((f.speaker, kind, f.text.to_string()));
        }
        let mut replies: Vec<BotReply> = Vec::new();
        for _ in 0..32 {
            for r in &outcome.replies {
                lines.push((Speaker::Bot, "text", r.text.clone()));
            }
            replies.append(&mut outcome.replies);
            let end = replies.iter().any(|r| r.end_session).then_some("completed");
            let effect = outcome.effect.take();
            let must_flush = end.is_some() || !matches!(effect, Some(Effect::Action { .. }));
            if must_flush {
                let rows: Vec<NewLine> = lines
                    .iter()
                    .map(|(speaker, kind, text)| NewLine {
                        speaker: *speaker,
                        kind,
                        text,
                        turn_id: Some(turn_id),
                    })
                    .collect();
                let store_started = Instant::now();
                let stored = self.store(&rows, Some(&next), end).await;
                self.app.metrics.observe("store", store_started);
                if !stored {
                    self.app
                        .metrics
                        .turns_total
                        .with_label_values(&["error"])
                        .inc();
                    self.error(
                        ErrorCode::Internal,
                        "系统繁忙，刚才的话没能记录下来，请再说一次。",
                    )
                    .await;
                    return None;
                }
                lines.clear();
                self.state = next.clone();
                for mut r in replies.drain(..) {
                    self.fill_article(&mut r);
                    self.say(turn_id, &r).await;
                }
                if end.is_some() {
                    return Some(end.map(str::to_string));
                }
            }
            let Some(effect) = effect else {
                return Some(None);
            };
            let ctx = effects::Context {
                app: &self.app,
                session_id: &self.session_id,
                kiosk_id: &self.kiosk_id,
                branch_id: &self.branch_id,
            };
            let (result, said) = effects::run(&ctx, &effect).await;
            lines.push((Speaker::System, "effect", said));
            if let (Effect::Handoff { to, .. }, EffectResult::Done(out)) = (&effect, &result) {
                if let Some(number) = out.get("handoff_id") {
                    self.handoff_waiting(number, to == "remote_expert").await;
                }
            }
            outcome = engine.resume(&mut next, result);
        }
        tracing::error!("a turn ran 32 effects: a loop in the flow data?");
        Some(None)
    }

    /// When the understanding is unsure of a sentence said with no journey open, the
    /// knowledge base gets a say: an article that answers it confidently makes the turn a
    /// question for the knowledge journey ("开车过来车停哪" is rarely phrased like the
    /// training examples, but its article knows). Anything less leaves the parse alone.
    fn second_opinion(&self, input: &TurnInput, understood: &mut Option<crate::nlu::Parse>) {
        let (TurnInput::Text(text), Some(parse)) = (input, understood.as_mut()) else {
            return;
        };
        if parse.sure || !self.state.stack.is_empty() || !parse.risk.is_empty() {
            return;
        }
        if let crate::knowledge::Answer::Found { .. } =
            self.app.knowledge.answer(text, &self.branch_id)
        {
            parse.intent.name = "knowledge.question".into();
            parse.sure = true;
            parse.source = "knowledge";
            parse.slots.insert("question".into(), text.clone());
        }
    }

    /// A handoff ticket was opened: the kiosk shows it as waiting, and the customer is told
    /// if nobody accepts within `tickets.handoff_wait_secs`.
    async fn handoff_waiting(&mut self, number: &str, remote: bool) {
        let ticket = match self.app.tickets.store.get(number).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "handoff ticket not found after creation");
                return;
            }
        };
        let wait = std::time::Duration::from_secs(self.app.settings.tickets.handoff_wait_secs);
        self.handoff = Some(LiveHandoff {
            ticket_id: ticket.id,
            number: number.to_string(),
            remote,
            staff: None,
            deadline: Some(tokio::time::Instant::now() + wait),
        });
        self.send_handoff("waiting", None).await;
    }

    async fn send_handoff(&self, status: &str, call_link: Option<String>) {
        let Some(h) = &self.handoff else { return };
        let kind = if h.remote {
            kiosk_protocol::HandoffKind::RemoteExpert
        } else {
            kiosk_protocol::HandoffKind::Teller
        };
        let _ = self
            .out
            .send(ServerMessage::Handoff {
                kind,
                ticket_number: h.number.clone(),
                status: status.to_string(),
                call_link,
            })
            .await;
    }

    /// A session that resumes (reconnect, restart) finds its open handoff ticket again.
    async fn resume_handoff(&mut self) {
        let filter = crate::tickets::store::Filter {
            session: Some(self.session_id.clone()),
            limit: 5,
            ..Default::default()
        };
        let Ok(list) = self.app.tickets.store.list(&filter).await else {
            return;
        };
        if let Some(t) = list
            .into_iter()
            .find(|t| t.kind.starts_with("handoff") && t.state.open())
        {
            let owned = matches!(
                t.state,
                crate::tickets::store::TicketState::Assigned
                    | crate::tickets::store::TicketState::InProgress
                    | crate::tickets::store::TicketState::PendingCustomer
            );
            self.handoff = Some(LiveHandoff {
                ticket_id: t.id,
                number: t.number,
                remote: t.kind == "handoff_remote",
                staff: if owned { t.assignee } else { None },
                deadline: None,
            });
        }
    }

    /// Nobody accepted in time: the customer is told and offered a number or an
    /// appointment; the ticket stays queued (a person may still accept it).
    async fn nobody_accepted(&mut self) {
        if let Some(h) = self.handoff.as_mut() {
            h.deadline = None;
        }
        let reply = BotReply {
            text: "工作人员暂时都在忙，您的需求已经登记，有人空下来会马上接待您。您也可以先取个号，或者预约其他时间再来。".into(),
            speak: None,
            ui: Some(kiosk_protocol::Ui {
                choices: vec![
                    kiosk_protocol::Choice {
                        label: "取号排队".into(),
                        value: "queue.take_number".into(),
                    },
                    kiosk_protocol::Choice {
                        label: "预约办理".into(),
                        value: "appointment.book".into(),
                    },
                ],
                ..Default::default()
            }),
            end_session: false,
            interruptible: true,
        };
        self.bot_line(&reply).await;
    }

    /// Stores a bot line of its own (not from the engine) and sends it.
    async fn bot_line(&self, reply: &BotReply) {
        let turn_id = uuid::Uuid::new_v4().to_string();
        let lines = [NewLine {
            speaker: Speaker::Bot,
            kind: "text",
            text: &reply.text,
            turn_id: Some(&turn_id),
        }];
        self.store(&lines, None, None).await;
        self.say(&turn_id, reply).await;
    }

    /// While a person owns the session, what the customer says goes to them.
    async fn relay_to_staff(&mut self, text: &str, kind: &str) -> Option<String> {
        let text: String = text.chars().take(500).collect();
        let lines = [NewLine {
            speaker: Speaker::Customer,
            kind,
            text: &text,
            turn_id: None,
        }];
        self.store(&lines, None, None).await;
        let Some(h) = &self.handoff else { return None };
        let masked = crate::security::mask_pii(&text);
        let note = self
            .app
            .tickets
            .store
            .note(
                &h.ticket_id,
                crate::tickets::store::NewEvent {
                    kind: "relay_customer",
                    from: None,
                    to: None,
                    actor: "customer",
                    comment: &masked,
                    data: serde_json::json!({}),
                },
            )
            .await;
        if let Err(e) = note {
            tracing::error!(error = %e, "customer line not relayed");
            self.error(
                ErrorCode::Internal,
                "刚才的话没能转给工作人员，请再说一次。",
            )
            .await;
        }
        None
    }

    /// An event of this session's handoff ticket (from any node).
    async fn ticket_event(&mut self, e: crate::tickets::SessionEvent) -> Option<String> {
        use crate::tickets::store::TicketState;
        let h = self.handoff.clone()?;
        if e.ticket.id != h.ticket_id {
            return None;
        }
        let to = e.event.to.as_deref().and_then(TicketState::parse);
        match (e.event.kind.as_str(), to) {
            ("state", Some(TicketState::Assigned)) | ("reassigned", _) if h.staff.is_none() => {
                let staff = e.ticket.assignee.clone().unwrap_or_default();
                if let Some(h) = self.handoff.as_mut() {
                    h.staff = Some(staff);
                    h.deadline = None;
                }
                let link = h.remote.then(|| {
                    self.app
                        .settings
                        .tickets
                        .call_link_template
                        .replace("{ticket}", &h.number)
                });
                self.send_handoff("connected", link).await;
                let text = if h.remote {
                    "远程专家已接入，请看屏幕上的视频窗口，直接和专家交谈。"
                } else {
                    "工作人员已接入，您可以直接和工作人员对话。"
                };
                self.bot_line(&BotReply {
                    text: text.into(),
                    speak: None,
                    ui: None,
                    end_session: false,
                    interruptible: true,
                })
                .await;
            }
            ("relay_staff", _) => {
                let text = e.event.comment.clone();
                let lines = [NewLine {
                    speaker: Speaker::Staff,
                    kind: "text",
                    text: &text,
                    turn_id: None,
                }];
                self.store(&lines, None, None).await;
                let _ = self.out.send(ServerMessage::AgentSay { text }).await;
            }
            ("released", _)
            | (
                "state",
                Some(TicketState::Resolved | TicketState::Closed | TicketState::Cancelled),
            ) => {
                self.send_handoff("ended", None).await;
                self.handoff = None;
                self.bot_line(&BotReply {
                    text: "工作人员已结束对话。我是小安，还有什么可以帮您？".into(),
                    speak: None,
                    ui: None,
                    end_session: false,
                    interruptible: true,
                })
                .await;
            }
            _ => {}
        }
        None
    }

    /// Puts the live text of a cited article on the screen (or drops the citation when the
    /// article went out of search in between).
    fn fill_article(&self, reply: &mut BotReply) {
        let Some(ui) = reply.ui.as_mut() else {
            return;
        };
        let Some(view) = ui.article.as_mut() else {
            return;
        };
        match self.app.knowledge.live(&view.id) {
            Some(doc) if doc.draft.audience == "customer" => {
                view.version = doc.version;
                view.title = doc.draft.title;
                view.body = doc.draft.body;
            }
            _ => ui.article = None,
        }
    }

    /// A resumed session whose last step was waiting on an effect (the node stopped in
    /// between) cannot know how it went: the flow treats it as failed (`interrupted`).
    pub async fn recover(&mut self) {
        let waiting = self
            .state
            .stack
            .last()
            .is_some_and(|f| f.waiting == crate::dialog::engine::Waiting::Effect);
        if !waiting {
            return;
        }
        let mut next = self.state.clone();
        let outcome = self.app.engine.resume(
            &mut next,
            EffectResult::Failed {
                code: "interrupted".into(),
                note: "the node stopped while this step ran".into(),
            },
        );
        let turn_id = uuid::Uuid::new_v4().to_string();
        let _ = self.deliver(&turn_id, None, next, outcome).await;
    }

    /// The customer has been silent mid-flow: ask whether they are still there, or end.
    async fn idle(&mut self) -> Option<String> {
        let mut next = self.state.clone();
        let outcome = self.app.engine.on_idle(&mut next);
        let turn_id = uuid::Uuid::new_v4().to_string();
        self.deliver(&turn_id, None, next, outcome).await.flatten()
    }

    /// Sends a reply as `bot.say`, then, to a screen with a speaker, its voice as
    /// `bot.audio` (never a sensitive value: those are only on screen, never in the text).
    pub async fn say(&self, turn_id: &str, reply: &BotReply) {
        let _ = self
            .out
            .send(ServerMessage::BotSay {
                turn_id: turn_id.to_string(),
                text: reply.text.clone(),
                speak: reply.speak.clone(),
                audio_url: None,
                ui: reply.ui.clone(),
            })
            .await;
        let Some(voice) = &self.voice else {
            return;
        };
        let Some(tts) = &voice.tts else {
            return;
        };
        let spoken = reply.speak.as_deref().unwrap_or(&reply.text);
        if spoken.trim().is_empty() {
            return;
        }
        let started = Instant::now();
        match tts.speak(spoken, voice.elder).await {
            Ok(pcm) => {
                let duration_ms = pcm.duration_ms() as u32;
                voice.state.started(
                    turn_id,
                    std::time::Duration::from_millis(duration_ms as u64),
                    reply.interruptible,
                );
                tracing::debug!(
                    synth_ms = started.elapsed().as_millis() as u64,
                    duration_ms,
                    "reply synthesised"
                );
                let pcm_bytes = pcm.samples.iter().flat_map(|s| s.to_le_bytes()).collect();
                let _ = self
                    .out
                    .send(ServerMessage::BotAudio {
                        turn_id: turn_id.to_string(),
                        sample_rate: pcm.sample_rate,
                        duration_ms,
                        interruptible: reply.interruptible,
                        pcm: pcm_bytes,
                    })
                    .await;
            }
            Err(e) => {
                // The text is on screen; the kiosk stays usable without the voice.
                tracing::warn!(error = %e, "reply could not be synthesised");
            }
        }
    }

    async fn error(&self, code: ErrorCode, message: &str) {
        self.app
            .metrics
            .ws_errors_total
            .with_label_values(&[code.as_str()])
            .inc();
        let _ = self
            .out
            .send(ServerMessage::Error {
                code,
                message: message.to_string(),
            })
            .await;
    }

    /// Stores lines; a failure is logged (masked) so the line is never lost silently.
    async fn store(
        &self,
        lines: &[NewLine<'_>],
        state: Option<&SessionState>,
        end: Option<&str>,
    ) -> bool {
        match store::record(&self.app.db, &self.session_id, lines, state, end).await {
            Ok(()) => true,
            Err(e) => {
                for line in lines {
                    tracing::error!(
                        error = %e,
                        speaker = ?line.speaker,
                        text = %crate::security::mask_pii(line.text),
                        "transcript line could not be stored"
                    );
                }
                false
            }
        }
    }
}
