//! The journey journal: what the engine did to the customer's journeys while it handled one
//! input — a journey started, reached a step, or ended and how (completed, cancelled,
//! handed to a person, over the retry limit, left unfinished, failed) — and whether it
//! could not serve the customer's words ([`Miss`]). The marks ride on
//! [`SessionState::journal`] and [`SessionState::misses`] (never stored with the state)
//! until the session store writes them — to `journey_events`, and onto the turn's customer
//! line — in the same transaction as the turn's transcript lines; the reports count
//! journeys and draw their funnels from them, and content staff see the misses.

use super::{Engine, Frame, SessionState, HANDOFF_FRAME};
use crate::dialog::flow::Kind;

/// What happened to a journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JourneyEvent {
    /// The journey began.
    Started,
    /// It reached a step that waits (for the customer, a device or an action).
    Step,
    /// It ran to its end.
    Completed,
    /// The customer cancelled it (取消, or "no" to a confirmation without a way back).
    Cancelled,
    /// It was handed to a person (asked for, fraud, a step that failed).
    HandedOff,
    /// The customer's answers stayed unusable past the step's retry limit.
    RetryLimit,
    /// The customer left it: silence, or a goodbye mid-journey.
    Abandoned,
    /// The flow data could not go on (a step or flow gone, a loop).
    Failed,
}

impl JourneyEvent {
    /// The name stored in `journey_events.event`.
    pub fn as_str(self) -> &'static str {
        match self {
            JourneyEvent::Started => "started",
            JourneyEvent::Step => "step",
            JourneyEvent::Completed => "completed",
            JourneyEvent::Cancelled => "cancelled",
            JourneyEvent::HandedOff => "handed_off",
            JourneyEvent::RetryLimit => "retry_limit",
            JourneyEvent::Abandoned => "abandoned",
            JourneyEvent::Failed => "failed",
        }
    }
}

/// A customer's words the engine could not serve well: they land, masked, in the
/// unanswered-question queue of content staff (`transcript_lines.unanswered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Miss {
    /// The knowledge base had no answer good enough ("我暂时答不上来").
    DontKnow,
    /// Not understood at all ("没听懂"): no intent was sure enough.
    NotUnderstood,
    /// Understood as something this kiosk does not offer.
    OutOfScope,
    /// Answered only with a question back: which of the closest articles was meant.
    Clarified,
}

impl Miss {
    /// The name stored in `transcript_lines.unanswered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Miss::DontKnow => "dont_know",
            Miss::NotUnderstood => "not_understood",
            Miss::OutOfScope => "out_of_scope",
            Miss::Clarified => "clarified",
        }
    }
}

/// One entry of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JourneyMark {
    /// The flow (the journey's intent).
    pub flow: String,
    pub event: JourneyEvent,
    /// The step it was at ([`Engine::step_label`]).
    pub step: String,
}

/// Where the innermost journey stands: (depth, flow, step).
pub type Position = Option<(usize, String, usize)>;

impl Engine {
    /// A step as reports name it: its `id`, else what it does (`ask:phone`, `confirm`,
    /// `device:id_card`, `action:knowledge.answer`, `branch`, `handoff`, `end`), else its
    /// number (`#3`); `done` past the last step.
    pub fn step_label(&self, flow: &str, step: usize) -> String {
        let Some(s) = self.flows.get(flow).and_then(|f| f.steps.get(step)) else {
            return "done".into();
        };
        if let Some(id) = &s.spec.id {
            return id.clone();
        }
        match &s.kind {
            Kind::Ask { slot } => format!("ask:{slot}"),
            Kind::Confirm(_) => "confirm".into(),
            Kind::Device { device, .. } => format!("device:{device}"),
            Kind::Action(action) => format!("action:{action}"),
            Kind::Branch(_) => "branch".into(),
            Kind::Handoff(_) => "handoff".into(),
            Kind::End(_) => "end".into(),
            Kind::Say(_) | Kind::Goto(_) => format!("#{step}"),
        }
    }

    /// Every step of `flow` as [`Engine::step_label`] names it, in the flow's order (a
    /// funnel's order); empty for a flow that is gone.
    pub fn step_order(&self, flow: &str) -> Vec<String> {
        let n = self.flows.get(flow).map_or(0, |f| f.steps.len());
        (0..n).map(|i| self.step_label(flow, i)).collect()
    }

    /// Where the innermost journey of `state` stands (the handoff pseudo-frame is none).
    pub fn position(state: &SessionState) -> Position {
        state
            .stack
            .last()
            .filter(|f| f.flow != HANDOFF_FRAME)
            .map(|f| (state.stack.len(), f.flow.clone(), f.step))
    }

    /// Notes the step the innermost journey moved to since `before`, if it moved.
    pub fn note_progress(&self, before: &Position, state: &mut SessionState) {
        let now = Engine::position(state);
        if let Some((_, flow, step)) = now.as_ref().filter(|p| Some(*p) != before.as_ref()) {
            let label = self.step_label(flow, *step);
            state.journal.push(JourneyMark {
                flow: flow.clone(),
                event: JourneyEvent::Step,
                step: label,
            });
        }
    }

    /// Notes that `frame`'s journey ended as `how`.
    fn note_end(&self, journal: &mut Vec<JourneyMark>, frame: &Frame, how: JourneyEvent) {
        if frame.flow != HANDOFF_FRAME {
            journal.push(JourneyMark {
                flow: frame.flow.clone(),
                event: how,
                step: self.step_label(&frame.flow, frame.step),
            });
        }
    }

    /// Pops the innermost frame, noting how its journey ended.
    pub(super) fn pop_frame(&self, state: &mut SessionState, how: JourneyEvent) {
        if let Some(frame) = state.stack.pop() {
            self.note_end(&mut state.journal, &frame, how);
        }
    }

    /// Ends every running journey (innermost first) as `how`.
    pub(super) fn clear_frames(&self, state: &mut SessionState, how: JourneyEvent) {
        while let Some(frame) = state.stack.pop() {
            self.note_end(&mut state.journal, &frame, how);
        }
    }

    /// Notes that the innermost frame's journey just began.
    pub(super) fn note_start(&self, state: &mut SessionState) {
        if let Some(frame) = state.stack.last().filter(|f| f.flow != HANDOFF_FRAME) {
            let mark = JourneyMark {
                flow: frame.flow.clone(),
                event: JourneyEvent::Started,
                step: self.step_label(&frame.flow, frame.step),
            };
            state.journal.push(mark);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{engine, sandbox};
    use super::*;
    use crate::dialog::{EffectResult, TurnInput};

    /// The marks since the last call, as (flow, event).
    fn marks(s: &mut SessionState) -> Vec<(String, &'static str)> {
        s.journal
            .drain(..)
            .map(|m| (m.flow, m.event.as_str()))
            .collect()
    }

    fn text(e: &Engine, s: &mut SessionState, said: &str) {
        e.turn_with(s, &TurnInput::Text(said.into()), sandbox);
    }

    #[test]
    fn a_queue_number_journey_is_noted_as_started_then_completed() {
        let e = engine();
        let mut s = SessionState::default();
        text(&e, &mut s, "我要取个号");
        assert_eq!(
            marks(&mut s),
            vec![("queue.take_number".to_string(), "started")]
        );
        e.turn_with(&mut s, &TurnInput::Choice("cash.withdraw".into()), sandbox);
        assert_eq!(
            marks(&mut s),
            vec![("queue.take_number".to_string(), "completed")]
        );
    }

    #[test]
    fn cancelling_and_fraud_end_journeys_as_such() {
        let e = engine();
        let mut s = SessionState::default();
        text(&e, &mut s, "我想预约开户");
        marks(&mut s);
        text(&e, &mut s, "算了不办了");
        assert_eq!(
            marks(&mut s),
            vec![("appointment.book".to_string(), "cancelled")]
        );
        text(&e, &mut s, "我要给我儿子转五千块钱");
        let started = marks(&mut s);
        assert_eq!(started.first().map(|m| m.1), Some("started"), "{started:?}");
        e.turn_with(
            &mut s,
            &TurnInput::Text("对方是警察，让我转到安全账户".into()),
            |_| EffectResult::Done(Default::default()),
        );
        assert_eq!(
            marks(&mut s),
            vec![(started[0].0.clone(), "handed_off")],
            "the handoff pseudo-frame is not a journey"
        );
    }

    #[test]
    fn progress_is_noted_once_per_step_reached() {
        let e = engine();
        let mut s = SessionState::default();
        let before = Engine::position(&s);
        text(&e, &mut s, "我想预约开户");
        e.note_progress(&before, &mut s);
        let got: Vec<(String, String)> = s
            .journal
            .drain(..)
            .map(|m| (m.event.as_str().to_string(), m.step))
            .collect();
        assert_eq!(got[0].0, "started");
        assert_eq!(got[1].0, "step");
        assert!(!got[1].1.is_empty() && got[1].1 != "done", "{got:?}");
        // Nothing moved: nothing noted.
        let before = Engine::position(&s);
        e.note_progress(&before, &mut s);
        assert!(s.journal.is_empty());
    }

    #[test]
    fn steps_are_named_by_id_or_by_what_they_do() {
        let e = engine();
        let flow = "appointment.book";
        let labels: Vec<String> = (0..12).map(|i| e.step_label(flow, i)).collect();
        assert!(labels.iter().any(|l| l.starts_with("ask:")), "{labels:?}");
        assert_eq!(e.step_label(flow, 999), "done");
        assert_eq!(e.step_label("no.such.flow", 0), "done");
    }

    #[test]
    fn words_the_engine_could_not_serve_are_noted() {
        let e = engine();
        let mut s = SessionState::default();
        text(&e, &mut s, "呜啦啦");
        assert_eq!(s.misses, vec![Miss::NotUnderstood]);
        s.misses.clear();
        e.resume(
            &mut s,
            EffectResult::Failed {
                code: "no_answer".into(),
                note: String::new(),
            },
        );
        assert_eq!(s.misses, vec![Miss::DontKnow]);
        s.misses.clear();
        let mut clarify = std::collections::BTreeMap::new();
        clarify.insert("kind".to_string(), "clarify".to_string());
        e.resume(&mut s, EffectResult::Done(clarify));
        assert_eq!(s.misses, vec![Miss::Clarified]);
        s.misses.clear();
        // An answer is not a miss.
        e.resume(&mut s, EffectResult::Done(Default::default()));
        assert!(s.misses.is_empty());
        assert_eq!(Miss::DontKnow.min(Miss::Clarified), Miss::DontKnow);
    }

    #[test]
    fn the_journal_is_never_stored_with_the_state() {
        let e = engine();
        let mut s = SessionState::default();
        text(&e, &mut s, "我要取个号");
        assert!(!s.journal.is_empty());
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("journal"), "{json}");
        let back: SessionState = serde_json::from_str(&json).unwrap();
        assert!(back.journal.is_empty());
    }
}
