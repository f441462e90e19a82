//! Dense retrieval in memory: the passage vectors of each live article version, quantised
//! to one signed byte per dimension (with a scale per vector: 384 dims → 388 bytes), and a
//! brute-force search that scores each article by its best passage. The same audience,
//! branch and effective-date filters as the BM25 index apply ([`Scope::admits`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::index::{highlight, Audience, LiveDoc, Query1};

/// Who an article is for, where and when: what filters it (as the BM25 index does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub audience: String,
    pub branches: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Scope {
    /// Whether a search `q` may find an article of this scope: customers only customer
    /// articles; only articles for every branch or `q.branch`; in force on `q.day`.
    pub fn admits(&self, q: &Query1<'_>) -> bool {
        self.admits_on(q, &q.day.to_string())
    }

    /// [`Scope::admits`] with the query's day already written as `YYYY-MM-DD`.
    fn admits_on(&self, q: &Query1<'_>, day: &str) -> bool {
        (q.audience == Audience::Staff || self.audience == "customer")
            && q.branch
                .is_none_or(|b| self.branches.is_empty() || self.branches.iter().any(|x| x == b))
            && self.from.as_deref().is_none_or(|f| f <= day)
            && self.to.as_deref().is_none_or(|t| t >= day)
    }
}

/// A vector in bytes: `codes[i] × scale ≈ v[i]`.
#[derive(Debug, Clone)]
pub struct Quantised {
    codes: Vec<i8>,
    scale: f32,
}

impl Quantised {
    /// `v` quantised symmetrically on its largest component.
    pub fn of(v: &[f32]) -> Quantised {
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        if max <= 0.0 || !max.is_finite() {
            return Quantised {
                codes: vec![0; v.len()],
                scale: 0.0,
            };
        }
        let scale = max / 127.0;
        Quantised {
            codes: v
                .iter()
                .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
                .collect(),
            scale,
        }
    }

    /// The approximate dot product with `other` (their cosine for unit vectors).
    pub fn dot(&self, other: &Quantised) -> f32 {
        int_dot(&self.codes, &other.codes) as f32 * self.scale * other.scale
    }
}

/// The integer dot product of two code vectors: the inner loop of a dense search (90,000
/// passages at 10,000 articles), so it uses AVX2 where the processor has it.
fn int_dot(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor was just found to support AVX2.
            return unsafe { int_dot_avx2(a, b) };
        }
    }
    int_dot_plain(a, b)
}

fn int_dot_plain(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum()
}

/// [`int_dot_plain`] compiled for AVX2 (the compiler vectorises the same loop wider).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn int_dot_avx2(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum()
}

/// The vectors of one live article version, with what a hit shows and what filters it.
#[derive(Debug, Clone)]
pub struct ArticleVectors {
    pub version: i64,
    pub title: String,
    pub audience: String,
    /// The beginning of the body, HTML-escaped (a dense-only hit's highlight).
    pub snippet: String,
    pub scope: Scope,
    passages: Vec<Quantised>,
}

impl ArticleVectors {
    /// The vectors of `doc`'s passages (in passage order).
    pub fn new(doc: &LiveDoc, vectors: &[Vec<f32>]) -> ArticleVectors {
        Self::from_quantised(doc, vectors.iter().map(|v| Quantised::of(v)).collect())
    }

    /// `doc`'s passage vectors, quantised already (as read from the database).
    pub fn from_quantised(doc: &LiveDoc, passages: Vec<Quantised>) -> ArticleVectors {
        let d = &doc.draft;
        ArticleVectors {
            version: doc.version,
            title: d.title.clone(),
            audience: d.audience.clone(),
            snippet: highlight(&d.body, &[], 120),
            scope: Scope {
                audience: d.audience.clone(),
                branches: d.branches.clone(),
                from: d.effective_from.clone(),
                to: d.effective_to.clone(),
            },
            passages,
        }
    }

    /// Number of passages.
    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// Similarity of the best passage to `query`.
    fn best(&self, query: &Quantised) -> f32 {
        self.passages
            .iter()
            .map(|p| p.dot(query))
            .fold(f32::NEG_INFINITY, f32::max)
    }
}

/// An article by meaning: its live version and its best passage's cosine.
#[derive(Debug, Clone)]
pub struct DenseHit {
    pub id: String,
    pub dense: f32,
    pub vectors: Arc<ArticleVectors>,
}

/// During a golden trial: the article whose vectors are replaced (`Some`) or removed.
pub type Overlay<'a> = (&'a str, Option<&'a Arc<ArticleVectors>>);

/// The vectors of every live article that has them (one embedding model).
#[derive(Default)]
pub struct DenseIndex {
    articles: RwLock<HashMap<String, Arc<ArticleVectors>>>,
}

impl DenseIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<ArticleVectors>>> {
        self.articles.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<ArticleVectors>>> {
        self.articles.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The version whose vectors are held for `id`.
    pub fn version_of(&self, id: &str) -> Option<i64> {
        self.read().get(id).map(|a| a.version)
    }

    /// The vectors held for `id`.
    pub fn get(&self, id: &str) -> Option<Arc<ArticleVectors>> {
        self.read().get(id).cloned()
    }

    /// Holds `vectors` for `id` (replacing an earlier version's).
    pub fn insert(&self, id: &str, vectors: Arc<ArticleVectors>) {
        self.write().insert(id.to_string(), vectors);
    }

    /// Keeps only the articles for which `keep(id, version)` holds.
    pub fn retain(&self, keep: impl Fn(&str, i64) -> bool) {
        self.write().retain(|id, a| keep(id, a.version));
    }

    /// Articles held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Passages held, over all articles.
    pub fn passages(&self) -> usize {
        self.read().values().map(|a| a.len()).sum()
    }

    /// The [`TOP`] articles `q` may find, by the cosine of their best passage to `query`,
    /// best first, then the articles of `also` that `q` may find (their own cosine, in
    /// that order). `overlay` replaces or removes one article (a golden trial).
    pub fn search(
        &self,
        query: &[f32],
        q: &Query1<'_>,
        overlay: Option<Overlay<'_>>,
        also: &[&str],
    ) -> Vec<DenseHit> {
        let query = Quantised::of(query);
        let day = q.day.to_string();
        let articles = self.read();
        let skip = overlay.map(|(id, _)| id);
        let extra = overlay.and_then(|(id, v)| v.map(|v| (id, v)));
        let candidates = || {
            articles
                .iter()
                .filter(move |(id, _)| Some(id.as_str()) != skip)
                .map(|(id, v)| (id.as_str(), v))
                .chain(extra)
                .filter(|(_, v)| !v.is_empty() && v.scope.admits_on(q, &day))
        };
        let order = |a: &(f32, &str, &Arc<ArticleVectors>),
                     b: &(f32, &str, &Arc<ArticleVectors>)| {
            b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1))
        };
        let mut scored: Vec<(f32, &str, &Arc<ArticleVectors>)> = candidates()
            .map(|(id, v)| (v.best(&query), id, v))
            .collect();
        if scored.len() > TOP {
            scored.select_nth_unstable_by(TOP - 1, order);
            scored.truncate(TOP);
        }
        scored.sort_by(order);
        let mut hits: Vec<DenseHit> = scored
            .into_iter()
            .map(|(dense, id, v)| DenseHit {
                id: id.to_string(),
                dense,
                vectors: Arc::clone(v),
            })
            .collect();
        for id in also {
            if hits.iter().any(|h| h.id == *id) {
                continue;
            }
            let found = match extra {
                Some((i, v)) if i == *id => Some(v),
                _ if skip == Some(*id) => None,
                _ => articles.get(*id),
            };
            if let Some(v) = found.filter(|v| !v.is_empty() && v.scope.admits_on(q, &day)) {
                hits.push(DenseHit {
                    id: id.to_string(),
                    dense: v.best(&query),
                    vectors: Arc::clone(v),
                });
            }
        }
        hits
    }
}

/// Articles a dense search ranks (the rest of the lexical hits are scored one by one).
pub const TOP: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::model::ArticleDraft;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        crate::embedding::normalize(&mut v);
        v
    }

    fn doc(id: &str, audience: &str, branches: &[&str], from: Option<&str>) -> LiveDoc {
        LiveDoc {
            id: id.into(),
            version: 3,
            hash: id.into(),
            draft: ArticleDraft {
                title: format!("{id} title"),
                body: "正文 <b>".into(),
                summary: None,
                questions: vec![],
                tags: vec![],
                audience: audience.into(),
                branches: branches.iter().map(|b| b.to_string()).collect(),
                effective_from: from.map(String::from),
                effective_to: None,
            },
        }
    }

    fn q(audience: Audience, branch: Option<&'static str>) -> Query1<'static> {
        Query1 {
            text: "",
            audience,
            branch,
            day: chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
            limit: 5,
            explain: false,
        }
    }

    #[test]
    fn a_search_keeps_the_top_and_scores_the_lexical_hits_beyond_it() {
        let idx = DenseIndex::default();
        for i in 0..(TOP + 10) {
            let angle = i as f32 / 100.0;
            let v = unit(&[angle.cos(), angle.sin()]);
            idx.insert(
                &format!("a{i:03}"),
                Arc::new(ArticleVectors::new(
                    &doc(&format!("a{i:03}"), "customer", &[], None),
                    &[v],
                )),
            );
        }
        let query = unit(&[1.0, 0.0]);
        let last = format!("a{:03}", TOP + 9);
        let hits = idx.search(
            &query,
            &q(Audience::Customer, None),
            None,
            &[last.as_str(), "nope"],
        );
        assert_eq!(hits.len(), TOP + 1);
        assert_eq!(hits[0].id, "a000");
        assert!(hits
            .windows(2)
            .take(TOP - 1)
            .all(|w| w[0].dense >= w[1].dense));
        assert_eq!(
            hits[TOP].id, last,
            "a lexical hit outside the top is scored too"
        );
    }

    #[test]
    fn the_fast_dot_product_is_the_plain_one() {
        let a: Vec<i8> = (0..384).map(|i| ((i * 37) % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..384).map(|i| ((i * 91) % 253 - 126) as i8).collect();
        assert_eq!(int_dot(&a, &b), int_dot_plain(&a, &b));
        assert_eq!(int_dot(&a[..5], &b[..5]), int_dot_plain(&a[..5], &b[..5]));
    }

    #[test]
    fn quantised_dots_are_close_to_the_exact_cosine() {
        let a = unit(
            &(0..384)
                .map(|i| ((i * 7) % 13) as f32 - 6.0)
                .collect::<Vec<_>>(),
        );
        let b = unit(
            &(0..384)
                .map(|i| ((i * 5) % 11) as f32 - 5.0)
                .collect::<Vec<_>>(),
        );
        let exact = crate::embedding::dot(&a, &b);
        let approx = Quantised::of(&a).dot(&Quantised::of(&b));
        assert!((exact - approx).abs() < 0.01, "{exact} vs {approx}");
        assert!((Quantised::of(&a).dot(&Quantised::of(&a)) - 1.0).abs() < 0.01);
        assert_eq!(Quantised::of(&[0.0, 0.0]).dot(&Quantised::of(&a[..2])), 0.0);
    }

    #[test]
    fn the_best_passage_scores_the_article_and_filters_apply() {
        let idx = DenseIndex::default();
        let near = unit(&[1.0, 0.1, 0.0]);
        let far = unit(&[0.0, 0.0, 1.0]);
        let put = |d: LiveDoc, vs: &[Vec<f32>]| {
            idx.insert(&d.id.clone(), Arc::new(ArticleVectors::new(&d, vs)))
        };
        put(
            doc("everyone", "customer", &[], None),
            &[far.clone(), near.clone()],
        );
        put(
            doc("staff-only", "staff", &[], None),
            std::slice::from_ref(&near),
        );
        put(
            doc("other-branch", "customer", &["B002"], None),
            std::slice::from_ref(&near),
        );
        put(
            doc("later", "customer", &[], Some("2027-01-01")),
            std::slice::from_ref(&near),
        );
        let query = unit(&[1.0, 0.0, 0.0]);
        let ids = |hits: Vec<DenseHit>| hits.into_iter().map(|h| h.id).collect::<Vec<_>>();
        let hits = idx.search(&query, &q(Audience::Customer, Some("B001")), None, &[]);
        assert_eq!(ids(hits.clone()), ["everyone"]);
        assert!(hits[0].dense > 0.99, "{}", hits[0].dense);
        assert_eq!(hits[0].vectors.snippet, "正文 &lt;b&gt;");
        let staff = idx.search(&query, &q(Audience::Staff, None), None, &[]);
        assert_eq!(ids(staff), ["everyone", "other-branch", "staff-only"]);
        assert_eq!(idx.passages(), 5);
        // A trial replaces one article's vectors without touching the index.
        let replaced = Arc::new(ArticleVectors::new(
            &doc("everyone", "customer", &[], None),
            &[far],
        ));
        let hits = idx.search(
            &query,
            &q(Audience::Customer, None),
            Some(("everyone", Some(&replaced))),
            &[],
        );
        assert!(
            hits[0].id == "other-branch"
                && hits.iter().any(|h| h.id == "everyone" && h.dense < 0.1)
        );
        let hits = idx.search(
            &query,
            &q(Audience::Customer, None),
            Some(("other-branch", None)),
            &[],
        );
        assert_eq!(ids(hits), ["everyone"]);
        idx.retain(|id, _| id != "everyone");
        assert_eq!(idx.version_of("everyone"), None);
        assert_eq!(idx.version_of("later"), Some(3));
    }
}
