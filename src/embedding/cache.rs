//! A bounded in-memory cache in front of any [`Embedder`]: `(kind, text) → vector`, so a
//! text embedded again (a passage re-indexed, the utterance embedded for understanding and
//! then for knowledge search) costs a lookup. Only the texts not cached go to the model,
//! each once per call.
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
        let _turn = match &self.one_at_a_time {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let mut found: Vec<Option<Arc<[f32]>>> = if _turn.is_some() {
            todo.iter().map(|t| self.get(&(kind, t.clone()))).collect()
        } else {
            vec![None; todo.len()]
        };
        let missing: Vec<String> = todo
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        if !missing.is_empty() {
            let vectors = self.inner.embed(&missing, kind).await?;
            if vectors.len() != missing.len() {
                return Err(EmbedError::Model(format!(
                    "{} vectors for {} texts",
                    vectors.len(),
                    missing.len()
                )));
            }
            let mut fresh = vectors.into_iter().map(Arc::<[f32]>::from);
            let mut g = self.maps.lock().unwrap_or_else(|p| p.into_inner());
            for (t, f) in todo.iter().zip(found.iter_mut()) {
                if f.is_none() {
                    let v = fresh
                        .next()
                        .ok_or_else(|| EmbedError::Model("too few vectors".into()))?;
                    Self::insert(&mut g, self.half, (kind, t.clone()), v.clone());
                    *f = Some(v);
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
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
