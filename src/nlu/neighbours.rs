//! Intent by meaning: the training examples and exact phrases embedded once, and a
//! k-nearest-neighbour vote over them for each utterance. It complements the character
//! n-gram classifier where customers use words the examples never used ("U盾坏了",
//! "卡被机器吃了"): close in meaning is close in the embedding space.
//!
//! Example vectors are computed when the understanding is built and kept in a file under
//! the models folder, named by the model id and a hash of the example texts, so a restart
//! (or the next test process) loads them instead of embedding ~1,700 sentences again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::embedding::{dot, Embedder, Kind};

/// Neighbours that vote.
pub const K: usize = 7;
/// Softmax temperature over cosine similarities: e5 similarities sit in a narrow band
/// (unrelated sentences ≈ 0.75, paraphrases ≈ 0.9), so small differences must count.
const TEMPERATURE: f32 = 0.02;
/// Texts per embedding call while building.
const BATCH: usize = 64;

/// The examples' vectors and labels.
#[derive(Debug, Clone)]
pub struct Neighbours {
    dim: usize,
    /// `labels.len() * dim` floats, row-major.
    vectors: Vec<f32>,
    labels: Vec<usize>,
}

/// The vote for one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    /// (label, share of the vote), best first; shares sum to 1.
    pub ranking: Vec<(usize, f32)>,
    /// Cosine similarity of the nearest example.
    pub nearest: f32,
}

impl Neighbours {
    /// Builds from labelled texts: vectors from `cache` when a file made by this model for
    /// exactly these texts is there, else embedded (and written to `cache`).
    pub async fn build(
        examples: &[(String, usize)],
        embedder: &dyn Embedder,
        cache: Option<&Path>,
    ) -> anyhow::Result<Neighbours> {
        let dim = embedder.dim();
        let file = cache.map(|dir| cache_file(dir, embedder.model_id(), examples));
        if let Some(vectors) = file
            .as_deref()
            .and_then(|f| read_cache(f, dim, examples.len()))
        {
            return Ok(Neighbours {
                dim,
                vectors,
                labels: examples.iter().map(|(_, l)| *l).collect(),
            });
        }
        let started = std::time::Instant::now();
        let mut vectors = Vec::with_capacity(examples.len() * dim);
        for chunk in examples.chunks(BATCH) {
            let texts: Vec<String> = chunk.iter().map(|(t, _)| t.clone()).collect();
            for v in embedder.embed(&texts, Kind::Query).await? {
                anyhow::ensure!(v.len() == dim, "the embedder returned {} dims", v.len());
                vectors.extend_from_slice(&v);
            }
        }
        tracing::info!(
            examples = examples.len(),
            ms = started.elapsed().as_millis() as u64,
            "intent examples embedded"
        );
        if let Some(f) = &file {
            if let Err(e) = write_cache(f, &vectors) {
                tracing::warn!(error = %e, file = %f.display(), "cannot keep the intent example vectors");
            }
        }
        Ok(Neighbours {
            dim,
            vectors,
            labels: examples.iter().map(|(_, l)| *l).collect(),
        })
    }

    /// Builds from vectors already at hand (tests, tools).
    pub fn from_vectors(dim: usize, rows: Vec<(Vec<f32>, usize)>) -> Neighbours {
        let mut vectors = Vec::with_capacity(rows.len() * dim);
        let mut labels = Vec::with_capacity(rows.len());
        for (v, l) in rows {
            vectors.extend_from_slice(&v);
            labels.push(l);
        }
        Neighbours {
            dim,
            vectors,
            labels,
        }
    }

    /// How many examples vote.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no example at all.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The vote of the `K` nearest examples, weighted by a softmax of their similarity.
    pub fn vote(&self, query: &[f32]) -> Option<Vote> {
        if query.len() != self.dim || self.is_empty() {
            return None;
        }
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(K + 1);
        for (i, row) in self.vectors.chunks_exact(self.dim).enumerate() {
            let s = dot(row, query);
            if best.len() < K || s > best[best.len() - 1].0 {
                let at = best.partition_point(|(b, _)| *b >= s);
                best.insert(at, (s, self.labels[i]));
                best.truncate(K);
            }
        }
        let nearest = best.first()?.0;
        let mut shares: BTreeMap<usize, f32> = BTreeMap::new();
        let mut total = 0.0;
        for (s, label) in &best {
            let w = ((s - nearest) / TEMPERATURE).exp();
            *shares.entry(*label).or_default() += w;
            total += w;
        }
        let mut ranking: Vec<(usize, f32)> =
            shares.into_iter().map(|(l, w)| (l, w / total)).collect();
        ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Some(Vote { ranking, nearest })
    }
}

fn cache_file(dir: &Path, model: &str, examples: &[(String, usize)]) -> PathBuf {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    for (t, _) in examples {
        h.update(t.as_bytes());
        h.update([0]);
    }
    let digest = hex::encode(h.finalize());
    let safe: String = model
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    dir.join(format!("intent-vectors-{safe}-{}.f32", &digest[..16]))
}

fn read_cache(file: &Path, dim: usize, rows: usize) -> Option<Vec<f32>> {
    let bytes = std::fs::read(file).ok()?;
    if bytes.len() != rows * dim * 4 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

fn write_cache(file: &Path, vectors: &[f32]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes: Vec<u8> = vectors.iter().flat_map(|f| f.to_le_bytes()).collect();
    // Written whole under a name of this process, then renamed: a reader (or a process
    // writing the same file at the same time) never sees half a file.
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        crate::embedding::normalize(&mut v);
        v
    }

    #[test]
    fn the_nearest_examples_win_the_vote() {
        let n = Neighbours::from_vectors(
            2,
            vec![
                (unit(&[1.0, 0.0]), 0),
                (unit(&[0.98, 0.2]), 0),
                (unit(&[0.0, 1.0]), 1),
            ],
        );
        let v = n.vote(&unit(&[1.0, 0.05])).unwrap();
        assert_eq!(v.ranking[0].0, 0);
        assert!(v.ranking[0].1 > 0.99, "{v:?}");
        assert!(v.nearest > 0.99);
        let sum: f32 = v.ranking.iter().map(|r| r.1).sum();
        assert!((sum - 1.0).abs() < 1e-5);
        assert_eq!(n.vote(&unit(&[0.1, 1.0])).unwrap().ranking[0].0, 1);
    }

    #[test]
    fn a_vector_of_another_size_gets_no_vote() {
        let n = Neighbours::from_vectors(2, vec![(unit(&[1.0, 0.0]), 0)]);
        assert!(n.vote(&[1.0, 0.0, 0.0]).is_none());
        assert!(Neighbours::from_vectors(2, vec![])
            .vote(&[1.0, 0.0])
            .is_none());
    }

    #[test]
    fn the_cache_file_round_trips_and_rejects_other_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let ex = vec![("开户".to_string(), 0), ("挂失".to_string(), 1)];
        let f = cache_file(dir.path(), "m@1", &ex);
        assert_ne!(
            f,
            cache_file(dir.path(), "m@2", &ex),
            "another model, another file"
        );
        write_cache(&f, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(read_cache(&f, 2, 2), Some(vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(read_cache(&f, 3, 2), None);
    }
}
