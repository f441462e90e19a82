//! Appointments in the database: booking a slot within its capacity, a phone's upcoming
//! appointments, cancelling, the day's list for tellers, and the reminders that go out
//! `remind_hours_before` the appointment through the notification port (a log line and one
//! outbox row per webhook, e.g. an SMS gateway's). The rules (hours, capacity) are checked
//! by [`super::Branch`].
//!
//! A phone is stored three ways, none of them in clear: a keyed lookup hash (HMAC-SHA256,
//! to find a customer's appointments), the masked form (for staff) and sealed (for the
//! reminder SMS, opened only when the outbox delivers it). Each slot has a counter row in
//! `appointment_slots`; a booking takes a seat with a conditional update of it, so nodes
//! racing for the last seat cannot overbook (on PostgreSQL's READ COMMITTED as on SQLite).

use serde::Serialize;
use sqlx::Row;

use crate::domain::vault::Keyring;
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
    /// The phone sealed ([`Keyring::seal`]), for the reminder.
    pub phone_sealed: &'a str,
    pub session_id: &'a str,
}

/// Writes the booking under a confirmation code if the slot has fewer than `capacity`
/// booked for the service; `None` when it is full. The seat is taken by a conditional
/// update of the slot's counter (`booked < capacity`), which a concurrent booking of the
/// same slot waits for and then sees: exactly `capacity` bookings win.
pub async fn book(
    db: &Db,
    b: &NewBooking<'_>,
    capacity: u32,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO appointment_slots (branch_id, service, day, slot, booked) \
         VALUES ($1, $2, $3, $4, 0) ON CONFLICT (branch_id, service, day, slot) DO NOTHING",
    )
    .bind(b.branch)
    .bind(b.service)
    .bind(b.day)
    .bind(b.slot)
    .execute(&mut **tx)
    .await?;
    let seat = sqlx::query(
        "UPDATE appointment_slots SET booked = booked + 1 WHERE branch_id = $1 AND service = $2 \
         AND day = $3 AND slot = $4 AND booked < $5",
    )
    .bind(b.branch)
    .bind(b.service)
    .bind(b.day)
    .bind(b.slot)
    .bind(i64::from(capacity))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if seat == 0 {
        return Ok(None);
    }
    let code = confirmation_code();
    sqlx::query(
        "INSERT INTO appointments (code, branch_id, service, day, slot, phone_hash, phone_masked, \
         session_id, status, created_at, phone_sealed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'booked', $9, $10)",
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
    .bind(b.phone_sealed)
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

/// Cancels the booked appointment `code` of the phone (by its hash) and frees its seat;
/// false when there is no such booked appointment (an empty code or hash matches none).
pub async fn cancel(db: &Db, code: &str, phone_hash: &str) -> Result<bool, sqlx::Error> {
    if code.is_empty() || phone_hash.is_empty() {
        return Ok(false);
    }
    let mut tx = db.begin_write().await?;
    let row = sqlx::query(
        "UPDATE appointments SET status = 'cancelled', cancelled_at = $3 \
         WHERE code = $1 AND phone_hash = $2 AND status = 'booked' \
         RETURNING branch_id, service, day, slot",
    )
    .bind(code)
    .bind(phone_hash)
    .bind(now_ms())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    sqlx::query(
        "UPDATE appointment_slots SET booked = booked - 1 WHERE branch_id = $1 AND service = $2 \
         AND day = $3 AND slot = $4 AND booked > 0",
    )
    .bind(row.get::<String, _>("branch_id"))
    .bind(row.get::<String, _>("service"))
    .bind(row.get::<String, _>("day"))
    .bind(row.get::<String, _>("slot"))
    .execute(&mut **tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Re-seals the phones of every appointment under the active key and recomputes their
/// lookup hashes under the ring's lookup secret; how many changed.
pub async fn reseal_all(db: &Db, ring: &Keyring) -> anyhow::Result<u64> {
    let rows = sqlx::query(
        "SELECT code, phone_sealed, phone_hash FROM appointments WHERE phone_sealed IS NOT NULL",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut changed = 0;
    for row in rows {
        let (code, sealed, hash): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let moved = ring.reseal(&sealed)?;
        // The lookup hash under the ring's lookup secret (it changes when the secret does).
        let rehashed = ring.lookup_hash(&ring.open(&sealed)?);
        if moved.is_none() && rehashed == hash {
            continue;
        }
        let mut tx = db.begin_write().await?;
        changed += sqlx::query(
            "UPDATE appointments SET phone_sealed = $1, phone_hash = $2 \
             WHERE code = $3 AND phone_sealed = $4",
        )
        .bind(moved.as_deref().unwrap_or(&sealed))
        .bind(&rehashed)
        .bind(&code)
        .bind(&sealed)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        tx.commit().await?;
    }
    Ok(changed)
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
        "SELECT code, branch_id, service, day, slot, phone_masked, phone_sealed FROM appointments \
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
        let mut payload = serde_json::json!({
            "event_id": event_id,
            "type": "appointment.reminder",
            "at": chrono::DateTime::from_timestamp_millis(now).map(|d| d.to_rfc3339()),
            "appointment": {
                "code": code, "branch_id": r.get::<String, _>("branch_id"),
                "service": r.get::<String, _>("service"), "day": day, "slot": slot,
                "phone_masked": r.get::<String, _>("phone_masked"),
            },
            "text": format!("温馨提示：您预约了{day} {slot}到网点办理业务，确认码{code}。如需取消，可在大堂自助机办理。"),
        });
        // The number for the SMS gateway, still sealed: the outbox opens it when it
        // delivers ([`crate::ports::outbox`]), so the table never holds it in clear.
        if let Some(sealed) = r.get::<Option<String>, _>("phone_sealed") {
            payload["appointment"]["phone"] = serde_json::Value::String(sealed);
        }
        let payload = payload.to_string();
        crate::ports::outbox::enqueue(&mut tx, &event_id, webhooks, &payload, now).await?;
        tx.commit().await?;
        db.wake.poke(crate::store::wake::Topic::Outbox);
        tracing::info!(code = %code, day = %day, slot = %slot, "appointment reminder sent");
        sent += 1;
    }
    Ok(sent)
}
