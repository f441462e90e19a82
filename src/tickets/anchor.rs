//! The anchor of the audit chain: an HMAC-SHA256 over the chain's head (its link count and
//! last hash), keyed with a server secret (`[audit] anchor_secret`) that the database does
//! not hold. Every event rewrites the anchor in its own transaction, so the head is sealed
//! at all times; `concierge audit verify` recomputes it. The hash chain alone catches an
//! edited link, but an insider with write access to the database can recompute every hash
//! after a rewrite; without the secret they cannot recompute the anchor.
//!
//! What the anchor cannot catch alone: rolling the database back to an earlier state whose
//! anchor they saw (truncating the newest events). `audit verify` prints the anchored head
//! so that operators can compare it with one recorded outside the database.

use secrecy::{ExposeSecret, SecretString};

use crate::config::AuditSettings;
use crate::ports::outbox::hmac_sha256;
use crate::store::Db;

use super::model::TicketError;

/// The anchor format's version, the prefix of every stored anchor.
const VERSION: &str = "v1";

/// The secret that seals the chain head (cheap to clone).
#[derive(Clone)]
pub struct AnchorKey(std::sync::Arc<SecretString>);

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnchorKey(..)")
    }
}

/// What the stored anchor says about the chain head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorCheck {
    /// The anchor matches the head: `count` links ending in `hash`.
    Sealed { count: i64, hash: String },
    /// The chain is empty and nothing was sealed yet.
    Empty,
    /// Links exist but the head carries no anchor (written by a node without the secret, or
    /// the anchor was removed).
    Missing { count: i64 },
    /// The anchor does not match the head: the head was rewritten, or the secret differs.
    Mismatch { count: i64 },
}

impl AnchorKey {
    /// The key `[audit] anchor_secret` holds; `None` when it is empty.
    pub fn from_settings(settings: &AuditSettings) -> Option<AnchorKey> {
        AnchorKey::new(settings.anchor_secret.clone())
    }

    /// The key of `secret`; `None` when it is empty.
    pub fn new(secret: SecretString) -> Option<AnchorKey> {
        (!secret.expose_secret().is_empty()).then(|| AnchorKey(std::sync::Arc::new(secret)))
    }

    /// The anchor of a head of `count` links whose last hash is `hash`:
    /// `v1:` and the hex HMAC-SHA256 of `concierge-audit-head:v1:<count>:<hash>`.
    pub fn seal(&self, count: i64, hash: &str) -> String {
        let message = format!("concierge-audit-head:{VERSION}:{count}:{hash}");
        let mac = hmac_sha256(self.0.expose_secret().as_bytes(), message.as_bytes());
        format!("{VERSION}:{}", hex::encode(mac))
    }

    /// True when `anchor` seals this head (compared in constant time).
    pub fn matches(&self, count: i64, hash: &str, anchor: &str) -> bool {
        let expected = self.seal(count, hash);
        expected.len() == anchor.len()
            && expected
                .bytes()
                .zip(anchor.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

/// Checks the stored anchor of the chain head against `key`.
pub async fn check(db: &Db, key: &AnchorKey) -> Result<AnchorCheck, TicketError> {
    let (hash, count, anchor): (String, i64, Option<String>) =
        sqlx::query_as("SELECT hash, count, anchor FROM audit_head WHERE id = 1")
            .fetch_one(&db.pool)
            .await?;
    Ok(match anchor {
        None if count == 0 => AnchorCheck::Empty,
        None => AnchorCheck::Missing { count },
        Some(a) if key.matches(count, &hash, &a) => AnchorCheck::Sealed { count, hash },
        Some(_) => AnchorCheck::Mismatch { count },
    })
}

/// Seals the current head with `key` (after the secret was set or changed); returns the
/// number of links sealed. Verify the chain first: this vouches for whatever is there.
pub async fn seal_head(db: &Db, key: &AnchorKey) -> Result<i64, TicketError> {
    let mut tx = db.begin_write().await?;
    // The UPDATE locks the head row (PostgreSQL) so no event slips in between.
    let (hash, count): (String, i64) =
        sqlx::query_as("UPDATE audit_head SET count = count WHERE id = 1 RETURNING hash, count")
            .fetch_one(&mut **tx)
            .await?;
    sqlx::query("UPDATE audit_head SET anchor = $1 WHERE id = 1")
        .bind(key.seal(count, &hash))
        .execute(&mut **tx)
        .await?;
    tx.commit().await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> AnchorKey {
        AnchorKey::new(SecretString::from(secret.to_string())).unwrap()
    }

    #[test]
    fn an_empty_secret_is_no_key() {
        assert!(AnchorKey::new(SecretString::from(String::new())).is_none());
    }

    #[test]
    fn the_anchor_binds_the_count_the_hash_and_the_secret() {
        let k = key("s3cret");
        let a = k.seal(7, "ab");
        assert!(a.starts_with("v1:") && a.len() == 3 + 64, "{a}");
        assert!(k.matches(7, "ab", &a));
        assert!(!k.matches(8, "ab", &a), "another count");
        assert!(!k.matches(7, "ac", &a), "another hash");
        assert!(!key("other").matches(7, "ab", &a), "another secret");
        assert!(!k.matches(7, "ab", &a[..20]), "a truncated anchor");
        assert!(!k.matches(7, "ab", ""), "no anchor");
    }

    #[test]
    fn the_anchor_is_the_documented_hmac() {
        let expected = hex::encode(hmac_sha256(b"k", b"concierge-audit-head:v1:1:ff"));
        assert_eq!(key("k").seal(1, "ff"), format!("v1:{expected}"));
    }

    #[test]
    fn the_key_never_prints() {
        assert_eq!(format!("{:?}", key("s3cret")), "AnchorKey(..)");
    }
}
