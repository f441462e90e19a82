//! Appointments in the database: booking a slot within its capacity, a phone's upcoming
//! appointments, cancelling, the day's list for tellers, and the reminders that go out
//! `remind_hours_before` the appointment through the notification port (a log line and one
//! outbox row per webhook, e.g. an SMS gateway's). The rules (hours, capacity) are checked
//! by [`super::Branch`].

use serde::Serialize;
use sqlx::Row;

use crate::store::{now_ms, Db};

/// One appointment as staff see it (phone masked).
#[derive(Debug, Clone, Serialize)]
pub struct Appointment {
    pub code: String,
    pub branch_id: String,
    pub service: String,
    pub day: String,
    pub slot: String,
    pub phone_masked: String,
    pub status: String,
}

/// A booking to write: the slot is `HH:00` or `HH:30`.
pub struct NewBooking<'a> {
    pub branch: &'a str,
    pub service: &'a str,
    pub day: &'a str,
    pub slot: &'a str,
    pub phone_hash: &'a str,
    pub phone_masked: &'a str,
    pub session_id: &'a str,
}

/// Writes the booking under a confirmation code if the slot has fewer than `capacity`
/// booked for the service; `None` when it is full.
pub async fn book(
    db: &Db,
    b: &NewBooking<'_>,
    capacity: u32,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let taken: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM appointments WHERE branch_id = $1 AND service = $2 AND day = $3 \
         AND slot = $4 AND status = 'booked'",
    )
    .bind(b.branch)
    .bind(b.service)
    .bind(b.day)
    .bind(b.slot)
    .fetch_one(&mut **tx)
    .await?;
    if taken >= i64::from(capacity) {
        return Ok(None);
    }
    let code = confirmation_code();
    sqlx::query(
        "INSERT INTO appointments (code, branch_id, service, day, slot, phone_hash, phone_masked, \
         session_id, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'booked', $9)",
    )
    .bind(&code)
    .bind(b.branch)
    .bind(b.service)
    .bind(b.day)
    .bind(b.slot)
    .bind(b.phone_hash)
    .bind(b.phone_masked)
    .bind(b.session_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    tx.commit().await?;
    Ok(Some(code))
}

/// Six characters without look-alikes (no 0/O, 1/I).
fn confirmation_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// An upcoming appointment as the customer is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upcoming {
    pub code: String,
    pub service: String,
    pub day: String,
    pub slot: String,
}

/// The booked appointments of a phone (by its hash) from `today` on, soonest first (five
/// at most).
pub async fn upcoming(
    db: &Db,
    phone_hash: &str,
    today: &str,
) -> Result<Vec<Upcoming>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT code, service, day, slot FROM appointments WHERE phone_hash = $1 \
         AND status = 'booked' AND day >= $2 ORDER BY day, slot LIMIT 5",
    )
    .bind(phone_hash)
    .bind(today)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Upcoming {
            code: r.get("code"),
            service: r.get("service"),
            day: r.get("day"),
            slot: r.get("slot"),
        })
        .collect())
}

/// Cancels the booked appointment `code` of the phone (by its hash); false when there is
/// no such booked appointment.
pub async fn cancel(db: &Db, code: &str, phone_hash: &str) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE appointments SET status = 'cancelled', cancelled_at = $3 \
         WHERE code = $1 AND phone_hash = $2 AND status = 'booked'",
    )
    .bind(code)
    .bind(phone_hash)
    .bind(now_ms())
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// The appointments of a branch on a day, by slot.
pub async fn list(db: &Db, branch: &str, day: &str) -> Result<Vec<Appointment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT code, branch_id, service, day, slot, phone_masked, status FROM appointments \
         WHERE branch_id = $1 AND day = $2 ORDER BY slot, code",
    )
    .bind(branch)
    .bind(day)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Appointment {
            code: r.get("code"),
            branch_id: r.get("branch_id"),
            service: r.get("service"),
            day: r.get("day"),
            slot: r.get("slot"),
            phone_masked: r.get("phone_masked"),
            status: r.get("status"),
        })
        .collect())
}

/// Sends the reminders that are due at `now`: booked appointments starting within
/// `hours_before` hours, not yet reminded. Each is marked by a conditional update, so with
/// several nodes each reminder goes out once. Returns how many this node sent.
pub async fn remind(
    db: &Db,
    now: i64,
    hours_before: u32,
    webhooks: &[String],
) -> Result<usize, sqlx::Error> {
    let tz = crate::domain::clock::branch_offset();
    let Some(now_local) =
        chrono::DateTime::from_timestamp_millis(now).map(|t| t.with_timezone(&tz))
    else {
        return Ok(0);
    };
    let horizon = now_local + chrono::Duration::hours(i64::from(hours_before));
    let (today, last_day) = (
        now_local.date_naive().to_string(),
        horizon.date_naive().to_string(),
    );
    let rows = sqlx::query(
        "SELECT code, branch_id, service, day, slot, phone_masked FROM appointments \
         WHERE status = 'booked' AND reminded_at IS NULL AND day >= $1 AND day <= $2",
    )
    .bind(&today)
    .bind(&last_day)
    .fetch_all(&db.pool)
    .await?;
    let mut sent = 0;
    for r in &rows {
        let (code, day, slot): (String, String, String) =
            (r.get("code"), r.get("day"), r.get("slot"));
        let starts =
            chrono::NaiveDateTime::parse_from_str(&format!("{day} {slot}"), "%Y-%m-%d %H:%M")
                .ok()
                .and_then(|t| t.and_local_timezone(tz).single());
        let Some(starts) = starts else { continue };
        if starts <= now_local || starts > horizon {
            continue;
        }
        let mut tx = db.begin_write().await?;
        let n = sqlx::query(
            "UPDATE appointments SET reminded_at = $2 WHERE code = $1 AND reminded_at IS NULL",
        )
        .bind(&code)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            continue; // another node sent it
        }
        let event_id = format!("appointment-reminder-{code}");
        let payload = serde_json::json!({
            "event_id": event_id,
            "type": "appointment.reminder",
            "at": chrono::DateTime::from_timestamp_millis(now).map(|d| d.to_rfc3339()),
            "appointment": {
                "code": code, "branch_id": r.get::<String, _>("branch_id"),
                "service": r.get::<String, _>("service"), "day": day, "slot": slot,
                "phone_masked": r.get::<String, _>("phone_masked"),
            },
            "text": format!("温馨提示：您预约了{day} {slot}到网点办理业务，确认码{code}。如需取消，可在大堂自助机办理。"),
        })
        .to_string();
        crate::ports::outbox::enqueue(&mut tx, &event_id, webhooks, &payload, now).await?;
        tx.commit().await?;
        tracing::info!(code = %code, day = %day, slot = %slot, "appointment reminder sent");
        sent += 1;
    }
    Ok(sent)
}
