//! Sentence embeddings: the port every meaning-based part of Concierge uses (knowledge
//! retrieval, intent neighbours, the understanding step), and its implementations.
//!
//! A vector is L2-normalised, so the dot product of two vectors is their cosine. Vectors
//! made by different models never mix: each [`Embedder`] names its model (with the checksum
//! of its weights) in [`Embedder::model_id`], and stored vectors carry that id.
//!
//! `multilingual-e5-small` expects a `query: ` or `passage: ` prefix ([`Kind`]); embedders
//! add it themselves, callers pass the bare text.

use futures_util::future::BoxFuture;

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
    fn prefixes_follow_the_model_card() {
        assert_eq!(Kind::Query.prefix(), "query: ");
        assert_eq!(Kind::Passage.prefix(), "passage: ");
    }
}
