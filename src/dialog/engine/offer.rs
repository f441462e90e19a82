//! Offering a journey instead of starting it: after a knowledge answer about a service
//! ("开存款证明要带什么" → the answer, then "需要我帮您办理存款证明吗？"), or when a
//! question about a service finds no article. The offer is remembered in the session
//! state for one turn: yes (said or tapped) starts the journey, no is acknowledged,
//! anything else is understood as usual and the offer is forgotten.

use std::collections::BTreeMap;

use super::render::render;
use super::{BotReply, Engine, Outcome, SessionState};
use crate::nlu::intent::SystemIntent;

impl Engine {
    /// Offers `intent`'s journey with nothing else said (a question about it the
    /// knowledge base could not answer): "您是想办理开户吗？". Outside a journey only;
    /// inside one, or for an intent without a flow, the fallback is said.
    pub fn offer(&self, state: &mut SessionState, intent: &str) -> Outcome {
        state.idle_prompts = 0;
        let mut out = Outcome::default();
        match state
            .stack
            .is_empty()
            .then(|| self.offer_reply(state, intent, "offer_only"))
            .flatten()
        {
            Some(reply) => out.replies.push(reply),
            None => {
                out.replies.push(self.reply("fallback"));
                out.replies.extend(self.reprompt(state));
            }
        }
        self.finish(state, out)
    }

    /// The offer of `intent`'s journey by response `key` (its `{service}` filled), and the
    /// offer remembered; `None` when the intent has no flow or the response is missing.
    pub(super) fn offer_reply(
        &self,
        state: &mut SessionState,
        intent: &str,
        key: &str,
    ) -> Option<BotReply> {
        if !self.flows.contains_key(intent) || !self.responses.contains_key(key) {
            return None;
        }
        let mut reply = self.reply(key);
        // The `affirm` button carries the service itself: tapped, it starts the journey
        // even after the offer is forgotten.
        if let Some(ui) = reply.ui.as_mut() {
            for c in ui.choices.iter_mut().filter(|c| c.value == "affirm") {
                c.value = intent.to_string();
            }
        }
        let slots = BTreeMap::from([("service".to_string(), intent.to_string())]);
        reply.text = render(&reply.text, &slots, &self.labels);
        if let Some(speak) = reply.speak.as_mut() {
            *speak = render(speak, &slots, &self.labels);
        }
        state.offer = Some(intent.to_string());
        Some(reply)
    }

    /// The turn after an offer: yes starts the journey, no is acknowledged; `None` for
    /// anything else (understood as usual, the offer forgotten).
    pub(super) fn answer_offer(
        &self,
        state: &mut SessionState,
        offered: &str,
        intent: Option<&str>,
        fraud: bool,
    ) -> Option<Outcome> {
        if fraud || !state.stack.is_empty() || !self.flows.contains_key(offered) {
            return None;
        }
        let mut out = Outcome::default();
        match intent.and_then(SystemIntent::of) {
            Some(SystemIntent::Affirm) => {
                state.misunderstood = 0;
                state.last_intent = Some(offered.to_string());
                self.push(state, offered, BTreeMap::new());
                let more = self.advance(state);
                out.replies.extend(more.replies);
                out.effect = more.effect;
                Some(out)
            }
            Some(SystemIntent::Deny) => {
                state.misunderstood = 0;
                out.replies
                    .push(self.reply_or("offer_declined", "fallback"));
                Some(out)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::engine;
    use super::super::{EffectResult, TurnInput};
    use super::*;

    fn no_effects(_: &super::super::Effect) -> EffectResult {
        EffectResult::Done(BTreeMap::new())
    }

    #[test]
    fn an_offer_taken_with_yes_starts_the_journey() {
        let e = engine();
        let mut s = SessionState::default();
        let out = e.offer(&mut s, "account.open");
        assert!(out.replies[0].text.contains("开户"), "{:?}", out.replies);
        assert_eq!(s.offer.as_deref(), Some("account.open"));
        let choices = &out.replies[0].ui.as_ref().unwrap().choices;
        assert_eq!(
            choices[0].value, "account.open",
            "the yes button names the service"
        );
        e.turn_with(&mut s, &TurnInput::Text("好的".into()), no_effects);
        assert_eq!(s.offer, None);
        assert_eq!(
            s.stack.first().map(|f| f.flow.as_str()),
            Some("account.open")
        );
    }

    #[test]
    fn an_offer_declined_or_ignored_is_forgotten() {
        let e = engine();
        let mut s = SessionState::default();
        e.offer(&mut s, "account.open");
        let (_, replies) = e.turn_with(&mut s, &TurnInput::Text("不用了".into()), no_effects);
        assert!(s.stack.is_empty() && s.offer.is_none(), "{s:?}");
        assert!(!replies.is_empty());
        e.offer(&mut s, "account.open");
        e.turn_with(&mut s, &TurnInput::Text("我要取号".into()), no_effects);
        assert_eq!(s.offer, None);
        assert_eq!(
            s.stack.first().map(|f| f.flow.as_str()),
            Some("queue.take_number")
        );
    }

    #[test]
    fn nothing_is_offered_mid_journey_or_without_a_flow() {
        let e = engine();
        let mut s = SessionState::default();
        let out = e.offer(&mut s, "greet");
        assert_eq!(s.offer, None, "{:?}", out.replies);
        e.turn_with(&mut s, &TurnInput::Text("我要挂失".into()), no_effects);
        assert!(!s.stack.is_empty());
        e.offer(&mut s, "account.open");
        assert_eq!(s.offer, None);
    }
}
