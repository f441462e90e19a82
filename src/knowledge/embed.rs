//! Keeping the passage vectors of the live versions in memory ([`super::dense`]) and in the
//! database ([`super::vectors`]) for the embedder's model. After every change the index
//! applies ([`Knowledge::refresh`]), vectors of versions no longer live are dropped, those
//! the database holds for the current model are loaded (never recomputed), and the rest are
//! embedded: right away when a few articles changed (a publish, so the article is found by
//! meaning when the approval returns), in a background task otherwise (first start, a model
//! change), logging its progress. Articles without vectors are found by BM25 meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::dense::{ArticleVectors, Quantised};
use super::index::LiveDoc;
use super::model::KbError;
use super::passages::{passages, Passage};
use super::vectors::StoredPassage;
use super::Knowledge;
use crate::embedding::{EmbedError, Embedder, Kind};

/// Up to this many articles to embed are embedded before the refresh returns; more go to a
/// background task.
const INLINE_ARTICLES: usize = 8;
/// Most texts handed to the embedder in one call.
const BATCH: usize = 32;
/// The background task logs its progress at most this often.
const LOG_EVERY: Duration = Duration::from_secs(2);

/// Where embedding the live versions stands, in passages (`/readyz`, tests).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmbeddingStatus {
    /// The embedding model; `None` without an embedder (BM25 only).
    pub model: Option<String>,
    /// Passages of the live versions: done + pending + failed.
    pub total: usize,
    /// Passages whose vectors are in memory (searchable by meaning).
    pub done: usize,
    /// Passages waiting to be embedded.
    pub pending: usize,
    /// Passages whose embedding failed (retried at the next change).
    pub failed: usize,
    /// Passages read from the database since start.
    pub loaded: usize,
    /// Passages this node embedded since start.
    pub embedded: usize,
}

impl EmbeddingStatus {
    /// Nothing is waiting to be embedded.
    pub fn complete(&self) -> bool {
        self.pending == 0
    }
}

/// Versions being embedded and those that failed, with their passage counts.
#[derive(Default)]
pub(super) struct Jobs {
    in_flight: HashMap<(String, i64), usize>,
    failed: HashMap<(String, i64), usize>,
    loaded: usize,
    embedded: usize,
}

type Work = Vec<(LiveDoc, Vec<Passage>)>;

/// The stored vectors if they are exactly `ps` (same count, same texts).
fn matching(ps: &[Passage], stored: &[StoredPassage]) -> Option<Vec<Quantised>> {
    let fits = stored.len() == ps.len()
        && stored
            .iter()
            .zip(ps)
            .enumerate()
            .all(|(n, (s, p))| s.passage == n as i64 && s.sha256 == p.sha256());
    fits.then(|| stored.iter().map(|s| s.vector.clone()).collect())
}

/// Embeds `texts` as passages in batches; checks the count and dimension.
async fn embed_texts(
    embedder: &dyn Embedder,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut out = Vec::with_capacity(texts.len());
    for batch in texts.chunks(BATCH) {
        let vs = embedder.embed(batch, Kind::Passage).await?;
        if vs.len() != batch.len() || vs.iter().any(|v| v.len() != embedder.dim()) {
            return Err(EmbedError::Model(format!(
                "{} vectors of {} texts, or not {} dimensions",
                vs.len(),
                batch.len(),
                embedder.dim()
            )));
        }
        out.extend(vs);
    }
    Ok(out)
}

impl Knowledge {
    /// Where embedding the live versions stands.
    pub fn embedding_status(&self) -> EmbeddingStatus {
        self.status.borrow().clone()
    }

    /// Waits until nothing is waiting to be embedded (at once without an embedder).
    pub async fn embedded(&self) {
        let mut rx = self.status.subscribe();
        let _ = rx.wait_for(EmbeddingStatus::complete).await;
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Recomputes the status from the dense index and the jobs, and tells the waiters.
    fn publish_status(&self) {
        let jobs = self.jobs();
        let done = self.dense.passages();
        let pending: usize = jobs.in_flight.values().sum();
        let failed: usize = jobs.failed.values().sum();
        let status = EmbeddingStatus {
            model: self.embedder.as_ref().map(|e| e.model_id().to_string()),
            total: done + pending + failed,
            done,
            pending,
            failed,
            loaded: jobs.loaded,
            embedded: jobs.embedded,
        };
        drop(jobs);
        self.status.send_replace(status);
    }

    /// Brings the vectors in line with the index (see the module doc).
    pub(super) async fn sync_vectors(&self) -> Result<(), KbError> {
        let Some(embedder) = self.embedder.clone() else {
            return Ok(());
        };
        let guard = self.vectors_lock.lock().await;
        let idx = self.index();
        let live = idx.versions();
        let is_live = |id: &str, v: i64| live.get(id).is_some_and(|(lv, _)| *lv == v);
        self.dense.retain(is_live);
        let missing: Vec<LiveDoc> = {
            let mut jobs = self.jobs();
            jobs.failed.retain(|(id, v), _| is_live(id, *v));
            live.iter()
                .filter(|(id, (v, _))| {
                    self.dense.version_of(id) != Some(*v)
                        && !jobs.in_flight.contains_key(&((*id).clone(), *v))
                })
                .filter_map(|(id, _)| idx.live_docs_of(id))
                .collect()
        };
        if missing.is_empty() {
            drop(guard);
            self.publish_status();
            return Ok(());
        }
        let keys: Vec<(String, i64)> = missing.iter().map(|d| (d.id.clone(), d.version)).collect();
        let stored = self
            .vectors
            .load(embedder.model_id(), embedder.dim(), &keys)
            .await?;
        let mut work: Work = Vec::new();
        let mut loaded = 0;
        for doc in missing {
            let ps = passages(&doc.draft);
            let key = (doc.id.clone(), doc.version);
            match stored.get(&key).and_then(|s| matching(&ps, s)) {
                Some(qs) => {
                    loaded += qs.len();
                    let v = ArticleVectors::from_quantised(&doc, qs);
                    self.dense.insert(&doc.id, Arc::new(v));
                }
                None => work.push((doc, ps)),
            }
        }
        {
            let mut jobs = self.jobs();
            jobs.loaded += loaded;
            for (doc, ps) in &work {
                let key = (doc.id.clone(), doc.version);
                jobs.failed.remove(&key);
                jobs.in_flight.insert(key, ps.len());
            }
        }
        drop(guard);
        self.publish_status();
        if loaded > 0 {
            tracing::info!(
                passages = loaded,
                model = embedder.model_id(),
                "passage vectors loaded"
            );
        }
        if work.len() <= INLINE_ARTICLES {
            self.embed_work(embedder.as_ref(), work).await;
        } else if let Some(me) = self.me.upgrade() {
            tokio::spawn(async move {
                let _one_at_a_time = me.background.lock().await;
                me.embed_work(embedder.as_ref(), work).await;
            });
        }
        Ok(())
    }

    /// Embeds and stores each version of `work`, and holds its vectors if it is still live.
    async fn embed_work(&self, embedder: &dyn Embedder, work: Work) {
        let total: usize = work.iter().map(|(_, ps)| ps.len()).sum();
        let (mut done, mut logged) = (0, Instant::now());
        for (doc, ps) in work {
            let key = (doc.id.clone(), doc.version);
            let texts: Vec<String> = ps.iter().map(|p| p.text.clone()).collect();
            let result = embed_texts(embedder, &texts).await;
            let ok = match result {
                Ok(vs) => {
                    if let Err(e) = self
                        .vectors
                        .save(&doc.id, doc.version, embedder.model_id(), &ps, &vs)
                        .await
                    {
                        tracing::warn!(article = %doc.id, error = %e, "passage vectors not stored; held in memory only");
                    }
                    let _guard = self.vectors_lock.lock().await;
                    if self.index().live_version(&doc.id) == Some(doc.version) {
                        self.dense
                            .insert(&doc.id, Arc::new(ArticleVectors::new(&doc, &vs)));
                    }
                    true
                }
                Err(e) => {
                    tracing::warn!(article = %doc.id, error = %e, "article not embedded; found by BM25 only until its next change");
                    false
                }
            };
            {
                let mut jobs = self.jobs();
                jobs.in_flight.remove(&key);
                if ok {
                    jobs.embedded += ps.len();
                } else {
                    jobs.failed.insert(key, ps.len());
                }
            }
            done += ps.len();
            self.publish_status();
            if total > 0 && (done == total || logged.elapsed() >= LOG_EVERY) {
                logged = Instant::now();
                tracing::info!(
                    model = embedder.model_id(),
                    "embedded {done}/{total} passages"
                );
            }
        }
    }

    /// The vectors of `doc` for a golden trial: held, stored, or embedded now (and stored).
    /// `None` without an embedder or when embedding fails.
    pub(super) async fn vectors_for_trial(&self, doc: &LiveDoc) -> Option<Arc<ArticleVectors>> {
        let embedder = self.embedder.as_ref()?;
        if let Some(v) = self.dense.get(&doc.id).filter(|v| v.version == doc.version) {
            return Some(v);
        }
        let ps = passages(&doc.draft);
        let key = (doc.id.clone(), doc.version);
        let stored = self
            .vectors
            .load(
                embedder.model_id(),
                embedder.dim(),
                std::slice::from_ref(&key),
            )
            .await
            .ok()?;
        if let Some(qs) = stored.get(&key).and_then(|s| matching(&ps, s)) {
            return Some(Arc::new(ArticleVectors::from_quantised(doc, qs)));
        }
        let texts: Vec<String> = ps.iter().map(|p| p.text.clone()).collect();
        let vs = match embed_texts(embedder.as_ref(), &texts).await {
            Ok(vs) => vs,
            Err(e) => {
                tracing::warn!(article = %doc.id, error = %e, "candidate not embedded for the golden check");
                return None;
            }
        };
        if let Err(e) = self
            .vectors
            .save(&doc.id, doc.version, embedder.model_id(), &ps, &vs)
            .await
        {
            tracing::warn!(article = %doc.id, error = %e, "candidate vectors not stored");
        }
        Some(Arc::new(ArticleVectors::new(doc, &vs)))
    }

    /// The query vectors of `texts` (empty without an embedder or when it fails).
    pub(super) async fn query_vectors(&self, texts: &[String]) -> HashMap<String, Vec<f32>> {
        let Some(embedder) = &self.embedder else {
            return HashMap::new();
        };
        let mut out = HashMap::new();
        for batch in texts.chunks(BATCH) {
            match embedder.embed(batch, Kind::Query).await {
                Ok(vs) if vs.len() == batch.len() => {
                    out.extend(batch.iter().cloned().zip(vs));
                }
                Ok(_) => tracing::warn!("the embedder answered the wrong number of vectors"),
                Err(e) => tracing::warn!(error = %e, "question not embedded; BM25 only"),
            }
        }
        out
    }
}
