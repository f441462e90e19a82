//! The dialog engine: given the session's state and one customer input, decides the bot's
//! reply. It is pure (no I/O), so a turn is cheap and the engine is tested without a server.
//!
//! This engine answers each input on its own from the understanding ([`Nlu`]) and response
//! texts; an input the understanding is not sure about counts as a misunderstanding, and
//! after repeated misunderstandings it offers a person. A fraud risk flag interrupts
//! whatever was asked with a plain warning and the offer of a teller. Multi-step flows
//! (slots, devices, confirmations) build on the same [`SessionState`], persisted every turn.

use std::collections::BTreeMap;

use kiosk_protocol::{Choice, Ui};
use serde::{Deserialize, Serialize};

use super::data::{DialogData, ResponseSpec};
use crate::nlu::{is_intent, Nlu, Parse, Scored};

/// Misunderstandings in a row after which the bot offers a person.
pub const MISUNDERSTOOD_BEFORE_OFFER: u32 = 2;

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
}

/// The engine, built once from validated data and shared by all sessions.
#[derive(Debug, Clone)]
pub struct Engine {
    pub nlu: Nlu,
    responses: BTreeMap<String, ResponseSpec>,
}

impl Engine {
    /// Builds the engine; trains the intent classifier from `data`.
    pub fn new(data: &DialogData) -> anyhow::Result<Engine> {
        Ok(Engine {
            nlu: Nlu::new(data)?,
            responses: data.responses.clone(),
        })
    }

    /// The reply that opens a new session.
    pub fn opening(&self) -> BotReply {
        self.reply("welcome")
    }

    /// The NLU step of a turn: what the input asks for. `None` for a tapped value that is
    /// not an intent.
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
                })
            }
            TurnInput::Choice(_) => None,
            TurnInput::Text(text) => Some(self.nlu.parse(text, crate::clock::now_local())),
        }
    }

    /// The dialog step of a turn: decides the reply and updates `state`.
    pub fn respond(&self, state: &mut SessionState, understood: Option<&Parse>) -> BotReply {
        let understood = understood.filter(|p| p.sure || !p.risk.is_empty());
        let reply = match understood.map(|p| (p, &p.intent)) {
            Some((p, _)) if p.risk.iter().any(|r| r == "fraud_suspected") => {
                state.misunderstood = 0;
                state.last_intent = Some("fraud_suspected".into());
                self.reply("fraud_warning")
            }
            Some((_, m)) if m.name == "repeat" => {
                state.misunderstood = 0;
                state.last_reply.clone().unwrap_or_else(|| self.opening())
            }
            Some((_, m)) => {
                state.misunderstood = 0;
                state.last_intent = Some(m.name.clone());
                if self.responses.contains_key(&m.name) {
                    self.reply(&m.name)
                } else {
                    self.reply("unsupported")
                }
            }
            None => {
                state.misunderstood += 1;
                if state.misunderstood >= MISUNDERSTOOD_BEFORE_OFFER {
                    self.reply("offer_human")
                } else {
                    self.reply("fallback")
                }
            }
        };
        state.last_reply = Some(reply.clone());
        reply
    }

    /// Both steps at once (tests, `concierge nlu`).
    pub fn turn(&self, state: &mut SessionState, input: &TurnInput) -> (Option<Parse>, BotReply) {
        let understood = self.understand(input);
        let reply = self.respond(state, understood.as_ref());
        (understood, reply)
    }

    fn reply(&self, key: &str) -> BotReply {
        let spec = &self.responses[key];
        let choices: Vec<Choice> = spec.choices.iter().map(Choice::from).collect();
        BotReply {
            text: spec.text.trim().to_string(),
            speak: spec.speak.clone(),
            ui: (!choices.is_empty()).then(|| Ui {
                choices,
                ..Ui::default()
            }),
            end_session: spec.end_session,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn engine() -> Engine {
        let data =
            DialogData::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogs")).unwrap();
        Engine {
            nlu: Nlu::for_tests(),
            responses: data.responses,
        }
    }

    #[test]
    fn a_greeting_is_answered_with_the_greeting_response() {
        let e = engine();
        let mut s = SessionState::default();
        let (m, reply) = e.turn(&mut s, &TurnInput::Text("你好呀".into()));
        assert_eq!(m.unwrap().intent.name, "greet");
        assert!(!reply.text.is_empty());
        assert_eq!(s.last_reply.as_ref(), Some(&reply));
    }

    #[test]
    fn two_misunderstandings_in_a_row_offer_a_person() {
        let e = engine();
        let mut s = SessionState::default();
        let (_, first) = e.turn(&mut s, &TurnInput::Text("呜啦啦".into()));
        let (_, second) = e.turn(&mut s, &TurnInput::Text("叽里咕噜".into()));
        assert_ne!(first, second);
        let choices = second.ui.unwrap().choices;
        assert!(
            choices.iter().any(|c| c.value == "handoff.teller"),
            "{choices:?}"
        );
    }

    #[test]
    fn repeat_says_the_last_reply_again() {
        let e = engine();
        let mut s = SessionState::default();
        let (_, hello) = e.turn(&mut s, &TurnInput::Text("你好".into()));
        let (m, again) = e.turn(&mut s, &TurnInput::Text("请再说一遍".into()));
        assert_eq!(m.unwrap().intent.name, "repeat");
        assert_eq!(hello, again);
    }

    #[test]
    fn a_tapped_choice_acts_as_its_intent() {
        let e = engine();
        let mut s = SessionState::default();
        let (m, _) = e.turn(&mut s, &TurnInput::Choice("goodbye".into()));
        assert_eq!(m.unwrap().intent.name, "goodbye");
        let (m, _) = e.turn(&mut s, &TurnInput::Choice("not-an-intent".into()));
        assert!(m.is_none());
    }

    #[test]
    fn a_fraud_pattern_interrupts_with_a_warning_and_a_teller() {
        let e = engine();
        let mut s = SessionState::default();
        let (m, reply) = e.turn(&mut s, &TurnInput::Text("对方让我转账到安全账户".into()));
        assert_eq!(m.unwrap().risk, vec!["fraud_suspected"]);
        assert!(reply.text.contains("诈骗"), "{}", reply.text);
        let choices = reply.ui.unwrap().choices;
        assert!(choices.iter().any(|c| c.value == "handoff.teller"));
    }
}
