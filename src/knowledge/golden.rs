//! Golden questions (`knowledge/golden.yaml`): questions that must find their article first.
//! A publish, rollback or retire that makes a passing question fail is refused unless an
//! admin overrides it with a reason (recorded on the transition).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::index::{Audience, Found, Query1, SearchIndex};
use super::model::valid_id;
use crate::datafile::DataError;

/// Most golden questions.
const MAX_GOLDEN: usize = 5000;

/// One golden question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Golden {
    pub question: String,
    /// The article that must come first.
    pub expect: String,
    /// `customer` (the default) or `staff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// One golden question's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct GoldenResult {
    pub question: String,
    pub expect: String,
    pub audience: Audience,
    /// The article that came first, if any.
    pub got: Option<String>,
    pub pass: bool,
}

/// Parses and validates `golden.yaml`; errors carry `file:line`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Golden>, Vec<DataError>> {
    let mut errors = Vec::new();
    let list: Option<Vec<Golden>> = crate::datafile::parse_yaml(path, text, &mut errors);
    let Some(list) = list else {
        return Err(errors);
    };
    let lines: Vec<usize> = crate::datafile::item_lines(text);
    if list.len() > MAX_GOLDEN {
        errors.push(DataError {
            file: path.to_path_buf(),
            line: 1,
            message: format!("more than {MAX_GOLDEN} golden questions"),
        });
    }
    for (n, g) in list.iter().enumerate() {
        let line = lines.get(n).copied().unwrap_or(1);
        let mut bad = |message: String| {
            errors.push(DataError {
                file: path.to_path_buf(),
                line,
                message,
            })
        };
        let chars = g.question.trim().chars().count();
        if chars == 0 || chars > 200 {
            bad("a question has 1 to 200 characters".into());
        }
        if !valid_id(&g.expect) {
            bad(format!("`{}` is not an article id", g.expect));
        }
        if let Some(a) = &g.audience {
            if Audience::parse(a).is_none() {
                bad(format!("audience `{a}` must be customer or staff"));
            }
        }
    }
    if errors.is_empty() {
        Ok(list)
    } else {
        Err(errors)
    }
}

/// Runs every golden question against `index` on `day`.
pub fn run(index: &SearchIndex, golden: &[Golden], day: chrono::NaiveDate) -> Vec<GoldenResult> {
    run_with(&|q| index.search(q), golden, day)
}

/// Runs every golden question through `search` on `day`.
pub fn run_with(
    search: &dyn Fn(&Query1<'_>) -> tantivy::Result<Found>,
    golden: &[Golden],
    day: chrono::NaiveDate,
) -> Vec<GoldenResult> {
    golden
        .iter()
        .map(|g| {
            let audience = g
                .audience
                .as_deref()
                .and_then(Audience::parse)
                .unwrap_or(Audience::Customer);
            let got = search(&Query1 {
                text: &g.question,
                audience,
                branch: None,
                day,
                limit: 1,
                explain: false,
            })
            .ok()
            .and_then(|f| f.hits.into_iter().next())
            .map(|h| h.id);
            GoldenResult {
                question: g.question.clone(),
                expect: g.expect.clone(),
                audience,
                pass: got.as_deref() == Some(g.expect.as_str()),
                got,
            }
        })
        .collect()
}

/// The questions that pass `before` and fail `after` (same order, same set).
pub fn regressions(before: &[GoldenResult], after: &[GoldenResult]) -> Vec<GoldenResult> {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| b.pass && !a.pass)
        .map(|(_, a)| a.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_files_are_validated_with_lines() {
        let p = Path::new("golden.yaml");
        let ok = parse(p, "- question: 卡丢了\n  expect: card-loss\n").unwrap();
        assert_eq!(ok[0].expect, "card-loss");
        let e = parse(
            p,
            "- question: 卡丢了\n  expect: card-loss\n- question: ''\n  expect: Bad Id\n  audience: boss\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 3);
        assert!(e.iter().all(|e| e.line == 3), "{e:?}");
        let e = parse(p, "- question: x\n  expected: y\n").unwrap_err();
        assert!(e[0].message.contains("expected"), "{e:?}");
    }
}
