//! The dialog engine: given the session's state and one customer input, decides what the
//! bot says and does. It is pure (no I/O): work that needs the outside world — a device, a
//! booking, the bank, a handoff — is returned as an [`Effect`]; the turn worker carries it
//! out and hands the result back with [`Engine::resume`]. So a turn is cheap and the engine
//! is tested without a server.
//!
//! Without an active flow, an understood intent starts its flow (`dialogs/flows/`), or is
//! answered by its response (`responses.yaml`). Within a flow the engine keeps a stack of
//! frames: a question of another kind (a knowledge question, another service) is pushed on
//! top, answered, and the flow below resumes. `cancel`, `repeat`, `help`, `handoff.*` and
//! corrections ("不对，是后天") work anywhere. Inputs the understanding is not sure about
//! count as misunderstandings; after repeated ones a person is offered. A fraud risk flag
//! stops a money-moving flow, warns in plain words and hands off to a teller.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiosk_protocol::{HandoffKind, Ui};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod answer;
pub mod journal;
mod offer;
mod render;

pub use render::render;

use super::data::{DialogData, ResponseSpec};
use super::flow::{condition_holds, Flow, Kind, Step, Texts};
use crate::domain::clock::{Clock, SystemClock};
use crate::nlu::intent::SystemIntent;
use crate::nlu::{is_intent, Nlu, Parse, Scored};
use crate::text::cut_utterance;
use journal::{JourneyEvent, Miss};

/// Misunderstandings in a row after which the bot offers a person.
pub const MISUNDERSTOOD_BEFORE_OFFER: u32 = 2;
/// Default re-prompts of an `ask` before a person is offered.
pub const DEFAULT_RETRIES: u32 = 2;
/// The slot of a knowledge answer that names the journey to offer after it.
pub const OFFER_SLOT: &str = "offer";
/// Flow steps run in one go before the engine assumes a loop in the data.
const MAX_STEPS_PER_TURN: usize = 64;

/// What the customer did this turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnInput {
    Text(String),
    Choice(String),
}

/// A reply to send as `bot.say`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotReply {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speak: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<Ui>,
    /// The session ends after this reply.
    #[serde(default)]
    pub end_session: bool,
    /// False for a reply the customer must hear in full (a risk disclosure): speaking over
    /// it does not stop the bot's voice.
    #[serde(default = "yes")]
    pub interruptible: bool,
}

fn yes() -> bool {
    true
}

/// Work for the turn worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    /// Run a kiosk device and report its result fields.
    Device {
        device: String,
        action: String,
        args: Value,
        timeout_ms: u64,
    },
    /// Run a server action over the flow's slots.
    Action {
        name: String,
        slots: BTreeMap<String, String>,
    },
    /// Hand the customer to a person with the case so far.
    Handoff {
        to: HandoffKind,
        reason: String,
        intent: Option<String>,
        slots: BTreeMap<String, String>,
        risk: Vec<String>,
    },
}

/// How an effect went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectResult {
    /// Values to keep as slots.
    Done(BTreeMap<String, String>),
    /// A stable code (`no_card`, `slot_full`, `not_found` …) and a note for the log.
    Failed { code: String, note: String },
}

/// What the engine decided: replies to send now, and possibly work to do next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub replies: Vec<BotReply>,
    pub effect: Option<Effect>,
}

impl Outcome {
    /// Whether the session ends after these replies.
    pub fn ends_session(&self) -> bool {
        self.replies.iter().any(|r| r.end_session)
    }
}

/// One running flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub flow: String,
    pub step: usize,
    #[serde(default)]
    pub slots: BTreeMap<String, String>,
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub waiting: Waiting,
}

/// What the innermost frame waits for from the customer ([`Engine::awaiting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaiting<'a> {
    /// No question is open.
    Nothing,
    /// The answer to an `ask` for this slot.
    Slot(&'a str),
    /// Yes or no to a confirmation.
    YesNo,
}

/// What a frame waits for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    #[default]
    Nothing,
    /// The answer to the `ask` at `step`.
    Answer,
    /// Yes or no to the `confirm` at `step`.
    YesNo,
    /// The result of the effect of `step`.
    Effect,
}

/// The conversation state persisted with the session (JSON in `sessions.state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    /// Inputs in a row the bot did not understand.
    #[serde(default)]
    pub misunderstood: u32,
    /// The last reply, re-sent when a kiosk resumes the session.
    #[serde(default)]
    pub last_reply: Option<BotReply>,
    /// The intent of the last understood input.
    #[serde(default)]
    pub last_intent: Option<String>,
    /// Running flows, innermost last.
    #[serde(default)]
    pub stack: Vec<Frame>,
    /// Replies sent in a row while the customer said nothing (inactivity prompts).
    #[serde(default)]
    pub idle_prompts: u32,
    /// A journey just offered ("需要我帮您办理开户吗？"): a yes starts it, anything else
    /// forgets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<String>,
    /// What happened to journeys since the session store last wrote this state
    /// ([`journal`]); never stored with the state itself.
    #[serde(skip)]
    pub journal: Vec<journal::JourneyMark>,
    /// What the engine could not serve of the customer's last words ([`journal::Miss`]),
    /// until the session store writes it; never stored with the state.
    #[serde(skip)]
    pub misses: Vec<journal::Miss>,
}

/// The engine, built once from validated data and shared by all sessions.
#[derive(Debug, Clone)]
pub struct Engine {
    pub nlu: Nlu,
    responses: BTreeMap<String, ResponseSpec>,
    flows: BTreeMap<String, Flow>,
    labels: BTreeMap<String, String>,
    /// Where "now" comes from: dates the customer says ("明天") are resolved against it.
    clock: Arc<dyn Clock>,
}

impl Engine {
    /// Builds the engine; trains the intent classifier from `data`.
    pub fn new(data: &DialogData) -> anyhow::Result<Engine> {
        Ok(Engine::with_nlu(data, Nlu::new(&data.nlu)?))
    }

    /// The engine with another clock (tests run at a fixed time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Engine {
        self.clock = clock;
        self
    }

    /// How services are named to customers ("开户"), by intent.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// Builds the engine around an already trained understanding.
    pub fn with_nlu(data: &DialogData, nlu: Nlu) -> Engine {
        Engine {
            nlu,
            responses: data.responses.clone(),
            flows: data.flows.clone(),
            labels: data
                .nlu
                .intents
                .iter()
                .filter_map(|i| i.label.clone().map(|l| (i.name.clone(), l)))
                .collect(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The reply that opens a new session.
    pub fn opening(&self) -> BotReply {
        self.reply("welcome")
    }

    /// The NLU step of a turn: what the input asks for. `None` for a tapped value that is
    /// not an intent (a flow may still take it as an answer).
    pub fn understand(&self, input: &TurnInput) -> Option<Parse> {
        match input {
            TurnInput::Choice(value) if is_intent(value) => {
                let intent = Scored {
                    name: value.clone(),
                    confidence: 1.0,
                };
                Some(Parse {
                    ranking: vec![intent.clone()],
                    intent,
                    sure: true,
                    source: "choice",
                    slots: Default::default(),
                    rejected: Vec::new(),
                    risk: Vec::new(),
                    form: Default::default(),
                    signals: Vec::new(),
                })
            }
            TurnInput::Choice(_) => None,
            TurnInput::Text(text) => Some(self.nlu.parse(text, self.clock.now())),
        }
    }

    /// The dialog step of a turn: decides what to say and do, and updates `state`.
    pub fn respond(
        &self,
        state: &mut SessionState,
        input: &TurnInput,
        understood: Option<&Parse>,
    ) -> Outcome {
        state.idle_prompts = 0;
        // Frames stored under older flow data (a flow renamed or shortened) are dropped.
        state.stack.retain(|f| {
            f.flow == HANDOFF_FRAME
                || self
                    .flows
                    .get(&f.flow)
                    .is_some_and(|fl| f.step < fl.steps.len())
        });
        let mut out = Outcome::default();
        let fraud = understood.is_some_and(|p| p.risk.iter().any(|r| r == "fraud_suspected"));
        let sure = understood.filter(|p| p.sure);
        let intent = sure.map(|p| p.intent.name.as_str());
        if let Some(offered) = state.offer.take() {
            if let Some(done) = self.answer_offer(state, &offered, intent, fraud) {
                return self.finish(state, done);
            }
        }

        if fraud {
            let out = self.fraud_suspected(state, intent, out);
            return self.finish(state, out);
        }

        // Words that work anywhere.
        match intent.and_then(SystemIntent::of) {
            Some(SystemIntent::Repeat) => {
                state.misunderstood = 0;
                out.replies
                    .push(state.last_reply.clone().unwrap_or_else(|| self.opening()));
                return out;
            }
            Some(SystemIntent::Cancel) if !state.stack.is_empty() => {
                state.misunderstood = 0;
                self.clear_frames(state, JourneyEvent::Cancelled);
                out.replies.push(self.reply(SystemIntent::Cancel.name()));
                return self.finish(state, out);
            }
            Some(i) if i.handoff().is_some() => {
                state.misunderstood = 0;
                let to = i.handoff().unwrap_or(HandoffKind::Teller);
                return self.handoff(state, to, "customer_asked", out);
            }
            _ => {}
        }

        // An answer to the innermost frame?
        if let Some(frame) = state.stack.last().cloned() {
            if let Some(done) = self.answer(state, frame, input, understood) {
                return self.finish(state, done);
            }
        }

        // A new request.
        match sure {
            Some(p) => self.new_request(state, p, input, &mut out),
            None => {
                state.misunderstood += 1;
                state.misses.push(Miss::NotUnderstood);
                if state.misunderstood >= MISUNDERSTOOD_BEFORE_OFFER {
                    out.replies.push(self.reply("offer_human"));
                } else {
                    out.replies.push(self.reply("fallback"));
                    out.replies.extend(self.reprompt(state));
                }
            }
        }
        self.finish(state, out)
    }

    /// Continues after the worker carried out the pending effect.
    pub fn resume(&self, state: &mut SessionState, result: EffectResult) -> Outcome {
        // The knowledge base did not know, or could only ask back which article was meant.
        match &result {
            EffectResult::Failed { code, .. } if code == "no_answer" => {
                state.misses.push(Miss::DontKnow)
            }
            EffectResult::Done(v) if v.get("kind").is_some_and(|k| k == "clarify") => {
                state.misses.push(Miss::Clarified)
            }
            _ => {}
        }
        let Some(frame) = state.stack.last_mut() else {
            return Outcome::default();
        };
        if frame.waiting != Waiting::Effect {
            return Outcome::default();
        }
        frame.waiting = Waiting::Nothing;
        if frame.flow == HANDOFF_FRAME {
            state.stack.pop();
            let out = Outcome {
                replies: vec![match result {
                    EffectResult::Done(_) => self.reply_or("handoff_done", "handoff.teller"),
                    EffectResult::Failed { .. } => {
                        self.reply_or("handoff_failed", "handoff.teller")
                    }
                }],
                effect: None,
            };
            return self.finish(state, out);
        }
        // A session stored under older flow data may name a flow or step that is gone.
        let Some((flow, step)) = self
            .flows
            .get(&frame.flow)
            .and_then(|f| f.steps.get(frame.step).map(|s| (f, s)))
        else {
            self.pop_frame(state, JourneyEvent::Failed);
            let out = Outcome {
                replies: vec![self.reply("fallback")],
                effect: None,
            };
            return self.finish(state, out);
        };
        match result {
            EffectResult::Done(values) => {
                // An action's outputs are all kept; of a device result only the fields the
                // step names under `save` (an ID card read carries more than a flow needs).
                let keep_all = matches!(step.kind, Kind::Action(_));
                for (k, v) in values {
                    if keep_all || step.spec.save.contains(&k) {
                        frame.slots.insert(k, v);
                    }
                }
                frame.step = step
                    .spec
                    .goto
                    .as_deref()
                    .map_or(frame.step + 1, |g| flow.target(g));
            }
            EffectResult::Failed { code, .. } => {
                frame.slots.insert("error".into(), code);
                match &step.spec.on_error {
                    Some(target) => frame.step = flow.target(target),
                    None => {
                        // No plan for this failure: apologise and hand to a person.
                        let out = Outcome {
                            replies: vec![self.reply_or("step_failed", "offer_human")],
                            effect: None,
                        };
                        let mut out = out;
                        let more = self.handoff(
                            state,
                            HandoffKind::Teller,
                            "step_failed",
                            Outcome::default(),
                        );
                        out.replies.extend(more.replies);
                        out.effect = more.effect;
                        return self.finish(state, out);
                    }
                }
            }
        }
        let out = self.advance(state);
        self.finish(state, out)
    }

    /// The customer said nothing for a while. The first time, asks whether they are still
    /// there (repeating the open question); the second time, ends the session.
    pub fn on_idle(&self, state: &mut SessionState) -> Outcome {
        state.idle_prompts += 1;
        let mut out = Outcome::default();
        if state.idle_prompts >= 2 {
            self.clear_frames(state, JourneyEvent::Abandoned);
            let mut bye = self.reply_or("idle_end", "goodbye");
            bye.end_session = true;
            out.replies.push(bye);
        } else {
            out.replies.push(self.reply_or("idle_prompt", "fallback"));
            out.replies.extend(self.reprompt(state));
        }
        self.finish(state, out)
    }

    /// Whether a flow is waiting for the customer (so inactivity matters).
    pub fn in_flow(state: &SessionState) -> bool {
        !state.stack.is_empty()
    }

    /// Whether `intent` starts a journey (has a flow).
    pub fn has_flow(&self, intent: &str) -> bool {
        self.flows.contains_key(intent)
    }

    /// What the innermost frame waits for from the customer.
    pub fn awaiting<'s>(&'s self, state: &SessionState) -> Awaiting<'s> {
        let Some(frame) = state.stack.last() else {
            return Awaiting::Nothing;
        };
        let step = self
            .flows
            .get(&frame.flow)
            .and_then(|f| f.steps.get(frame.step));
        match (&frame.waiting, step.map(|s| &s.kind)) {
            (Waiting::Answer, Some(Kind::Ask { slot })) => Awaiting::Slot(slot.as_str()),
            (Waiting::YesNo, Some(Kind::Confirm(_))) => Awaiting::YesNo,
            _ => Awaiting::Nothing,
        }
    }

    /// Both steps at once, effects answered by `effects` (tests, tools).
    pub fn turn_with(
        &self,
        state: &mut SessionState,
        input: &TurnInput,
        mut effects: impl FnMut(&Effect) -> EffectResult,
    ) -> (Option<Parse>, Vec<BotReply>) {
        let understood = self.understand(input);
        let mut out = self.respond(state, input, understood.as_ref());
        let mut replies = std::mem::take(&mut out.replies);
        let mut guard = 0;
        while let Some(effect) = out.effect.take() {
            guard += 1;
            if guard > MAX_STEPS_PER_TURN {
                break;
            }
            let result = effects(&effect);
            out = self.resume(state, result);
            replies.append(&mut out.replies);
        }
        (understood, replies)
    }

    // ---- flows ----

    fn push(&self, state: &mut SessionState, flow: &str, slots: BTreeMap<String, String>) {
        state.stack.push(Frame {
            flow: flow.to_string(),
            step: 0,
            slots,
            retries: 0,
            waiting: Waiting::Nothing,
        });
        self.note_start(state);
    }

    /// Runs the innermost frame until it needs the customer or an effect, or ends.
    fn advance(&self, state: &mut SessionState) -> Outcome {
        let mut out = Outcome::default();
        for _ in 0..MAX_STEPS_PER_TURN {
            let Some(frame) = state.stack.last_mut() else {
                return out;
            };
            let Some(flow) = self.flows.get(&frame.flow) else {
                self.pop_frame(state, JourneyEvent::Failed);
                continue;
            };
            let Some(step) = flow.steps.get(frame.step) else {
                // Past the last step: the flow is done.
                self.pop_frame(state, JourneyEvent::Completed);
                out.replies.extend(self.reprompt(state));
                return out;
            };
            let variant = frame.retries as usize;
            for c in &step.spec.clear {
                frame.slots.remove(c);
            }
            let after = step
                .spec
                .goto
                .as_deref()
                .map_or(frame.step + 1, |g| flow.target(g));
            match &step.kind {
                Kind::Say(t) => {
                    out.replies
                        .push(self.render_step(step, t, &frame.slots, variant));
                    frame.step = after;
                }
                Kind::Ask { slot } => {
                    if frame.slots.contains_key(slot) {
                        frame.step += 1;
                        continue;
                    }
                    frame.waiting = Waiting::Answer;
                    let prompt = step
                        .spec
                        .prompt
                        .clone()
                        .unwrap_or(Texts::One(String::new()));
                    out.replies
                        .push(self.render_step(step, &prompt, &frame.slots, variant));
                    return out;
                }
                Kind::Confirm(t) => {
                    frame.waiting = Waiting::YesNo;
                    out.replies
                        .push(self.render_confirm(step, t, &frame.slots, variant));
                    return out;
                }
                Kind::Device { device, action } => {
                    frame.waiting = Waiting::Effect;
                    out.effect = Some(self.device_effect(step, device, action, frame));
                    return out;
                }
                Kind::Action(name) => {
                    frame.waiting = Waiting::Effect;
                    out.effect = Some(self.action_effect(step, name, frame));
                    return out;
                }
                Kind::Branch(cases) => {
                    match cases
                        .iter()
                        .find(|c| condition_holds(&c.when, &frame.slots))
                    {
                        Some(c) => frame.step = flow.target(&c.goto),
                        None => frame.step += 1,
                    }
                }
                Kind::Goto(target) => frame.step = flow.target(target),
                Kind::Handoff(to) => {
                    let more = self.handoff(state, *to, "flow", Outcome::default());
                    out.replies.extend(more.replies);
                    out.effect = more.effect;
                    return out;
                }
                Kind::End(text) => {
                    if let Some(t) = text {
                        out.replies
                            .push(self.render_step(step, t, &frame.slots, variant));
                    }
                    let offer = frame.slots.get(OFFER_SLOT).cloned();
                    self.pop_frame(state, JourneyEvent::Completed);
                    if let Some(intent) = offer.filter(|_| state.stack.is_empty()) {
                        out.replies
                            .extend(self.offer_reply(state, &intent, "offer_journey"));
                        return out;
                    }
                    // The frame below (interrupted by this one) asks its question again.
                    out.replies.extend(self.reprompt(state));
                    return out;
                }
            }
        }
        tracing::error!("flow ran {MAX_STEPS_PER_TURN} steps without waiting: a loop in the data?");
        self.clear_frames(state, JourneyEvent::Failed);
        out.replies.push(self.reply("offer_human"));
        out
    }

    /// A device step's call, its `args` rendered from the frame's slots.
    fn device_effect(&self, step: &Step, device: &str, action: &str, frame: &Frame) -> Effect {
        let args: serde_json::Map<String, Value> = step
            .spec
            .args
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Value::String(render(v, &frame.slots, &self.labels)),
                )
            })
            .collect();
        Effect::Device {
            device: device.to_string(),
            action: action.to_string(),
            args: Value::Object(args),
            timeout_ms: step.spec.timeout_ms.unwrap_or(30_000),
        }
    }

    /// An action step's call: the frame's slots, its `args` and the flow's name. A PIN
    /// block is used once, by the action that checks it, never kept.
    fn action_effect(&self, step: &Step, name: &str, frame: &mut Frame) -> Effect {
        let mut slots = frame.slots.clone();
        for (k, v) in &step.spec.args {
            slots.insert(k.clone(), render(v, &frame.slots, &self.labels));
        }
        slots.insert("flow".into(), frame.flow.clone());
        frame.slots.remove("pin_block");
        Effect::Action {
            name: name.to_string(),
            slots,
        }
    }

    /// The customer may be talking under a fraudster's instructions: warn, and when money
    /// would move, stop the journey and hand to a teller with the case.
    fn fraud_suspected(
        &self,
        state: &mut SessionState,
        intent: Option<&str>,
        mut out: Outcome,
    ) -> Outcome {
        state.misunderstood = 0;
        let in_money_flow = state
            .stack
            .iter()
            .any(|f| self.flows.get(&f.flow).is_some_and(|fl| fl.moves_money));
        let wants_money =
            intent.is_some_and(|i| self.flows.get(i).is_some_and(|fl| fl.moves_money));
        state.last_intent = Some("fraud_suspected".into());
        out.replies.push(self.reply("fraud_warning"));
        if in_money_flow || wants_money {
            let slots = self.case_slots(state);
            let intent = state
                .stack
                .first()
                .map(|f| f.flow.clone())
                .or(intent.map(str::to_string));
            self.clear_frames(state, JourneyEvent::HandedOff);
            out.effect = Some(Effect::Handoff {
                to: HandoffKind::Teller,
                reason: "fraud_suspected".into(),
                intent,
                slots,
                risk: vec!["fraud_suspected".into()],
            });
            push_handoff_frame(state);
        }
        out
    }

    /// A request the NLU is sure of, outside any answer: start its flow, answer small talk
    /// (then ask the open question again), or say it is not offered here.
    fn new_request(
        &self,
        state: &mut SessionState,
        p: &Parse,
        input: &TurnInput,
        out: &mut Outcome,
    ) {
        state.misunderstood = 0;
        let name = p.intent.name.clone();
        state.last_intent = Some(name.clone());
        if SystemIntent::of(&name) == Some(SystemIntent::OutOfScope) {
            state.misses.push(Miss::OutOfScope);
        }
        if self.flows.contains_key(&name) {
            let mut slots = p.slots.clone();
            if let TurnInput::Text(t) = input {
                // What the customer asked, for flows that work on the words
                // (a knowledge question, a complaint).
                slots.insert("question".into(), cut_utterance(t));
            }
            self.push(state, &name, slots);
            let more = self.advance(state);
            out.replies.extend(more.replies);
            out.effect = more.effect;
        } else if !state.stack.is_empty() {
            // Small talk mid-flow ("谢谢", "你好"): answer, then repeat the question;
            // a goodbye ends the journey with the session.
            let reply = self
                .responses
                .contains_key(&name)
                .then(|| self.reply(&name));
            let leaving = reply.as_ref().is_some_and(|r| r.end_session);
            out.replies.extend(reply);
            if leaving {
                self.clear_frames(state, JourneyEvent::Abandoned);
            } else {
                out.replies.extend(self.reprompt(state));
            }
        } else if self.responses.contains_key(&name) {
            out.replies.push(self.reply(&name));
        } else {
            out.replies.push(self.reply("unsupported"));
        }
    }

    /// Re-asks the innermost question after an unusable answer; past the retry limit,
    /// offers a person.
    fn retry(&self, state: &mut SessionState, reason: Option<&str>) -> Outcome {
        let mut out = Outcome::default();
        let Some(top) = state.stack.last_mut() else {
            return out;
        };
        top.retries += 1;
        let limit = self
            .flows
            .get(&top.flow)
            .and_then(|f| f.steps.get(top.step))
            .and_then(|s| s.spec.retries)
            .unwrap_or(DEFAULT_RETRIES);
        if top.retries > limit {
            self.clear_frames(state, JourneyEvent::RetryLimit);
            out.replies.push(self.reply("offer_human"));
            return out;
        }
        let key = reason.map(|r| format!("invalid_{r}"));
        match key.as_deref().filter(|k| self.responses.contains_key(*k)) {
            Some(k) => out.replies.push(self.reply(k)),
            None => out.replies.push(self.reply("fallback")),
        }
        out.replies.extend(self.reprompt(state));
        out
    }

    /// The open question of the innermost frame, asked again (nothing if none).
    fn reprompt(&self, state: &SessionState) -> Vec<BotReply> {
        let Some(frame) = state.stack.last() else {
            return Vec::new();
        };
        let Some(step) = self
            .flows
            .get(&frame.flow)
            .and_then(|f| f.steps.get(frame.step))
        else {
            return Vec::new();
        };
        let variant = frame.retries as usize;
        match (&frame.waiting, &step.kind) {
            (Waiting::Answer, Kind::Ask { .. }) => step
                .spec
                .prompt
                .as_ref()
                .map(|p| vec![self.render_step(step, p, &frame.slots, variant)])
                .unwrap_or_default(),
            (Waiting::YesNo, Kind::Confirm(t)) => {
                vec![self.render_confirm(step, t, &frame.slots, variant)]
            }
            _ => Vec::new(),
        }
    }

    /// Starts a handoff: the case (slots of every running flow) goes with it.
    fn handoff(
        &self,
        state: &mut SessionState,
        to: HandoffKind,
        reason: &str,
        mut out: Outcome,
    ) -> Outcome {
        let slots = self.case_slots(state);
        let intent = state.stack.first().map(|f| f.flow.clone());
        self.clear_frames(state, JourneyEvent::HandedOff);
        let said = SystemIntent::asking_for(to).name();
        out.replies.push(self.reply_or(said, "offer_human"));
        out.effect = Some(Effect::Handoff {
            to,
            reason: reason.to_string(),
            intent,
            slots,
            risk: Vec::new(),
        });
        push_handoff_frame(state);
        out
    }

    fn case_slots(&self, state: &SessionState) -> BTreeMap<String, String> {
        let mut all = BTreeMap::new();
        for f in &state.stack {
            for (k, v) in &f.slots {
                if !super::flow::SCREEN_ONLY_SLOTS.contains(&k.as_str()) {
                    all.insert(k.clone(), v.clone());
                }
            }
        }
        all
    }

    fn finish(&self, state: &mut SessionState, out: Outcome) -> Outcome {
        if let Some(last) = out.replies.last() {
            state.last_reply = Some(last.clone());
        }
        out
    }

    // ---- texts ----
}

/// The frame a handoff leaves on the stack: it waits for the handoff effect's result.
fn push_handoff_frame(state: &mut SessionState) {
    state.stack.push(Frame {
        flow: HANDOFF_FRAME.into(),
        step: 0,
        slots: BTreeMap::new(),
        retries: 0,
        waiting: Waiting::Effect,
    });
}

/// The pseudo-frame that waits for a handoff to be recorded.
const HANDOFF_FRAME: &str = "handoff";

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The engine over the repository's own `dialogs/` (shared by every test module here).
    pub(super) fn engine() -> Engine {
        let data = DialogData::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogs"),
            &crate::actions::Registry::standard(),
        )
        .unwrap();
        Engine::with_nlu(&data, Nlu::for_tests())
    }

    /// Answers effects like a sandbox branch: devices succeed, actions give fixed values.
    pub(super) fn sandbox(effect: &Effect) -> EffectResult {
        let mut v = BTreeMap::new();
        match effect {
            Effect::Device { device, .. } if device == "id_card" => {
                v.insert("id_number".into(), "11010519491231002X".into());
                v.insert("name".into(), "张三".into());
            }
            Effect::Device { device, .. } if device == "pin_pad" => {
                v.insert("pin_block".into(), "9A3F1C0B7E2D4A68".into());
            }
            Effect::Device { device, .. } if device == "card_reader" => {
                v.insert("card_last4".into(), "6789".into());
            }
            Effect::Action { name, .. } => match name.as_str() {
                "queue.take" => {
                    v.insert("ticket".into(), "A007".into());
                    v.insert("waiting".into(), "3".into());
                    v.insert("wait_minutes".into(), "18".into());
                    v.insert("counter_type".into(), "现金业务窗口".into());
                }
                "appointment.book" => {
                    v.insert("code".into(), "K7P2QX".into());
                }
                "banking.identify" => {
                    v.insert("customer_id".into(), "C0001".into());
                }
                "banking.choose_card" => {
                    v.insert("card".into(), "h".into());
                    v.insert("card_masked".into(), "622202*********6789".into());
                    v.insert("card_status".into(), "active".into());
                }
                "banking.balance" => {
                    v.insert("balance".into(), "52380.75".into());
                }
                _ => {}
            },
            _ => {}
        }
        EffectResult::Done(v)
    }

    fn say(e: &Engine, s: &mut SessionState, text: &str) -> Vec<BotReply> {
        e.turn_with(s, &TurnInput::Text(text.into()), sandbox).1
    }

    fn all_text(replies: &[BotReply]) -> String {
        replies
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(" / ")
    }

    #[test]
    fn a_greeting_is_answered_with_the_greeting_response() {
        let e = engine();
        let mut s = SessionState::default();
        let (m, replies) = e.turn_with(&mut s, &TurnInput::Text("你好呀".into()), sandbox);
        assert_eq!(m.unwrap().intent.name, "greet");
        assert_eq!(s.last_reply.as_ref(), replies.last());
    }

    #[test]
    fn two_misunderstandings_in_a_row_offer_a_person() {
        let e = engine();
        let mut s = SessionState::default();
        let first = say(&e, &mut s, "呜啦啦");
        let second = say(&e, &mut s, "叽里咕噜");
        assert_ne!(first, second);
        let choices = second.last().unwrap().ui.clone().unwrap().choices;
        assert!(
            choices.iter().any(|c| c.value == "handoff.teller"),
            "{choices:?}"
        );
    }

    #[test]
    fn queue_number_journey_prints_and_tells_the_wait() {
        let e = engine();
        let mut s = SessionState::default();
        let r = say(&e, &mut s, "我要取个号");
        assert!(all_text(&r).contains("什么业务"), "{}", all_text(&r));
        let (_, r) = e.turn_with(&mut s, &TurnInput::Choice("cash.withdraw".into()), |eff| {
            if let Effect::Device { device, args, .. } = eff {
                assert_eq!(device, "queue_printer");
                assert_eq!(args["ticket"], "A007");
            }
            sandbox(eff)
        });
        let text = all_text(&r);
        assert!(
            text.contains("A007") && text.contains("3位") && text.contains("18分钟"),
            "{text}"
        );
        assert!(s.stack.is_empty());
    }

    #[test]
    fn booking_with_a_correction_at_the_confirmation() {
        let e = engine();
        let mut s = SessionState::default();
        say(&e, &mut s, "我想预约开户");
        let r = say(&e, &mut s, "明天上午十点");
        assert!(all_text(&r).contains("手机号"), "{}", all_text(&r));
        let r = say(&e, &mut s, "13812345678");
        assert!(all_text(&r).contains("确认吗"), "{}", all_text(&r));
        let before = s.stack[0].slots["date"].clone();
        let r = say(&e, &mut s, "不对，是后天");
        assert!(all_text(&r).contains("确认吗"), "{}", all_text(&r));
        assert_ne!(s.stack[0].slots["date"], before, "the date was corrected");
        let r = say(&e, &mut s, "对的");
        assert!(all_text(&r).contains("K7P2QX"), "{}", all_text(&r));
        assert!(s.stack.is_empty());
    }

    #[test]
    fn a_digression_is_answered_and_the_flow_resumes() {
        let e = engine();
        let mut s = SessionState::default();
        say(&e, &mut s, "帮我预约一下");
        let r = say(&e, &mut s, "你们营业时间是几点到几点");
        let text = all_text(&r);
        assert!(
            text.contains("办理什么业务"),
            "the booking question comes back: {text}"
        );
        assert_eq!(s.stack.len(), 1);
        assert_eq!(s.stack[0].flow, "appointment.book");
    }

    #[test]
    fn cancel_works_anywhere_and_clears_the_journey() {
        let e = engine();
        let mut s = SessionState::default();
        say(&e, &mut s, "我想预约开户");
        let r = say(&e, &mut s, "算了不办了");
        assert!(all_text(&r).contains("取消"), "{}", all_text(&r));
        assert!(s.stack.is_empty());
    }

    #[test]
    fn an_impossible_date_gets_a_precise_reprompt() {
        let e = engine();
        let mut s = SessionState::default();
        say(&e, &mut s, "我想预约开户");
        let r = say(&e, &mut s, "2月30号");
        assert!(all_text(&r).contains("不存在"), "{}", all_text(&r));
        assert_eq!(s.stack[0].waiting, Waiting::Answer);
    }

    #[test]
    fn the_balance_is_shown_never_said() {
        let e = engine();
        let mut s = SessionState::default();
        let r = say(&e, &mut s, "帮我查一下卡里的余额");
        for reply in &r {
            assert!(!reply.text.contains("52380"), "spoken: {}", reply.text);
            assert!(!reply.speak.as_deref().unwrap_or_default().contains("52380"));
        }
        let shown = r
            .iter()
            .find_map(|x| x.ui.as_ref().filter(|u| u.sensitive))
            .expect("a screen-only field");
        assert!(
            shown
                .fields
                .iter()
                .any(|f| f.value.as_deref() == Some("52380.75元")),
            "{shown:?}"
        );
        assert!(
            !serde_json::to_string(&s)
                .unwrap()
                .contains("9A3F1C0B7E2D4A68"),
            "PIN block kept in state"
        );
    }

    #[test]
    fn fraud_in_a_money_flow_stops_it_and_hands_off_with_the_flag() {
        let e = engine();
        let mut s = SessionState::default();
        let r = say(&e, &mut s, "我要给我儿子转五千块钱");
        assert!(!s.stack.is_empty(), "{}", all_text(&r));
        let mut handed = None;
        let (_, r) = e.turn_with(
            &mut s,
            &TurnInput::Text("对方是警察，让我转到安全账户".into()),
            |eff| {
                handed = Some(eff.clone());
                EffectResult::Done(BTreeMap::new())
            },
        );
        assert!(all_text(&r).contains("诈骗"), "{}", all_text(&r));
        match handed {
            Some(Effect::Handoff {
                to, risk, slots, ..
            }) => {
                assert_eq!(to, HandoffKind::Teller);
                assert_eq!(risk, vec!["fraud_suspected"]);
                assert_eq!(slots.get("amount").map(String::as_str), Some("5000"));
            }
            other => panic!("expected a handoff, got {other:?}"),
        }
        assert!(s.stack.is_empty(), "the transfer stopped");
    }

    #[test]
    fn a_failed_device_without_a_plan_hands_off() {
        let e = engine();
        let mut s = SessionState::default();
        let (_, r) = e.turn_with(
            &mut s,
            &TurnInput::Text("我的卡丢了，帮我挂失".into()),
            |eff| match eff {
                Effect::Device { .. } => EffectResult::Failed {
                    code: "no_card".into(),
                    note: String::new(),
                },
                other => sandbox(other),
            },
        );
        assert!(all_text(&r).contains("工作人员"), "{}", all_text(&r));
        assert!(s.stack.is_empty());
    }

    #[test]
    fn silence_mid_flow_asks_then_ends() {
        let e = engine();
        let mut s = SessionState::default();
        say(&e, &mut s, "我想预约开户");
        let first = e.on_idle(&mut s);
        assert!(!first.ends_session());
        let second = e.on_idle(&mut s);
        assert!(second.ends_session());
    }
}

#[cfg(test)]
mod effect_tests {
    use super::*;

    #[test]
    fn a_saved_device_field_reaches_the_next_action() {
        let e = super::tests::engine();
        let mut s = SessionState::default();
        let mut seen = Vec::new();
        e.turn_with(&mut s, &TurnInput::Text("挂失".into()), |eff| {
            seen.push(eff.clone());
            let mut v = BTreeMap::new();
            v.insert("id_number".to_string(), "11010519491231002X".to_string());
            EffectResult::Done(v)
        });
        let identify = seen.iter().find_map(|e| match e {
            Effect::Action { name, slots } if name == "banking.identify" => Some(slots.clone()),
            _ => None,
        });
        assert_eq!(
            identify.unwrap().get("id_number").map(String::as_str),
            Some("11010519491231002X"),
            "{seen:?}"
        );
    }
}

#[cfg(test)]
mod stale_state_tests {
    use super::*;

    /// A session stored before a flow was renamed or shortened resumes without a panic.
    #[test]
    fn a_frame_of_a_flow_that_is_gone_is_dropped() {
        let e = super::tests::engine();
        for (flow, step) in [("no.such.flow", 0), ("queue.take_number", 999)] {
            let mut s = SessionState::default();
            s.stack.push(Frame {
                flow: flow.into(),
                step,
                slots: BTreeMap::new(),
                retries: 0,
                waiting: Waiting::Effect,
            });
            let out = e.resume(&mut s, EffectResult::Done(BTreeMap::new()));
            assert!(!out.replies.is_empty());
            assert!(s.stack.is_empty());
            s.stack.push(Frame {
                flow: flow.into(),
                step,
                slots: BTreeMap::new(),
                retries: 0,
                waiting: Waiting::Answer,
            });
            let (_, replies) = e.turn_with(&mut s, &TurnInput::Text("你好".into()), |_| {
                EffectResult::Done(BTreeMap::new())
            });
            assert!(!replies.is_empty());
            assert!(s.stack.is_empty(), "the stale frame is gone: {:?}", s.stack);
        }
    }
}
