//! The passages an article version is embedded as: its title, its summary, its question
//! variants and its body in chunks of at most [`CHUNK_CHARS`] characters (a paragraph, or
//! the sentences of a longer paragraph packed together), at most [`MAX_PASSAGES`] in all.
//! An article's dense similarity to a question is that of its best passage.

use sha2::{Digest, Sha256};

use super::model::{plain_text, ArticleDraft};

/// Most passages of one article version (10,000 articles × 24 × 384 bytes ≈ 92 MB of
/// quantised vectors in memory).
pub const MAX_PASSAGES: usize = 24;
/// Longest body chunk, in characters (a short text embeds best).
pub const CHUNK_CHARS: usize = 200;
/// Question variants embedded before the body (more only when the body leaves room).
const FIRST_QUESTIONS: usize = 12;

/// Which part of the article a passage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassageKind {
    Title,
    Summary,
    Question,
    Body,
}

impl PassageKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PassageKind::Title => "title",
            PassageKind::Summary => "summary",
            PassageKind::Question => "question",
            PassageKind::Body => "body",
        }
    }
}

/// One text of an article to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    pub kind: PassageKind,
    pub text: String,
}

impl Passage {
    fn new(kind: PassageKind, text: &str) -> Option<Passage> {
        let text = text.trim();
        (!text.is_empty()).then(|| Passage {
            kind,
            text: text.to_string(),
        })
    }

    /// SHA-256 of the text (hex): a stored vector whose text changed is stale.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.text.as_bytes()))
    }
}

/// The passages of `draft`, in a fixed order: title, summary, up to 12 question variants,
/// body chunks, then the remaining question variants while there is room.
pub fn passages(draft: &ArticleDraft) -> Vec<Passage> {
    let mut out: Vec<Passage> = Vec::new();
    out.extend(Passage::new(PassageKind::Title, &draft.title));
    if let Some(s) = &draft.summary {
        out.extend(Passage::new(PassageKind::Summary, s));
    }
    let (first, rest) = draft
        .questions
        .split_at(draft.questions.len().min(FIRST_QUESTIONS));
    let questions = |qs: &[String]| -> Vec<Passage> {
        qs.iter()
            .filter_map(|q| Passage::new(PassageKind::Question, q))
            .collect()
    };
    out.extend(questions(first));
    out.extend(
        chunks(&draft.body, CHUNK_CHARS)
            .iter()
            .filter_map(|c| Passage::new(PassageKind::Body, c)),
    );
    out.extend(questions(rest));
    out.truncate(MAX_PASSAGES);
    out
}

/// The body in chunks of at most `max` characters: each paragraph in plain words, a longer
/// one split after sentence ends and packed, a sentence longer than `max` cut.
pub fn chunks(body: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut out = Vec::new();
    for para in body.split("\n\n") {
        let para = plain_text(para.trim());
        let para = para.trim();
        if para.is_empty() {
            continue;
        }
        if para.chars().count() <= max {
            out.push(para.to_string());
            continue;
        }
        let mut current = String::new();
        for sentence in sentences(para) {
            for piece in cut(&sentence, max) {
                if current.chars().count() + piece.chars().count() > max && !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                current.push_str(&piece);
            }
        }
        if !current.trim().is_empty() {
            out.push(current);
        }
    }
    out
}

/// `text` split after each sentence end (。！？；!?; and newlines), ends kept.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n') {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `text` in pieces of at most `max` characters.
fn cut(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(max).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(body: &str, questions: usize) -> ArticleDraft {
        ArticleDraft {
            title: "停车指引".into(),
            body: body.into(),
            summary: Some("网点门前有车位。".into()),
            questions: (0..questions).map(|i| format!("问题{i}")).collect(),
            tags: vec![],
            audience: "customer".into(),
            branches: vec![],
            effective_from: None,
            effective_to: None,
        }
    }

    #[test]
    fn short_paragraphs_are_one_chunk_each_and_long_ones_split_at_sentences() {
        let long = format!(
            "{}。{}。{}",
            "甲".repeat(120),
            "乙".repeat(120),
            "丙".repeat(450)
        );
        let c = chunks(&format!("## 停车\n\n**门前**有车位。\n\n{long}"), 200);
        assert_eq!(c[0], "停车");
        assert_eq!(c[1], "门前有车位。");
        assert_eq!(c[2], format!("{}。", "甲".repeat(120)));
        assert_eq!(c[3], format!("{}。", "乙".repeat(120)));
        assert_eq!(c[4], "丙".repeat(200));
        assert_eq!(c[6], "丙".repeat(50));
        assert!(c.iter().all(|c| c.chars().count() <= 200), "{c:?}");
        assert!(chunks("  \n\n ", 200).is_empty());
    }

    #[test]
    fn passages_come_in_order_and_are_capped() {
        let p = passages(&draft("第一段。\n\n第二段。", 2));
        let kinds: Vec<_> = p.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["title", "summary", "question", "question", "body", "body"]
        );
        let many = passages(&draft(&"一段话。\n\n".repeat(40), 30));
        assert_eq!(many.len(), MAX_PASSAGES);
        // Twelve questions come before the body; the body fills the rest.
        assert_eq!(
            many.iter()
                .filter(|p| p.kind == PassageKind::Question)
                .count(),
            FIRST_QUESTIONS
        );
        assert_eq!(many[0].sha256().len(), 64);
        assert_ne!(many[0].sha256(), many[1].sha256());
    }
}
