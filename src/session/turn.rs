//! The turn worker of a screen session: takes the customer's inputs one at a time, runs the
//! NLU and the dialog engine, stores the transcript lines and the new state in one
//! transaction, then sends the reply. Inputs queue behind a turn in progress, so a turn that
//! waits on a device never blocks the connection's reader (which must deliver the result).

use std::time::Instant;

use kiosk_protocol::{ErrorCode, ServerMessage};
use tokio::sync::mpsc;
use tracing::Instrument;

mod handoff;

use super::effects;
use super::store::{self, NewLine, Speaker};
use crate::dialog::{BotReply, Effect, EffectResult, Engine, Outcome, SessionState, TurnInput};
use crate::domain::names::{KioskId, SessionId};
use crate::live::{self, Input, Kick};
use crate::state::AppState;
use handoff::LiveHandoff;

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
    pub session_id: SessionId,
    pub kiosk_id: KioskId,
    pub branch_id: String,
    pub state: SessionState,
    pub out: mpsc::Sender<ServerMessage>,
    /// The live handoff of this session, if any.
    pub handoff: Option<LiveHandoff>,
    /// The screen's voice (synthesis when it has a speaker; barge-in state).
    pub voice: Option<VoiceOut>,
    /// The connection's kick: once its credentials are revoked, no queued input runs.
    pub kick: Kick,
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
            if self.kick.reason() == Some(live::reason::REVOKED) {
                return WorkerEnd::Detached;
            }
            let turn_id = uuid::Uuid::new_v4().to_string();
            let span = self.turn_span(&input, &turn_id);
            if let Some(end) = self.handle(input, &turn_id).instrument(span).await {
                return WorkerEnd::Ended(end);
            }
        }
    }

    /// The span of one input: a trace of its own (`telemetry::trace`), or, for an utterance,
    /// the continuation of the trace its recognition started. Ids only: what the customer
    /// said never goes into a span.
    fn turn_span(&self, input: &Input, turn_id: &str) -> tracing::Span {
        let kind = match input {
            Input::Text(_) => "text",
            Input::Choice(_) => "choice",
            Input::Speech(_) => "speech",
            Input::Audio { .. } => "audio",
            Input::Backchannel(_) => "backchannel",
            Input::DeviceEvent { .. } => "device_event",
            Input::Ticket(_) => "ticket",
            _ => "other",
        };
        let (kiosk_id, session_id) = (self.kiosk_id.as_str(), self.session_id.as_str());
        match input {
            Input::Speech(heard) => tracing::info_span!(
                parent: &heard.span.0,
                "turn",
                %turn_id,
                kiosk_id,
                session_id,
                input = kind
            ),
            _ => tracing::info_span!(
                parent: None,
                "turn",
                %turn_id,
                kiosk_id,
                session_id,
                input = kind
            ),
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
            Input::Choice(value) if !self.offered(&value) => {
                // A value the kiosk was never shown (a stale screen, a broken client):
                // docs/protocol.md says so with `invalid_text`; the session stays.
                self.error(
                    ErrorCode::InvalidText,
                    "这个选项已经不在屏幕上了，请点现在显示的按钮，或者直接告诉我。",
                )
                .await;
                None
            }
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
                self.customer_left(reason.as_deref()).await;
                Some("closed".into())
            }
        }
    }

    async fn turn(&mut self, input: TurnInput, turn_id: &str) -> Option<String> {
        crate::knowledge::within_turn(self.understood_turn(input, turn_id)).await
    }

    async fn understood_turn(&mut self, input: TurnInput, turn_id: &str) -> Option<String> {
        let metrics = self.app.metrics.clone();
        let started = Instant::now();
        let engine = self.app.engine.clone();

        let nlu_started = Instant::now();
        let nlu = tracing::info_span!(
            "nlu",
            intent = tracing::field::Empty,
            source = tracing::field::Empty
        );
        let verdict = self
            .app
            .understanding
            .decide(&self.state, &input, self.branch_id.as_str())
            .instrument(nlu.clone())
            .await;
        metrics.observe("nlu", nlu_started);
        let understood = verdict.parse;
        if let Some(p) = &understood {
            nlu.record("intent", p.intent.name.as_str());
            nlu.record("source", p.source);
        }

        let dialog_started = Instant::now();
        let mut next = self.state.clone();
        let before = Engine::position(&next);
        let outcome =
            tracing::info_span!("flow", offer = verdict.offer.is_some()).in_scope(
                || match &verdict.offer {
                    Some(intent) => engine.offer(&mut next, intent),
                    None => engine.respond(&mut next, &input, understood.as_ref()),
                },
            );
        engine.note_progress(&before, &mut next);
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
                // The journey marks and misses went with the lines.
                next.journal.clear();
                next.misses.clear();
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
                    self.handoff_waiting(number, *to).await;
                }
            }
            let before = Engine::position(&next);
            outcome = tracing::info_span!("flow", resumed = true)
                .in_scope(|| engine.resume(&mut next, result));
            engine.note_progress(&before, &mut next);
        }
        tracing::error!("a turn ran 32 effects: a loop in the flow data?");
        Some(None)
    }

    /// Whether `value` is a choice the kiosk was offered: one of the last reply's buttons,
    /// or an intent name (the kiosk's own menu asks for services by intent).
    fn offered(&self, value: &str) -> bool {
        crate::nlu::is_intent(value)
            || self
                .state
                .last_reply
                .as_ref()
                .and_then(|r| r.ui.as_ref())
                .is_some_and(|ui| ui.choices.iter().any(|c| c.value == value))
    }

    /// Puts the live text of a cited article on the screen (or drops the citation when the
    /// article went out of search in between).
    pub(super) fn fill_article(&self, reply: &mut BotReply) {
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
        let before = Engine::position(&next);
        let outcome = self.app.engine.resume(
            &mut next,
            EffectResult::Failed {
                code: "interrupted".into(),
                note: "the node stopped while this step ran".into(),
            },
        );
        self.app.engine.note_progress(&before, &mut next);
        let turn_id = uuid::Uuid::new_v4().to_string();
        let _ = self.deliver(&turn_id, None, next, outcome).await;
    }

    /// The customer has been silent mid-flow: ask whether they are still there, or end.
    async fn idle(&mut self) -> Option<String> {
        let mut next = self.state.clone();
        let before = Engine::position(&next);
        let outcome = self.app.engine.on_idle(&mut next);
        self.app.engine.note_progress(&before, &mut next);
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

    pub(super) async fn error(&self, code: ErrorCode, message: &str) {
        super::send_error(&self.app.metrics, &self.out, code, message).await;
    }

    /// Stores lines; a failure is logged (masked) so the line is never lost silently.
    pub(super) async fn store(
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
                        text = %crate::access::mask_pii(line.text),
                        "transcript line could not be stored"
                    );
                }
                false
            }
        }
    }
}
