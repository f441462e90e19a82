//! The outbox: delivering ticket events to webhooks, at least once, from any node.
//!
//! The tickets code writes one `outbox` row per event and per webhook in the same transaction
//! as the change itself; this module owns everything after that: claiming due rows so that
//! several nodes never send the same row at the same time ([`deliver_due`]), signing and
//! POSTing them, retrying with capped exponential backoff and jitter, moving rows that keep
//! failing to the `dead` state, putting rows back in line ([`replay`]), and counting rows by
//! state for the CLI and metrics ([`counts`]). [`spawn`] runs delivery in the background.
//!
//! A receiver gets the event's JSON exactly as stored, with `X-Concierge-Event-Id` (receivers
//! dedupe on it: a replay or a retry after a lost answer sends the same event again),
//! `X-Concierge-Delivery-Attempt` and `X-Concierge-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>" keyed with the webhook's secret>` (Stripe-style): the
//! timestamp is signed with the body, so a receiver that rejects old timestamps
//! ([`verify_signature`], 5 minutes is usual) cannot be fed a recorded request again later.
//! With traces on ([`crate::telemetry::trace`]), a row keeps the trace context of the turn
//! that caused its event, and the delivery sends `traceparent` in that trace.
//!
//! A payload may carry sealed values (an appointment reminder's phone number for the SMS
//! gateway, [`crate::domain::vault`]): the row keeps them sealed, and they are opened only
//! into the request body ([`open_sealed`]); `concierge keys rotate` re-seals them
//! ([`reseal_payloads`]).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{OutboxSettings, WebhookSettings};
use crate::store::wake::{next_look, Topic};
use crate::store::{now_ms, Db};

/// Rows claimed by one [`deliver_due`] call at most.
const BATCH: i64 = 20;

/// How much longer than the request timeout a claim lasts: room for writing the result back.
/// A node that dies mid-delivery blocks its rows for `timeout_ms` plus this, not longer.
const CLAIM_MARGIN_MS: i64 = 5_000;

/// The longest `last_error` kept (in characters).
const MAX_ERROR_CHARS: usize = 200;

/// Queues `payload` (JSON text carrying `event_id`) for every webhook in `targets`, inside
/// the caller's transaction — so an event and its deliveries are written together or not
/// at all. The current trace context goes with each row: the delivery continues it.
pub async fn enqueue(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    event_id: &str,
    targets: &[String],
    payload: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let traceparent = crate::telemetry::trace::traceparent();
    for target in targets {
        sqlx::query(
            "INSERT INTO outbox (id, event_id, target, payload, state, attempts, next_attempt_at, \
             claimed_until, last_error, created_at, delivered_at, traceparent) \
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, 0, NULL, $5, NULL, $6)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(event_id)
        .bind(target)
        .bind(payload)
        .bind(now)
        .bind(traceparent.as_deref())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The `X-Concierge-Signature` value of `body` sent at `timestamp` (Unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256 (RFC 2104) of "<timestamp>.<body bytes>">`, keyed with
/// `secret`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(signed_mac(secret, timestamp, body))
    )
}

fn signed_mac(secret: &[u8], timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    hmac_sha256(secret, &message)
}

/// Why a receiver refuses a signed request ([`verify_signature`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=<unix seconds>,v1=<64 hex digits>[,v1=…]`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further from the receiver's clock than the tolerance: a replay of
    /// an old request (or a clock far off).
    #[error(
        "signature timestamp {age_secs} s away from now, more than the {tolerance_secs} s allowed"
    )]
    Stale { age_secs: i64, tolerance_secs: i64 },
    /// No `v1` value matches the body and the timestamp under this secret.
    #[error("signature does not match")]
    Mismatch,
}

/// The longest `X-Concierge-Signature` header [`verify_signature`] reads.
const MAX_SIGNATURE_HEADER: usize = 1024;

/// What a webhook receiver runs: checks an `X-Concierge-Signature` header against the raw
/// `body` and `secret`, refusing a timestamp more than `tolerance_secs` away from `now`
/// (Unix seconds). Several `v1=` values (one per secret during a rotation) are accepted if
/// any matches. Compares in constant time.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    if header.len() > MAX_SIGNATURE_HEADER {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut macs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?)
            }
            Some(("v1", mac)) => {
                let mac = hex::decode(mac).map_err(|_| SignatureError::Malformed)?;
                macs.push(<[u8; 32]>::try_from(mac).map_err(|_| SignatureError::Malformed)?);
            }
            // Other schemes are ignored, as a receiver of a newer sender would.
            Some((_, _)) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let Some(timestamp) = timestamp.filter(|_| !macs.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    let age_secs = now.saturating_sub(timestamp).saturating_abs();
    if age_secs > tolerance_secs {
        return Err(SignatureError::Stale {
            age_secs,
            tolerance_secs,
        });
    }
    let expected = signed_mac(secret, timestamp, body);
    let same = |mac: &[u8; 32]| mac.iter().zip(&expected).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
    if macs.iter().any(same) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` keyed with `key` (also the audit chain's anchor).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The wait after the `attempts`-th failed attempt (1 = the first), before jitter:
/// `base_ms * 2^(attempts-1)`, capped at `max_ms`.
pub fn backoff_ms(attempts: u32, base_ms: u64, max_ms: u64) -> u64 {
    let doublings = attempts.saturating_sub(1).min(63);
    base_ms.saturating_mul(1u64 << doublings).min(max_ms)
}

/// [`backoff_ms`] less up to 20 % at random, so that rows failing together (a receiver that
/// went down) spread out when they come back; the cap is never exceeded.
fn jittered(delay_ms: u64) -> u64 {
    let spread = delay_ms / 5;
    delay_ms - rand::thread_rng().gen_range(0..=spread)
}

/// The payload with its sealed strings opened, for the request body only. A value that
/// cannot be opened (its key was removed too early) stays sealed, with an error logged.
fn open_sealed(db: &Db, payload: String) -> String {
    if !payload.contains(crate::domain::vault::PREFIX) {
        return payload;
    }
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&payload) else {
        return payload;
    };
    let ring = crate::domain::vault::of_pool(&db.pool);
    match crate::domain::vault::map_sealed(&mut value, &mut |s| ring.open(s).map(Some)) {
        Ok(_) => value.to_string(),
        Err(e) => {
            tracing::error!(error = %e, "a sealed value of an outbox payload cannot be opened");
            payload
        }
    }
}

/// Re-seals the sealed values of every stored payload under the active key; how many rows
/// changed.
pub async fn reseal_payloads(db: &Db, ring: &crate::domain::vault::Keyring) -> anyhow::Result<u64> {
    let pattern = format!("%{}%", crate::domain::vault::PREFIX);
    let rows = sqlx::query("SELECT id, payload FROM outbox WHERE payload LIKE $1")
        .bind(pattern)
        .fetch_all(&db.pool)
        .await
        .context("select sealed outbox payloads")?;
    let mut changed = 0;
    for row in rows {
        let (id, payload): (String, String) = (row.try_get("id")?, row.try_get("payload")?);
        let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&payload) else {
            continue;
        };
        if crate::domain::vault::map_sealed(&mut value, &mut |s| ring.reseal(s))? == 0 {
            continue;
        }
        let mut tx = db.begin_write().await?;
        changed += sqlx::query("UPDATE outbox SET payload = $1 WHERE id = $2 AND payload = $3")
            .bind(value.to_string())
            .bind(&id)
            .bind(&payload)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        tx.commit().await?;
    }
    Ok(changed)
}

/// Which rows [`replay`] puts back in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Rows that gave up (`dead`).
    Dead,
    /// Every row of one event (each of its webhooks), whatever its state.
    Event(String),
    /// Every row, delivered ones included: a receiver that lost its data gets it all again.
    All,
}

/// One claimed row.
struct Claimed {
    id: String,
    event_id: String,
    target: String,
    payload: String,
    /// Attempts made before this one.
    attempts: i64,
    /// Our claim's `claimed_until`: the result is written only while the claim is still ours.
    claim: i64,
    /// The trace context of the turn that caused the event, if it was traced.
    traceparent: Option<String>,
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    /// No webhook of that name is configured: nothing was sent.
    UnknownTarget,
    Failed(String),
}

/// Claims up to 20 due rows, POSTs each to its webhook (concurrently) and records the
/// results; returns how many were delivered.
///
/// Safe on several nodes at once: a row is this node's only if its conditional claim (an
/// UPDATE that pushes `claimed_until` past the request timeout) changed it. A 2xx answer
/// marks the row `delivered`; anything else counts an attempt and schedules the next one
/// with backoff, or marks the row `dead` after `max_attempts`. `attempts` counts every
/// request made, the successful one included. (Not a span itself: it runs every
/// `poll_ms`; each delivery is one, [`attempt`].)
pub async fn deliver_due(
    db: &Db,
    settings: &OutboxSettings,
    client: &reqwest::Client,
) -> anyhow::Result<usize> {
    let claimed = claim(db, settings.timeout_ms).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let outcomes =
        futures_util::future::join_all(claimed.iter().map(|row| attempt(row, settings, client)))
            .await;
    let mut delivered = 0;
    for (row, outcome) in claimed.iter().zip(outcomes) {
        if matches!(outcome, Outcome::Delivered) {
            delivered += 1;
        }
        record(db, settings, row, outcome).await?;
    }
    Ok(delivered)
}

async fn claim(db: &Db, timeout_ms: u64) -> anyhow::Result<Vec<Claimed>> {
    let now = now_ms();
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
         AND claimed_until < $1 ORDER BY next_attempt_at, id LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(&db.pool)
    .await
    .context("select due outbox rows")?;
    let until = now
        .saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX))
        .saturating_add(CLAIM_MARGIN_MS);
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        // One short transaction per row: concurrent claimers never hold several row locks
        // (no deadlock), and the loser of a race sees the winner's claim and changes nothing.
        let mut tx = db.begin_write().await.context("begin outbox claim")?;
        let row = sqlx::query(
            "UPDATE outbox SET claimed_until = $1 WHERE id = $2 AND state = 'pending' \
             AND next_attempt_at <= $3 AND claimed_until < $3 \
             RETURNING event_id, target, payload, attempts, traceparent",
        )
        .bind(until)
        .bind(&id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await
        .context("claim outbox row")?;
        tx.commit().await.context("commit outbox claim")?;
        if let Some(row) = row {
            claimed.push(Claimed {
                id,
                event_id: row.try_get("event_id")?,
                target: row.try_get("target")?,
                payload: open_sealed(db, row.try_get("payload")?),
                attempts: row.try_get("attempts")?,
                claim: until,
                traceparent: row.try_get("traceparent")?,
            });
        }
    }
    Ok(claimed)
}

/// One delivery, traced as `webhook` in the trace of the turn that caused the event.
async fn attempt(row: &Claimed, settings: &OutboxSettings, client: &reqwest::Client) -> Outcome {
    let span = tracing::info_span!(
        parent: None,
        "webhook",
        target = %row.target,
        event_id = %row.event_id,
        attempt = row.attempts + 1,
        status = tracing::field::Empty
    );
    crate::telemetry::trace::continue_trace(&span, row.traceparent.as_deref());
    async {
        let Some(hook) = settings.webhooks.iter().find(|w| w.name == row.target) else {
            return Outcome::UnknownTarget;
        };
        let result = post(row, hook, settings.timeout_ms, client).await;
        if let Ok(status) = &result {
            tracing::Span::current().record("status", status.as_u16());
        }
        match result {
            Ok(status) if status.is_success() => Outcome::Delivered,
            Ok(status) => Outcome::Failed(format!("HTTP {}", status.as_u16())),
            Err(e) => Outcome::Failed(describe(&e, settings.timeout_ms)),
        }
    }
    .instrument(span)
    .await
}

async fn post(
    row: &Claimed,
    hook: &WebhookSettings,
    timeout_ms: u64,
    client: &reqwest::Client,
) -> Result<reqwest::StatusCode, reqwest::Error> {
    let body = row.payload.clone().into_bytes();
    let sent_at = chrono::Utc::now().timestamp();
    let signed = signature(hook.secret.expose_secret().as_bytes(), sent_at, &body);
    let mut request = client.post(&hook.url);
    if let Some(parent) = crate::telemetry::trace::traceparent() {
        request = request.header(crate::telemetry::trace::TRACEPARENT, parent);
    }
    let response = request
        .timeout(Duration::from_millis(timeout_ms))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Concierge-Event-Id", &row.event_id)
        .header("X-Concierge-Signature", signed)
        .header(
            "X-Concierge-Delivery-Attempt",
            (row.attempts + 1).to_string(),
        )
        .body(body)
        .send()
        .await?;
    Ok(response.status())
}

/// A short description of a failed request, without the URL (it may carry a token).
fn describe(e: &reqwest::Error, timeout_ms: u64) -> String {
    let text = if e.is_timeout() {
        format!("timed out after {timeout_ms} ms")
    } else if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_builder() {
        "invalid webhook url".to_string()
    } else {
        let mut text = "request failed".to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    };
    text.chars().take(MAX_ERROR_CHARS).collect()
}

async fn record(
    db: &Db,
    settings: &OutboxSettings,
    row: &Claimed,
    outcome: Outcome,
) -> anyhow::Result<()> {
    let now = now_ms();
    let mut tx = db.begin_write().await.context("begin outbox result")?;
    let (changed, failure) = match outcome {
        Outcome::Delivered => {
            let changed = sqlx::query(
                "UPDATE outbox SET state = 'delivered', delivered_at = $1, \
                 attempts = attempts + 1, last_error = NULL, claimed_until = 0 \
                 WHERE id = $2 AND claimed_until = $3",
            )
            .bind(now)
            .bind(&row.id)
            .bind(row.claim)
            .execute(&mut **tx)
            .await
            .context("mark outbox row delivered")?
            .rows_affected();
            (changed, None)
        }
        Outcome::UnknownTarget => {
            // Nothing was sent, so no attempt is counted and the row never dies; it waits
            // the longest backoff for a configuration that names its webhook again.
            let error = format!("no webhook named {:?} is configured", row.target);
            let next = now.saturating_add(delay(settings.backoff_max_ms));
            let changed = sqlx::query(
                "UPDATE outbox SET last_error = $1, next_attempt_at = $2, claimed_until = 0 \
                 WHERE id = $3 AND claimed_until = $4",
            )
            .bind(&error)
            .bind(next)
            .bind(&row.id)
            .bind(row.claim)
            .execute(&mut **tx)
            .await
            .context("record outbox failure")?
            .rows_affected();
            (changed, Some((error, false)))
        }
        Outcome::Failed(error) => {
            let attempts = row.attempts + 1;
            let dead = attempts >= i64::from(settings.max_attempts);
            let wait = backoff_ms(
                u32::try_from(attempts).unwrap_or(u32::MAX),
                settings.backoff_base_ms,
                settings.backoff_max_ms,
            );
            let next = now.saturating_add(delay(wait));
            let changed = sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $1, \
                 next_attempt_at = $2, claimed_until = 0, state = $3 \
                 WHERE id = $4 AND claimed_until = $5",
            )
            .bind(&error)
            .bind(next)
            .bind(if dead { "dead" } else { "pending" })
            .bind(&row.id)
            .bind(row.claim)
            .execute(&mut **tx)
            .await
            .context("record outbox failure")?
            .rows_affected();
            (changed, Some((error, dead)))
        }
    };
    tx.commit().await.context("commit outbox result")?;
    if changed == 0 {
        // The claim ran out and another node took the row over; its result stands.
        tracing::warn!(
            event_id = %row.event_id, target = %row.target,
            "outbox claim expired before the result was written"
        );
        return Ok(());
    }
    let attempt = row.attempts + 1;
    match failure {
        None => tracing::debug!(
            event_id = %row.event_id, target = %row.target, attempt, "event delivered"
        ),
        Some((error, true)) => tracing::error!(
            event_id = %row.event_id, target = %row.target, attempt, %error,
            "event delivery failed for the last time; the event is dead (replay it once fixed)"
        ),
        Some((error, false)) => tracing::warn!(
            event_id = %row.event_id, target = %row.target, attempt, %error,
            "event delivery failed; will retry"
        ),
    }
    Ok(())
}

fn delay(ms: u64) -> i64 {
    i64::try_from(jittered(ms)).unwrap_or(i64::MAX)
}

/// Delivers due events as soon as one is queued (a wake-up, [`crate::store::wake`]) and at
/// least every `poll_ms` (retries come due with time), until `stop` is cancelled. Errors (the database
/// unreachable) are logged once each time they change, and the loop goes on.
pub fn spawn(
    db: Db,
    settings: OutboxSettings,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder().build() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot build an HTTP client; no delivery");
                return;
            }
        };
        let every = Duration::from_millis(settings.poll_ms.max(10));
        let mut waker = db.wake.subscribe(Topic::Outbox);
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = next_look(&mut waker, every) => {}
            }
            let result = tokio::select! {
                _ = stop.cancelled() => break,
                result = deliver_due(&db, &settings, &client) => result,
            };
            match result {
                Ok(_) => last_error = None,
                Err(e) => {
                    let text = format!("{e:#}");
                    if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(error = %text, "outbox delivery round failed");
                    }
                    last_error = Some(text);
                }
            }
        }
    })
}

/// Puts the rows `filter` selects back in line: `pending`, no attempt made, due now, not
/// claimed. Returns how many rows changed. Receivers may get an event again; they dedupe on
/// `X-Concierge-Event-Id`.
#[tracing::instrument(skip(db), err)]
pub async fn replay(db: &Db, filter: Replay) -> anyhow::Result<u64> {
    const RESET: &str = "UPDATE outbox SET state = 'pending', attempts = 0, \
         next_attempt_at = $1, claimed_until = 0, last_error = NULL, delivered_at = NULL";
    let now = now_ms();
    let mut tx = db.begin_write().await.context("begin outbox replay")?;
    let done = match &filter {
        Replay::Dead => {
            sqlx::query(&format!("{RESET} WHERE state = 'dead'"))
                .bind(now)
                .execute(&mut **tx)
                .await
        }
        Replay::Event(event_id) => {
            sqlx::query(&format!("{RESET} WHERE event_id = $2"))
                .bind(now)
                .bind(event_id)
                .execute(&mut **tx)
                .await
        }
        Replay::All => sqlx::query(RESET).bind(now).execute(&mut **tx).await,
    }
    .context("replay outbox rows")?
    .rows_affected();
    tx.commit().await.context("commit outbox replay")?;
    Ok(done)
}

/// How many rows are in each state; `pending`, `delivered` and `dead` are always present.
pub async fn counts(db: &Db) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
        .fetch_all(&db.pool)
        .await
        .context("count outbox rows")?;
    let mut counts: BTreeMap<String, i64> = ["pending", "delivered", "dead"]
        .into_iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    for row in rows {
        counts.insert(row.try_get("state")?, row.try_get("n")?);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hmac_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_key_longer_than_a_block_is_hashed_first_rfc_4231_test_case_6() {
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let header = signature(b"Jefe", 1_700_000_000, b"{}");
        let mac = hex::encode(hmac_sha256(b"Jefe", b"1700000000.{}"));
        assert_eq!(header, format!("t=1700000000,v1={mac}"));
        assert_eq!(
            verify_signature(b"Jefe", &header, b"{}", 1_700_000_100, 300),
            Ok(())
        );
        assert_eq!(
            verify_signature(b"Jefe", &header, b"{ }", 1_700_000_100, 300),
            Err(SignatureError::Mismatch),
            "another body"
        );
        assert_eq!(
            verify_signature(b"jefe", &header, b"{}", 1_700_000_100, 300),
            Err(SignatureError::Mismatch),
            "another secret"
        );
        let moved = header.replace("t=1700000000", "t=1700000100");
        assert_eq!(
            verify_signature(b"Jefe", &moved, b"{}", 1_700_000_100, 300),
            Err(SignatureError::Mismatch),
            "a fresh timestamp on an old signature"
        );
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused() {
        let header = signature(b"k", 1_700_000_000, b"{}");
        assert_eq!(
            verify_signature(b"k", &header, b"{}", 1_700_000_301, 300),
            Err(SignatureError::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(verify_signature(b"k", &header, b"{}", 1_699_999_000, 300).is_err());
        assert!(verify_signature(b"k", &header, b"{}", 1_700_000_300, 300).is_ok());
    }

    #[test]
    fn any_matching_v1_passes_and_malformed_headers_are_refused() {
        let good = signature(b"new", 5, b"x");
        let old = signature(b"old", 5, b"x");
        let both = format!("{good},{}", old.split_once(',').unwrap().1);
        assert_eq!(verify_signature(b"old", &both, b"x", 5, 300), Ok(()));
        assert_eq!(verify_signature(b"new", &both, b"x", 5, 300), Ok(()));
        let v0 = format!("{good},v0=abc");
        assert_eq!(verify_signature(b"new", &v0, b"x", 5, 300), Ok(()));
        for bad in [
            "",
            "t=5",
            "v1=00",
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "t=x,v1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "t=5,v1=zz",
            "t=5,v1=abcd",
            "t=5;v1=00",
        ] {
            assert_eq!(
                verify_signature(b"k", bad, b"x", 5, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        let huge = format!("{good},{}", "v2=0,".repeat(1_000));
        assert_eq!(
            verify_signature(b"new", &huge, b"x", 5, 300),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let waits: Vec<u64> = (1..=7).map(|n| backoff_ms(n, 1_000, 10_000)).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);
        assert_eq!(backoff_ms(0, 1_000, 10_000), 1_000);
        assert_eq!(backoff_ms(200, 1_000, 300_000), 300_000, "no overflow");
    }

    #[test]
    fn jitter_takes_off_at_most_a_fifth() {
        for _ in 0..1_000 {
            let d = jittered(1_000);
            assert!((800..=1_000).contains(&d), "{d}");
        }
        assert_eq!(jittered(0), 0);
    }
}
