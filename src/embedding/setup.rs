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
    let inner: Arc<dyn Embedder> = match settings.backend {
        EmbeddingBackend::Off => {
            return Built {
                embedder: None,
                notes: Vec::new(),
            }
        }
        EmbeddingBackend::OpenAi => Arc::new(OpenAiEmbedder::new(settings)),
        EmbeddingBackend::Local => {
            let path = settings.model_path(models_dir);
            match LocalEmbedder::load(&path, settings.threads) {
                Ok(e) => Arc::new(e),
                Err(e) => {
                    let hint = match e {
                        LoadError::Missing(_) => "",
                        _ => "; run `concierge models fetch` to make it again",
                    };
                    return Built {
                        embedder: None,
                        notes: vec![format!("embeddings off: {e}{hint}")],
                    };
                }
            }
        }
    };
    Built {
        embedder: Some(Arc::new(CachedEmbedder::new(inner, settings.cache_entries))),
        notes: Vec::new(),
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
