//! What an article is: its content fields ([`ArticleDraft`]), the states a version moves
//! through ([`State`]), the limits every input is held to, the content hash that makes
//! an unchanged save (or re-import) a no-op, the records the knowledge base hands out
//! ([`Version`], [`ArticleSummary`], [`Transition`], [`Saved`]) and why an operation was
//! refused ([`KbError`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::content::{ArticleFile, ArticleFront};

/// Size limits of one article (from `[knowledge]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_title_chars: usize,
    pub max_questions: usize,
    pub max_item_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_title_chars: 100,
            max_questions: 50,
            max_item_chars: 200,
        }
    }
}

/// The content of one version: what an editor writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArticleDraft {
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub summary: Option<String>,
    /// How customers ask it.
    #[serde(default)]
    pub questions: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `customer` or `staff`.
    pub audience: String,
    /// Branch ids; empty means every branch.
    #[serde(default)]
    pub branches: Vec<String>,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    pub effective_from: Option<String>,
    #[serde(default)]
    pub effective_to: Option<String>,
}

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Being written; editable only by making a new version.
    Draft,
    /// Submitted; waits for a reviewer other than the author.
    InReview,
    /// Approved, goes live at `publish_at`.
    Scheduled,
    /// Live: searched and answered from (one version per article at most).
    Published,
    /// Was live, replaced by a later publish (a rollback may bring it back).
    Superseded,
    /// Taken out of search on purpose.
    Retired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::InReview => "in_review",
            State::Scheduled => "scheduled",
            State::Published => "published",
            State::Superseded => "superseded",
            State::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Draft,
            State::InReview,
            State::Scheduled,
            State::Published,
            State::Superseded,
            State::Retired,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One invalid field: a stable code and a sentence for the editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

/// An article id: 1-80 of a-z, 0-9 and '-'.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl ArticleDraft {
    /// Trims whitespace in place and lists every problem.
    pub fn validate(&mut self, limits: &Limits) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |field: &'static str, message: String| out.push(Invalid { field, message });
        self.title = self.title.trim().to_string();
        self.body = self.body.trim().to_string();
        self.summary = self
            .summary
            .take()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        for list in [&mut self.questions, &mut self.tags, &mut self.branches] {
            let mut seen = std::collections::BTreeSet::new();
            list.retain_mut(|s| {
                *s = s.trim().to_string();
                !s.is_empty() && seen.insert(s.clone())
            });
        }
        let chars = |s: &str| s.chars().count();
        if self.title.is_empty() {
            bad("title", "the title is empty".into());
        } else if chars(&self.title) > limits.max_title_chars {
            bad(
                "title",
                format!(
                    "the title is longer than {} characters",
                    limits.max_title_chars
                ),
            );
        }
        if self.body.is_empty() {
            bad("body", "the body is empty".into());
        } else if self.body.len() > limits.max_body_bytes {
            bad(
                "body",
                format!(
                    "the body is {} bytes; the limit is {}",
                    self.body.len(),
                    limits.max_body_bytes
                ),
            );
        }
        if self
            .summary
            .as_deref()
            .is_some_and(|s| chars(s) > limits.max_item_chars)
        {
            bad(
                "summary",
                format!(
                    "the summary is longer than {} characters",
                    limits.max_item_chars
                ),
            );
        }
        if self.audience != "customer" && self.audience != "staff" {
            bad(
                "audience",
                format!("audience `{}` must be customer or staff", self.audience),
            );
        }
        for (field, list) in [("questions", &self.questions), ("tags", &self.tags)] {
            if list.len() > limits.max_questions {
                bad(field, format!("more than {} entries", limits.max_questions));
            }
            if let Some(long) = list.iter().find(|s| chars(s) > limits.max_item_chars) {
                bad(
                    field,
                    format!(
                        "`{}…` is longer than {} characters",
                        long.chars().take(12).collect::<String>(),
                        limits.max_item_chars
                    ),
                );
            }
        }
        if let Some(b) = self.branches.iter().find(|b| {
            b.len() > 32
                || !b
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        }) {
            bad("branches", format!("`{b}` is not a branch id"));
        }
        let mut dates = [None, None];
        for (i, (field, v)) in [
            ("effective_from", &self.effective_from),
            ("effective_to", &self.effective_to),
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = v {
                match chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
                    Ok(d) => dates[i] = Some(d),
                    Err(_) => bad(field, format!("`{v}` is not a date like 2026-12-01")),
                }
            }
        }
        if let [Some(from), Some(to)] = dates {
            if to < from {
                bad(
                    "effective_to",
                    "effective_to is before effective_from".into(),
                );
            }
        }
        out
    }

    /// SHA-256 over the canonical JSON form: equal content, equal hash.
    pub fn content_hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(json))
    }

    /// Whether the article is in force on `today` (`YYYY-MM-DD`): on or after
    /// `effective_from` and on or before `effective_to`, when set.
    pub fn in_force(&self, today: &str) -> bool {
        self.effective_from.as_deref().is_none_or(|f| f <= today)
            && self.effective_to.as_deref().is_none_or(|t| t >= today)
    }

    /// Whether the article applies at `branch` (no branches listed: everywhere).
    pub fn serves(&self, branch: &str) -> bool {
        self.branches.is_empty() || self.branches.iter().any(|b| b == branch)
    }

    /// The spoken summary: the marked summary, else the body's first paragraph (Markdown
    /// marks removed).
    pub fn spoken_summary(&self) -> String {
        if let Some(s) = &self.summary {
            return s.clone();
        }
        let para = self
            .body
            .split("\n\n")
            .map(str::trim)
            .find(|p| !p.is_empty() && !p.starts_with('#'))
            .unwrap_or_default();
        plain_text(para)
    }

    /// The article as a Markdown file with front matter (what `knowledge export` writes).
    pub fn to_markdown(&self, id: &str) -> String {
        let front = ArticleFront {
            id: id.to_string(),
            title: self.title.clone(),
            audience: self.audience.clone(),
            tags: self.tags.clone(),
            questions: self.questions.clone(),
            branches: self.branches.clone(),
            effective_from: self.effective_from.clone(),
            effective_to: self.effective_to.clone(),
            summary: self.summary.clone(),
        };
        let yaml = serde_norway::to_string(&front).unwrap_or_default();
        format!("---\n{yaml}---\n{}\n", self.body)
    }
}

impl From<&ArticleFile> for ArticleDraft {
    fn from(a: &ArticleFile) -> Self {
        ArticleDraft {
            title: a.front.title.clone(),
            body: a.body.clone(),
            summary: a.front.summary.clone(),
            questions: a.front.questions.clone(),
            tags: a.front.tags.clone(),
            audience: a.front.audience.clone(),
            branches: a.front.branches.clone(),
            effective_from: a.front.effective_from.clone(),
            effective_to: a.front.effective_to.clone(),
        }
    }
}

/// Markdown reduced to what a voice can read: no emphasis marks, list bullets or links.
pub fn plain_text(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    for line in md.lines() {
        let line = line.trim_start();
        let line = line
            .strip_prefix("- ")
            .or_else(|| line.strip_prefix("* "))
            .unwrap_or(line);
        let line = line.trim_start_matches('#').trim_start();
        out.push_str(line);
    }
    out.replace("**", "")
        .replace('`', "")
        .replace(['[', ']'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ArticleDraft {
        ArticleDraft {
            title: " 营业时间 ".into(),
            body: "工作日 9:00-17:00。\n\n节假日另行公告。".into(),
            summary: None,
            questions: vec!["几点开门".into(), " 几点开门".into(), "".into()],
            tags: vec![],
            audience: "customer".into(),
            branches: vec![],
            effective_from: None,
            effective_to: None,
        }
    }

    #[test]
    fn validation_trims_deduplicates_and_names_each_problem() {
        let mut d = draft();
        assert!(d.validate(&Limits::default()).is_empty());
        assert_eq!(d.title, "营业时间");
        assert_eq!(d.questions, vec!["几点开门"]);
        let mut d = draft();
        d.audience = "public".into();
        d.body = "长".repeat(30_000);
        d.effective_from = Some("2026-13-01".into());
        let fields: Vec<_> = d
            .validate(&Limits::default())
            .into_iter()
            .map(|i| i.field)
            .collect();
        assert_eq!(fields, vec!["body", "audience", "effective_from"]);
    }

    #[test]
    fn the_hash_ignores_nothing_but_is_stable() {
        let a = draft();
        let mut b = draft();
        assert_eq!(a.content_hash(), b.content_hash());
        b.body.push('。');
        assert_ne!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn the_spoken_summary_is_the_first_paragraph_in_plain_words() {
        let mut d = draft();
        d.body = "## 标题\n\n**工作日** 9:00-17:00。\n\n其他".into();
        assert_eq!(d.spoken_summary(), "工作日 9:00-17:00。");
        d.summary = Some("请以公告为准。".into());
        assert_eq!(d.spoken_summary(), "请以公告为准。");
    }
}

/// Why a knowledge operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("the article is invalid: {}", .0.iter().map(|i| format!("{}: {}", i.field, i.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Invalid>),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The state or version moved on (code: `version_conflict`, `wrong_state`, …).
    #[error("{1}")]
    Conflict(&'static str, String),
    /// Not allowed for this person (code: `self_review`, `override_not_allowed`).
    #[error("{1}")]
    Refused(&'static str, String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// One version of an article.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub article_id: String,
    pub version: i64,
    pub state: State,
    #[serde(flatten)]
    pub draft: ArticleDraft,
    pub content_hash: String,
    pub author: String,
    pub created_at: i64,
    pub reviewer: Option<String>,
    pub reviewed_at: Option<i64>,
    pub publish_at: Option<i64>,
}

/// An article in a list: its newest version and what is live.
#[derive(Debug, Clone, Serialize)]
pub struct ArticleSummary {
    pub id: String,
    pub title: String,
    pub audience: String,
    pub head_version: i64,
    pub head_state: State,
    pub live_version: Option<i64>,
    pub updated_at: i64,
}

/// One recorded state change.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub seq: i64,
    pub version: i64,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub at: i64,
    pub comment: String,
    pub override_reason: Option<String>,
}

/// What a save did.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    pub id: String,
    pub version: i64,
    /// False when the content equals the newest version (nothing was written).
    pub created: bool,
}
