//! The understanding step of a turn: one place that weighs every signal about what the
//! customer said and hands the dialog engine one verdict.
//!
//! Signals, in order:
//! 1. **Context**: at an `ask` or a confirmation, an utterance that gives or restates the
//!    step's slot ("尾号是0122", "不是，是6789") is an answer, never a new request.
//! 2. **Exact phrases and risk flags** decide at once, as before.
//! 3. **Meaning**: the classifier's ranking and the vote of the nearest embedded training
//!    examples ([`crate::nlu::neighbours`]), mixed with [`CLASSIFIER_WEIGHT`].
//! 4. **Form** ([`crate::nlu::forms`]): a question *about* a service ("开存款证明要带什么")
//!    is answered from the knowledge base and the service offered; a request ("我要…")
//!    starts it. No journey (and so no device step) starts in answer to a question.
//! 5. **Knowledge**: an article that answers confidently makes the turn a knowledge
//!    question when the intent is unsure, out of scope or a question; `out_of_scope` stands
//!    only when the classifier, the neighbours and the knowledge base all agree.
//!
//! The verdict's [`Parse`] says in `source` which signal decided and lists them all in
//! `signals` (`concierge nlu --json` prints it).

use std::path::Path;
use std::sync::Arc;

use crate::dialog::data::DialogData;
use crate::dialog::engine::{Awaiting, OFFER_SLOT};
use crate::dialog::{Engine, SessionState, TurnInput};
use crate::embedding::{Embedder, Kind};
use crate::knowledge::{Answer, Knowledge};
use crate::nlu::forms::Form;
use crate::nlu::intent::SystemIntent;
use crate::nlu::neighbours::{Neighbours, Vote};
use crate::nlu::{Parse, Scored, Signal, INTENTS};

/// Share of the classifier in the mixed intent score (the neighbours have the rest).
/// Tuned on `eval/kiosk/dev.yaml`; see docs/benchmarks.md.
pub const CLASSIFIER_WEIGHT: f32 = 0.5;
/// The intent of a question for the knowledge base.
const KNOWLEDGE_QUESTION: &str = "knowledge.question";
/// The mixed score an intent needs to be acted on.
pub const SURE: f32 = 0.5;
/// A request to act ("帮我…", "我要…") for a service is acted on from this mixed score
/// (two services can share the vote of a compound request).
pub const REQUEST_SURE: f32 = 0.35;
/// A bare phrase taken for a service below this mixed score is checked against the
/// knowledge base: an article about something else answers it instead.
pub const PLAIN_SURE: f32 = 0.7;
/// Below this similarity of the nearest example the neighbours abstain (nothing like it
/// was ever said).
pub const NEAREST_MIN: f32 = 0.80;

/// What the dialog engine is handed.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The understood input (`None` for a tapped value that is not an intent).
    pub parse: Option<Parse>,
    /// Offer this journey instead of acting on anything: a question about it that the
    /// knowledge base cannot answer ([`Engine::offer`]).
    pub offer: Option<String>,
}

/// The understanding step, built once per node.
pub struct Understanding {
    engine: Arc<Engine>,
    knowledge: Arc<Knowledge>,
    embedder: Option<Arc<dyn Embedder>>,
    neighbours: Option<Neighbours>,
}

impl Understanding {
    /// Builds the step; with an embedder, embeds (or loads from `cache`) the training
    /// examples for the neighbour vote. Without one — or when that fails, which is
    /// logged — intents come from the classifier alone.
    pub async fn build(
        engine: Arc<Engine>,
        knowledge: Arc<Knowledge>,
        embedder: Option<Arc<dyn Embedder>>,
        dialogs: &DialogData,
        cache: Option<&Path>,
    ) -> Understanding {
        let neighbours = match &embedder {
            Some(e) => {
                let examples = labelled_examples(dialogs);
                match Neighbours::build(&examples, e.as_ref(), cache).await {
                    Ok(n) => Some(n),
                    Err(err) => {
                        tracing::warn!(error = %err, "intent neighbours unavailable; the classifier decides alone");
                        None
                    }
                }
            }
            None => None,
        };
        Understanding {
            engine,
            knowledge,
            embedder,
            neighbours,
        }
    }

    /// Whether intents are understood by meaning too (neighbours loaded).
    pub fn by_meaning(&self) -> bool {
        self.neighbours.is_some()
    }

    /// Decides what `input` means in `state` at the kiosk of `branch`.
    pub async fn decide(&self, state: &SessionState, input: &TurnInput, branch: &str) -> Verdict {
        let parsed = self.engine.understand(input);
        let TurnInput::Text(text) = input else {
            return Verdict {
                parse: parsed,
                offer: None,
            };
        };
        let Some(mut parse) = parsed else {
            return Verdict::default();
        };
        if parse.source == "empty" {
            return Verdict::of(parse);
        }
        let awaiting = self.engine.awaiting(state);
        if answers_in_context(state, awaiting, &parse) {
            parse.source = "context";
            parse.signals.push(Signal {
                name: "context",
                says: "answer".into(),
                confidence: 1.0,
            });
            return Verdict::of(parse);
        }
        if parse.source == "exact" || !parse.risk.is_empty() {
            return Verdict::of(parse);
        }
        parse.signals.push(Signal {
            name: "classifier",
            says: parse.intent.name.clone(),
            confidence: parse.intent.confidence,
        });
        if let Some(vote) = self.vote(text).await {
            mix(&mut parse, &vote);
        }
        parse.signals.push(Signal {
            name: "form",
            says: format!("{:?}", parse.form).to_lowercase(),
            confidence: 1.0,
        });
        // A free-text answer mid-journey (a complaint's description) is the journey's.
        if matches!(awaiting, Awaiting::Slot(s) if !crate::dialog::flow::NLU_SLOTS.contains(&s)) {
            return Verdict::of(parse);
        }
        self.weigh_knowledge(state, text, branch, parse).await
    }

    /// The neighbours' vote on `text`, if the model is there and works.
    async fn vote(&self, text: &str) -> Option<Vote> {
        let (embedder, neighbours) = (self.embedder.as_ref()?, self.neighbours.as_ref()?);
        let texts = [crate::text::cut_utterance(text)];
        match embedder.embed(&texts, Kind::Query).await {
            Ok(mut v) => neighbours.vote(&v.pop()?),
            Err(e) => {
                tracing::warn!(error = %e, "embedding the utterance failed; classifier only");
                None
            }
        }
    }

    /// Questions versus tasks, and what the knowledge base knows.
    async fn weigh_knowledge(
        &self,
        state: &SessionState,
        text: &str,
        branch: &str,
        mut parse: Parse,
    ) -> Verdict {
        let intent = parse.intent.name.clone();
        let question = KNOWLEDGE_QUESTION;
        let journey = intent != question && self.engine.has_flow(&intent);
        let system = SystemIntent::of(&intent);
        let asks_about_journey = journey && parse.form == Form::Question;
        if journey && parse.form == Form::Request {
            // "帮我拿个号吧，我要存钱": a request to act is acted on, even when two
            // services share the vote; the knowledge base does not answer requests.
            if parse.intent.confidence >= REQUEST_SURE {
                parse.sure = true;
            }
            return Verdict::of(parse);
        }
        // A bare phrase the understanding is not very sure is a service ("吞卡", "年费")
        // may be a topic of the knowledge base.
        let plain_doubt = journey
            && parse.form == Form::Plain
            && parse.source != "exact"
            && parse.intent.confidence < PLAIN_SURE;
        let consult = asks_about_journey
            || plain_doubt
            || !parse.sure
            || intent == question
            || system == Some(SystemIntent::OutOfScope);
        if !consult {
            return Verdict::of(parse);
        }
        let (found, tags) = self.ask_knowledge(text, branch, &mut parse).await;
        let about = |name: &str| self.names_service(name, &tags);
        let about_it = about(&intent);
        let related = std::iter::once(intent.as_str())
            .chain(parse.ranking.iter().map(|r| r.name.as_str()))
            .find(|n| about(n))
            .map(str::to_string);
        let at_rest = state.stack.is_empty();
        if asks_about_journey {
            if found {
                let offer = related.filter(|_| at_rest);
                return Verdict::of(as_question(parse, offer));
            }
            if at_rest {
                parse.source = "form";
                return Verdict {
                    offer: Some(intent),
                    parse: Some(parse),
                };
            }
            return Verdict::of(as_question(parse, None));
        }
        if found && plain_doubt && parse.sure && about_it {
            // The article is about the service the phrase names (by its tags): the
            // service it is.
            return Verdict::of(parse);
        }
        if found {
            let offer = related.filter(|_| at_rest && parse.form == Form::Question);
            return Verdict::of(as_question(parse, offer));
        }
        if system == Some(SystemIntent::OutOfScope) {
            // Out of scope only when the neighbours (if any) agree too.
            let neighbours_agree = parse
                .signals
                .iter()
                .find(|s| s.name == "neighbours")
                .is_none_or(|s| s.says == intent);
            if !neighbours_agree {
                parse.sure = false;
            }
        }
        Verdict::of(parse)
    }
}

impl Understanding {
    /// What the knowledge base answers to `text` (its signal added to `parse`): whether an
    /// article answers (or two, to choose from), and those articles' tags.
    async fn ask_knowledge(
        &self,
        text: &str,
        branch: &str,
        parse: &mut Parse,
    ) -> (bool, Vec<String>) {
        let answer = self.knowledge.answer(text, branch).await;
        // The signal's confidence: the best passage's similarity when the article has
        // vectors, else its BM25 score.
        let score = |h: &crate::knowledge::index::Hit| h.dense.unwrap_or(h.bm25);
        let (says, confidence, ids) = match &answer {
            Answer::Found { hit, .. } => (hit.id.clone(), score(hit), vec![&hit.id]),
            Answer::Clarify(a, b) => (a.id.clone(), score(a), vec![&a.id, &b.id]),
            Answer::Unknown => ("-".to_string(), 0.0, Vec::new()),
        };
        parse.signals.push(Signal {
            name: "knowledge",
            says,
            confidence,
        });
        let tags = ids
            .iter()
            .filter_map(|id| self.knowledge.live(id))
            .flat_map(|d| d.draft.tags)
            .collect();
        (!matches!(answer, Answer::Unknown), tags)
    }

    /// Whether an answer with these article tags is about the service `name`: one of the
    /// tags is the service's name or part of it ("开户" for 开户, "汇款" for 转账汇款). An
    /// article on deposit certificates (tag 存款证明) is not about 存款.
    fn names_service(&self, name: &str, tags: &[String]) -> bool {
        name != KNOWLEDGE_QUESTION
            && self.engine.has_flow(name)
            && self
                .engine
                .labels()
                .get(name)
                .is_some_and(|l| tags.iter().any(|t| names_it(l, t)))
    }
}

impl Verdict {
    fn of(parse: Parse) -> Verdict {
        Verdict {
            parse: Some(parse),
            offer: None,
        }
    }
}

/// Every training example and exact phrase with its intent's index in [`INTENTS`].
fn labelled_examples(dialogs: &DialogData) -> Vec<(String, usize)> {
    let index = |name: &str| INTENTS.iter().position(|i| *i == name);
    let nlu = &dialogs.nlu;
    let mut out: Vec<(String, usize)> = nlu
        .examples
        .iter()
        .filter_map(|e| Some((e.text.clone(), index(&e.intent)?)))
        .collect();
    for intent in &nlu.intents {
        if let Some(i) = index(&intent.name) {
            out.extend(intent.exact.iter().map(|p| (p.clone(), i)));
        }
    }
    out
}

/// Whether the utterance answers the open question: it gives the asked slot, or says
/// again (or corrects) a value the journey holds.
fn answers_in_context(state: &SessionState, awaiting: Awaiting<'_>, parse: &Parse) -> bool {
    let Some(frame) = state.stack.last() else {
        return false;
    };
    // A service named on the way ("我要取号" mid-journey) is a new request, not an answer.
    let holds = parse
        .slots
        .keys()
        .any(|k| k != "service" && frame.slots.contains_key(k));
    match awaiting {
        Awaiting::Slot(slot) => parse.slots.contains_key(slot) || holds,
        Awaiting::YesNo => holds,
        Awaiting::Nothing => false,
    }
}

/// Mixes the classifier's ranking with the neighbours' vote into the parse's intent.
fn mix(parse: &mut Parse, vote: &Vote) {
    let (best, share) = vote.ranking[0];
    parse.signals.push(Signal {
        name: "neighbours",
        says: INTENTS[best].to_string(),
        confidence: round3(share),
    });
    if vote.nearest < NEAREST_MIN {
        return;
    }
    let mut mixed: Vec<(String, f32)> = INTENTS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let c = parse
                .ranking
                .iter()
                .find(|s| s.name == *name)
                .map_or(0.0, |s| s.confidence);
            let n = vote
                .ranking
                .iter()
                .find(|(l, _)| *l == i)
                .map_or(0.0, |(_, s)| *s);
            (
                name.to_string(),
                CLASSIFIER_WEIGHT * c + (1.0 - CLASSIFIER_WEIGHT) * n,
            )
        })
        .collect();
    mixed.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let (name, score) = mixed[0].clone();
    let agree = name == parse.intent.name && name == INTENTS[best];
    parse.sure = score >= SURE || (agree && parse.sure);
    if name != parse.intent.name {
        parse.source = "neighbours";
    } else if agree {
        parse.source = "agreement";
    }
    parse.signals.push(Signal {
        name: "mixed",
        says: name.clone(),
        confidence: round3(score),
    });
    parse.intent = Scored {
        name,
        confidence: round3(score),
    };
    parse.ranking = mixed
        .into_iter()
        .take(5)
        .map(|(name, c)| Scored {
            name,
            confidence: round3(c),
        })
        .collect();
}

/// The parse as a knowledge question (what was asked, and a journey to offer after).
fn as_question(mut parse: Parse, offer: Option<String>) -> Parse {
    parse.intent = Scored {
        name: KNOWLEDGE_QUESTION.into(),
        confidence: 1.0,
    };
    parse.sure = true;
    parse.source = "knowledge";
    // The engine gives the knowledge journey the words as its `question`; a slot here
    // would read as a correction of the open journey's own `question`.
    if let Some(o) = offer {
        parse.slots.insert(OFFER_SLOT.into(), o);
    }
    parse
}

/// Whether an article's tag names a service: the service's name is the tag or contains it
/// (two characters at least: "开户" names 开户, "汇款" names 转账汇款, "存款证明" does not
/// name 存款).
fn names_it(label: &str, tag: &str) -> bool {
    tag.chars().count() >= 2 && label.contains(tag)
}

fn round3(p: f32) -> f32 {
    (p * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(intent: &str, confidence: f32, sure: bool) -> Parse {
        let s = Scored {
            name: intent.into(),
            confidence,
        };
        Parse {
            intent: s.clone(),
            sure,
            source: "classifier",
            ranking: vec![s],
            slots: Default::default(),
            rejected: Vec::new(),
            risk: Vec::new(),
            form: Form::Plain,
            signals: Vec::new(),
        }
    }

    fn index(name: &str) -> usize {
        INTENTS.iter().position(|i| *i == name).unwrap()
    }

    #[test]
    fn neighbours_that_agree_make_an_unsure_intent_sure() {
        let mut p = parse("card.report_loss", 0.45, false);
        let vote = Vote {
            ranking: vec![
                (index("card.report_loss"), 0.9),
                (index("cash.deposit"), 0.1),
            ],
            nearest: 0.9,
        };
        mix(&mut p, &vote);
        assert_eq!(p.intent.name, "card.report_loss");
        assert!(p.sure, "{p:?}");
        assert_eq!(p.source, "agreement");
        assert_eq!(p.signals.last().map(|s| s.name), Some("mixed"));
    }

    #[test]
    fn confident_neighbours_outvote_a_weak_classifier() {
        let mut p = parse("cash.deposit", 0.3, false);
        let vote = Vote {
            ranking: vec![(index("card.report_loss"), 1.0)],
            nearest: 0.93,
        };
        mix(&mut p, &vote);
        assert_eq!(p.intent.name, "card.report_loss");
        assert_eq!(p.source, "neighbours");
        assert!(p.sure);
    }

    #[test]
    fn far_neighbours_abstain() {
        let mut p = parse("cash.deposit", 0.3, false);
        let vote = Vote {
            ranking: vec![(index("card.report_loss"), 1.0)],
            nearest: 0.5,
        };
        mix(&mut p, &vote);
        assert_eq!(p.intent.name, "cash.deposit");
        assert!(!p.sure);
        assert_eq!(p.signals.len(), 1, "the vote is still shown");
    }

    #[test]
    fn a_service_is_offered_only_after_an_article_about_it() {
        assert!(names_it("开户", "开户"));
        assert!(names_it("转账汇款", "汇款"));
        assert!(names_it("激活银行卡", "激活"));
        assert!(!names_it("存款", "存款证明"));
        assert!(!names_it("取号", "取"), "one character is no word");
    }

    #[test]
    fn a_restated_slot_answers_a_confirmation() {
        use crate::dialog::engine::{Frame, Waiting};
        let mut state = SessionState::default();
        state.stack.push(Frame {
            flow: "card.report_loss".into(),
            step: 3,
            slots: [("card_last4".to_string(), "0122".to_string())].into(),
            retries: 0,
            waiting: Waiting::YesNo,
        });
        let mut p = parse("cash.deposit", 0.7, true);
        p.slots.insert("card_last4".into(), "0122".into());
        assert!(answers_in_context(&state, Awaiting::YesNo, &p));
        let q = parse("cash.deposit", 0.7, true);
        assert!(!answers_in_context(&state, Awaiting::YesNo, &q));
        let mut other = parse("queue.take_number", 0.9, true);
        other
            .slots
            .insert("service".into(), "queue.take_number".into());
        state.stack[0]
            .slots
            .insert("service".into(), "card.report_loss".into());
        assert!(!answers_in_context(&state, Awaiting::YesNo, &other));
        assert!(!answers_in_context(
            &SessionState::default(),
            Awaiting::Nothing,
            &p
        ));
    }
}
