//! Staff accounts and their bearer tokens: `concierge user add` creates an account with
//! roles; `POST /v1/auth/login` checks the argon2 password (on the blocking pool, in one of
//! the [`LoginGuard`]'s hashing slots) and issues a token that expires. Operators disable
//! accounts, reset passwords and revoke tokens (`concierge user …`).

use std::sync::OnceLock;

use sqlx::Row;

use crate::access::throttle::{LoginGuard, Refusal};
use crate::access::{tokens, Role};
use crate::store::{now_ms, Db};

/// An authenticated staff member.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaffUser {
    pub id: String,
    pub name: String,
    pub roles: Vec<Role>,
    /// The one branch this person works for; `None`: every branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

impl StaffUser {
    pub fn has_any(&self, roles: &[Role]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }
}

/// Why a staff operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// Names are 1–64 characters without control characters or spaces.
    #[error("invalid user name: use 1-64 characters without spaces")]
    InvalidName,
    /// At least one known role is needed.
    #[error("unknown role `{0}` (roles: teller, remote_expert, content_editor, content_reviewer, admin)")]
    UnknownRole(String),
    /// A user needs at least one role.
    #[error("a user needs at least one role")]
    NoRole,
    /// Passwords are 8–256 characters.
    #[error("the password must be 8 to 256 characters")]
    WeakPassword,
    /// The name is taken.
    #[error("user `{0}` already exists")]
    Exists(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] anyhow::Error),
    /// No hashing slot was free in time.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Hashes a password on the blocking pool (argon2 takes tens of milliseconds of CPU).
async fn hash_off_executor(password: &str) -> Result<String, StaffError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || tokens::hash_password(&password))
        .await
        .map_err(|e| StaffError::Hash(anyhow::anyhow!("hash task: {e}")))?
        .map_err(StaffError::Hash)
}

/// Passwords are 8–256 characters.
fn check_password(password: &str) -> Result<(), StaffError> {
    if password.chars().count() < 8 || password.len() > 256 {
        return Err(StaffError::WeakPassword);
    }
    Ok(())
}

/// Creates a staff account.
pub async fn add_user(
    db: &Db,
    name: &str,
    roles: &str,
    password: &str,
) -> Result<StaffUser, StaffError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(StaffError::InvalidName);
    }
    let roles = Role::parse_list(roles).map_err(StaffError::UnknownRole)?;
    if roles.is_empty() {
        return Err(StaffError::NoRole);
    }
    check_password(password)?;
    let phc = hash_off_executor(password).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let inserted = sqlx::query(
        "INSERT INTO staff_users (id, name, roles, password_hash, enabled, created_at) VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&id)
    .bind(name)
    .bind(Role::join(&roles))
    .bind(phc)
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StaffError::Exists(name.into()));
    }
    Ok(StaffUser {
        id,
        name: name.into(),
        roles,
        branch: None,
    })
}

/// Scopes a staff member to one branch (`None`: every branch).
pub async fn set_branch(db: &Db, name: &str, branch: Option<&str>) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("UPDATE staff_users SET branch_id = $2 WHERE name = $1")
        .bind(name)
        .bind(branch)
        .execute(&db.pool)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Checks a name and password (the argon2 check in one of `guard`'s hashing slots, also
/// for unknown names); on success issues a bearer token valid for `ttl_secs`.
pub async fn login(
    db: &Db,
    guard: &LoginGuard,
    name: &str,
    password: &str,
    ttl_secs: u64,
) -> Result<Option<(String, i64, StaffUser)>, StaffError> {
    let row = sqlx::query(
        "SELECT id, name, roles, password_hash, branch_id FROM staff_users WHERE name = $1 AND enabled = 1",
    )
    .bind(name)
    .fetch_optional(&db.pool)
    .await?;
    // Unknown names spend the same effort as a real check, so timing does not reveal which
    // names exist.
    let phc: Option<String> = row.as_ref().map(|r| r.get(3));
    let password = password.to_string();
    let ok = guard
        .hash(move || match phc {
            Some(phc) => tokens::verify_password(&password, &phc),
            None => {
                let _ = tokens::verify_password(&password, dummy_phc());
                false
            }
        })
        .await?;
    let Some(row) = row.filter(|_| ok) else {
        return Ok(None);
    };
    let user = StaffUser {
        id: row.get(0),
        name: row.get(1),
        roles: Role::parse_list(&row.get::<String, _>(2)).unwrap_or_default(),
        branch: row.get(4),
    };
    let token = tokens::generate("cs_");
    let now = now_ms();
    let expires = now + (ttl_secs as i64) * 1000;
    sqlx::query("INSERT INTO staff_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(tokens::hash(&token))
        .bind(&user.id)
        .bind(now)
        .bind(expires)
        .execute(&db.pool)
        .await?;
    Ok(Some((token, expires, user)))
}

/// The live (unexpired, unrevoked) staff user behind a bearer token.
pub async fn authenticate(db: &Db, token: &str) -> Result<Option<StaffUser>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT u.id, u.name, u.roles, u.branch_id FROM staff_tokens t JOIN staff_users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2 AND u.enabled = 1",
    )
    .bind(tokens::hash(token))
    .bind(now_ms())
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|r| StaffUser {
        id: r.get(0),
        name: r.get(1),
        roles: Role::parse_list(&r.get::<String, _>(2)).unwrap_or_default(),
        branch: r.get(3),
    }))
}

/// Revokes one bearer token (logout).
pub async fn logout(db: &Db, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE staff_tokens SET revoked_at = $1 WHERE token_hash = $2")
        .bind(now_ms())
        .bind(tokens::hash(token))
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Disables an account and revokes its tokens; false when there is no such user.
pub async fn disable(db: &Db, name: &str) -> Result<bool, StaffError> {
    let n = sqlx::query("UPDATE staff_users SET enabled = 0 WHERE name = $1")
        .bind(name)
        .execute(&db.pool)
        .await?
        .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    revoke_tokens(db, name).await?;
    Ok(true)
}

/// Sets a new password and revokes every token of the account; false when there is no
/// such user.
pub async fn reset_password(db: &Db, name: &str, password: &str) -> Result<bool, StaffError> {
    check_password(password)?;
    let phc = hash_off_executor(password).await?;
    let n = sqlx::query("UPDATE staff_users SET password_hash = $2 WHERE name = $1")
        .bind(name)
        .bind(phc)
        .execute(&db.pool)
        .await?
        .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    revoke_tokens(db, name).await?;
    Ok(true)
}

/// Revokes every live token of an account; how many were revoked (`None`: no such user).
pub async fn revoke_tokens(db: &Db, name: &str) -> Result<Option<u64>, StaffError> {
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM staff_users WHERE name = $1")
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    let Some(id) = exists else {
        return Ok(None);
    };
    let n = sqlx::query(
        "UPDATE staff_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(Some(n))
}

/// How many accounts can log in, and how many of them are admins (for `concierge doctor`).
pub async fn count_enabled(db: &Db) -> Result<(usize, usize), sqlx::Error> {
    let roles: Vec<String> = sqlx::query_scalar("SELECT roles FROM staff_users WHERE enabled = 1")
        .fetch_all(&db.pool)
        .await?;
    let admins = roles
        .iter()
        .filter(|r| Role::parse_list(r).is_ok_and(|list| list.contains(&Role::Admin)))
        .count();
    Ok((roles.len(), admins))
}

/// An argon2 hash of a random string (made once, with the same parameters as real ones),
/// verified against when a name is unknown.
fn dummy_phc() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        tokens::hash_password(&tokens::generate_password()).unwrap_or_else(|_| String::new())
    })
}
