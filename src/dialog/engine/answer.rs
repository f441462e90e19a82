//! Answers to the innermost frame: a value for an `ask` step (from the understanding, a
//! choice said or tapped, or the words of a free-text slot), corrections of values already
//! given, yes/no to a `confirm` step — or not an answer at all (a digression, a new
//! request), which the engine then treats as such.

use std::collections::BTreeMap;

use super::journal::JourneyEvent;
use super::render::render;
use super::{Engine, Frame, Outcome, SessionState, TurnInput, Waiting};
use crate::dialog::flow::{Flow, Kind, Step};
use crate::nlu::intent::SystemIntent;
use crate::nlu::Parse;
use crate::text::cut_utterance;

/// What the understanding made of an answer.
struct Heard<'p> {
    /// The intent, when the NLU is sure of it.
    intent: Option<&'p str>,
    /// Slot values said.
    said: Option<&'p BTreeMap<String, String>>,
    /// Slots already held, said again with other values.
    corrected: Vec<(String, String)>,
    /// Slots already held said again with the same values ("尾号是0122" when the journey
    /// holds 0122): an answer in context, never a new request.
    restated: bool,
    understood: Option<&'p Parse>,
}

impl Engine {
    /// Tries the input as an answer to the innermost frame. `None` when it is not one (a
    /// new request, a digression), so the caller treats it as such.
    pub(super) fn answer(
        &self,
        state: &mut SessionState,
        frame: Frame,
        input: &TurnInput,
        understood: Option<&Parse>,
    ) -> Option<Outcome> {
        let flow = self.flows.get(&frame.flow)?;
        let step = flow.steps.get(frame.step)?;
        let top = state.stack.last()?;
        let asked = match &step.kind {
            Kind::Ask { slot } => Some(slot.as_str()),
            _ => None,
        };
        let in_context = understood.map(|p| in_context(&p.slots, &top.slots, asked));
        let said = in_context.as_ref();
        // Corrections: slots the frame already holds, said again with new values.
        let corrected: Vec<(String, String)> = said
            .into_iter()
            .flatten()
            .filter(|(k, v)| top.slots.get(*k).is_some_and(|old| old != *v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let restated = said
            .into_iter()
            .flatten()
            .any(|(k, v)| top.slots.get(k) == Some(v));
        let heard = Heard {
            intent: understood
                .filter(|p| p.sure)
                .map(|p| p.intent.name.as_str()),
            said,
            corrected,
            restated,
            understood,
        };
        match (&frame.waiting, &step.kind) {
            (Waiting::Answer, Kind::Ask { slot }) => {
                self.answer_ask(state, &frame, step, slot, input, heard)
            }
            (Waiting::YesNo, Kind::Confirm(_)) => self.answer_confirm(state, flow, step, heard),
            _ => None,
        }
    }

    /// An answer to an `ask` step: the slot's value (from the NLU, a choice said or tapped,
    /// or the words themselves for a free-text slot), a correction, values for later
    /// questions, a rejected value, a digression — or a retry.
    fn answer_ask(
        &self,
        state: &mut SessionState,
        frame: &Frame,
        step: &Step,
        slot: &str,
        input: &TurnInput,
        heard: Heard<'_>,
    ) -> Option<Outcome> {
        let Heard {
            intent,
            said,
            corrected,
            restated,
            understood,
        } = heard;
        // Words naming this same journey ("信用卡" while choosing a card type) are an
        // answer, not a request to start it again.
        let own = intent.is_some_and(|i| i == frame.flow);
        let top = state.stack.last_mut()?;
        if let Some(v) = self.ask_value(step, slot, input, said, &top.slots, intent, own) {
            top.slots.insert(slot.to_string(), v);
            for (k, v) in said.into_iter().flatten() {
                top.slots.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in corrected {
                top.slots.insert(k, v);
            }
            top.waiting = Waiting::Nothing;
            top.retries = 0;
            top.step += 1;
            state.misunderstood = 0;
            return Some(self.advance(state));
        }
        if !corrected.is_empty() {
            for (k, v) in corrected {
                top.slots.insert(k, v);
            }
            let mut out = Outcome::default();
            out.replies.push(self.reply_or("corrected", "fallback"));
            out.replies.extend(self.reprompt(state));
            return Some(out);
        }
        // Other values said on the way ("明天" while asked for the service) are kept
        // for the questions still to come.
        let mut kept = false;
        for (k, v) in said.into_iter().flatten() {
            if !top.slots.contains_key(k) {
                top.slots.insert(k.clone(), v.clone());
                kept = true;
            }
        }
        // A value that cannot be right (2月30号, an ID number with a bad check digit)
        // was an attempt to answer: say what is wrong, ask again.
        let rejected = understood.and_then(|p| {
            p.rejected
                .iter()
                .find(|r| r.slot == slot)
                .or_else(|| p.rejected.first())
        });
        if let Some(r) = rejected {
            return Some(self.retry(state, Some(&r.reason)));
        }
        if kept && !own {
            let mut out = Outcome::default();
            out.replies.extend(self.reprompt(state));
            return Some(out);
        }
        if !own && !restated && self.knows(intent) {
            return None; // a digression or small talk
        }
        Some(self.retry(state, None))
    }

    /// The value an answer gives the asked slot, if any.
    #[allow(clippy::too_many_arguments)]
    fn ask_value(
        &self,
        step: &Step,
        slot: &str,
        input: &TurnInput,
        said: Option<&BTreeMap<String, String>>,
        slots: &BTreeMap<String, String>,
        intent: Option<&str>,
        own: bool,
    ) -> Option<String> {
        match input {
            TurnInput::Choice(v)
                if step
                    .spec
                    .choices
                    .iter()
                    .any(|c| render(&c.value, slots, &self.labels) == *v) =>
            {
                Some(v.clone())
            }
            TurnInput::Text(t) => said
                .and_then(|s| s.get(slot).cloned())
                .or_else(|| spoken_choice(step, t, slots, &self.labels))
                .or_else(|| {
                    // A slot of the flow's own (a free-text description): the words.
                    let free = !crate::dialog::flow::NLU_SLOTS.contains(&slot);
                    let other_journey =
                        matches!(intent, Some(i) if self.flows.contains_key(i)) && !own;
                    (free && !other_journey).then(|| cut_utterance(t.trim()))
                }),
            _ => None,
        }
    }

    /// An answer to a `confirm` step: a correction confirms again, yes goes on, no goes to
    /// `on_no` (asking again from there) or cancels the flow.
    fn answer_confirm(
        &self,
        state: &mut SessionState,
        flow: &Flow,
        step: &Step,
        heard: Heard<'_>,
    ) -> Option<Outcome> {
        let top = state.stack.last_mut()?;
        if !heard.corrected.is_empty() {
            for (k, v) in heard.corrected {
                top.slots.insert(k, v);
            }
            top.retries = 0;
            return Some(self.advance(state)); // confirm again with the new values
        }
        let said_no = matches!(
            heard.intent.and_then(SystemIntent::of),
            Some(SystemIntent::Deny | SystemIntent::Cancel)
        );
        let intent = if heard.restated && !said_no {
            // Repeating what is being confirmed ("尾号是0122", "对，是这张") is a yes.
            Some(SystemIntent::Affirm)
        } else {
            heard.intent.and_then(SystemIntent::of)
        };
        match intent {
            Some(SystemIntent::Affirm) => {
                top.waiting = Waiting::Nothing;
                top.retries = 0;
                top.step += 1;
                Some(self.advance(state))
            }
            Some(SystemIntent::Deny) => {
                top.waiting = Waiting::Nothing;
                top.retries = 0;
                let Some(target) = &step.spec.on_no else {
                    self.pop_frame(state, JourneyEvent::Cancelled);
                    let mut out = Outcome::default();
                    out.replies.push(self.reply(SystemIntent::Cancel.name()));
                    return Some(out);
                };
                top.step = flow.target(target);
                // Asking again: forget the answers from the target on.
                for s in &flow.steps[top.step..] {
                    if let Kind::Ask { slot } = &s.kind {
                        top.slots.remove(slot);
                    }
                }
                Some(self.advance(state))
            }
            _ if self.knows(heard.intent) => None,
            _ => Some(self.retry(state, None)),
        }
    }

    /// Whether the intent starts a flow or has a response (a digression, small talk).
    fn knows(&self, intent: Option<&str>) -> bool {
        intent.is_some_and(|i| self.flows.contains_key(i) || self.responses.contains_key(i))
    }
}

/// The values said, read in the context of the journey: a bare number the NLU took for
/// another slot (an amount) that has the shape of a value the journey holds (four digits
/// like the card tail it holds) is that slot, said again or corrected ("是6789这张",
/// "不是，是1234"). Only when exactly one held slot has that shape, and never for the slot
/// being asked.
fn in_context(
    said: &BTreeMap<String, String>,
    held: &BTreeMap<String, String>,
    asked: Option<&str>,
) -> BTreeMap<String, String> {
    let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let mut out = BTreeMap::new();
    for (k, v) in said {
        let mut target = k.clone();
        if !held.contains_key(k) && Some(k.as_str()) != asked && digits(v) {
            let mut same_shape = held
                .iter()
                .filter(|(hk, hv)| digits(hv) && hv.len() == v.len() && Some(hk.as_str()) != asked);
            if let (Some((hk, _)), None) = (same_shape.next(), same_shape.next()) {
                target = hk.clone();
            }
        }
        out.insert(target, v.clone());
    }
    out
}

/// The choice of an `ask` step whose label (or value) the customer said in words.
fn spoken_choice(
    step: &Step,
    text: &str,
    slots: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let said = crate::text::normalize::normalize(text).matching;
    let choices: Vec<(String, String)> = step
        .spec
        .choices
        .iter()
        .map(|c| {
            let label = render(&c.label, slots, labels);
            (
                crate::text::normalize::normalize(&label).matching,
                render(&c.value, slots, labels),
            )
        })
        .collect();
    let whole = choices
        .iter()
        .filter(|(label, value)| {
            (!label.is_empty() && said.contains(label.as_str())) || said == value.to_lowercase()
        })
        .max_by_key(|(label, _)| label.chars().count())
        .map(|(_, value)| value.clone());
    // A part of one long label only ("可疑电话" for 常见电信诈骗与接到可疑电话怎么办).
    whole.or_else(|| {
        let mut part = choices
            .iter()
            .filter(|(label, _)| said.chars().count() >= 2 && label.contains(said.as_str()));
        match (part.next(), part.next()) {
            (Some((_, value)), None) => Some(value.clone()),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::engine;
    use super::*;
    use crate::dialog::EffectResult;

    #[test]
    fn saying_a_choice_of_the_same_journey_answers_it() {
        let e = engine();
        let mut s = SessionState::default();
        e.turn_with(&mut s, &TurnInput::Text("我想办张卡".into()), |_| {
            EffectResult::Done(BTreeMap::new())
        });
        assert_eq!(s.stack.len(), 1, "{:?}", s.stack);
        let asked = s.stack[0].step;
        e.turn_with(&mut s, &TurnInput::Text("信用卡".into()), |_| {
            EffectResult::Done(BTreeMap::new())
        });
        assert!(
            s.stack.len() <= 1,
            "no second copy of the journey: {:?}",
            s.stack
        );
        assert!(
            s.stack.is_empty() || s.stack[0].step != asked,
            "the question moved on: {:?}",
            s.stack
        );
    }

    fn at_the_card_loss_confirmation(e: &Engine) -> SessionState {
        let sandbox = super::super::tests::sandbox;
        let mut s = SessionState::default();
        for said in ["我要挂失", "13812345678", "尾号6789"] {
            e.turn_with(&mut s, &TurnInput::Text(said.into()), sandbox);
        }
        assert_eq!(
            s.stack.last().map(|f| &f.waiting),
            Some(&Waiting::YesNo),
            "{s:?}"
        );
        s
    }

    #[test]
    fn restating_the_card_tail_at_the_confirmation_confirms() {
        let e = engine();
        let sandbox = super::super::tests::sandbox;
        for restated in ["尾号是6789", "对，是6789这张", "就是尾号6789的"] {
            let mut s = at_the_card_loss_confirmation(&e);
            let (_, replies) = e.turn_with(&mut s, &TurnInput::Text(restated.into()), sandbox);
            let said: Vec<&str> = replies.iter().map(|r| r.text.as_str()).collect();
            assert!(
                said.iter().any(|t| t.contains("挂失成功")),
                "{restated}: {said:?}"
            );
            assert!(s.stack.is_empty(), "{restated}: {:?}", s.stack);
        }
    }

    #[test]
    fn another_tail_at_the_confirmation_confirms_again() {
        let e = engine();
        let mut s = at_the_card_loss_confirmation(&e);
        let (_, replies) = e.turn_with(
            &mut s,
            &TurnInput::Text("不是，是1234".into()),
            super::super::tests::sandbox,
        );
        assert_eq!(s.stack.last().map(|f| &f.waiting), Some(&Waiting::YesNo));
        assert_eq!(s.stack[0].slots["card_last4"], "1234");
        assert!(
            replies.iter().any(|r| r.text.contains("1234")),
            "{replies:?}"
        );
    }
}
