//! Judging what the kiosk did with a question ([`Observed`]) against what it should have
//! done ([`Expect`]), and the report: totals, per category, the misses.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::set::{Expect, Item};

/// What one kiosk session did with one question.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Articles shown (`ui.article.id` of a `bot.say`), in order.
    pub articles: Vec<String>,
    /// Articles offered to choose from (the kiosk asked which one was meant).
    pub clarify: Vec<String>,
    /// Every choice value offered (journeys offered after an answer, among others).
    pub choices: Vec<String>,
    /// The journey started (an intent with a flow), other than answering a question.
    pub journey: Option<String>,
    /// A person was asked for: `handoff.teller` or `handoff.remote_expert`.
    pub handoff: Option<String>,
    /// Device calls the server made (`device.action`).
    pub devices: Vec<String>,
    /// Protocol errors received (`error.code`).
    pub errors: Vec<String>,
}

/// How one question went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The expected article shown, the expected journey started, or (for a question with
    /// no answer in the base) an honest "I don't know".
    Right,
    /// The kiosk asked which article was meant, the expected one among the choices.
    Clarified,
    /// No article and no journey (or a person offered).
    DontKnow,
    /// Another article, a journey for a question, a device call in answer to a question,
    /// or an answer to a question the base cannot answer.
    Wrong,
}

/// Judges one observation; returns the verdict and what was seen, in words.
pub fn judge(expect: &Expect, seen: &Observed) -> (Verdict, String) {
    let got = describe(seen);
    let shown = |ids: &[String]| seen.articles.iter().any(|a| ids.contains(a));
    let offered = |ids: &[String]| seen.clarify.iter().any(|a| ids.contains(a));
    let answered = !seen.articles.is_empty() || !seen.clarify.is_empty();
    let verdict = match expect {
        Expect::Unknown => {
            if !seen.devices.is_empty() || seen.journey.is_some() || answered {
                Verdict::Wrong
            } else {
                Verdict::Right
            }
        }
        Expect::Article { ids, .. } => {
            if !seen.devices.is_empty() || seen.journey.is_some() {
                Verdict::Wrong
            } else if shown(ids) {
                Verdict::Right
            } else if seen.articles.is_empty() && offered(ids) {
                Verdict::Clarified
            } else if answered {
                Verdict::Wrong
            } else {
                Verdict::DontKnow
            }
        }
        Expect::Journey(intent) => {
            let started = seen.journey.as_ref().or(seen.handoff.as_ref());
            match started {
                Some(j) if j == intent => Verdict::Right,
                Some(_) => Verdict::Wrong,
                None if answered => Verdict::Wrong,
                None => Verdict::DontKnow,
            }
        }
    };
    (verdict, got)
}

/// What a session did, in a few words (`article a-x`, `journey card.report_loss`, …).
pub fn describe(seen: &Observed) -> String {
    let mut parts = Vec::new();
    if let Some(j) = &seen.journey {
        parts.push(format!("journey {j}"));
    }
    if let Some(h) = &seen.handoff {
        parts.push(format!("person ({h})"));
    }
    if !seen.articles.is_empty() {
        parts.push(format!("article {}", seen.articles.join(", ")));
    }
    if !seen.clarify.is_empty() {
        parts.push(format!("which of {}", seen.clarify.join(" | ")));
    }
    if !seen.devices.is_empty() {
        parts.push(format!("device {}", seen.devices.join(", ")));
    }
    if !seen.errors.is_empty() {
        parts.push(format!("error {}", seen.errors.join(", ")));
    }
    if parts.is_empty() {
        "dont_know".into()
    } else {
        parts.join("; ")
    }
}

/// What a question expected, in a few words.
pub fn expected(expect: &Expect) -> String {
    match expect {
        Expect::Article { ids, .. } => format!("article {}", ids.join(" or ")),
        Expect::Journey(intent) => format!("journey {intent}"),
        Expect::Unknown => "unknown".into(),
    }
}

/// Counts of verdicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub total: usize,
    pub right: usize,
    pub clarified: usize,
    pub dont_know: usize,
    pub wrong: usize,
}

impl Tally {
    fn add(&mut self, v: Verdict) {
        self.total += 1;
        match v {
            Verdict::Right => self.right += 1,
            Verdict::Clarified => self.clarified += 1,
            Verdict::DontKnow => self.dont_know += 1,
            Verdict::Wrong => self.wrong += 1,
        }
    }
}

/// One question's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub line: usize,
    pub category: String,
    pub text: String,
    pub expected: String,
    pub got: String,
    pub verdict: Verdict,
    /// For an answer that may offer a journey: whether that journey was among the choices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered: Option<bool>,
}

/// Judges an item.
pub fn outcome(item: &Item, seen: &Observed) -> Outcome {
    let (verdict, got) = judge(&item.expect, seen);
    let offered = match &item.expect {
        Expect::Article {
            offer: Some(intent),
            ..
        } => Some(seen.choices.contains(intent)),
        _ => None,
    };
    Outcome {
        line: item.line,
        category: item.category.clone(),
        text: item.text.clone(),
        expected: expected(&item.expect),
        got,
        verdict,
        offered,
    }
}

/// A whole run: totals, per category, offers seen, and the misses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub file: String,
    pub overall: Tally,
    pub categories: BTreeMap<String, Tally>,
    /// Answers that may offer a journey, and how many did.
    pub offers_expected: usize,
    pub offers_seen: usize,
    /// Every outcome that is not `right`.
    pub misses: Vec<Outcome>,
    /// Every outcome, in the set's order.
    #[serde(skip)]
    pub outcomes: Vec<Outcome>,
}

impl Report {
    /// Tallies outcomes.
    pub fn new(file: &str, outcomes: Vec<Outcome>) -> Report {
        let mut overall = Tally::default();
        let mut categories: BTreeMap<String, Tally> = BTreeMap::new();
        for o in &outcomes {
            overall.add(o.verdict);
            categories
                .entry(o.category.clone())
                .or_default()
                .add(o.verdict);
        }
        Report {
            file: file.to_string(),
            overall,
            categories,
            offers_expected: outcomes.iter().filter(|o| o.offered.is_some()).count(),
            offers_seen: outcomes.iter().filter(|o| o.offered == Some(true)).count(),
            misses: outcomes
                .iter()
                .filter(|o| o.verdict != Verdict::Right)
                .cloned()
                .collect(),
            outcomes,
        }
    }
}

fn cell(n: usize, of: usize) -> String {
    format!("{n:>3} {:>5.1}%", 100.0 * n as f64 / of.max(1) as f64)
}

fn row(f: &mut fmt::Formatter<'_>, name: &str, t: &Tally) -> fmt::Result {
    writeln!(
        f,
        "{name:<20} {:>4}  {}  {}  {}  {}",
        t.total,
        cell(t.right, t.total),
        cell(t.clarified, t.total),
        cell(t.dont_know, t.total),
        cell(t.wrong, t.total)
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kiosk eval of {}: {} questions",
            self.file, self.overall.total
        )?;
        writeln!(
            f,
            "{:<20} {:>4}  {:>10}  {:>10}  {:>10}  {:>10}",
            "", "n", "right", "clarified", "dont_know", "wrong"
        )?;
        row(f, "all", &self.overall)?;
        for (name, t) in &self.categories {
            row(f, name, t)?;
        }
        writeln!(
            f,
            "offers: {} of {} answers offered the expected journey",
            self.offers_seen, self.offers_expected
        )?;
        writeln!(f, "misses ({}):", self.misses.len())?;
        for m in &self.misses {
            writeln!(
                f,
                "  [{:?}] line {} ({}) {}\n      expected {}; got {}",
                m.verdict, m.line, m.category, m.text, m.expected, m.got
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(ids: &[&str]) -> Expect {
        Expect::Article {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            offer: None,
        }
    }

    fn seen(f: impl FnOnce(&mut Observed)) -> Observed {
        let mut o = Observed::default();
        f(&mut o);
        o
    }

    #[test]
    fn questions_are_judged_by_the_article_shown() {
        let e = article(&["a", "b"]);
        let v = |o: &Observed| judge(&e, o).0;
        assert_eq!(v(&seen(|o| o.articles = vec!["b".into()])), Verdict::Right);
        assert_eq!(v(&seen(|o| o.articles = vec!["c".into()])), Verdict::Wrong);
        assert_eq!(
            v(&seen(|o| o.clarify = vec!["c".into(), "a".into()])),
            Verdict::Clarified
        );
        assert_eq!(v(&seen(|o| o.clarify = vec!["c".into()])), Verdict::Wrong);
        assert_eq!(v(&Observed::default()), Verdict::DontKnow);
        assert_eq!(
            v(&seen(|o| o.handoff = Some("handoff.teller".into()))),
            Verdict::DontKnow
        );
        assert_eq!(
            v(&seen(|o| o.journey = Some("card.report_loss".into()))),
            Verdict::Wrong
        );
        assert_eq!(
            v(&seen(|o| {
                o.articles = vec!["a".into()];
                o.devices = vec!["queue_printer.print_ticket".into()];
            })),
            Verdict::Wrong
        );
    }

    #[test]
    fn unknowns_are_right_only_when_nothing_is_claimed() {
        let v = |o: &Observed| judge(&Expect::Unknown, o).0;
        assert_eq!(v(&Observed::default()), Verdict::Right);
        assert_eq!(
            v(&seen(|o| o.handoff = Some("handoff.teller".into()))),
            Verdict::Right
        );
        assert_eq!(v(&seen(|o| o.articles = vec!["a".into()])), Verdict::Wrong);
        assert_eq!(v(&seen(|o| o.clarify = vec!["a".into()])), Verdict::Wrong);
        assert_eq!(
            v(&seen(|o| o.journey = Some("greet".into()))),
            Verdict::Wrong
        );
    }

    #[test]
    fn requests_are_judged_by_the_journey_started() {
        let e = Expect::Journey("queue.take_number".into());
        let v = |o: &Observed| judge(&e, o).0;
        let started = seen(|o| {
            o.journey = Some("queue.take_number".into());
            o.devices = vec!["queue_printer.print_ticket".into()];
        });
        assert_eq!(v(&started), Verdict::Right);
        assert_eq!(
            v(&seen(|o| o.journey = Some("cash.deposit".into()))),
            Verdict::Wrong
        );
        assert_eq!(v(&seen(|o| o.articles = vec!["a".into()])), Verdict::Wrong);
        assert_eq!(v(&Observed::default()), Verdict::DontKnow);
        let person = Expect::Journey("handoff.teller".into());
        let asked = seen(|o| o.handoff = Some("handoff.teller".into()));
        assert_eq!(judge(&person, &asked).0, Verdict::Right);
    }

    #[test]
    fn the_report_counts_per_category_and_lists_misses() {
        let item = |text: &str, category: &str, expect: Expect| Item {
            text: text.into(),
            expect,
            category: category.into(),
            line: 1,
        };
        let offer = Expect::Article {
            ids: vec!["a".into()],
            offer: Some("card.report_loss".into()),
        };
        let outcomes = vec![
            outcome(
                &item("q1", "plain", offer),
                &seen(|o| {
                    o.articles = vec!["a".into()];
                    o.choices = vec!["card.report_loss".into()];
                }),
            ),
            outcome(&item("q2", "plain", article(&["a"])), &Observed::default()),
            outcome(
                &item("q3", "no_answer", Expect::Unknown),
                &Observed::default(),
            ),
        ];
        let r = Report::new("set.yaml", outcomes);
        assert_eq!(r.overall.total, 3);
        assert_eq!(r.overall.right, 2);
        assert_eq!(r.overall.dont_know, 1);
        assert_eq!(r.categories["plain"].total, 2);
        assert_eq!((r.offers_expected, r.offers_seen), (1, 1));
        assert_eq!(r.misses.len(), 1);
        assert_eq!(r.misses[0].got, "dont_know");
        let shown = r.to_string();
        assert!(shown.contains("q2"), "{shown}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["overall"]["right"], 2);
        assert_eq!(json["misses"][0]["verdict"], "dont_know");
    }
}
