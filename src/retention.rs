//! Retention: how long what sessions and staff leave behind is kept (`[retention]`). A purge
//! job on every node deletes, in small batches, transcript lines, ended sessions, device
//! calls, delivered and dead webhook rows, past appointments and expired staff tokens older
//! than their configured days, and logs how many rows went. It also ends sessions abandoned
//! mid-journey (the kiosk went away and never resumed) so their sealed identifiers go, and
//! forgets the sealed phone of an appointment once its day has passed (the reminder is
//! sent by then). Several nodes purging at once is harmless: a row is deleted
//! once, whoever gets there first.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;
use crate::store::{now_ms, Db};

/// Rows deleted in one statement, so a purge never holds the database for long.
const BATCH: i64 = 2000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub transcript_lines: u64,
    pub sessions: u64,
    pub device_calls: u64,
    pub outbox: u64,
    pub staff_tokens: u64,
    pub appointments: u64,
    /// Appointments whose day has passed that still had a sealed phone.
    pub appointment_phones: u64,
    /// Sessions abandoned mid-journey, now ended (not deleted).
    pub abandoned_sessions: u64,
}

impl Purged {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.transcript_lines
            + self.sessions
            + self.device_calls
            + self.outbox
            + self.staff_tokens
            + self.appointments
            + self.appointment_phones
            + self.abandoned_sessions
    }
}

/// The cut-off time for `days` before `now` (`None`: kept forever).
fn cutoff(days: u32, now: i64) -> Option<i64> {
    (days > 0).then(|| now - i64::from(days) * DAY_MS)
}

/// The branch's calendar day (`YYYY-MM-DD`) at `ms` since the epoch.
fn branch_day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&crate::domain::clock::branch_offset())
        .format("%Y-%m-%d")
        .to_string()
}

/// Runs `delete` (a `DELETE … WHERE key IN (SELECT key … LIMIT $2)` with `$1` = the
/// cut-off) until a batch comes back short; returns how many rows went.
async fn in_batches(db: &Db, delete: &str, cut: i64) -> Result<u64, sqlx::Error> {
    let mut gone = 0;
    loop {
        let n = sqlx::query(delete)
            .bind(cut)
            .bind(BATCH)
            .execute(&db.pool)
            .await?
            .rows_affected();
        gone += n;
        if n < BATCH as u64 {
            return Ok(gone);
        }
    }
}

/// Applies `policy` once, as of `now` (ms since the epoch).
pub async fn purge(db: &Db, policy: &RetentionSettings, now: i64) -> Result<Purged, sqlx::Error> {
    let mut p = Purged::default();
    if let Some(cut) = cutoff(policy.ended_sessions_days, now) {
        // A session's transcript goes with it (the lines refer to the session).
        p.transcript_lines += in_batches(
            db,
            "DELETE FROM transcript_lines WHERE id IN (SELECT l.id FROM transcript_lines l \
             JOIN sessions s ON s.id = l.session_id \
             WHERE s.status = 'ended' AND s.ended_at < $1 LIMIT $2)",
            cut,
        )
        .await?;
        p.sessions = in_batches(
            db,
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
             WHERE status = 'ended' AND ended_at < $1 LIMIT $2)",
            cut,
        )
        .await?;
    }
    if let Some(cut) = cutoff(policy.transcripts_days, now) {
        p.transcript_lines += in_batches(
            db,
            "DELETE FROM transcript_lines WHERE id IN (SELECT id FROM transcript_lines \
             WHERE at < $1 LIMIT $2)",
            cut,
        )
        .await?;
    }
    if let Some(cut) = cutoff(policy.device_calls_days, now) {
        p.device_calls = in_batches(
            db,
            "DELETE FROM device_calls WHERE id IN (SELECT id FROM device_calls \
             WHERE at < $1 LIMIT $2)",
            cut,
        )
        .await?;
    }
    if let Some(cut) = cutoff(policy.delivered_outbox_days, now) {
        p.outbox = in_batches(
            db,
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
             WHERE state = 'delivered' AND delivered_at < $1 LIMIT $2)",
            cut,
        )
        .await?;
    }
    if let Some(cut) = cutoff(policy.dead_outbox_days, now) {
        p.outbox += in_batches(
            db,
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
             WHERE state = 'dead' AND created_at < $1 LIMIT $2)",
            cut,
        )
        .await?;
    }
    let today = branch_day(now);
    p.appointment_phones = sqlx::query(
        "UPDATE appointments SET phone_sealed = NULL WHERE day < $1 AND phone_sealed IS NOT NULL",
    )
    .bind(&today)
    .execute(&db.pool)
    .await?
    .rows_affected();
    if let Some(cut) = cutoff(policy.appointments_days, now) {
        let day = branch_day(cut);
        p.appointments = sqlx::query("DELETE FROM appointments WHERE day < $1")
            .bind(&day)
            .execute(&db.pool)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM appointment_slots WHERE day < $1")
            .bind(&day)
            .execute(&db.pool)
            .await?;
    }
    if policy.abandoned_session_hours > 0 {
        let cut = now - i64::from(policy.abandoned_session_hours) * 3_600_000;
        let blank = serde_json::to_string(&crate::dialog::SessionState::default())
            .unwrap_or_else(|_| "{}".into());
        loop {
            let n = sqlx::query(
                "UPDATE sessions SET status = 'ended', ended_at = $1, end_reason = 'abandoned', \
                 state = $2 WHERE id IN (SELECT id FROM sessions \
                 WHERE status = 'active' AND updated_at < $3 LIMIT $4)",
            )
            .bind(now)
            .bind(&blank)
            .bind(cut)
            .bind(BATCH)
            .execute(&db.pool)
            .await?
            .rows_affected();
            p.abandoned_sessions += n;
            if n < BATCH as u64 {
                break;
            }
        }
    }
    if let Some(cut) = cutoff(policy.expired_staff_tokens_days, now) {
        p.staff_tokens = in_batches(
            db,
            "DELETE FROM staff_tokens WHERE token_hash IN (SELECT token_hash FROM staff_tokens \
             WHERE expires_at < $1 OR revoked_at < $1 LIMIT $2)",
            cut,
        )
        .await?;
    }
    Ok(p)
}

/// Purges every `policy.every_secs` until `stop`, logging the counts (a failure is logged
/// and tried again next time).
pub fn spawn(db: Db, policy: RetentionSettings, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(policy.every_secs.max(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {}
            }
            match purge(&db, &policy, now_ms()).await {
                Ok(p) => tracing::info!(
                    transcript_lines = p.transcript_lines,
                    sessions = p.sessions,
                    device_calls = p.device_calls,
                    outbox = p.outbox,
                    staff_tokens = p.staff_tokens,
                    appointments = p.appointments,
                    appointment_phones = p.appointment_phones,
                    abandoned_sessions = p.abandoned_sessions,
                    total = p.total(),
                    "retention purge"
                ),
                Err(e) => tracing::warn!(error = %e, "retention purge failed; trying again later"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_forever() {
        assert_eq!(cutoff(0, 10 * DAY_MS), None);
        assert_eq!(cutoff(3, 10 * DAY_MS), Some(7 * DAY_MS));
    }
}
