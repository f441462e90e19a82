//! A kiosk question set (`eval/kiosk/*.yaml`): what customers say and what the kiosk should
//! do about it, read and checked against the knowledge base and the intent names, every
//! problem reported as `file:line`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::datafile::{line_of_after, parse_yaml, read_data_file, DataError};
use crate::text::MAX_UTTERANCE_CHARS;

/// Most items a set may hold (each is a kiosk session).
pub const MAX_ITEMS: usize = 5_000;

/// What the kiosk should do with one question.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Answered by one of these customer articles; `offer` is the journey the answer may
    /// offer (informational).
    Article {
        ids: Vec<String>,
        offer: Option<String>,
    },
    /// Starts this journey (an intent name).
    Journey(String),
    /// Nothing in the base answers it: "I don't know" (or a person) is right.
    Unknown,
}

/// One question of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub text: String,
    pub expect: Expect,
    pub category: String,
    /// Where it is written (1-based).
    pub line: usize,
}

/// The knowledge articles a set may name: id → audience (`customer` or `staff`).
pub type Catalog = BTreeMap<String, String>;

/// The articles of a knowledge folder, by id, with their audience.
pub fn catalog(knowledge_dir: &Path) -> Result<Catalog, Vec<DataError>> {
    let mut errors = Vec::new();
    let articles = crate::content::load_articles(knowledge_dir, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(articles
        .into_iter()
        .map(|a| (a.front.id, a.front.audience))
        .collect())
}

/// Reads and checks the set at `path`.
pub fn load(path: &Path, catalog: &Catalog) -> Result<Vec<Item>, Vec<DataError>> {
    let mut errors = Vec::new();
    let Some(text) = read_data_file(path, &mut errors) else {
        return Err(errors);
    };
    parse(path, &text, catalog)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    #[serde(default)]
    text: String,
    expect: RawExpect,
    #[serde(default)]
    category: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    article: Option<OneOrMany>,
    #[serde(default)]
    offer: Option<String>,
    #[serde(default)]
    journey: Option<String>,
    #[serde(default)]
    unknown: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Parses and checks a set's text; `path` names it in the errors.
pub fn parse(path: &Path, text: &str, catalog: &Catalog) -> Result<Vec<Item>, Vec<DataError>> {
    let mut errors = Vec::new();
    let Some(raw) = parse_yaml::<Option<Vec<RawItem>>>(path, text, &mut errors) else {
        return Err(errors);
    };
    let raw = raw.unwrap_or_default();
    let err = |line: usize, message: String| DataError {
        file: path.to_path_buf(),
        line,
        message,
    };
    if raw.is_empty() {
        return Err(vec![err(1, "the set has no items".into())]);
    }
    if raw.len() > MAX_ITEMS {
        return Err(vec![err(
            1,
            format!("{} items; a set holds at most {MAX_ITEMS}", raw.len()),
        )]);
    }
    let lines = item_lines(text, &raw);
    let mut items = Vec::with_capacity(raw.len());
    for (r, line) in raw.into_iter().zip(lines) {
        match check(r, line, catalog) {
            Ok(item) => items.push(item),
            Err(problems) => errors.extend(problems.into_iter().map(|m| err(line, m))),
        }
    }
    if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    }
}

/// The line each item starts on: the top-level `- ` lines when there is one per item,
/// otherwise the line of its text.
fn item_lines(text: &str, raw: &[RawItem]) -> Vec<usize> {
    let starts: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("- ") || *l == "-")
        .map(|(i, _)| i + 1)
        .collect();
    if starts.len() == raw.len() {
        return starts;
    }
    let mut from = 1;
    raw.iter()
        .map(|r| {
            from = if r.text.is_empty() {
                from
            } else {
                line_of_after(text, &r.text, from)
            };
            from
        })
        .collect()
}

/// One item checked; the problems found otherwise.
fn check(raw: RawItem, line: usize, catalog: &Catalog) -> Result<Item, Vec<String>> {
    let mut problems = Vec::new();
    let text = raw.text.trim().to_string();
    if text.is_empty() {
        problems.push("`text` is empty".to_string());
    } else if text.chars().count() > MAX_UTTERANCE_CHARS {
        problems.push(format!(
            "`text` is longer than {MAX_UTTERANCE_CHARS} characters (a kiosk refuses it)"
        ));
    }
    let category = raw
        .category
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    if category.is_empty() {
        problems.push("`category` is missing".into());
    }
    let expect = expectation(raw.expect, catalog, &mut problems);
    match expect {
        Some(expect) if problems.is_empty() => Ok(Item {
            text,
            expect,
            category,
            line,
        }),
        _ => Err(problems),
    }
}

fn expectation(raw: RawExpect, catalog: &Catalog, problems: &mut Vec<String>) -> Option<Expect> {
    let kinds = raw.article.is_some() as u8 + raw.journey.is_some() as u8 + raw.unknown as u8;
    if kinds != 1 {
        problems
            .push("`expect` needs exactly one of `article`, `journey` or `unknown: true`".into());
        return None;
    }
    if raw.offer.is_some() && raw.article.is_none() {
        problems.push("`offer` goes with `article` only".into());
    }
    for intent in raw.journey.iter().chain(raw.offer.iter()) {
        if !crate::nlu::is_intent(intent) {
            problems.push(format!("unknown intent `{intent}`"));
        }
    }
    if let Some(article) = raw.article {
        let ids = match article {
            OneOrMany::One(id) => vec![id],
            OneOrMany::Many(ids) => ids,
        };
        if ids.is_empty() {
            problems.push("`article` lists no id".into());
        }
        for id in &ids {
            match catalog.get(id).map(String::as_str) {
                None => problems.push(format!("unknown article id `{id}`")),
                Some("customer") => {}
                Some(audience) => problems.push(format!(
                    "article `{id}` is for {audience}: the kiosk never shows it"
                )),
            }
        }
        return Some(Expect::Article {
            ids,
            offer: raw.offer,
        });
    }
    Some(match raw.journey {
        Some(intent) => Expect::Journey(intent),
        None => Expect::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        [("a-one", "customer"), ("s-two", "staff")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn parse_str(text: &str) -> Result<Vec<Item>, Vec<DataError>> {
        parse(Path::new("set.yaml"), text, &catalog())
    }

    #[test]
    fn a_valid_set_is_read_with_its_lines() {
        let set = parse_str(
            "# a comment\n- text: 卡丢了咋办\n  expect: {article: a-one, offer: card.report_loss}\n  category: dialect\n\
             - text: 帮我取个号\n  expect: {journey: queue.take_number}\n  category: task\n\
             - text: 明天下雨吗\n  expect: {unknown: true}\n  category: no_answer\n",
        )
        .unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set[0].line, 2);
        assert_eq!(
            set[0].expect,
            Expect::Article {
                ids: vec!["a-one".into()],
                offer: Some("card.report_loss".into())
            }
        );
        assert_eq!(set[1].expect, Expect::Journey("queue.take_number".into()));
        assert_eq!(set[2].expect, Expect::Unknown);
        assert_eq!(set[2].line, 8);
    }

    #[test]
    fn bad_items_are_reported_at_their_line() {
        let errors = parse_str(
            "- text: 问题一\n  expect: {article: nope}\n  category: a\n\
             - text: \"  \"\n  expect: {unknown: true}\n  category: a\n\
             - text: 问题三\n  expect: {journey: card.fly}\n  category: a\n\
             - text: 问题四\n  expect: {article: s-two}\n  category: a\n\
             - text: 问题五\n  expect: {unknown: true, journey: greet}\n  category: a\n",
        )
        .unwrap_err();
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 5, "{shown:?}");
        assert!(shown[0].starts_with("set.yaml:1: unknown article id `nope`"));
        assert!(shown[1].starts_with("set.yaml:4: `text` is empty"));
        assert!(shown[2].starts_with("set.yaml:7: unknown intent `card.fly`"));
        assert!(shown[3].contains("set.yaml:10: article `s-two` is for staff"));
        assert!(shown[4].starts_with("set.yaml:13: `expect` needs exactly one"));
    }

    #[test]
    fn shapes_that_are_not_a_set_are_refused() {
        assert!(parse_str("").is_err());
        assert!(parse_str("items: 3\n").is_err());
        let e = parse_str("- text: a\n  expect: {unknown: true}\n  category: x\n  extra: 1\n")
            .unwrap_err();
        assert!(e[0].message.contains("extra"), "{e:?}");
        let long = "长".repeat(MAX_UTTERANCE_CHARS + 1);
        let e = parse_str(&format!(
            "- text: {long}\n  expect: {{unknown: true}}\n  category: x\n"
        ))
        .unwrap_err();
        assert!(e[0].message.contains("longer"));
    }
}
