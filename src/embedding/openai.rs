//! An OpenAI-compatible embedding server (`POST {base}/embeddings`) as an [`Embedder`]:
//! texts go out with their kind's prefix (unless `openai_prefix = false`, for servers that
//! add their own); the answer must hold one vector per text, each of the configured
//! dimension, else the call fails with [`EmbedError::Remote`]. Vectors are normalised here.

use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::ExposeSecret;

use super::{check_inputs, normalize, EmbedError, Embedder, Kind};
use crate::config::EmbeddingSettings;

/// What is read of the server's answer.
#[derive(serde::Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    /// The text's position (in order when absent).
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// The remote embedder.
pub struct OpenAiEmbedder {
    client: async_openai::Client<async_openai::config::OpenAIConfig>,
    model: String,
    id: String,
    dim: usize,
    prefix: bool,
    timeout: Duration,
}

impl OpenAiEmbedder {
    /// The server of `[embedding] openai_base_url` with `openai_model`, expecting vectors
    /// of `openai_dimensions`.
    pub fn new(s: &EmbeddingSettings) -> OpenAiEmbedder {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = async_openai::config::OpenAIConfig::new()
            .with_api_base(s.openai_base_url.trim_end_matches('/'))
            .with_api_key(s.openai_api_key.expose_secret());
        OpenAiEmbedder {
            client: async_openai::Client::with_config(config),
            model: s.openai_model.clone(),
            id: format!("openai:{}", s.openai_model),
            dim: s.openai_dimensions,
            prefix: s.openai_prefix,
            timeout: Duration::from_millis(s.openai_timeout_ms),
        }
    }
}

impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
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
            let input: Vec<String> = texts
                .iter()
                .map(|t| {
                    if self.prefix {
                        format!("{}{t}", kind.prefix())
                    } else {
                        t.clone()
                    }
                })
                .collect();
            let request = async_openai::types::embeddings::CreateEmbeddingRequest {
                model: self.model.clone(),
                input: async_openai::types::embeddings::EmbeddingInput::StringArray(input),
                ..Default::default()
            };
            let embeddings = self.client.embeddings();
            // Only `data` is read (`usage` and `model` vary between servers).
            let call = embeddings.create_byot::<_, Response>(request);
            let response = tokio::time::timeout(self.timeout, call)
                .await
                .map_err(|_| EmbedError::Remote("timed out".into()))?
                .map_err(|e| EmbedError::Remote(e.to_string()))?;
            let mut data = response.data;
            if data.len() != texts.len() {
                return Err(EmbedError::Remote(format!(
                    "{} vectors for {} texts",
                    data.len(),
                    texts.len()
                )));
            }
            for (i, d) in data.iter_mut().enumerate() {
                d.index.get_or_insert(i);
            }
            data.sort_by_key(|d| d.index);
            let mut out = Vec::with_capacity(data.len());
            for (i, d) in data.into_iter().enumerate() {
                if d.index != Some(i) {
                    return Err(EmbedError::Remote(format!("no vector for text {i}")));
                }
                if d.embedding.len() != self.dim {
                    return Err(EmbedError::Remote(format!(
                        "a vector of {} dimensions, {} expected",
                        d.embedding.len(),
                        self.dim
                    )));
                }
                if d.embedding.iter().any(|x| !x.is_finite()) {
                    return Err(EmbedError::Remote("a vector with non-finite values".into()));
                }
                let mut v = d.embedding;
                normalize(&mut v);
                out.push(v);
            }
            Ok(out)
        })
    }
}
