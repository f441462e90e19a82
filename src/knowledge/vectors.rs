//! Passage vectors in the database (`kb_vectors`): one row per passage of an article
//! version and embedding model, with the passage's kind and the SHA-256 of its text, the
//! vector as little-endian f32 bytes. Written when a version is embedded (by whichever node
//! does it first; a second write of the same rows is harmless), read at start-up so a node
//! never recomputes what another one (or its previous run) has embedded.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use sqlx::Row;

use super::dense::Quantised;
use super::model::KbError;
use super::passages::Passage;
use crate::store::{now_ms, Db};

/// Above this many articles, one query reads every live version's vectors instead of one
/// query per article.
const BULK_FROM: usize = 32;

/// One stored passage vector, quantised as it is read.
#[derive(Debug, Clone)]
pub struct StoredPassage {
    pub passage: i64,
    pub sha256: String,
    pub vector: Quantised,
}

/// The stored passages of each (article id, version), in passage order.
pub type Stored = HashMap<(String, i64), Vec<StoredPassage>>;

/// `v` as little-endian f32 bytes.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Little-endian f32 bytes as a vector (`None` when the length is not a multiple of 4).
pub fn from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    b.len().is_multiple_of(4).then(|| {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

/// The vector side of the knowledge database.
#[derive(Clone)]
pub struct VectorStore {
    db: Db,
}

impl VectorStore {
    pub fn new(db: Db) -> VectorStore {
        VectorStore { db }
    }

    /// Stores the vectors of a version's passages for `model` (replacing earlier rows of
    /// the same version and model).
    pub async fn save(
        &self,
        id: &str,
        version: i64,
        model: &str,
        passages: &[Passage],
        vectors: &[Vec<f32>],
    ) -> Result<(), KbError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "DELETE FROM kb_vectors WHERE article_id = $1 AND version = $2 AND model = $3 \
             AND passage >= $4",
        )
        .bind(id)
        .bind(version)
        .bind(model)
        .bind(passages.len() as i64)
        .execute(&mut **tx)
        .await?;
        for (n, (p, v)) in passages.iter().zip(vectors).enumerate() {
            sqlx::query(
                "INSERT INTO kb_vectors (article_id, version, model, passage, kind, text_sha256, \
                 dim, vector, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (article_id, version, model, passage) DO UPDATE SET \
                 kind = excluded.kind, text_sha256 = excluded.text_sha256, dim = excluded.dim, \
                 vector = excluded.vector, created_at = excluded.created_at",
            )
            .bind(id)
            .bind(version)
            .bind(model)
            .bind(n as i64)
            .bind(p.kind.as_str())
            .bind(p.sha256())
            .bind(v.len() as i64)
            .bind(to_bytes(v))
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The stored vectors of `model` and `dim` for the versions `keys`: one query each for a
    /// few, or one query over every published version for many. Rows of another dimension
    /// or with a broken vector are left out.
    pub async fn load(
        &self,
        model: &str,
        dim: usize,
        keys: &[(String, i64)],
    ) -> Result<Stored, KbError> {
        let mut out = Stored::new();
        let columns = "k.article_id, k.version, k.passage, k.text_sha256, k.dim, k.vector";
        if keys.len() > BULK_FROM {
            let sql = format!(
                "SELECT {columns} FROM kb_vectors k JOIN kb_versions v ON v.article_id = \
                 k.article_id AND v.version = k.version WHERE k.model = $1 AND \
                 v.state = 'published' ORDER BY k.article_id, k.passage"
            );
            let mut rows = sqlx::query(&sql).bind(model).fetch(&self.db.pool);
            while let Some(row) = rows.try_next().await? {
                add(&mut out, &row, dim)?;
            }
            return Ok(out);
        }
        for (id, version) in keys {
            let rows = sqlx::query(&format!(
                "SELECT {columns} FROM kb_vectors k WHERE k.model = $1 AND k.article_id = $2 \
                 AND k.version = $3 ORDER BY k.passage"
            ))
            .bind(model)
            .bind(id)
            .bind(*version)
            .fetch_all(&self.db.pool)
            .await?;
            for row in &rows {
                add(&mut out, row, dim)?;
            }
        }
        Ok(out)
    }

    /// Number of stored passage vectors of `model`.
    pub async fn count(&self, model: &str) -> Result<i64, KbError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM kb_vectors WHERE model = $1")
                .bind(model)
                .fetch_one(&self.db.pool)
                .await?,
        )
    }
}

fn add(out: &mut Stored, row: &sqlx::any::AnyRow, dim: usize) -> Result<(), sqlx::Error> {
    let stored_dim: i64 = row.try_get("dim")?;
    let bytes: Vec<u8> = row.try_get("vector")?;
    let vector = match from_bytes(&bytes) {
        Some(v) if v.len() == dim && stored_dim == dim as i64 => v,
        _ => return Ok(()),
    };
    out.entry((row.try_get("article_id")?, row.try_get("version")?))
        .or_default()
        .push(StoredPassage {
            passage: row.try_get("passage")?,
            sha256: row.try_get("text_sha256")?,
            vector: Quantised::of(&vector),
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_as_little_endian_bytes() {
        let v = vec![1.0f32, -0.5, 0.25, f32::MIN_POSITIVE];
        let b = to_bytes(&v);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..4], &1.0f32.to_le_bytes());
        assert_eq!(from_bytes(&b), Some(v));
        assert_eq!(from_bytes(&b[..3]), None);
    }
}
