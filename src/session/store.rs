//! Sessions and transcripts in the database. Every stored text is masked first
//! ([`crate::access::mask_pii`]); a turn's lines and the new session state are written in
//! one transaction, so a transcript never has half a turn.

use sqlx::Row;

use crate::access::mask_pii;
use crate::dialog::SessionState;
use crate::store::{now_ms, Db};

/// A stored session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub kiosk_id: String,
    pub branch_id: String,
    pub status: String,
    pub state: SessionState,
    pub updated_at: i64,
}

/// Who said a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Customer,
    Bot,
    System,
    /// A person who took the session over (handoff).
    Staff,
}

impl Speaker {
    fn as_str(self) -> &'static str {
        match self {
            Speaker::Customer => "customer",
            Speaker::Bot => "bot",
            Speaker::System => "system",
            Speaker::Staff => "staff",
        }
    }
}

/// A line to append to a transcript.
#[derive(Debug, Clone)]
pub struct NewLine<'a> {
    pub speaker: Speaker,
    /// `text`, `choice`, `audio`, `device_event`, `session`.
    pub kind: &'a str,
    pub text: &'a str,
    pub turn_id: Option<&'a str>,
}

/// A stored (masked) transcript line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TranscriptLine {
    pub seq: i64,
    pub at: i64,
    pub speaker: String,
    pub kind: String,
    pub text: String,
    pub turn_id: Option<String>,
}

pub const ACTIVE: &str = "active";
pub const ENDED: &str = "ended";

/// Creates a session in state `active`.
pub async fn create(
    db: &Db,
    kiosk_id: &str,
    branch_id: &str,
    state: &SessionState,
) -> Result<SessionRecord, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO sessions (id, kiosk_id, branch_id, status, state, turn_count, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
    )
    .bind(&id)
    .bind(kiosk_id)
    .bind(branch_id)
    .bind(ACTIVE)
    .bind(to_json(state))
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(SessionRecord {
        id,
        kiosk_id: kiosk_id.into(),
        branch_id: branch_id.into(),
        status: ACTIVE.into(),
        state: state.clone(),
        updated_at: now,
    })
}

/// Loads a session by id.
pub async fn load(db: &Db, id: &str) -> Result<Option<SessionRecord>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, kiosk_id, branch_id, status, state, updated_at FROM sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|r| SessionRecord {
        id: r.get(0),
        kiosk_id: r.get(1),
        branch_id: r.get(2),
        status: r.get(3),
        // A state written by an older version that no longer parses starts afresh rather
        // than locking the customer out of their session.
        state: serde_json::from_str(&r.get::<String, _>(4)).unwrap_or_default(),
        updated_at: r.get(5),
    }))
}

/// Appends lines (masked) and saves the state, in one transaction. `end` ends the session.
pub async fn record(
    db: &Db,
    session_id: &str,
    lines: &[NewLine<'_>],
    state: Option<&SessionState>,
    end: Option<&str>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let next: i64 =
        sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM transcript_lines WHERE session_id = $1")
            .bind(session_id)
            .fetch_one(&mut **tx)
            .await?
            .get(0);
    for (i, line) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO transcript_lines (session_id, seq, at, speaker, kind, text, turn_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session_id)
        .bind(next + 1 + i as i64)
        .bind(now)
        .bind(line.speaker.as_str())
        .bind(line.kind)
        .bind(mask_pii(line.text))
        .bind(line.turn_id.map(str::to_string))
        .execute(&mut **tx)
        .await?;
    }
    let turns = lines
        .iter()
        .filter(|l| l.speaker == Speaker::Customer)
        .count() as i64;
    match (state, end) {
        (Some(state), None) => {
            sqlx::query("UPDATE sessions SET state = $1, updated_at = $2, turn_count = turn_count + $3 WHERE id = $4")
                .bind(to_json(state))
                .bind(now)
                .bind(turns)
                .bind(session_id)
                .execute(&mut **tx)
                .await?;
        }
        (state, Some(reason)) => {
            let state_json = state.map(to_json);
            sqlx::query(
                "UPDATE sessions SET state = COALESCE($1, state), updated_at = $2, turn_count = turn_count + $3, \
                 status = $4, ended_at = $2, end_reason = $5 WHERE id = $6",
            )
            .bind(state_json)
            .bind(now)
            .bind(turns)
            .bind(ENDED)
            .bind(reason)
            .bind(session_id)
            .execute(&mut **tx)
            .await?;
        }
        (None, None) => {
            sqlx::query("UPDATE sessions SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(session_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    tx.commit().await
}

/// The whole (masked) transcript of a session, in order.
pub async fn transcript(db: &Db, session_id: &str) -> Result<Vec<TranscriptLine>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, at, speaker, kind, text, turn_id FROM transcript_lines WHERE session_id = $1 ORDER BY seq",
    )
    .bind(session_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| TranscriptLine {
            seq: r.get(0),
            at: r.get(1),
            speaker: r.get(2),
            kind: r.get(3),
            text: r.get(4),
            turn_id: r.get(5),
        })
        .collect())
}

fn to_json(state: &SessionState) -> String {
    serde_json::to_string(state).expect("session state serializes")
}
