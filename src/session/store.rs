//! Sessions and transcripts in the database. Every stored text is masked first
//! ([`crate::access::mask_pii`]); a turn's lines and the new session state are written in
//! one transaction, so a transcript never has half a turn.
//!
//! The state at rest ([`AT_REST`]): the identifiers a journey still needs (a phone for the
//! booking and its reminder, an ID or card number for the bank call) are sealed with the
//! database's keyring ([`crate::domain::vault`]) and opened again on load; a PIN block is
//! never stored; the customer's own words and every other slot are stored masked, except a
//! few values the server made itself. A slot lives only as long as its journey's frame, so
//! a finished journey leaves nothing behind.

use sqlx::Row;

use crate::access::mask_pii;
use crate::dialog::SessionState;
use crate::domain::vault::{self, Keyring};
use crate::store::{now_ms, Db};

/// What a slot's value becomes in `sessions.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtRest {
    /// Encrypted: the journey needs the raw value after a restart or failover.
    Sealed,
    /// Not stored at all.
    Dropped,
    /// Stored as it is: made by the server, never an identifier (a card handle, a date).
    Kept,
    /// Stored masked ([`mask_pii`]): everything else, the customer's words included.
    Masked,
}

/// The slots that are not [`AtRest::Masked`], and why.
pub const AT_REST: &[(&str, AtRest)] = &[
    // The booking, the appointment lookups and the reminder SMS; the bank's phone check.
    ("phone", AtRest::Sealed),
    // The bank's customer lookup after the ID card read.
    ("id_number", AtRest::Sealed),
    // The bank call that picks a card by its number.
    ("card_number", AtRest::Sealed),
    // Used once by the action that checks it (the engine drops it too).
    ("pin_block", AtRest::Dropped),
    // Values the server made: a card handle (a keyed hash), dates and times (their digits
    // would read as a number to the masker).
    ("card", AtRest::Kept),
    ("date", AtRest::Kept),
    ("time", AtRest::Kept),
    ("frozen_at", AtRest::Kept),
];

/// How `slot` is stored.
pub fn at_rest(slot: &str) -> AtRest {
    AT_REST
        .iter()
        .find(|(name, _)| *name == slot)
        .map_or(AtRest::Masked, |(_, how)| *how)
}

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
    .bind(to_json(db, state))
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
        state: from_json(db, &r.get::<String, _>(4)),
        updated_at: r.get(5),
    }))
}

/// Appends lines (masked) and saves the state with the journey marks it carries
/// ([`SessionState::journal`]), in one transaction. `end` ends the session.
pub async fn record(
    db: &Db,
    session_id: &str,
    lines: &[NewLine<'_>],
    state: Option<&SessionState>,
    end: Option<&str>,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    if !lines.is_empty() {
        // One statement for all the lines, numbered after the session's last one.
        let sql = insert_lines_sql(lines.len());
        let mut insert = sqlx::query(&sql).bind(session_id).bind(now);
        for line in lines {
            insert = insert
                .bind(line.speaker.as_str())
                .bind(line.kind)
                .bind(mask_pii(line.text))
                .bind(line.turn_id.map(str::to_string));
        }
        insert.execute(&mut **tx).await?;
    }
    if let Some(marks) = state.map(|s| &s.journal).filter(|j| !j.is_empty()) {
        let sql = insert_journey_sql(marks.len());
        let mut insert = sqlx::query(&sql).bind(session_id).bind(now);
        for m in marks {
            insert = insert
                .bind(m.flow.as_str())
                .bind(m.event.as_str())
                .bind(m.step.as_str());
        }
        insert.execute(&mut **tx).await?;
    }
    // What the engine could not serve goes onto the customer's line that asked it (this
    // turn's: the session's last customer line), for the unanswered-question queue.
    if let Some(miss) = state.and_then(|s| s.misses.iter().min()) {
        sqlx::query(
            "UPDATE transcript_lines SET unanswered = $1 WHERE session_id = $2 AND seq = \
             (SELECT MAX(seq) FROM transcript_lines WHERE session_id = $2 AND speaker = 'customer')",
        )
        .bind(miss.as_str())
        .bind(session_id)
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
                .bind(to_json(db, state))
                .bind(now)
                .bind(turns)
                .bind(session_id)
                .execute(&mut **tx)
                .await?;
        }
        (state, Some(reason)) => {
            // An ended session keeps no identifier: its journeys are over.
            let last = match state {
                Some(s) => Some(s.clone()),
                None => sqlx::query_scalar::<_, String>("SELECT state FROM sessions WHERE id = $1")
                    .bind(session_id)
                    .fetch_optional(&mut **tx)
                    .await?
                    .and_then(|t| serde_json::from_str::<SessionState>(&t).ok()),
            };
            let state_json = last.map(|s| to_json(db, &without_sealed(s)));
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

/// `INSERT … SELECT` of `n` transcript lines numbered from the session's last `seq` on
/// (both engines name a `VALUES` table's columns `column1`, `column2`, …): `$1` the
/// session, `$2` the time, then speaker, kind, text and turn of each line.
fn insert_lines_sql(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let p = 3 + 4 * i;
            format!("({}, ${p}, ${}, ${}, ${})", i + 1, p + 1, p + 2, p + 3)
        })
        .collect();
    format!(
        "INSERT INTO transcript_lines (session_id, seq, at, speaker, kind, text, turn_id) \
         SELECT $1, last.seq + v.column1, $2, v.column2, v.column3, v.column4, v.column5 \
         FROM (SELECT COALESCE(MAX(seq), 0) AS seq FROM transcript_lines WHERE session_id = $1) AS last, \
         (VALUES {}) AS v",
        rows.join(", ")
    )
}

/// `INSERT … SELECT` of `n` journey marks with the session's kiosk and branch: `$1` the
/// session, `$2` the time, then flow, event and step of each mark, in order.
fn insert_journey_sql(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let p = 3 + 3 * i;
            format!("({}, ${p}, ${}, ${})", i + 1, p + 1, p + 2)
        })
        .collect();
    format!(
        "INSERT INTO journey_events (session_id, at, branch_id, kiosk_id, flow, event, step) \
         SELECT $1, $2, s.branch_id, s.kiosk_id, v.column2, v.column3, v.column4 \
         FROM sessions s, (VALUES {}) AS v WHERE s.id = $1 ORDER BY v.column1",
        rows.join(", ")
    )
}

/// The turn of the session's last bot line, if it has one.
pub async fn last_bot_turn(db: &Db, session_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar::<_, Option<String>>(
        "SELECT turn_id FROM transcript_lines WHERE session_id = $1 AND speaker = 'bot' \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(session_id)
    .fetch_optional(&db.pool)
    .await
    .map(Option::flatten)
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

/// The state as stored: slots sealed, dropped or masked by [`AT_REST`], the last reply
/// masked.
fn to_json(db: &Db, state: &SessionState) -> String {
    let ring = vault::of_pool(&db.pool);
    serde_json::to_string(&stored_form(state, &ring)).expect("session state serializes")
}

/// [`to_json`]'s state.
pub fn stored_form(state: &SessionState, ring: &Keyring) -> SessionState {
    let mut stored = state.clone();
    for frame in &mut stored.stack {
        let slots = std::mem::take(&mut frame.slots);
        frame.slots = slots
            .into_iter()
            .filter_map(|(k, v)| {
                let v = match at_rest(&k) {
                    AtRest::Sealed if vault::is_sealed(&v) => v,
                    AtRest::Sealed => ring.seal(&v),
                    AtRest::Dropped => return None,
                    AtRest::Kept => v,
                    AtRest::Masked => mask_pii(&v),
                };
                Some((k, v))
            })
            .collect();
    }
    if let Some(reply) = &mut stored.last_reply {
        reply.text = mask_pii(&reply.text);
        reply.speak = reply.speak.as_deref().map(mask_pii);
    }
    stored
}

/// The state with every [`AtRest::Sealed`] slot removed (its journeys are over).
fn without_sealed(mut state: SessionState) -> SessionState {
    for frame in &mut state.stack {
        frame.slots.retain(|k, _| at_rest(k) != AtRest::Sealed);
    }
    state
}

/// The state from its stored text: sealed slots opened. A slot sealed under a key that is
/// no longer in the ring is forgotten (the journey asks for it again), with a warning.
fn from_json(db: &Db, text: &str) -> SessionState {
    let mut state: SessionState = serde_json::from_str(text).unwrap_or_default();
    let ring = vault::of_pool(&db.pool);
    for frame in &mut state.stack {
        frame.slots.retain(|k, v| {
            if at_rest(k) != AtRest::Sealed || !vault::is_sealed(v) {
                return true;
            }
            match ring.open(v) {
                Ok(plain) => {
                    *v = plain;
                    true
                }
                Err(e) => {
                    tracing::warn!(slot = %k, error = %e, "a sealed slot cannot be opened; forgotten");
                    false
                }
            }
        });
    }
    state
}

/// Re-seals every sealed slot of every stored session under the active key (and seals
/// raw identifiers an older version left); returns how many sessions changed. A session
/// written meanwhile by a turn is left as the turn wrote it (already under the active key).
pub async fn reseal_all(db: &Db, ring: &Keyring) -> anyhow::Result<u64> {
    let rows = sqlx::query("SELECT id, state FROM sessions")
        .fetch_all(&db.pool)
        .await?;
    let mut changed = 0;
    for row in rows {
        let (id, text): (String, String) = (row.get(0), row.get(1));
        let Ok(mut state) = serde_json::from_str::<SessionState>(&text) else {
            continue;
        };
        for frame in &mut state.stack {
            for (k, v) in frame.slots.iter_mut() {
                if at_rest(k) != AtRest::Sealed {
                    continue;
                }
                if !vault::is_sealed(v) {
                    *v = ring.seal(v);
                } else if let Some(moved) = ring.reseal(v)? {
                    *v = moved;
                }
            }
        }
        let new_text = serde_json::to_string(&stored_form(&state, ring))?;
        if new_text == text {
            continue;
        }
        let mut tx = db.begin_write().await?;
        changed += sqlx::query("UPDATE sessions SET state = $1 WHERE id = $2 AND state = $3")
            .bind(&new_text)
            .bind(&id)
            .bind(&text)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        tx.commit().await?;
    }
    Ok(changed)
}
