//! The unanswered-question queue of content staff (待补充): the customer lines the engine
//! could not serve (`transcript_lines.unanswered`: the knowledge base did not know, the
//! words were not understood or not offered here, or only a question back could be given),
//! grouped by similar wording so one missing article shows as one group with its count
//! and the ways customers put it. Lines are masked as stored; the queue holds what
//! retention keeps.
//!
//! Wording is compared by the overlap of character pairs (Jaccard over the bigrams of the
//! text without punctuation and spaces): lines are taken newest first and join the first
//! group whose first line overlaps theirs by at least [`SAME_QUESTION`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};
use sqlx::Row;

use super::query::Window;
use crate::store::Db;

/// Overlap at which two wordings count as the same question.
pub const SAME_QUESTION: f64 = 0.5;

/// Lines read at most per request (newest first).
pub const MAX_LINES: i64 = 5_000;

/// Distinct wordings shown per group.
const SAMPLES: usize = 5;

/// One group of similar questions.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Group {
    /// The newest wording of the group.
    pub text: String,
    pub count: usize,
    /// How many of each kind (`dont_know`, `not_understood`, `out_of_scope`, `clarified`).
    pub kinds: BTreeMap<String, usize>,
    /// Up to five distinct wordings, newest first.
    pub samples: Vec<String>,
    pub sessions: usize,
    pub last_at: i64,
    #[serde(skip)]
    key: BTreeSet<(char, char)>,
    #[serde(skip)]
    session_ids: BTreeSet<String>,
}

/// The character pairs of `text` without punctuation, spaces and masks (`*`); a single
/// character counts as a pair with itself.
fn pairs(text: &str) -> BTreeSet<(char, char)> {
    let chars: Vec<char> = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    match chars.len() {
        0 => BTreeSet::new(),
        1 => [(chars[0], chars[0])].into(),
        _ => chars.windows(2).map(|w| (w[0], w[1])).collect(),
    }
}

/// Jaccard overlap of two pair sets.
fn overlap(a: &BTreeSet<(char, char)>, b: &BTreeSet<(char, char)>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

/// Groups `(text, kind, at, session)` lines, newest first, biggest group first.
pub fn group(lines: &[(String, String, i64, String)]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (text, kind, at, session) in lines {
        let key = pairs(text);
        if key.is_empty() {
            continue;
        }
        let g = match groups
            .iter()
            .position(|g| overlap(&g.key, &key) >= SAME_QUESTION)
        {
            Some(i) => &mut groups[i],
            None => {
                groups.push(Group {
                    text: text.clone(),
                    count: 0,
                    kinds: BTreeMap::new(),
                    samples: Vec::new(),
                    sessions: 0,
                    last_at: *at,
                    key,
                    session_ids: BTreeSet::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        g.count += 1;
        *g.kinds.entry(kind.clone()).or_default() += 1;
        if g.samples.len() < SAMPLES && !g.samples.contains(text) {
            g.samples.push(text.clone());
        }
        g.session_ids.insert(session.clone());
        g.sessions = g.session_ids.len();
        g.last_at = g.last_at.max(*at);
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_at.cmp(&a.last_at)));
    groups
}

/// `GET /v1/reports/unanswered`: the window's unanswered customer lines, grouped.
pub async fn report(db: &Db, w: &Window) -> Result<Value, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT l.text, l.unanswered, l.at, l.session_id FROM transcript_lines l \
         JOIN sessions s ON s.id = l.session_id \
         WHERE l.unanswered IS NOT NULL AND l.at >= $1 AND l.at < $2 AND l.kind = 'text' \
         AND ($3 IS NULL OR s.branch_id = $3) AND ($4 IS NULL OR s.kiosk_id = $4) \
         ORDER BY l.at DESC LIMIT $5",
    )
    .bind(w.from)
    .bind(w.to)
    .bind(&w.branch)
    .bind(&w.kiosk)
    .bind(MAX_LINES)
    .fetch_all(&db.pool)
    .await?;
    let lines: Vec<(String, String, i64, String)> = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let groups = group(&lines);
    Ok(json!({
        "window": w.describe(),
        "lines": lines.len(),
        "truncated": lines.len() as i64 == MAX_LINES,
        "groups": groups,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, kind: &str, at: i64, session: &str) -> (String, String, i64, String) {
        (text.into(), kind.into(), at, session.into())
    }

    #[test]
    fn similar_wordings_are_one_group_with_their_count_and_samples() {
        let groups = group(&[
            line("你们这里停车方便吗", "dont_know", 30, "s1"),
            line("停车方便吗？", "dont_know", 20, "s2"),
            line("你们这停车方便不", "not_understood", 10, "s2"),
            line("U盾坏了怎么办", "out_of_scope", 5, "s3"),
        ]);
        assert_eq!(groups.len(), 2, "{groups:#?}");
        let parking = &groups[0];
        assert_eq!(parking.text, "你们这里停车方便吗");
        assert_eq!(parking.count, 3);
        assert_eq!(parking.sessions, 2);
        assert_eq!(parking.kinds["dont_know"], 2);
        assert_eq!(parking.kinds["not_understood"], 1);
        assert_eq!(parking.samples.len(), 3);
        assert_eq!(parking.last_at, 30);
        assert_eq!(groups[1].text, "U盾坏了怎么办");
    }

    #[test]
    fn different_questions_stay_apart_and_empty_text_is_skipped() {
        let groups = group(&[
            line("外币兑换要带什么", "dont_know", 3, "a"),
            line("金价多少一克", "dont_know", 2, "b"),
            line("？？", "not_understood", 1, "c"),
        ]);
        assert_eq!(groups.len(), 2);
        assert!(groups.iter().all(|g| g.count == 1));
    }

    #[test]
    fn overlap_is_symmetric_and_bounded() {
        let (a, b) = (pairs("办卡要带什么"), pairs("办卡需要带什么"));
        let x = overlap(&a, &b);
        assert_eq!(x, overlap(&b, &a));
        assert!(x > 0.5 && x <= 1.0, "{x}");
        assert_eq!(overlap(&pairs(""), &pairs("")), 0.0);
        assert_eq!(pairs("卡").len(), 1);
    }
}
