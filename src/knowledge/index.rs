//! The search index: tantivy in memory over the published versions, built from the database
//! and kept in step with it ([`SearchIndex::apply`]). Queries are built from the analyzer's
//! words — never parsed as query syntax — each word matched in any field (question variants
//! and title above tags, summary and body) or as any of its synonyms, filtered by audience,
//! branch and effective date.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Mutex;

use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, BoostQuery, DisjunctionMaxQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, INDEXED, STORED,
    STRING,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::model::ArticleDraft;
use super::text::{char_grams, Analyzer, GramTokenizer, Synonyms, ZhTokenizer};

/// Weights of the text fields: how customers ask it and the title count most.
const FIELDS: [(&str, f32); 5] = [
    ("questions", 3.0),
    ("title", 2.5),
    ("tags", 2.0),
    ("summary", 1.5),
    ("body", 1.0),
];
/// Character pairs (title, questions, tags, summary) back the word match up: each pair of
/// the question that an article holds adds this much of its BM25 score. (On the golden
/// questions: 0 → 120 of 133 first, 0.1 → 121, 0.3 → 120, 0.5 → 118.)
const GRAM_WEIGHT: f32 = 0.1;
/// A one-character word counts this much of a word.
const SINGLE_CHAR_WEIGHT: f32 = 0.5;
/// For staff (the teller helper), staff articles get this much added: a teller asking about
/// large withdrawals wants the procedure, not the customer leaflet.
const STAFF_BONUS: f32 = 3.0;
/// A synonym counts a little less than the word itself.
const SYNONYM_WEIGHT: f32 = 0.8;
/// Most words of one question that are searched for.
const MAX_QUERY_WORDS: usize = 32;

/// Who is asking: customers see customer articles; staff see both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    Customer,
    Staff,
}

impl Audience {
    pub fn parse(s: &str) -> Option<Audience> {
        match s {
            "customer" => Some(Audience::Customer),
            "staff" => Some(Audience::Staff),
            _ => None,
        }
    }
}

/// One search.
#[derive(Debug, Clone)]
pub struct Query1<'a> {
    pub text: &'a str,
    pub audience: Audience,
    /// Only articles for all branches or this one; `None`: no branch filter.
    pub branch: Option<&'a str>,
    /// Only articles in force on this day.
    pub day: chrono::NaiveDate,
    pub limit: usize,
    /// Attach tantivy's score explanation to each hit (hit-testing).
    pub explain: bool,
}

/// One article found.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub id: String,
    pub version: i64,
    pub title: String,
    pub audience: String,
    /// BM25 with field weights (0 for an article found by meaning only).
    pub bm25: f32,
    /// Cosine of the article's best passage to the question (`None`: no vectors to
    /// compare, e.g. no embedder, or not embedded yet).
    pub dense: Option<f32>,
    /// The reciprocal-rank fusion of both (`hybrid`); 0 from the BM25 index alone.
    pub fused: f32,
    /// A passage of the body with the matched words in `<b>…</b>` (HTML-escaped otherwise).
    pub highlight: String,
    /// The question's words this article matched (directly or through a synonym), by field.
    pub matched: Vec<Matched>,
    /// The share of the question's words the article matched (0–1).
    pub coverage: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<serde_json::Value>,
}

/// A word of the question and where the article matched it.
#[derive(Debug, Clone, Serialize)]
pub struct Matched {
    pub word: String,
    /// The word as found: itself or a synonym.
    pub as_word: String,
    pub fields: Vec<&'static str>,
}

/// What a search returns.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The question's words after analysis (empty for punctuation only).
    pub words: Vec<String>,
    pub hits: Vec<Hit>,
}

/// A published version as the index holds it.
#[derive(Debug, Clone)]
pub struct LiveDoc {
    pub id: String,
    pub version: i64,
    pub hash: String,
    pub draft: ArticleDraft,
}

struct Fields {
    id: Field,
    version: Field,
    audience: Field,
    branches: Field,
    from: Field,
    to: Field,
    text: Vec<(Field, &'static str, f32)>,
    grams: Field,
}

/// One generation of the index (a synonym change builds a new one).
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    analyzer: Analyzer,
    synonyms: Synonyms,
    /// What is indexed: id → (version, content hash), and the content itself.
    docs: Mutex<HashMap<String, LiveDoc>>,
}

fn day_number(d: &str) -> Option<u64> {
    d.replace('-', "").parse().ok()
}

impl SearchIndex {
    /// An empty index whose analyzer knows the synonyms and `extra_words` as whole words.
    pub fn new(synonyms: Synonyms, extra_words: &[String]) -> tantivy::Result<SearchIndex> {
        let analyzer = Analyzer::new(
            synonyms
                .words()
                .chain(extra_words.iter().map(String::as_str))
                .collect::<Vec<_>>(),
        );
        let mut sb = Schema::builder();
        let id = sb.add_text_field("id", STRING | STORED);
        let version = sb.add_i64_field("version", STORED);
        let audience = sb.add_text_field("audience", STRING | STORED);
        let branches = sb.add_text_field("branches", STRING);
        let from = sb.add_u64_field("effective_from", INDEXED);
        let to = sb.add_u64_field("effective_to", INDEXED);
        let zh = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("zh")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let grams = sb.add_text_field(
            "grams",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer("grams")
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        );
        let text = FIELDS
            .iter()
            .map(|(name, boost)| (sb.add_text_field(name, zh.clone() | STORED), *name, *boost))
            .collect();
        let index = Index::create_in_ram(sb.build());
        index
            .tokenizers()
            .register("zh", ZhTokenizer(analyzer.clone()));
        index.tokenizers().register("grams", GramTokenizer);
        let writer = index.writer_with_num_threads(1, 50_000_000)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields: Fields {
                id,
                version,
                audience,
                branches,
                from,
                to,
                text,
                grams,
            },
            analyzer,
            synonyms,
            docs: Mutex::new(HashMap::new()),
        })
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    pub fn synonyms(&self) -> &Synonyms {
        &self.synonyms
    }

    /// The indexed version of every article.
    pub fn versions(&self) -> HashMap<String, (i64, String)> {
        self.docs
            .lock()
            .map(|d| {
                d.iter()
                    .map(|(k, v)| (k.clone(), (v.version, v.hash.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The indexed version number of one article.
    pub fn live_version(&self, id: &str) -> Option<i64> {
        self.docs
            .lock()
            .ok()
            .and_then(|d| d.get(id).map(|doc| doc.version))
    }

    /// The indexed version of one article.
    pub fn live_docs_of(&self, id: &str) -> Option<LiveDoc> {
        self.docs.lock().ok().and_then(|d| d.get(id).cloned())
    }

    /// Every indexed document (to build a candidate index for the golden check).
    pub fn live_docs(&self) -> Vec<LiveDoc> {
        self.docs
            .lock()
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default()
    }

    fn document(&self, doc: &LiveDoc) -> TantivyDocument {
        let f = &self.fields;
        let d = &doc.draft;
        let mut t = TantivyDocument::default();
        t.add_text(f.id, &doc.id);
        t.add_i64(f.version, doc.version);
        t.add_text(f.audience, &d.audience);
        if d.branches.is_empty() {
            t.add_text(f.branches, "*");
        }
        for b in &d.branches {
            t.add_text(f.branches, b);
        }
        t.add_u64(
            f.from,
            d.effective_from
                .as_deref()
                .and_then(day_number)
                .unwrap_or(0),
        );
        t.add_u64(
            f.to,
            d.effective_to
                .as_deref()
                .and_then(day_number)
                .unwrap_or(99_991_231),
        );
        for (field, name, _) in &f.text {
            match *name {
                "questions" => d.questions.iter().for_each(|q| t.add_text(*field, q)),
                "title" => t.add_text(*field, &d.title),
                "tags" => d.tags.iter().for_each(|q| t.add_text(*field, q)),
                "summary" => t.add_text(*field, d.summary.as_deref().unwrap_or("")),
                _ => t.add_text(*field, &d.body),
            }
        }
        for s in std::iter::once(&d.title)
            .chain(&d.questions)
            .chain(&d.tags)
            .chain(&d.summary)
        {
            t.add_text(f.grams, s);
        }
        t
    }

    /// Makes the index hold exactly `upserts` (new or changed versions) and no longer hold
    /// `removed` ids, visible to searches when this returns.
    pub fn apply(&self, upserts: Vec<LiveDoc>, removed: &[String]) -> tantivy::Result<()> {
        if upserts.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| tantivy::TantivyError::SystemError("index writer poisoned".into()))?;
        let mut docs = self
            .docs
            .lock()
            .map_err(|_| tantivy::TantivyError::SystemError("index docs poisoned".into()))?;
        for id in removed {
            writer.delete_term(Term::from_field_text(self.fields.id, id));
            docs.remove(id);
        }
        for doc in upserts {
            writer.delete_term(Term::from_field_text(self.fields.id, &doc.id));
            writer.add_document(self.document(&doc))?;
            docs.insert(doc.id.clone(), doc);
        }
        writer.commit()?;
        drop(docs);
        self.reader.reload()
    }

    /// Number of searchable documents.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn build_query(&self, words: &[String], q: &Query1<'_>) -> Box<dyn Query> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in words {
            let mut alternatives: Vec<Box<dyn Query>> = Vec::new();
            // One character says less than a word ("卡", "转"): it counts half.
            let base = if word.chars().count() == 1 {
                SINGLE_CHAR_WEIGHT
            } else {
                1.0
            };
            let variants = std::iter::once((word.as_str(), base))
                .chain(self.synonyms.of(word).map(|s| (s, base * SYNONYM_WEIGHT)));
            for (variant, weight) in variants {
                for (field, _, boost) in &f.text {
                    let term = Term::from_field_text(*field, variant);
                    let tq = TermQuery::new(term, IndexRecordOption::WithFreqs);
                    alternatives.push(Box::new(BoostQuery::new(Box::new(tq), boost * weight)));
                }
            }
            any.push((
                Occur::Should,
                Box::new(DisjunctionMaxQuery::with_tie_breaker(alternatives, 0.1)),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for gram in char_grams(q.text) {
            if seen.insert(gram.text.clone()) && seen.len() <= 2 * MAX_QUERY_WORDS {
                let tq = TermQuery::new(
                    Term::from_field_text(f.grams, &gram.text),
                    IndexRecordOption::WithFreqs,
                );
                any.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(tq), GRAM_WEIGHT)),
                ));
            }
        }
        clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        if q.audience == Audience::Staff {
            let staff = TermQuery::new(
                Term::from_field_text(f.audience, "staff"),
                IndexRecordOption::Basic,
            );
            clauses.push((
                Occur::Should,
                Box::new(tantivy::query::ConstScoreQuery::new(
                    Box::new(staff),
                    STAFF_BONUS,
                )),
            ));
        }
        if q.audience == Audience::Customer {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.audience, "customer"),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(branch) = q.branch {
            let either: Vec<(Occur, Box<dyn Query>)> = ["*", branch]
                .iter()
                .map(|b| {
                    let tq: Box<dyn Query> = Box::new(TermQuery::new(
                        Term::from_field_text(f.branches, b),
                        IndexRecordOption::Basic,
                    ));
                    (Occur::Should, tq)
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(either))));
        }
        let day = day_number(&q.day.to_string()).unwrap_or(0);
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Included(Term::from_field_u64(f.from, day)),
            )),
        ));
        clauses.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(f.to, day)),
                Bound::Unbounded,
            )),
        ));
        Box::new(BooleanQuery::new(clauses))
    }

    /// Searches; user text is only ever split into words, so no input is a query error.
    pub fn search(&self, q: &Query1<'_>) -> tantivy::Result<Found> {
        self.search_in(&self.reader.searcher(), q, true)
    }

    /// [`Self::search`] without highlights: the wide candidate pass of a hybrid search,
    /// which keeps a few of its hits ([`Self::highlight_hits`] then marks those).
    pub fn candidates(&self, q: &Query1<'_>) -> tantivy::Result<Found> {
        self.search_in(&self.reader.searcher(), q, false)
    }

    /// Gives each hit that matched words but has no highlight yet its passage of the body
    /// (hits found by meaning only carry their passage already).
    pub fn highlight_hits(&self, hits: &mut [Hit]) {
        let Ok(docs) = self.docs.lock() else {
            return;
        };
        for hit in hits
            .iter_mut()
            .filter(|h| h.highlight.is_empty() && !h.matched.is_empty())
        {
            if let Some(doc) = docs.get(&hit.id) {
                let words: Vec<&str> = hit.matched.iter().map(|m| m.as_word.as_str()).collect();
                hit.highlight = highlight(&doc.draft.body, &words, HIGHLIGHT_CHARS);
            }
        }
    }

    /// Runs `check` on a searcher that sees the index as it would be after `upsert` and
    /// `remove`, while searches keep seeing the index as it is; then undoes the change.
    /// Costs two small commits instead of a rebuild (the golden check of a publish).
    pub fn trial<R>(
        &self,
        upsert: Option<LiveDoc>,
        remove: Option<&str>,
        check: impl FnOnce(&dyn Fn(&Query1<'_>) -> tantivy::Result<Found>) -> R,
    ) -> tantivy::Result<R> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| tantivy::TantivyError::SystemError("index writer poisoned".into()))?;
        let touched = upsert
            .as_ref()
            .map(|d| d.id.clone())
            .or(remove.map(String::from));
        let Some(id) = touched else {
            let searcher = self.reader.searcher();
            return Ok(check(&|q| self.search_in(&searcher, q, false)));
        };
        let before = self.live_docs_of(&id);
        let key = Term::from_field_text(self.fields.id, &id);
        writer.delete_term(key.clone());
        if let Some(doc) = &upsert {
            writer.add_document(self.document(doc))?;
        }
        writer.commit()?;
        let trial_reader: IndexReader = self
            .index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let searcher = trial_reader.searcher();
        let result = check(&|q| self.search_in(&searcher, q, false));
        // Back to what the database says is live.
        writer.delete_term(key);
        if let Some(doc) = &before {
            writer.add_document(self.document(doc))?;
        }
        writer.commit()?;
        Ok(result)
    }

    fn search_in(
        &self,
        searcher: &tantivy::Searcher,
        q: &Query1<'_>,
        highlights: bool,
    ) -> tantivy::Result<Found> {
        let mut words = self.analyzer.query_terms(q.text);
        words.truncate(MAX_QUERY_WORDS);
        if words.is_empty() || q.limit == 0 {
            return Ok(Found {
                words,
                hits: Vec::new(),
            });
        }
        let query = self.build_query(&words, q);
        let top = searcher.search(
            &query,
            &TopDocs::with_limit(q.limit.min(100)).order_by_score(),
        )?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let text = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let title_field = self.fields.text[1].0;
            let matched = self.matched(searcher, addr, &words)?;
            let found: Vec<&str> = matched.iter().map(|m| m.as_word.as_str()).collect();
            let highlight = if highlights {
                highlight(&text(self.fields.text[4].0), &found, HIGHLIGHT_CHARS)
            } else {
                String::new()
            };
            let explanation = if q.explain {
                Some(self.explain(searcher, addr, &matched)?)
            } else {
                None
            };
            hits.push(Hit {
                id: text(self.fields.id),
                version: doc
                    .get_first(self.fields.version)
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0),
                title: text(title_field),
                audience: text(self.fields.audience),
                bm25: score,
                dense: None,
                fused: 0.0,
                highlight,
                coverage: matched.len() as f32 / words.len() as f32,
                matched,
                explanation,
            });
        }
        Ok(Found { words, hits })
    }

    /// The score of each matched word in each field (BM25 × field weight × synonym weight),
    /// with tantivy's breakdown. Only words the document holds are explained.
    fn explain(
        &self,
        searcher: &tantivy::Searcher,
        addr: DocAddress,
        matched: &[Matched],
    ) -> tantivy::Result<serde_json::Value> {
        let mut parts = Vec::new();
        for m in matched {
            let weight = if m.as_word == m.word {
                1.0
            } else {
                SYNONYM_WEIGHT
            };
            for (field, name, boost) in &self.fields.text {
                if !m.fields.contains(name) {
                    continue;
                }
                let term = Term::from_field_text(*field, &m.as_word);
                let tq = TermQuery::new(term, IndexRecordOption::WithFreqs);
                let e = tq.explain(searcher, addr)?;
                parts.push(serde_json::json!({
                    "word": m.word,
                    "as_word": m.as_word,
                    "field": name,
                    "bm25": e.value(),
                    "weight": boost * weight,
                    "score": e.value() * boost * weight,
                    "detail": serde_json::to_value(&e).unwrap_or_default(),
                }));
            }
        }
        Ok(serde_json::json!({
            "note": "per word, the best field counts fully and the others a tenth (dis-max)",
            "terms": parts,
        }))
    }

    /// For each word of the question, where this document holds it or a synonym of it.
    fn matched(
        &self,
        searcher: &tantivy::Searcher,
        addr: DocAddress,
        words: &[String],
    ) -> tantivy::Result<Vec<Matched>> {
        let segment = searcher.segment_reader(addr.segment_ord);
        let mut out = Vec::new();
        for word in words {
            let variants = std::iter::once(word.as_str()).chain(self.synonyms.of(word));
            for variant in variants {
                let mut fields = Vec::new();
                for (field, name, _) in &self.fields.text {
                    let inverted = segment.inverted_index(*field)?;
                    let term = Term::from_field_text(*field, variant);
                    if let Some(mut postings) =
                        inverted.read_postings(&term, IndexRecordOption::Basic)?
                    {
                        use tantivy::DocSet;
                        // `seek` requires a target at or after the current doc.
                        let at = postings.doc();
                        let holds = at == addr.doc_id
                            || (at < addr.doc_id && postings.seek(addr.doc_id) == addr.doc_id);
                        if holds {
                            fields.push(*name);
                        }
                    }
                }
                if !fields.is_empty() {
                    out.push(Matched {
                        word: word.clone(),
                        as_word: variant.to_string(),
                        fields,
                    });
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Length of a highlight passage, in characters.
const HIGHLIGHT_CHARS: usize = 120;

/// The passage of `body` (about `width` characters) holding the most of `words`, with each
/// occurrence in `<b>…</b>` and everything else HTML-escaped. Matching ignores width,
/// script and case, like the search; the passage shows the author's own characters.
pub fn highlight(body: &str, words: &[&str], width: usize) -> String {
    let original: Vec<char> = body.chars().collect();
    let folded: Vec<char> = original
        .iter()
        .map(|c| crate::text::normalize::fold_char(*c))
        .collect();
    // Every occurrence of every word, as char ranges; overlaps merge.
    let mut marks: Vec<(usize, usize)> = Vec::new();
    for w in words {
        let w: Vec<char> = w.chars().collect();
        if w.is_empty() || w.len() > folded.len() {
            continue;
        }
        for i in 0..=folded.len() - w.len() {
            if folded[i..i + w.len()] == w[..] {
                marks.push((i, i + w.len()));
            }
        }
    }
    marks.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in marks {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    // The window with the most marks (starting at a mark, or the beginning).
    let mut start = 0;
    let mut best = 0;
    for (i, (a, _)) in merged.iter().enumerate() {
        let count = merged[i..]
            .iter()
            .take_while(|(b, _)| *b < a + width)
            .count();
        if count > best {
            best = count;
            start = a.saturating_sub(width / 6);
        }
    }
    let end = (start + width).min(original.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut i = start;
    for (a, b) in merged.iter().filter(|(a, b)| *b > start && *a < end) {
        let (a, b) = ((*a).max(start), (*b).min(end));
        out.push_str(&html_escape(&original[i..a].iter().collect::<String>()));
        out.push_str("<b>");
        out.push_str(&html_escape(&original[a..b].iter().collect::<String>()));
        out.push_str("</b>");
        i = b;
    }
    out.push_str(&html_escape(
        &original[i.min(end)..end].iter().collect::<String>(),
    ));
    if end < original.len() {
        out.push('…');
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn doc(id: &str, title: &str, questions: &[&str], body: &str, audience: &str) -> LiveDoc {
        LiveDoc {
            id: id.into(),
            version: 1,
            hash: id.into(),
            draft: ArticleDraft {
                title: title.into(),
                body: body.into(),
                summary: None,
                questions: questions.iter().map(|s| s.to_string()).collect(),
                tags: vec![],
                audience: audience.into(),
                branches: vec![],
                effective_from: None,
                effective_to: None,
            },
        }
    }

    fn index() -> SearchIndex {
        let syn =
            Synonyms::parse(Path::new("s.yaml"), "- [挂失, 止付]\n- [流水, 交易明细]\n").unwrap();
        let idx = SearchIndex::new(syn, &[]).unwrap();
        idx.apply(
            vec![
                doc(
                    "card-loss",
                    "银行卡挂失",
                    &["卡丢了怎么办"],
                    "请立即挂失。<script>alert(1)</script>",
                    "customer",
                ),
                doc(
                    "statement",
                    "打印交易明细",
                    &["怎么打流水"],
                    "在自助终端打印交易明细。",
                    "customer",
                ),
                doc(
                    "staff-cash",
                    "大额现金操作规程",
                    &["大额取现怎么登记"],
                    "柜员须登记。",
                    "staff",
                ),
            ],
            &[],
        )
        .unwrap();
        idx
    }

    fn q(text: &str, audience: Audience) -> Query1<'_> {
        Query1 {
            text,
            audience,
            branch: Some("B001"),
            day: chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            limit: 5,
            explain: false,
        }
    }

    #[test]
    fn synonyms_find_articles_that_use_the_other_word() {
        let idx = index();
        let f = idx.search(&q("我要止付", Audience::Customer)).unwrap();
        assert_eq!(f.hits[0].id, "card-loss");
        assert_eq!(f.hits[0].matched[0].as_word, "挂失");
        let f = idx.search(&q("流水", Audience::Customer)).unwrap();
        assert_eq!(f.hits[0].id, "statement");
    }

    #[test]
    fn staff_articles_never_reach_customers() {
        let idx = index();
        let f = idx.search(&q("大额取现登记", Audience::Customer)).unwrap();
        assert!(f.hits.iter().all(|h| h.id != "staff-cash"), "{:?}", f.hits);
        let f = idx.search(&q("大额取现登记", Audience::Staff)).unwrap();
        assert_eq!(f.hits[0].id, "staff-cash");
    }

    #[test]
    fn query_syntax_and_punctuation_are_just_text() {
        let idx = index();
        for text in [
            "title:挂失 AND (",
            "\"挂失",
            "*",
            "??!!",
            "挂失 -止付 +[1 TO 2]",
            "",
        ] {
            assert!(idx.search(&q(text, Audience::Customer)).is_ok(), "{text}");
        }
        assert!(idx
            .search(&q("？？！", Audience::Customer))
            .unwrap()
            .hits
            .is_empty());
    }

    #[test]
    fn a_trial_is_seen_by_its_check_only_and_then_undone() {
        let idx = index();
        let new = doc(
            "lobby-water",
            "饮水机",
            &["饮水机在哪"],
            "大堂东侧。",
            "customer",
        );
        let seen = idx
            .trial(Some(new), None, |search| {
                search(&q("饮水机", Audience::Customer)).unwrap().hits.len()
            })
            .unwrap();
        assert_eq!(seen, 1);
        assert!(idx
            .search(&q("饮水机", Audience::Customer))
            .unwrap()
            .hits
            .is_empty());
        let gone = idx
            .trial(None, Some("card-loss"), |search| {
                search(&q("挂失", Audience::Customer)).unwrap().hits.len()
            })
            .unwrap();
        assert_eq!(gone, 0);
        // After the trial, a reload (as any later change does) shows the database's truth.
        idx.apply(vec![], &["statement".into()]).unwrap();
        assert_eq!(
            idx.search(&q("挂失", Audience::Customer)).unwrap().hits[0].id,
            "card-loss"
        );
        assert!(idx
            .search(&q("饮水机", Audience::Customer))
            .unwrap()
            .hits
            .is_empty());
    }

    #[test]
    fn effective_dates_and_branches_filter() {
        let idx = index();
        let mut later = doc(
            "spring",
            "春节营业安排",
            &["春节营业吗"],
            "除夕休息。",
            "customer",
        );
        later.draft.effective_from = Some("2027-01-20".into());
        later.draft.effective_to = Some("2027-02-10".into());
        let mut local = doc(
            "forex",
            "外币兑换时间",
            &["几点能换外币"],
            "工作日。",
            "customer",
        );
        local.draft.branches = vec!["B002".into()];
        idx.apply(vec![later, local], &[]).unwrap();
        assert!(idx
            .search(&q("春节营业", Audience::Customer))
            .unwrap()
            .hits
            .is_empty());
        let mut in_force = q("春节营业", Audience::Customer);
        in_force.day = chrono::NaiveDate::from_ymd_opt(2027, 2, 1).unwrap();
        assert_eq!(idx.search(&in_force).unwrap().hits[0].id, "spring");
        in_force.day = chrono::NaiveDate::from_ymd_opt(2027, 2, 11).unwrap();
        assert!(idx.search(&in_force).unwrap().hits.is_empty());
        assert!(idx
            .search(&q("换外币", Audience::Customer))
            .unwrap()
            .hits
            .is_empty());
        let mut there = q("换外币", Audience::Customer);
        there.branch = Some("B002");
        assert_eq!(idx.search(&there).unwrap().hits[0].id, "forex");
    }

    #[test]
    fn highlights_mark_overlapping_words_once_and_escape_the_rest() {
        let h = highlight(
            "请<b>带好</b>信用卡，信用卡挂失后补卡。",
            &["信用", "信用卡", "挂失"],
            120,
        );
        assert_eq!(
            h,
            "请&lt;b&gt;带好&lt;/b&gt;<b>信用卡</b>，<b>信用卡挂失</b>后补卡。"
        );
        let long = format!("{}挂失{}", "前".repeat(300), "后".repeat(300));
        let h = highlight(&long, &["挂失"], 40);
        assert!(
            h.starts_with('…') && h.ends_with('…') && h.contains("<b>挂失</b>"),
            "{h}"
        );
        assert_eq!(highlight("", &["挂失"], 40), "");
    }

    #[test]
    fn highlights_are_escaped_and_removal_takes_effect() {
        let idx = index();
        let f = idx.search(&q("挂失", Audience::Customer)).unwrap();
        assert!(
            f.hits[0].highlight.contains("<b>挂失</b>"),
            "{}",
            f.hits[0].highlight
        );
        assert!(!f.hits[0].highlight.contains("<script>"));
        idx.apply(vec![], &["card-loss".into()]).unwrap();
        assert!(idx
            .search(&q("挂失", Audience::Customer))
            .unwrap()
            .hits
            .is_empty());
    }
}
