//! Calibrating the kiosk's answer policy ([`super::hybrid::decide`]) on labelled questions:
//! each question is searched once as a kiosk would (customer articles, fused hits), then
//! the decision is replayed over a grid of thresholds (`min_score` × `min_dense`) and each
//! row says how precise the answers are and how many answerable questions get the right
//! one. `concierge knowledge calibrate --file F [--json]` prints it.
//!
//! Questions come as a YAML list, either `{text, article: ID}` / `{text, none: true}`, or
//! the kiosk evaluation format `{text, expect: {article: ID | [ID, …]} | {unknown: true} |
//! {journey: INTENT}, category}`; journey items are skipped (the understanding routes them,
//! not the knowledge base).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::hybrid::{decide, Policy, Verdict};
use super::index::{Audience, Hit, Query1};
use super::Knowledge;
use crate::datafile::DataError;

/// Most labelled questions in one file.
const MAX_ITEMS: usize = 10_000;
/// Longest labelled question, in characters.
const MAX_TEXT_CHARS: usize = 200;
/// The `min_score` values tried.
const SCORES: [f32; 7] = [2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0];

/// One article id or several (any of them is right).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Ids {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Expect {
    #[serde(default)]
    article: Option<Ids>,
    #[serde(default)]
    unknown: bool,
    #[serde(default)]
    journey: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Item {
    text: String,
    #[serde(default)]
    article: Option<Ids>,
    #[serde(default)]
    none: bool,
    #[serde(default)]
    expect: Option<Expect>,
}

/// A labelled question: the articles that answer it (empty: none should).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub text: String,
    pub articles: Vec<String>,
}

fn ids(i: Option<Ids>) -> Vec<String> {
    match i {
        None => Vec::new(),
        Some(Ids::One(s)) => vec![s],
        Some(Ids::Many(v)) => v,
    }
}

/// Parses a labelled question file; problems carry `file:line` (the item's line).
pub fn parse(path: &Path, text: &str) -> Result<Vec<Labelled>, Vec<DataError>> {
    let mut errors = Vec::new();
    let items: Option<Vec<Item>> = crate::datafile::parse_yaml(path, text, &mut errors);
    let Some(items) = items else {
        return Err(errors);
    };
    let lines: Vec<usize> = crate::datafile::item_lines(text);
    let mut out = Vec::new();
    for (n, item) in items.into_iter().enumerate() {
        let mut bad = |message: String| {
            errors.push(DataError {
                file: path.to_path_buf(),
                line: lines.get(n).copied().unwrap_or(1),
                message,
            })
        };
        let chars = item.text.trim().chars().count();
        if chars == 0 || chars > MAX_TEXT_CHARS {
            bad(format!("a question has 1 to {MAX_TEXT_CHARS} characters"));
            continue;
        }
        let expect = item.expect.unwrap_or_default();
        if expect.journey.is_some() {
            continue;
        }
        let articles: Vec<String> = ids(item.article)
            .into_iter()
            .chain(ids(expect.article))
            .collect();
        let none = item.none || expect.unknown;
        if articles.is_empty() != none {
            bad("say either `article: ID` or `none: true`".into());
            continue;
        }
        if let Some(id) = articles.iter().find(|a| !super::model::valid_id(a)) {
            bad(format!("`{id}` is not an article id"));
            continue;
        }
        out.push(Labelled {
            text: item.text.trim().to_string(),
            articles,
        });
    }
    if out.len() > MAX_ITEMS {
        errors.push(DataError {
            file: path.to_path_buf(),
            line: 1,
            message: format!("more than {MAX_ITEMS} questions"),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A labelled question and the kiosk's fused hits for it (the first three).
#[derive(Debug, Clone)]
pub struct Sample {
    pub labelled: Labelled,
    pub hits: Vec<Hit>,
}

/// One policy's outcome over the samples.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub min_score: f32,
    /// `None`: dense evidence off (BM25 only decides).
    pub min_dense: Option<f32>,
    /// Answered with an article that answers it.
    pub right: usize,
    /// Answered with another article, or answered a question that has none.
    pub wrong: usize,
    pub clarify: usize,
    pub unknown: usize,
    /// right / (right + wrong); 1 when nothing was answered.
    pub precision: f32,
    /// right / questions that have an article.
    pub coverage: f32,
}

impl Knowledge {
    /// Searches each labelled question as a kiosk of `branch` would.
    pub async fn samples(&self, items: &[Labelled], branch: &str) -> Vec<Sample> {
        let day = crate::domain::clock::now_local().date_naive();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let text: String = item
                .text
                .chars()
                .take(self.settings.max_query_chars)
                .collect();
            let hits = self
                .search(&Query1 {
                    text: &text,
                    audience: Audience::Customer,
                    branch: Some(branch),
                    day,
                    limit: 3,
                    explain: false,
                })
                .await
                .map(|f| f.hits)
                .unwrap_or_default();
            out.push(Sample {
                labelled: item.clone(),
                hits,
            });
        }
        out
    }
}

/// How `policy` does on `samples`.
pub fn evaluate(samples: &[Sample], policy: &Policy) -> Row {
    let (mut right, mut wrong, mut clarify, mut unknown) = (0, 0, 0, 0);
    for s in samples {
        match decide(&s.hits, policy) {
            Verdict::Answer if s.labelled.articles.contains(&s.hits[0].id) => right += 1,
            Verdict::Answer => wrong += 1,
            Verdict::Clarify => clarify += 1,
            Verdict::Unknown => unknown += 1,
        }
    }
    let answerable = samples
        .iter()
        .filter(|s| !s.labelled.articles.is_empty())
        .count();
    Row {
        min_score: policy.min_score,
        min_dense: policy.min_dense.is_finite().then_some(policy.min_dense),
        right,
        wrong,
        clarify,
        unknown,
        precision: if right + wrong == 0 {
            1.0
        } else {
            right as f32 / (right + wrong) as f32
        },
        coverage: if answerable == 0 {
            0.0
        } else {
            right as f32 / answerable as f32
        },
    }
}

/// The grid: every `min_score` of [`SCORES`] with dense evidence off, and, when the
/// samples have dense scores, with `min_dense` from 0.80 to 0.95 in steps of 0.01. The
/// other settings stay those of `base`.
pub fn table(samples: &[Sample], base: &Policy) -> Vec<Row> {
    let dense = samples
        .iter()
        .any(|s| s.hits.iter().any(|h| h.dense.is_some()));
    let mut denses = vec![f32::INFINITY];
    if dense {
        denses.extend((80..=95).map(|c| c as f32 / 100.0));
    }
    let mut rows = Vec::new();
    for min_dense in denses {
        for min_score in SCORES {
            rows.push(evaluate(
                samples,
                &Policy {
                    min_score,
                    min_dense,
                    ..*base
                },
            ));
        }
    }
    rows
}

/// The table as aligned text.
pub fn render(rows: &[Row]) -> String {
    let mut out =
        String::from("min_dense  min_score  right  wrong  clarify  unknown  precision  coverage\n");
    for r in rows {
        out.push_str(&format!(
            "{:>9}  {:>9.1}  {:>5}  {:>5}  {:>7}  {:>7}  {:>9.3}  {:>8.3}\n",
            r.min_dense.map_or("off".to_string(), |d| format!("{d:.2}")),
            r.min_score,
            r.right,
            r.wrong,
            r.clarify,
            r.unknown,
            r.precision,
            r.coverage
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_parse_and_mistakes_point_at_lines() {
        let p = Path::new("dev.yaml");
        let ok = parse(
            p,
            "- text: 停车方便吗\n  article: parking\n- text: 今天天气\n  none: true\n\
             - text: 卡丢了\n  expect: {article: [card-loss, card-freeze]}\n  category: plain\n\
             - text: 我要开户\n  expect: {journey: open_account}\n\
             - text: 火星\n  expect: {unknown: true}\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 4);
        assert_eq!(ok[0].articles, ["parking"]);
        assert!(ok[1].articles.is_empty() && ok[3].articles.is_empty());
        assert_eq!(ok[2].articles, ["card-loss", "card-freeze"]);
        let e = parse(p, "- text: a\n  article: x\n- text: b\n- text: ''\n  none: true\n- text: c\n  article: Bad\n")
            .unwrap_err();
        assert_eq!(e.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4, 6]);
    }

    fn hit(id: &str, bm25: f32, dense: Option<f32>) -> Hit {
        Hit {
            id: id.into(),
            version: 1,
            title: id.into(),
            audience: "customer".into(),
            bm25,
            dense,
            fused: 0.0,
            highlight: String::new(),
            matched: vec![],
            coverage: if bm25 > 0.0 { 1.0 } else { 0.0 },
            explanation: None,
        }
    }

    #[test]
    fn the_table_counts_right_wrong_and_abstentions() {
        let sample = |articles: &[&str], hits: Vec<Hit>| Sample {
            labelled: Labelled {
                text: "q".into(),
                articles: articles.iter().map(|a| a.to_string()).collect(),
            },
            hits,
        };
        let samples = vec![
            sample(&["a"], vec![hit("a", 9.0, Some(0.9))]),
            sample(&["b"], vec![hit("b", 0.0, Some(0.86))]),
            sample(&[], vec![hit("c", 5.0, Some(0.82))]),
            sample(&["d"], vec![]),
        ];
        let base = Policy {
            rrf_k: 60.0,
            min_coverage: 0.4,
            min_score: 4.0,
            clarify_ratio: 0.85,
            min_dense: 0.85,
            dense_margin: 0.01,
        };
        let rows = table(&samples, &base);
        assert_eq!(rows.len(), SCORES.len() * 17);
        let at = |d: Option<f32>, s: f32| {
            rows.iter()
                .find(|r| {
                    r.min_dense.map(|x| (x * 100.0).round()) == d.map(|x| (x * 100.0).round())
                        && r.min_score == s
                })
                .unwrap()
        };
        let off = at(None, 4.0);
        assert_eq!((off.right, off.wrong, off.unknown), (1, 1, 2));
        assert_eq!(off.precision, 0.5);
        let dense = at(Some(0.85), 6.0);
        assert_eq!((dense.right, dense.wrong, dense.unknown), (2, 0, 2));
        assert!((dense.coverage - 2.0 / 3.0).abs() < 1e-6);
        assert!(render(&rows)
            .lines()
            .nth(1)
            .unwrap()
            .trim_start()
            .starts_with("off"));
    }
}
