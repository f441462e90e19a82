//! The knowledge base: versioned articles with a reviewed lifecycle (the private `store`;
//! callers use [`Knowledge`] and the types of [`model`]), Chinese
//! search over the published versions ([`index`], [`text`]) and by meaning ([`dense`], with
//! passage vectors from [`passages`] kept by [`embed`] and stored by [`vectors`]), fused by
//! [`hybrid`], golden questions that guard
//! every publish ([`golden`]), import/export of Markdown folders ([`files`]), and the
//! policy that turns search hits into a kiosk answer, a clarifying question or an honest
//! "I don't know" ([`Knowledge::answer`]), and its calibration on labelled questions
//! ([`calibrate`]).
//!
//! Each node keeps its own in-memory index and follows the database: every change bumps a
//! revision counter; [`Knowledge::refresh`] (run after each local change, and by
//! [`Knowledge::follow`] when any node moves the revision — PostgreSQL LISTEN/NOTIFY — or
//! `knowledge.follow_ms` passed) applies exactly the difference between
//! the live versions and what the index holds, and publishes due scheduled versions.

pub mod bench;
pub mod calibrate;
pub mod dense;
pub mod embed;
pub mod files;
pub mod golden;
pub mod hybrid;
#[cfg(test)]
mod hybrid_tests;
pub mod index;
pub mod model;
pub mod passages;
mod store;
pub mod text;
pub mod vectors;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::access::Role;
use crate::config::KnowledgeSettings;
use crate::embedding::Embedder;
use crate::store::wake::{next_look, Topic};
use crate::store::{now_ms, Db};
use dense::{ArticleVectors, DenseIndex};
use embed::{EmbeddingStatus, Jobs};
use golden::{Golden, GoldenResult};
use hybrid::{Policy, Verdict};
use index::{Audience, Found, Hit, LiveDoc, Query1, SearchIndex};
use model::{ArticleDraft, ArticleSummary, KbError, Limits, Saved, State, Transition, Version};
use store::Store;
use text::Synonyms;
use vectors::VectorStore;

/// Name of the synonyms document (and file, with `.yaml`).
pub const SYNONYMS: &str = "synonyms";
/// Name of the golden-questions document (and file, with `.yaml`).
pub const GOLDEN: &str = "golden";

/// What the kiosk says to a question.
#[derive(Debug, Clone)]
pub enum Answer {
    /// One article fits: its spoken summary and the article (shown in full on screen).
    Found { hit: Hit, spoken: String },
    /// Two articles fit about as well: ask which one is meant.
    Clarify(Hit, Hit),
    /// Nothing fits well enough.
    Unknown,
}

tokio::task_local! {
    /// The answers given so far in the customer turn being processed ([`within_turn`]):
    /// the understanding asks the knowledge base, then the flow's `knowledge.answer` asks
    /// the same question; the second ask costs a lookup. Nothing outlives the turn.
    static TURN_ANSWERS: std::cell::RefCell<Vec<(String, String, Answer)>>;
}

/// Runs one customer turn: within it, the same question for the same branch is searched
/// once ([`Knowledge::answer`]).
pub async fn within_turn<F: std::future::Future>(turn: F) -> F::Output {
    TURN_ANSWERS
        .scope(std::cell::RefCell::new(Vec::new()), turn)
        .await
}

/// The answer already given to `question` at `branch` in this turn, if any.
fn given_this_turn(question: &str, branch: &str) -> Option<Answer> {
    TURN_ANSWERS
        .try_with(|given| {
            given
                .borrow()
                .iter()
                .find(|(q, b, _)| q == question && b == branch)
                .map(|(_, _, a)| a.clone())
        })
        .ok()
        .flatten()
}

/// A change to the live set, checked against the golden questions before it is made.
enum Change {
    Upsert(Box<LiveDoc>),
    Remove(String),
}

/// A publish-like request: who, why, and an optional admin override of the golden check.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub comment: String,
    /// An admin's reason to publish although golden questions would fail.
    pub override_reason: Option<String>,
}

/// The knowledge base of this node.
pub struct Knowledge {
    store: Store,
    pub settings: KnowledgeSettings,
    index: RwLock<Arc<SearchIndex>>,
    /// Revisions applied: the database counter and the synonyms document.
    applied: tokio::sync::Mutex<(i64, i64)>,
    golden: RwLock<Arc<Vec<Golden>>>,
    /// The last refresh failure, for `/readyz`-style reporting and logs.
    last_error: Mutex<Option<String>>,
    /// The sentence-embedding model; `None`: BM25 only.
    embedder: Option<Arc<dyn Embedder>>,
    vectors: VectorStore,
    /// Passage vectors of the live versions that have them.
    dense: Arc<DenseIndex>,
    /// Serialises changes of `dense` against the live versions.
    vectors_lock: tokio::sync::Mutex<()>,
    /// One background embedding task at a time.
    background: tokio::sync::Mutex<()>,
    jobs: Mutex<Jobs>,
    status: tokio::sync::watch::Sender<EmbeddingStatus>,
    /// This knowledge base (for background tasks).
    me: Weak<Knowledge>,
}

fn today() -> chrono::NaiveDate {
    crate::domain::clock::now_local().date_naive()
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut g) => *g = value,
        Err(p) => *p.into_inner() = value,
    }
}

impl Knowledge {
    /// Opens the knowledge base over `db`: seeds it from `seed_dir` when empty (and the
    /// settings allow), then builds the index from the published versions. With an
    /// `embedder`, passage vectors of the live versions are loaded from the database and
    /// the missing ones embedded in the background ([`embed`]).
    pub async fn open(
        db: Db,
        settings: KnowledgeSettings,
        seed_dir: &Path,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> anyhow::Result<Arc<Knowledge>> {
        let index = SearchIndex::new(Synonyms::default(), &[])?;
        let status = EmbeddingStatus {
            model: embedder.as_ref().map(|e| e.model_id().to_string()),
            ..Default::default()
        };
        let kb = Arc::new_cyclic(|me| Knowledge {
            store: Store::new(db.clone()),
            index: RwLock::new(Arc::new(index)),
            applied: tokio::sync::Mutex::new((-1, -1)),
            golden: RwLock::new(Arc::new(Vec::new())),
            last_error: Mutex::new(None),
            settings,
            embedder,
            vectors: VectorStore::new(db),
            dense: Arc::new(DenseIndex::default()),
            vectors_lock: tokio::sync::Mutex::new(()),
            background: tokio::sync::Mutex::new(()),
            jobs: Mutex::new(Jobs::default()),
            status: tokio::sync::watch::Sender::new(status),
            me: me.clone(),
        });
        if kb.settings.seed_when_empty && kb.store.count().await? == 0 && seed_dir.is_dir() {
            match files::import(&kb, seed_dir, "seed").await {
                Ok(report) => tracing::info!(
                    created = report.created,
                    dir = %seed_dir.display(),
                    "knowledge base seeded"
                ),
                // Another node seeding at the same moment: its articles are as good.
                Err(files::ImportError::Kb(KbError::Db(e))) if kb.store.count().await? > 0 => {
                    tracing::warn!(error = %e, "knowledge seed raced another node")
                }
                Err(e) => return Err(anyhow::anyhow!("{e}")),
            }
        }
        kb.refresh().await?;
        Ok(kb)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.settings.max_body_bytes,
            max_title_chars: self.settings.max_title_chars,
            max_questions: self.settings.max_questions,
            max_item_chars: self.settings.max_item_chars,
        }
    }

    /// The current index generation.
    pub fn index(&self) -> Arc<SearchIndex> {
        read(&self.index)
    }

    pub fn golden(&self) -> Arc<Vec<Golden>> {
        read(&self.golden)
    }

    /// Follows the database until `stop` is cancelled: when the revision moves (on this
    /// node, or on another through PostgreSQL: [`crate::store::wake`]), and at least every
    /// `follow_ms` (due scheduled publishes; a safety net).
    pub fn follow(self: &Arc<Self>, stop: CancellationToken) {
        let kb = Arc::clone(self);
        tokio::spawn(async move {
            let every = Duration::from_millis(kb.settings.follow_ms.max(20));
            let mut waker = kb.store.wakeups().subscribe(Topic::Knowledge);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = next_look(&mut waker, every) => {}
                }
                if let Err(e) = kb.refresh().await {
                    let text = format!("{e:#}");
                    let mut last = kb.last_error.lock().unwrap_or_else(|p| p.into_inner());
                    if last.as_deref() != Some(text.as_str()) {
                        tracing::warn!(error = %text, "knowledge index could not follow the database");
                    }
                    *last = Some(text);
                }
            }
        });
    }

    /// Brings this node's index in line with the database: due scheduled versions are
    /// published, changed live versions re-indexed, removed ones dropped, and a synonym
    /// change rebuilds the index with the new dictionary.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let mut applied = self.applied.lock().await;
        let (mut revision, due) = self.store.revision().await?;
        if due.is_some_and(|d| d <= now_ms()) && self.publish_due().await? > 0 {
            revision = self.store.revision().await?.0;
        }
        if revision == applied.0 {
            return Ok(());
        }
        let (syn_text, syn_rev) = self.store.document(SYNONYMS).await?.unwrap_or_default();
        if let Some((text, _)) = self.store.document(GOLDEN).await? {
            match golden::parse(Path::new("golden.yaml"), &text) {
                Ok(g) => write(&self.golden, Arc::new(g)),
                Err(e) => tracing::warn!(errors = e.len(), "stored golden questions are invalid"),
            }
        }
        if syn_rev != applied.1 {
            let synonyms = Synonyms::parse(Path::new("synonyms.yaml"), &syn_text)
                .map_err(|e| anyhow::anyhow!("stored synonyms are invalid: {}", e.len()))?;
            let docs = self.store.live_docs(None).await?;
            let fresh = tokio::task::spawn_blocking(move || -> anyhow::Result<SearchIndex> {
                let idx = SearchIndex::new(synonyms, &[])?;
                idx.apply(docs, &[])?;
                Ok(idx)
            })
            .await??;
            write(&self.index, Arc::new(fresh));
        } else {
            let idx = self.index();
            let live = self.store.live_versions().await?;
            let held = idx.versions();
            let changed: Vec<String> = live
                .iter()
                .filter(|(id, v, h)| held.get(id) != Some(&(*v, h.clone())))
                .map(|(id, _, _)| id.clone())
                .collect();
            let removed: Vec<String> = held
                .keys()
                .filter(|id| !live.iter().any(|(l, _, _)| l == *id))
                .cloned()
                .collect();
            let docs = if changed.is_empty() {
                Vec::new()
            } else {
                self.store.live_docs(Some(&changed)).await?
            };
            tokio::task::spawn_blocking(move || idx.apply(docs, &removed)).await??;
        }
        *applied = (revision, syn_rev);
        if let Err(e) = self.sync_vectors().await {
            tracing::warn!(error = %e, "passage vectors could not follow the index; BM25 only for the rest");
        }
        Ok(())
    }

    /// The sentence embedder the knowledge base searches with, if any.
    pub fn embedder(&self) -> Option<Arc<dyn Embedder>> {
        self.embedder.clone()
    }

    /// The answer policy of the settings.
    pub fn policy(&self) -> Policy {
        Policy::from(&self.settings)
    }

    /// Searches the published, effective articles by words (BM25) and, with an embedder,
    /// by meaning; the two fused ([`hybrid`]). Each hit carries `bm25`, `dense`, `fused`.
    pub async fn search(&self, q: &Query1<'_>) -> Result<Found, KbError> {
        let vectors = if self.dense.is_empty() {
            HashMap::new()
        } else {
            self.query_vectors(&[q.text.to_string()]).await
        };
        let idx = self.index();
        let mut found = hybrid::search(
            &|q| idx.candidates(q),
            &self.dense,
            vectors.get(q.text).map(Vec::as_slice),
            q,
            None,
            &self.policy(),
        )
        .map_err(|e| KbError::Other(anyhow::anyhow!("search failed: {e}")))?;
        // Only the hits kept are highlighted (not the whole candidate pass).
        idx.highlight_hits(&mut found.hits);
        Ok(found)
    }

    /// What the kiosk of `branch` says to `question` today: the fused hits decided by
    /// [`hybrid::decide`] (the question is embedded through the embedder, which caches).
    /// Traced as `knowledge` with its outcome and the article chosen (never the question).
    #[tracing::instrument(name = "knowledge", skip_all, fields(outcome, article))]
    pub async fn answer(&self, question: &str, branch: &str) -> Answer {
        let answer = match given_this_turn(question, branch) {
            Some(given) => given,
            None => {
                let answer = self.answer_untraced(question, branch).await;
                let _ = TURN_ANSWERS.try_with(|given| {
                    given.borrow_mut().push((
                        question.to_string(),
                        branch.to_string(),
                        answer.clone(),
                    ))
                });
                answer
            }
        };
        let span = tracing::Span::current();
        match &answer {
            Answer::Found { hit, .. } => {
                span.record("outcome", "answer");
                span.record("article", hit.id.as_str());
            }
            Answer::Clarify(..) => {
                span.record("outcome", "clarify");
            }
            Answer::Unknown => {
                span.record("outcome", "no_answer");
            }
        }
        answer
    }

    async fn answer_untraced(&self, question: &str, branch: &str) -> Answer {
        let question: String = question
            .chars()
            .take(self.settings.max_query_chars)
            .collect();
        let found = match self
            .search(&Query1 {
                text: &question,
                audience: Audience::Customer,
                branch: Some(branch),
                day: today(),
                limit: 3,
                explain: false,
            })
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "knowledge search failed");
                return Answer::Unknown;
            }
        };
        let verdict = hybrid::decide(&found.hits, &self.policy());
        let mut hits = found.hits.into_iter();
        let (Some(best), second) = (hits.next(), hits.next()) else {
            return Answer::Unknown;
        };
        match (verdict, second) {
            (Verdict::Unknown, _) => return Answer::Unknown,
            (Verdict::Clarify, Some(second)) => return Answer::Clarify(best, second),
            _ => {}
        }
        let spoken = self
            .index()
            .live_docs_of(&best.id)
            .map(|d| d.draft.spoken_summary())
            .unwrap_or_default();
        Answer::Found { hit: best, spoken }
    }

    /// The live version of an article (what the kiosk shows in full).
    pub fn live(&self, id: &str) -> Option<LiveDoc> {
        self.index().live_docs_of(id)
    }

    // ---- reading ----

    /// Every article (or those whose newest version is in `state`): newest version and
    /// what is live.
    pub async fn articles(&self, state: Option<State>) -> Result<Vec<ArticleSummary>, KbError> {
        self.store.list(state).await
    }

    /// The newest version number of an article and its live one, if any.
    pub async fn heads(&self, id: &str) -> Result<(i64, Option<i64>), KbError> {
        self.store.heads(id).await
    }

    /// One version of an article.
    pub async fn version(&self, id: &str, version: i64) -> Result<Version, KbError> {
        self.store.version(id, version).await
    }

    /// Every version of an article, newest first.
    pub async fn versions(&self, id: &str) -> Result<Vec<Version>, KbError> {
        self.store.versions(id).await
    }

    /// Every state change of an article, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<Transition>, KbError> {
        self.store.history(id).await
    }

    /// A document (`synonyms`, `golden`) with its revision, if it was ever saved.
    pub async fn document(&self, name: &str) -> Result<Option<(String, i64)>, KbError> {
        self.store.document(name).await
    }

    // ---- lifecycle ----

    /// Saves a new version (the store's `save`) after validating it.
    pub async fn save(
        &self,
        actor: &str,
        id: &str,
        base: Option<i64>,
        mut draft: ArticleDraft,
    ) -> Result<Saved, KbError> {
        if !model::valid_id(id) {
            return Err(KbError::Invalid(vec![model::Invalid {
                field: "id",
                message: format!("article id `{id}` must be 1-80 of a-z, 0-9 and '-'"),
            }]));
        }
        let problems = draft.validate(&self.limits());
        if !problems.is_empty() {
            return Err(KbError::Invalid(problems));
        }
        self.store.save(actor, id, base, &draft).await
    }

    /// Submits a draft for review.
    pub async fn submit(
        &self,
        actor: &str,
        id: &str,
        version: i64,
        comment: &str,
    ) -> Result<(), KbError> {
        self.store
            .transition(
                actor,
                id,
                version,
                State::Draft,
                State::InReview,
                comment,
                None,
                None,
            )
            .await
    }

    /// Sends a version in review back to its author.
    pub async fn reject(
        &self,
        actor: &str,
        id: &str,
        version: i64,
        comment: &str,
    ) -> Result<(), KbError> {
        let v = self.store.version(id, version).await?;
        if v.author == actor {
            return Err(self_review());
        }
        if comment.trim().is_empty() {
            return Err(KbError::Invalid(vec![model::Invalid {
                field: "comment",
                message: "say what must change".into(),
            }]));
        }
        self.store
            .transition(
                actor,
                id,
                version,
                State::InReview,
                State::Draft,
                comment,
                None,
                None,
            )
            .await
    }

    /// Approves a version in review: published now or at `publish_at` (ms since the
    /// epoch, in the future); the golden questions are checked now either way, and again
    /// when a scheduled version falls due. Returns the state the version is in.
    pub async fn approve(
        &self,
        actor: &str,
        roles: &[Role],
        id: &str,
        version: i64,
        publish_at: Option<i64>,
        decision: &Decision,
    ) -> Result<State, KbError> {
        let v = self.store.version(id, version).await?;
        if v.author == actor {
            return Err(self_review());
        }
        if v.state != State::InReview {
            return Err(wrong_state(version, v.state, "in_review"));
        }
        let to = match publish_at.filter(|t| *t > now_ms()) {
            Some(at) => {
                // Checked now, and again when the time comes (the live set may change).
                let change = Change::Upsert(Box::new(LiveDoc::from(&v)));
                let reason = self.gate(change, roles, decision).await?;
                self.store
                    .transition(
                        actor,
                        id,
                        version,
                        State::InReview,
                        State::Scheduled,
                        &decision.comment,
                        reason.as_deref(),
                        Some(at),
                    )
                    .await?;
                State::Scheduled
            }
            None => {
                let change = Change::Upsert(Box::new(LiveDoc::from(&v)));
                let reason = self.gate(change, roles, decision).await?;
                self.store
                    .transition(
                        actor,
                        id,
                        version,
                        State::InReview,
                        State::Published,
                        &decision.comment,
                        reason.as_deref(),
                        None,
                    )
                    .await?;
                State::Published
            }
        };
        self.refresh_logged().await;
        Ok(to)
    }

    /// Publishes the scheduled versions whose time has come, each checked against the
    /// golden questions again: a version that would now make a golden question fail goes
    /// back to review (logged), unless an admin overrode the check when scheduling it.
    /// Safe on several nodes at once: each version is flipped by exactly one of them.
    /// Returns how many went live.
    async fn publish_due(&self) -> Result<usize, KbError> {
        let mut done = 0;
        for (id, version) in self.store.due(now_ms()).await? {
            let v = self.store.version(&id, version).await?;
            let approved_over = self.store.scheduled_override(&id, version).await?;
            let roles: &[Role] = match approved_over {
                Some(_) => &[Role::Admin],
                None => &[],
            };
            let decision = Decision {
                comment: String::new(),
                override_reason: approved_over,
            };
            let change = Change::Upsert(Box::new(LiveDoc::from(&v)));
            let (to, comment, reason) = match self.gate(change, roles, &decision).await {
                Ok(reason) => (
                    State::Published,
                    "scheduled publish time reached".to_string(),
                    reason,
                ),
                Err(KbError::Conflict("golden_regression", why)) => {
                    tracing::warn!(
                        article = %id,
                        version,
                        "a scheduled version fails golden questions at publish time; back to review"
                    );
                    (State::InReview, format!("not published: {why}"), None)
                }
                Err(e) => return Err(e),
            };
            let moved = self
                .store
                .transition(
                    "scheduler",
                    &id,
                    version,
                    State::Scheduled,
                    to,
                    &comment,
                    reason.as_deref(),
                    None,
                )
                .await;
            match moved {
                Ok(()) if to == State::Published => done += 1,
                Ok(()) | Err(KbError::Conflict(..)) => {} // another node was first
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Republishes an earlier version (superseded or retired).
    pub async fn rollback(
        &self,
        actor: &str,
        roles: &[Role],
        id: &str,
        version: i64,
        decision: &Decision,
    ) -> Result<(), KbError> {
        let v = self.store.version(id, version).await?;
        if !matches!(v.state, State::Superseded | State::Retired) {
            return Err(wrong_state(version, v.state, "superseded or retired"));
        }
        let change = Change::Upsert(Box::new(LiveDoc::from(&v)));
        let reason = self.gate(change, roles, decision).await?;
        let comment = format!("rollback to version {version}: {}", decision.comment);
        self.store
            .transition(
                actor,
                id,
                version,
                v.state,
                State::Published,
                &comment,
                reason.as_deref(),
                None,
            )
            .await?;
        self.refresh_logged().await;
        Ok(())
    }

    /// Takes the live version out of search.
    pub async fn retire(
        &self,
        actor: &str,
        roles: &[Role],
        id: &str,
        decision: &Decision,
    ) -> Result<(), KbError> {
        let (_, live) = self.store.heads(id).await?;
        let Some(live) = live else {
            return Err(KbError::Conflict(
                "not_published",
                format!("`{id}` has no published version to retire"),
            ));
        };
        let reason = self
            .gate(Change::Remove(id.to_string()), roles, decision)
            .await?;
        self.store
            .transition(
                actor,
                id,
                live,
                State::Published,
                State::Retired,
                &decision.comment,
                reason.as_deref(),
                None,
            )
            .await?;
        self.refresh_logged().await;
        Ok(())
    }

    /// Replaces the synonym dictionary (validated; the index is rebuilt with it).
    pub async fn put_synonyms(
        &self,
        actor: &str,
        text: &str,
        base: Option<i64>,
    ) -> Result<i64, KbError> {
        Synonyms::parse(Path::new("synonyms.yaml"), text).map_err(data_errors)?;
        let rev = self.store.put_document(actor, SYNONYMS, text, base).await?;
        self.refresh_logged().await;
        Ok(rev)
    }

    /// Replaces the golden questions (validated).
    pub async fn put_golden(
        &self,
        actor: &str,
        text: &str,
        base: Option<i64>,
    ) -> Result<i64, KbError> {
        let parsed = golden::parse(Path::new("golden.yaml"), text).map_err(data_errors)?;
        let rev = self.store.put_document(actor, GOLDEN, text, base).await?;
        write(&self.golden, Arc::new(parsed));
        Ok(rev)
    }

    /// Runs the golden questions against the live articles (hybrid, as the kiosk).
    pub async fn run_golden(&self) -> Vec<GoldenResult> {
        let golden = self.golden();
        let vectors = self.query_vectors(&questions(&golden)).await;
        let (idx, policy) = (self.index(), self.policy());
        golden::run_with(
            &|q| {
                let v = vectors.get(q.text).map(Vec::as_slice);
                hybrid::search(&|q| idx.candidates(q), &self.dense, v, q, None, &policy)
            },
            &golden,
            today(),
        )
    }

    /// Refuses `change` when it makes a passing golden question fail, unless an admin
    /// gives a reason. Returns the override reason to record.
    async fn gate(
        &self,
        change: Change,
        roles: &[Role],
        decision: &Decision,
    ) -> Result<Option<String>, KbError> {
        let golden = self.golden();
        if golden.is_empty() {
            return Ok(None);
        }
        let current = self.index();
        let vectors = self.query_vectors(&questions(&golden)).await;
        let trial_vectors: Option<Arc<ArticleVectors>> = match &change {
            Change::Upsert(doc) => self.vectors_for_trial(doc).await,
            Change::Remove(_) => None,
        };
        let (dense, policy) = (Arc::clone(&self.dense), self.policy());
        let failing = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<GoldenResult>> {
            let day = today();
            let hybrid = |bm25: &dyn Fn(&Query1<'_>) -> tantivy::Result<Found>,
                          overlay: Option<dense::Overlay<'_>>| {
                golden::run_with(
                    &|q| {
                        let v = vectors.get(q.text).map(Vec::as_slice);
                        hybrid::search(bm25, &dense, v, q, overlay, &policy)
                    },
                    &golden,
                    day,
                )
            };
            let before = hybrid(&|q| current.candidates(q), None);
            let (upsert, remove) = match change {
                Change::Upsert(doc) => (Some(*doc), None),
                Change::Remove(id) => (None, Some(id)),
            };
            let touched = upsert.as_ref().map(|d| d.id.clone()).or(remove.clone());
            let overlay = touched.as_deref().map(|id| (id, trial_vectors.as_ref()));
            let after =
                current.trial(upsert, remove.as_deref(), |search| hybrid(search, overlay))?;
            Ok(golden::regressions(&before, &after))
        })
        .await
        .map_err(|e| KbError::Other(e.into()))??;
        if failing.is_empty() {
            return Ok(None);
        }
        let reason = decision
            .override_reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        match reason {
            Some(r) if roles.contains(&Role::Admin) => Ok(Some(r.to_string())),
            Some(_) => Err(KbError::Refused(
                "override_not_allowed",
                "only an admin may publish over failing golden questions".into(),
            )),
            None => Err(KbError::Conflict(
                "golden_regression",
                format!(
                    "this change would make {} golden question(s) fail: {}",
                    failing.len(),
                    failing
                        .iter()
                        .take(5)
                        .map(|f| format!(
                            "「{}」 expects {} but finds {}",
                            f.question,
                            f.expect,
                            f.got.as_deref().unwrap_or("nothing")
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )),
        }
    }

    async fn refresh_logged(&self) {
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %format!("{e:#}"), "knowledge index refresh failed; the follower retries");
        }
    }
}

/// The questions of golden entries.
fn questions(golden: &[Golden]) -> Vec<String> {
    golden.iter().map(|g| g.question.clone()).collect()
}

fn self_review() -> KbError {
    KbError::Refused(
        "self_review",
        "a version is reviewed by someone other than its author".into(),
    )
}

fn wrong_state(version: i64, state: State, wanted: &str) -> KbError {
    KbError::Conflict(
        "wrong_state",
        format!("version {version} is {}, not {wanted}", state.as_str()),
    )
}

fn data_errors(errors: Vec<crate::datafile::DataError>) -> KbError {
    KbError::Invalid(
        errors
            .into_iter()
            .map(|e| model::Invalid {
                field: "text",
                message: format!("line {}: {}", e.line, e.message),
            })
            .collect(),
    )
}

/// A search's hits as the API shows them.
#[derive(Debug, Serialize)]
pub struct SearchReply {
    pub query: String,
    pub audience: Audience,
    #[serde(flatten)]
    pub found: Found,
}
