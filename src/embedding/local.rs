//! The local e5 model as an [`Embedder`]: a process-wide cache of loaded models (keyed by
//! file path, size and modification time, so the hundreds of apps a test run builds load
//! the file once), and inference on blocking threads inside a small thread pool of
//! `[embedding] threads`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use super::e5::{E5Model, LoadError};
use super::{check_inputs, EmbedError, Embedder, Kind};

type Key = (PathBuf, u64, Option<SystemTime>);

/// Models loaded by this process.
static LOADED: Mutex<Vec<(Key, Arc<E5Model>)>> = Mutex::new(Vec::new());
/// Inference thread pools by size.
static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());

/// The model of the file at `path`, loaded once per process (again when the file changes:
/// another size or modification time). Blocking: call off the async executor. Concurrent
/// callers wait for one load.
pub fn load_shared(path: &Path) -> Result<Arc<E5Model>, LoadError> {
    let meta = std::fs::metadata(path).map_err(|_| LoadError::Missing(path.to_path_buf()))?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let key = (canonical, meta.len(), meta.modified().ok());
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, m)) = loaded.iter().find(|(k, _)| *k == key) {
        return Ok(m.clone());
    }
    let model = Arc::new(E5Model::load(path)?);
    // A file replaced in place: the old model is dropped once nobody uses it.
    loaded.retain(|(k, _)| k.0 != key.0);
    loaded.push((key, model.clone()));
    Ok(model)
}

fn pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, EmbedError> {
    let threads = threads.clamp(1, 64);
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return Ok(p.clone());
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("embed-{i}"))
        .build()
        .map_err(|e| EmbedError::Model(format!("thread pool: {e}")))?;
    let p = Arc::new(p);
    pools.push((threads, p.clone()));
    Ok(p)
}

/// multilingual-e5-small on this machine's CPU.
pub struct LocalEmbedder {
    model: Arc<E5Model>,
    pool: Arc<rayon::ThreadPool>,
    id: String,
}

impl LocalEmbedder {
    /// The model at `path` (shared, see [`load_shared`]), inferring on `threads` threads.
    /// Blocking (the first load takes about a second).
    pub fn load(path: &Path, threads: usize) -> Result<LocalEmbedder, LoadError> {
        let model = load_shared(path)?;
        let pool = pool(threads).map_err(|e| LoadError::Model {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(LocalEmbedder::with_model(model, pool))
    }

    fn with_model(model: Arc<E5Model>, pool: Arc<rayon::ThreadPool>) -> LocalEmbedder {
        LocalEmbedder {
            id: model.model_id(),
            model,
            pool,
        }
    }

    /// The loaded model (tokenizer, token counts).
    pub fn model(&self) -> &Arc<E5Model> {
        &self.model
    }

    /// [`E5Model::embed`] on the pool, on the calling thread (blocking; for tools and
    /// benchmarks that run no executor).
    pub fn embed_blocking(
        &self,
        texts: &[String],
        kind: Kind,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        check_inputs(texts)?;
        self.pool.install(|| self.model.embed(texts, kind))
    }
}

impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        kind: Kind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            check_inputs(texts)?;
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let model = self.model.clone();
            let pool = self.pool.clone();
            let texts = texts.to_vec();
            tokio::task::spawn_blocking(move || pool.install(|| model.embed(&texts, kind)))
                .await
                .map_err(|e| EmbedError::Model(format!("embedding task: {e}")))?
        })
    }
}
