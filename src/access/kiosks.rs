//! Kiosk registry: kiosks belong to a branch and authenticate with device tokens, one per
//! peer (`screen` or `devices`). Tokens are shown once at registration and stored hashed.

use kiosk_protocol::PeerRole;
use sqlx::Row;

use crate::access::tokens;
use crate::domain::names::KioskId;
use crate::store::{now_ms, Db};

/// A registered kiosk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kiosk {
    pub id: String,
    pub branch_id: String,
    pub enabled: bool,
}

/// Why a kiosk operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KioskError {
    /// Kiosk and branch ids are 1–64 characters of letters, digits, `-` and `_`.
    #[error("invalid {what} `{value}`: use 1-64 letters, digits, '-' or '_'")]
    InvalidId { what: &'static str, value: String },
    /// The kiosk is registered with another branch.
    #[error("kiosk `{0}` is already registered with branch `{1}`")]
    BranchMismatch(String, String),
    /// No kiosk with this id.
    #[error("kiosk `{0}` is not registered")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Outcome of checking a kiosk's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KioskAuth {
    Ok(Kiosk),
    /// No such kiosk, or it is disabled (for the log: peers get the same answer as for
    /// [`KioskAuth::BadToken`], so they cannot tell which kiosk ids exist).
    UnknownKiosk,
    /// Missing, wrong, revoked, or issued for another peer role.
    BadToken,
}

/// Checks an operator-supplied id: 1–64 of `[A-Za-z0-9_-]` (the shape of
/// [`KioskId`] and [`crate::domain::names::BranchId`] alike).
pub fn validate_id(what: &'static str, value: &str) -> Result<(), KioskError> {
    if KioskId::parse(value).is_ok() {
        Ok(())
    } else {
        Err(KioskError::InvalidId {
            what,
            value: value.chars().take(80).collect(),
        })
    }
}

pub fn role_str(role: PeerRole) -> &'static str {
    match role {
        PeerRole::Screen => "screen",
        PeerRole::Devices => "devices",
    }
}

/// Registers the kiosk (if new) and issues a token for `role`; returns the plain token.
pub async fn register(
    db: &Db,
    id: &str,
    branch: &str,
    role: PeerRole,
) -> Result<String, KioskError> {
    validate_id("kiosk id", id)?;
    validate_id("branch id", branch)?;
    let mut tx = db.begin_write().await?;
    let existing = sqlx::query("SELECT branch_id FROM kiosks WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    match existing {
        Some(row) => {
            let b: String = row.get(0);
            if b != branch {
                return Err(KioskError::BranchMismatch(id.into(), b));
            }
        }
        None => {
            sqlx::query(
                "INSERT INTO kiosks (id, branch_id, enabled, created_at) VALUES ($1, $2, 1, $3)",
            )
            .bind(id)
            .bind(branch)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
        }
    }
    let token = tokens::generate("ck_");
    sqlx::query(
        "INSERT INTO kiosk_tokens (id, kiosk_id, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(id)
    .bind(role_str(role))
    .bind(tokens::hash(&token))
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Revokes every token of a kiosk; returns how many were revoked.
pub async fn revoke_tokens(db: &Db, id: &str) -> Result<u64, KioskError> {
    let kiosk = find(db, id).await?;
    if kiosk.is_none() {
        return Err(KioskError::NotFound(id.into()));
    }
    let done = sqlx::query(
        "UPDATE kiosk_tokens SET revoked_at = $1 WHERE kiosk_id = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes every live token of a kiosk except the newest of each peer role: rotating a
/// kiosk's tokens without taking it offline (issue a new one, install it, then revoke the
/// older ones). How many were revoked.
pub async fn revoke_older_tokens(db: &Db, id: &str) -> Result<u64, KioskError> {
    if find(db, id).await?.is_none() {
        return Err(KioskError::NotFound(id.into()));
    }
    let done = sqlx::query(
        "UPDATE kiosk_tokens SET revoked_at = $1 WHERE kiosk_id = $2 AND revoked_at IS NULL \
         AND created_at < (SELECT MAX(t.created_at) FROM kiosk_tokens t \
         WHERE t.kiosk_id = kiosk_tokens.kiosk_id AND t.role = kiosk_tokens.role \
         AND t.revoked_at IS NULL)",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

pub async fn find(db: &Db, id: &str) -> Result<Option<Kiosk>, sqlx::Error> {
    let row = sqlx::query("SELECT id, branch_id, enabled FROM kiosks WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| Kiosk {
        id: r.get(0),
        branch_id: r.get(1),
        enabled: r.get::<i64, _>(2) != 0,
    }))
}

pub async fn list(db: &Db) -> Result<Vec<Kiosk>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, branch_id, enabled FROM kiosks ORDER BY id")
        .fetch_all(&db.pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Kiosk {
            id: r.get(0),
            branch_id: r.get(1),
            enabled: r.get::<i64, _>(2) != 0,
        })
        .collect())
}

/// Checks that `token` is a live token of kiosk `id` for peer `role`, with one indexed
/// query whatever is wrong, so an unknown kiosk and a wrong token cost the same. Live
/// connections call it again every few seconds (revocation, disabling).
pub async fn authenticate(
    db: &Db,
    id: &str,
    token: Option<&str>,
    role: PeerRole,
) -> Result<KioskAuth, sqlx::Error> {
    let row = sqlx::query(
        "SELECT k.id, k.branch_id, k.enabled, t.role FROM kiosks k LEFT JOIN kiosk_tokens t \
         ON t.kiosk_id = k.id AND t.token_hash = $1 AND t.revoked_at IS NULL WHERE k.id = $2",
    )
    .bind(tokens::hash(token.unwrap_or_default()))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row.filter(|r| r.get::<i64, _>(2) != 0) else {
        return Ok(KioskAuth::UnknownKiosk);
    };
    let token_role: Option<String> = row.get(3);
    Ok(match token_role {
        Some(r) if token.is_some() && r == role_str(role) => KioskAuth::Ok(Kiosk {
            id: row.get(0),
            branch_id: row.get(1),
            enabled: true,
        }),
        _ => KioskAuth::BadToken,
    })
}
