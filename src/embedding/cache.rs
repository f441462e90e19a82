//! A bounded in-memory cache in front of any [`Embedder`]: `(kind, text) → vector`, so a
//! text embedded again (a passage re-indexed, the utterance embedded for understanding and
//! then for knowledge search) costs a lookup. Only the texts not cached go to the model,
//! each once per call.
//!
//! Computing one call at a time (a local model), callers that wait are batched: each
//! registers the texts it misses, and whoever gets the model next embeds its own texts
//! together with every other waiter's of the same kind (at most [`BATCH_TEXTS`]) in one
//! forward pass; the others then find their vectors in the cache. Under load, N short
//! utterances cost one pass instead of N passes in a row.
//!
//! Eviction is by generations: new vectors go to the young map; a hit in the old map moves
//! the entry to the young one; when the young map holds half the capacity it becomes the
//! old one (the previous old one is dropped). At most `capacity` entries are kept, and what
//! is used stays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{check_inputs, EmbedError, Embedder, Kind};

type Map = HashMap<(Kind, String), Arc<[f32]>>;

/// The most texts one batched pass takes (own and other waiters' together).
pub const BATCH_TEXTS: usize = 32;

#[derive(Default)]
struct Generations {
    young: Map,
    old: Map,
}

/// Counters of a cache (for tests and `/readyz`-style reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

/// Any embedder with a bounded cache in front.
pub struct CachedEmbedder {
    inner: Arc<dyn Embedder>,
    half: usize,
    maps: Mutex<Generations>,
    stats: Mutex<CacheStats>,
    /// For a model on this machine's CPU: one computation at a time, and a caller that
    /// waited takes what the one before it computed (a node's start-up and its first
    /// turns asking for the same passages compute them once).
    one_at_a_time: Option<tokio::sync::Mutex<()>>,
    /// Texts that waiting callers miss, for the next computation to take along.
    waiting: Mutex<Vec<(Kind, String)>>,
}

impl CachedEmbedder {
    /// `inner` with a cache of at most `capacity` vectors (0: nothing is cached).
    pub fn new(inner: Arc<dyn Embedder>, capacity: usize) -> CachedEmbedder {
        CachedEmbedder {
            inner,
            half: capacity / 2,
            maps: Mutex::new(Generations::default()),
            stats: Mutex::new(CacheStats::default()),
            one_at_a_time: None,
            waiting: Mutex::new(Vec::new()),
        }
    }

    /// The same, computing one call at a time (for a local model: the CPU is the limit,
    /// and callers that waited reuse what was computed meanwhile).
    pub fn serialized(mut self) -> CachedEmbedder {
        self.one_at_a_time = Some(tokio::sync::Mutex::new(()));
        self
    }

    /// The vectors of `todo`, in order: from the model, or — when computing one at a
    /// time — from the cache for texts another caller embedded while this one waited.
    async fn compute(&self, todo: &[String], kind: Kind) -> Result<Vec<Arc<[f32]>>, EmbedError> {
        // Batching hands vectors over through the cache: without one, each computes its own.
        let batching = self.one_at_a_time.is_some() && self.half > 0;
        if batching {
            let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            w.extend(todo.iter().map(|t| (kind, t.clone())));
        }
        let _turn = match &self.one_at_a_time {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let mut found: Vec<Option<Arc<[f32]>>> = if _turn.is_some() {
            todo.iter().map(|t| self.get(&(kind, t.clone()))).collect()
        } else {
            vec![None; todo.len()]
        };
        let mut missing: Vec<String> = todo
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        if batching {
            self.take_waiting(kind, &mut missing);
        }
        if !missing.is_empty() {
            let vectors = self.inner.embed(&missing, kind).await?;
            if vectors.len() != missing.len() {
                return Err(EmbedError::Model(format!(
                    "{} vectors for {} texts",
                    vectors.len(),
                    missing.len()
                )));
            }
            let fresh: HashMap<&str, Arc<[f32]>> = missing
                .iter()
                .map(String::as_str)
                .zip(vectors.into_iter().map(Arc::<[f32]>::from))
                .collect();
            let mut g = self.maps.lock().unwrap_or_else(|p| p.into_inner());
            for (t, v) in &fresh {
                Self::insert(&mut g, self.half, (kind, t.to_string()), v.clone());
            }
            for (t, f) in todo.iter().zip(found.iter_mut()) {
                if f.is_none() {
                    let v = fresh
                        .get(t.as_str())
                        .ok_or_else(|| EmbedError::Model("too few vectors".into()))?;
                    *f = Some(v.clone());
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// Adds to `batch` (this caller's missing texts) other waiters' texts of `kind` that
    /// are not cached yet, up to [`BATCH_TEXTS`], and forgets this caller's own entries.
    fn take_waiting(&self, kind: Kind, batch: &mut Vec<String>) {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let mut rest = Vec::with_capacity(w.len());
        for (k, t) in w.drain(..) {
            if k != kind || batch.len() >= BATCH_TEXTS {
                // Another kind, or no room: it waits for a later pass.
                rest.push((k, t));
            } else if !batch.contains(&t) && !self.cached(&(k, t.clone())) {
                batch.push(t);
            }
        }
        *w = rest;
    }

    /// Whether `key` is cached (without counting or refreshing it).
    fn cached(&self, key: &(Kind, String)) -> bool {
        let g = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        g.young.contains_key(key) || g.old.contains_key(key)
    }

    /// The embedder behind the cache.
    pub fn inner(&self) -> &Arc<dyn Embedder> {
        &self.inner
    }

    /// Hits, misses and entries so far.
    pub fn stats(&self) -> CacheStats {
        let mut s = *self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        s.entries = maps.young.len() + maps.old.len();
        s
    }

    fn get(&self, key: &(Kind, String)) -> Option<Arc<[f32]>> {
        let mut g = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = g.young.get(key) {
            return Some(v.clone());
        }
        let v = g.old.remove(key)?;
        Self::insert(&mut g, self.half, key.clone(), v.clone());
        Some(v)
    }

    fn insert(g: &mut Generations, half: usize, key: (Kind, String), v: Arc<[f32]>) {
        if half == 0 {
            return;
        }
        if g.young.len() >= half {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(key, v);
    }

    fn count(&self, hits: u64, misses: u64) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.hits += hits;
        s.misses += misses;
    }
}

impl Embedder for CachedEmbedder {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        kind: Kind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            check_inputs(texts)?;
            let mut out: Vec<Option<Arc<[f32]>>> = Vec::with_capacity(texts.len());
            // The texts to embed, each once, and where their vectors go.
            let mut todo: Vec<String> = Vec::new();
            let mut slot: HashMap<&str, usize> = HashMap::new();
            let mut wait: Vec<(usize, usize)> = Vec::new();
            for (i, t) in texts.iter().enumerate() {
                let cached = self.get(&(kind, t.clone()));
                if cached.is_none() {
                    let j = *slot.entry(t.as_str()).or_insert_with(|| {
                        todo.push(t.clone());
                        todo.len() - 1
                    });
                    wait.push((i, j));
                }
                out.push(cached);
            }
            self.count((texts.len() - wait.len()) as u64, todo.len() as u64);
            if !todo.is_empty() {
                let fresh = self.compute(&todo, kind).await?;
                for (i, j) in wait {
                    out[i] = Some(fresh[j].clone());
                }
            }
            Ok(out
                .into_iter()
                .map(|v| v.map(|v| v.to_vec()).unwrap_or_default())
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Vectors `[len, kind]` of each text; counts the texts it was asked for.
    struct Counting(AtomicUsize);

    impl Embedder for Counting {
        fn model_id(&self) -> &str {
            "counting"
        }
        fn dim(&self) -> usize {
            2
        }
        fn embed<'a>(
            &'a self,
            texts: &'a [String],
            kind: Kind,
        ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            let k = if kind == Kind::Query { 1.0 } else { 0.0 };
            let v = texts.iter().map(|t| vec![t.len() as f32, k]).collect();
            Box::pin(async move { Ok(v) })
        }
    }

    fn texts(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn repeated_texts_reach_the_model_once_per_kind() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let c = CachedEmbedder::new(inner.clone(), 100);
        assert_eq!(c.model_id(), "counting");
        let v = c
            .embed(&texts(&["a", "bb", "a"]), Kind::Query)
            .await
            .unwrap();
        assert_eq!(v, [vec![1.0, 1.0], vec![2.0, 1.0], vec![1.0, 1.0]]);
        assert_eq!(inner.0.load(Ordering::SeqCst), 2);
        let v = c.embed(&texts(&["bb", "ccc"]), Kind::Query).await.unwrap();
        assert_eq!(v, [vec![2.0, 1.0], vec![3.0, 1.0]]);
        assert_eq!(inner.0.load(Ordering::SeqCst), 3);
        // Another kind is another vector.
        let v = c.embed(&texts(&["a"]), Kind::Passage).await.unwrap();
        assert_eq!(v, [vec![1.0, 0.0]]);
        assert_eq!(inner.0.load(Ordering::SeqCst), 4);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 4, 4));
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_capacity_and_keeps_what_is_used() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let c = CachedEmbedder::new(inner.clone(), 4);
        for t in ["a", "b", "c", "d", "e", "f", "g"] {
            c.embed(&texts(&[t]), Kind::Query).await.unwrap();
            c.embed(&texts(&["a"]), Kind::Query).await.unwrap();
            assert!(c.stats().entries <= 4, "{:?}", c.stats());
        }
        let before = inner.0.load(Ordering::SeqCst);
        c.embed(&texts(&["a"]), Kind::Query).await.unwrap();
        assert_eq!(inner.0.load(Ordering::SeqCst), before, "`a` stays cached");
        let none = CachedEmbedder::new(inner.clone(), 0);
        none.embed(&texts(&["a"]), Kind::Query).await.unwrap();
        none.embed(&texts(&["a"]), Kind::Query).await.unwrap();
        assert_eq!(none.stats().entries, 0);
    }

    /// Takes 50 ms a call, records the size of each call and fails the call numbered
    /// `fails` (from 0), if any; vectors `[len, 0]`.
    struct Slow {
        calls: Mutex<Vec<usize>>,
        fails: Option<usize>,
    }

    impl Slow {
        fn new(fails: Option<usize>) -> Arc<Slow> {
            Arc::new(Slow {
                calls: Mutex::new(Vec::new()),
                fails,
            })
        }
    }

    impl Embedder for Slow {
        fn model_id(&self) -> &str {
            "slow"
        }
        fn dim(&self) -> usize {
            2
        }
        fn embed<'a>(
            &'a self,
            texts: &'a [String],
            _kind: Kind,
        ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
            let mut calls = self.calls.lock().unwrap();
            let fail = self.fails == Some(calls.len());
            calls.push(texts.len());
            let v = texts.iter().map(|t| vec![t.len() as f32, 0.0]).collect();
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                if fail {
                    Err(EmbedError::Model("boom".into()))
                } else {
                    Ok(v)
                }
            })
        }
    }

    /// Each word embedded by its own task at once, in order of spawning.
    fn embed_each(
        c: &Arc<CachedEmbedder>,
        words: &[&str],
    ) -> Vec<tokio::task::JoinHandle<Result<Vec<Vec<f32>>, EmbedError>>> {
        words
            .iter()
            .map(|w| {
                let c = c.clone();
                let w = w.to_string();
                tokio::spawn(async move { c.embed(&[w], Kind::Query).await })
            })
            .collect()
    }

    #[tokio::test]
    async fn callers_waiting_for_the_model_are_embedded_in_one_pass() {
        let inner = Slow::new(None);
        let c = Arc::new(CachedEmbedder::new(inner.clone(), 100).serialized());
        let words = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"];
        let calls = embed_each(&c, &words);
        for (w, call) in words.iter().zip(calls) {
            let v = call.await.unwrap().unwrap();
            assert_eq!(v, [vec![w.len() as f32, 0.0]], "{w}");
        }
        // The first caller runs alone; the five that waited meanwhile share one pass.
        let sizes = inner.calls.lock().unwrap().clone();
        assert_eq!(sizes, [1, 5], "{sizes:?}");
        // Another kind is never taken along.
        c.embed(&texts(&["a"]), Kind::Passage).await.unwrap();
        assert_eq!(inner.calls.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_waiter_whose_batch_failed_computes_its_own() {
        let c = Arc::new(CachedEmbedder::new(Slow::new(Some(1)), 100).serialized());
        let calls = embed_each(&c, &["a", "bb", "ccc"]);
        let mut ok = 0;
        for call in calls {
            if call.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        // The first pass succeeds, the batched second fails for its own caller only; the
        // last waiter finds its text missing and computes it.
        assert_eq!(ok, 2);
    }

    #[tokio::test]
    async fn too_many_texts_are_refused_before_the_model() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let c = CachedEmbedder::new(inner.clone(), 10);
        let many = vec!["x".to_string(); super::super::MAX_TEXTS + 1];
        let e = c.embed(&many, Kind::Passage).await.unwrap_err();
        assert!(matches!(e, EmbedError::TooLarge(_)), "{e}");
        assert_eq!(inner.0.load(Ordering::SeqCst), 0);
    }
}
