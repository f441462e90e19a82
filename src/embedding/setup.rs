//! The embedder the settings ask for, as start-up builds it: the local e5 model or the
//! OpenAI-compatible server, behind the [`CachedEmbedder`]; or none (backend `off`, or the
//! model file missing or broken), with a note saying why.

use std::path::Path;
use std::sync::Arc;

use super::cache::CachedEmbedder;
use super::e5::LoadError;
use super::local::LocalEmbedder;
use super::openai::OpenAiEmbedder;
use super::Embedder;
use crate::config::{EmbeddingBackend, EmbeddingSettings};

/// What [`build`] made.
pub struct Built {
    /// `None`: understanding and search stay lexical.
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Why there is none, one line each, for the log.
    pub notes: Vec<String>,
}

/// The embedder of `settings` (model paths relative to `models_dir`, the speech models
/// folder). Blocking: the first load of the local model takes about a second (then it is
/// shared by the whole process).
pub fn build(settings: &EmbeddingSettings, models_dir: &Path) -> Built {
    match settings.backend {
        EmbeddingBackend::Off => Built {
            embedder: None,
            notes: Vec::new(),
        },
        EmbeddingBackend::Local => shared_local(settings, models_dir),
        EmbeddingBackend::OpenAi => {
            let inner: Arc<dyn Embedder> = Arc::new(OpenAiEmbedder::new(settings));
            Built {
                embedder: Some(Arc::new(CachedEmbedder::new(inner, settings.cache_entries))),
                notes: Vec::new(),
            }
        }
    }
}

/// The embedder of a node's settings, built off the executor; without one the log says
/// why (and the caller runs without embeddings).
pub async fn load(settings: &crate::config::Settings) -> anyhow::Result<Option<Arc<dyn Embedder>>> {
    let embedding = settings.embedding.clone();
    let models_dir = settings.speech.models_dir.clone();
    let built = tokio::task::spawn_blocking(move || build(&embedding, &models_dir))
        .await
        .map_err(|e| anyhow::anyhow!("loading the embedding model: {e}"))?;
    for note in &built.notes {
        tracing::warn!("{note}");
    }
    if let Some(e) = &built.embedder {
        tracing::info!(
            model = e.model_id(),
            dim = e.dim(),
            "sentence embeddings on"
        );
    }
    Ok(built.embedder)
}

/// The local embedder, one per model file and settings in the process: its cache then
/// serves every app a process builds (the integration tests build hundreds, and each
/// would otherwise embed the same articles again).
fn shared_local(settings: &EmbeddingSettings, models_dir: &Path) -> Built {
    type Shared = std::sync::Mutex<Vec<(String, Arc<dyn Embedder>)>>;
    static SHARED: Shared = std::sync::Mutex::new(Vec::new());
    let path = settings.model_path(models_dir);
    let key = format!(
        "{}|{}|{}",
        path.display(),
        settings.threads,
        settings.cache_entries
    );
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, e)) = shared.iter().find(|(k, _)| *k == key) {
        return Built {
            embedder: Some(e.clone()),
            notes: Vec::new(),
        };
    }
    match LocalEmbedder::load(&path, settings.threads) {
        Ok(e) => {
            let cached: Arc<dyn Embedder> =
                Arc::new(CachedEmbedder::new(Arc::new(e), settings.cache_entries).serialized());
            shared.push((key, cached.clone()));
            Built {
                embedder: Some(cached),
                notes: Vec::new(),
            }
        }
        Err(e) => {
            let hint = match e {
                LoadError::Missing(_) => "",
                _ => "; run `concierge models fetch` to make it again",
            };
            Built {
                embedder: None,
                notes: vec![format!("embeddings off: {e}{hint}")],
            }
        }
    }
}

/// Why a node has no embedder, for `/readyz` (cheap: looks at the model file only).
pub fn notes(settings: &EmbeddingSettings, models_dir: &Path, loaded: bool) -> Vec<String> {
    match settings.backend {
        _ if loaded => Vec::new(),
        EmbeddingBackend::Off => vec!["embedding.backend is \"off\"".into()],
        EmbeddingBackend::OpenAi => vec!["the OpenAI-compatible embedder was not built".into()],
        EmbeddingBackend::Local => {
            let path = settings.model_path(models_dir);
            if path.is_file() {
                vec![format!(
                    "{}: could not be loaded (see the log); run `concierge models fetch`",
                    path.display()
                )]
            } else {
                vec![format!(
                    "{}: no such file; run `concierge models fetch`",
                    path.display()
                )]
            }
        }
    }
}
