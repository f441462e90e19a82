//! Hybrid retrieval: the BM25 hits and the dense (by meaning) hits of one search fused by
//! reciprocal rank, and the policy that turns fused hits into what a kiosk does
//! ([`decide`]).
//!
//! Fusion is reciprocal-rank fusion, `fused = 1/(k + rank_bm25) + 1/(k + rank_dense)`
//! (ranks from 1; a list an article is missing from adds nothing). Ranks, not scores,
//! because BM25 is unbounded and depends on the question's length while cosines of one
//! model sit in a narrow band of their own: a weighted score sum would need recalibrating
//! for every model and every knowledge base, a rank sum does not. The absolute evidence
//! (BM25 score and coverage, dense cosine) still decides whether to answer at all.
//! Without vectors (no embedder, or none yet) the fused order is the BM25 order.

use std::collections::{HashMap, HashSet};

use super::dense::{DenseHit, DenseIndex, Overlay};
use super::index::{Found, Hit, Query1};
use crate::config::KnowledgeSettings;

/// How many hits of each list take part in a fusion (at least the search's limit).
pub const CANDIDATES: usize = 20;

/// What fusion and the kiosk's decision depend on (from `[knowledge]`).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The `k` of reciprocal-rank fusion.
    pub rrf_k: f32,
    /// BM25 evidence: share of the question's words matched…
    pub min_coverage: f32,
    /// …and BM25 score.
    pub min_score: f32,
    /// BM25 runner-up this close (share of the best) → clarify.
    pub clarify_ratio: f32,
    /// Dense evidence: the best passage's cosine; also the least a hit found by meaning
    /// alone needs to be listed at all.
    pub min_dense: f32,
    /// Dense runner-up within this of the best (both at `min_dense`) → clarify.
    pub dense_margin: f32,
}

impl From<&KnowledgeSettings> for Policy {
    fn from(s: &KnowledgeSettings) -> Policy {
        Policy {
            rrf_k: s.rrf_k,
            min_coverage: s.min_coverage,
            min_score: s.min_score,
            clarify_ratio: s.clarify_ratio,
            min_dense: s.min_dense,
            dense_margin: s.dense_margin,
        }
    }
}

/// One search through `bm25` (the index, or a trial's view of it) and `dense` (with the
/// question's vector, when there is one), fused; at most `q.limit` hits.
pub fn search(
    bm25: &dyn Fn(&Query1<'_>) -> tantivy::Result<Found>,
    dense: &DenseIndex,
    query_vector: Option<&[f32]>,
    q: &Query1<'_>,
    overlay: Option<Overlay<'_>>,
    policy: &Policy,
) -> tantivy::Result<Found> {
    let mut wide = q.clone();
    wide.limit = q.limit.max(CANDIDATES);
    let found = bm25(&wide)?;
    // A question without a single word (punctuation, nothing) finds nothing either way.
    if found.words.is_empty() || q.limit == 0 {
        return Ok(Found {
            words: found.words,
            hits: Vec::new(),
        });
    }
    let lexical: Vec<&str> = found.hits.iter().map(|h| h.id.as_str()).collect();
    let by_meaning = query_vector
        .map(|v| dense.search(v, q, overlay, &lexical))
        .unwrap_or_default();
    Ok(Found {
        words: found.words,
        hits: fuse(found.hits, &by_meaning, policy, q.limit),
    })
}

fn rrf(k: f32, rank0: usize) -> f32 {
    1.0 / (k + rank0 as f32 + 1.0)
}

/// Fuses BM25 hits (best first) with dense hits (every article the search admits, best
/// first): each hit gets its dense cosine and fused score; the first [`CANDIDATES`] dense
/// hits at `min_dense` or above join even without a BM25 match. Best fused first.
pub fn fuse(bm25: Vec<Hit>, dense: &[DenseHit], policy: &Policy, limit: usize) -> Vec<Hit> {
    let rank: HashMap<&str, (usize, f32)> = dense
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.as_str(), (i, h.dense)))
        .collect();
    let mut seen = HashSet::new();
    let mut hits = Vec::with_capacity(bm25.len() + CANDIDATES);
    for (i, mut h) in bm25.into_iter().enumerate() {
        h.fused = rrf(policy.rrf_k, i);
        if let Some((r, d)) = rank.get(h.id.as_str()) {
            h.dense = Some(*d);
            h.fused += rrf(policy.rrf_k, *r);
        }
        seen.insert(h.id.clone());
        hits.push(h);
    }
    for (r, d) in dense.iter().enumerate().take(CANDIDATES) {
        if d.dense < policy.min_dense || seen.contains(&d.id) {
            continue;
        }
        let v = &d.vectors;
        hits.push(Hit {
            id: d.id.clone(),
            version: v.version,
            title: v.title.clone(),
            audience: v.audience.clone(),
            bm25: 0.0,
            dense: Some(d.dense),
            fused: rrf(policy.rrf_k, r),
            highlight: v.snippet.clone(),
            matched: Vec::new(),
            coverage: 0.0,
            explanation: None,
        });
    }
    hits.sort_by(|a, b| {
        b.fused
            .total_cmp(&a.fused)
            .then_with(|| b.bm25.total_cmp(&a.bm25))
            .then_with(|| a.id.cmp(&b.id))
    });
    hits.truncate(limit);
    hits
}

/// What a kiosk does with fused hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with the first hit.
    Answer,
    /// Ask whether the first or the second hit is meant.
    Clarify,
    Unknown,
}

/// Whether `h` alone is evidence enough: BM25 as before (coverage and score), or its best
/// passage's cosine.
fn confident(h: &Hit, p: &Policy) -> bool {
    (h.coverage >= p.min_coverage && h.bm25 >= p.min_score)
        || h.dense.is_some_and(|d| d >= p.min_dense)
}

/// The kiosk's decision on `hits` (fused, best first): unknown unless the first hit is
/// confident ([`confident`]); clarify when the second is about as good by BM25 (score at
/// least `clarify_ratio` of the first's, or of `min_score` when the first was found by
/// meaning, and enough coverage) or by meaning (both at `min_dense`, within
/// `dense_margin`); else answer. Without dense scores this is the BM25-only policy.
pub fn decide(hits: &[Hit], p: &Policy) -> Verdict {
    let Some(best) = hits.first() else {
        return Verdict::Unknown;
    };
    if !confident(best, p) {
        return Verdict::Unknown;
    }
    if let Some(second) = hits.get(1) {
        let close_bm25 = second.coverage >= p.min_coverage
            && second.bm25 >= best.bm25.max(p.min_score) * p.clarify_ratio;
        let close_dense = match (best.dense, second.dense) {
            (Some(a), Some(b)) => b >= p.min_dense && a.max(p.min_dense) - b <= p.dense_margin,
            _ => false,
        };
        if close_bm25 || close_dense {
            return Verdict::Clarify;
        }
    }
    Verdict::Answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::dense::ArticleVectors;
    use crate::knowledge::index::LiveDoc;
    use crate::knowledge::model::ArticleDraft;
    use std::sync::Arc;

    fn policy() -> Policy {
        Policy {
            rrf_k: 60.0,
            min_coverage: 0.4,
            min_score: 4.0,
            clarify_ratio: 0.85,
            min_dense: 0.8,
            dense_margin: 0.02,
        }
    }

    fn hit(id: &str, bm25: f32, coverage: f32) -> Hit {
        Hit {
            id: id.into(),
            version: 1,
            title: id.into(),
            audience: "customer".into(),
            bm25,
            dense: None,
            fused: 0.0,
            highlight: String::new(),
            matched: vec![],
            coverage,
            explanation: None,
        }
    }

    fn dense(id: &str, cos: f32) -> DenseHit {
        let doc = LiveDoc {
            id: id.into(),
            version: 2,
            hash: String::new(),
            draft: ArticleDraft {
                title: format!("{id} title"),
                body: "正文".into(),
                summary: None,
                questions: vec![],
                tags: vec![],
                audience: "customer".into(),
                branches: vec![],
                effective_from: None,
                effective_to: None,
            },
        };
        DenseHit {
            id: id.into(),
            dense: cos,
            vectors: Arc::new(ArticleVectors::new(&doc, &[vec![1.0]])),
        }
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    #[test]
    fn without_dense_hits_the_bm25_order_stands() {
        let bm25 = vec![hit("a", 9.0, 1.0), hit("b", 8.0, 1.0), hit("c", 1.0, 0.2)];
        let fused = fuse(bm25, &[], &policy(), 5);
        assert_eq!(ids(&fused), ["a", "b", "c"]);
        assert!(fused[0].fused > fused[1].fused && fused[1].fused > fused[2].fused);
        assert!(fused.iter().all(|h| h.dense.is_none()));
    }

    #[test]
    fn ranks_add_up_and_strong_meaning_alone_joins() {
        let bm25 = vec![hit("a", 9.0, 1.0), hit("b", 8.0, 1.0)];
        let by_meaning = [
            dense("b", 0.9),
            dense("new", 0.85),
            dense("a", 0.5),
            dense("weak", 0.3),
        ];
        let fused = fuse(bm25, &by_meaning, &policy(), 5);
        // b: 1/62 + 1/61 beats a: 1/61 + 1/63; "new" only by meaning; "weak" is below min_dense.
        assert_eq!(ids(&fused), ["b", "a", "new"]);
        assert_eq!(fused[0].dense, Some(0.9));
        assert_eq!(fused[2].bm25, 0.0);
        assert_eq!(fused[2].version, 2);
        assert_eq!(fused[2].title, "new title");
        assert!((fused[0].fused - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-6);
        assert_eq!(fuse(vec![], &by_meaning, &policy(), 1).len(), 1);
    }

    #[test]
    fn decisions_follow_the_evidence() {
        let p = policy();
        let with = |mut h: Hit, d: f32| {
            h.dense = Some(d);
            h
        };
        assert_eq!(decide(&[], &p), Verdict::Unknown);
        // BM25 as before.
        assert_eq!(decide(&[hit("a", 9.0, 1.0)], &p), Verdict::Answer);
        assert_eq!(decide(&[hit("a", 3.0, 1.0)], &p), Verdict::Unknown);
        assert_eq!(decide(&[hit("a", 9.0, 0.3)], &p), Verdict::Unknown);
        assert_eq!(
            decide(&[hit("a", 9.0, 1.0), hit("b", 8.0, 0.5)], &p),
            Verdict::Clarify
        );
        assert_eq!(
            decide(&[hit("a", 9.0, 1.0), hit("b", 7.0, 0.5)], &p),
            Verdict::Answer
        );
        // Meaning alone answers; a close second by meaning asks.
        assert_eq!(
            decide(&[with(hit("a", 0.0, 0.0), 0.9)], &p),
            Verdict::Answer
        );
        assert_eq!(
            decide(&[with(hit("a", 0.0, 0.0), 0.7)], &p),
            Verdict::Unknown
        );
        let two = [
            with(hit("a", 0.0, 0.0), 0.9),
            with(hit("b", 0.0, 0.0), 0.89),
        ];
        assert_eq!(decide(&two, &p), Verdict::Clarify);
        let two = [
            with(hit("a", 0.0, 0.0), 0.9),
            with(hit("b", 0.0, 0.0), 0.85),
        ];
        assert_eq!(decide(&two, &p), Verdict::Answer);
        // A strong BM25 runner-up behind an answer by meaning: ask.
        let two = [with(hit("a", 0.0, 0.0), 0.9), hit("b", 5.0, 0.6)];
        assert_eq!(decide(&two, &p), Verdict::Clarify);
    }
}
