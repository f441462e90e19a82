//! Carries out the engine's [`Effect`]s for one session: kiosk devices through the
//! [`DeviceBroker`](crate::devices::DeviceBroker), server actions (appointments, queue
//! numbers, the sandbox bank, knowledge answers, case preparation) and handoffs. Every
//! failure becomes a stable code the flow can branch on (`on_error`); nothing here panics
//! on bad data.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};
use rand::Rng;
use serde_json::Value;
use sqlx::Row;

use crate::banking::cents_to_yuan;
use crate::devices::DeviceFailure;
use crate::dialog::{Effect, EffectResult};
use crate::security::masking::mask_pii;
use crate::security::tokens::hash;
use crate::state::AppState;
use crate::store::now_ms;

/// Who the effects are for.
pub struct Context<'a> {
    pub app: &'a AppState,
    pub session_id: &'a str,
    pub kiosk_id: &'a str,
    pub branch_id: &'a str,
}

/// Carries out one effect. Returns the result and a line for the transcript (masked).
pub async fn run(ctx: &Context<'_>, effect: &Effect) -> (EffectResult, String) {
    match effect {
        Effect::Device {
            device,
            action,
            args,
            timeout_ms,
        } => {
            let timeout = Duration::from_millis((*timeout_ms).clamp(1_000, 120_000));
            let started = std::time::Instant::now();
            let result = ctx
                .app
                .broker
                .invoke(ctx.kiosk_id, device, action, args.clone(), timeout)
                .await
                .and_then(|value| checked(device, action, value));
            audit_device_call(ctx, device, action, &result, started.elapsed()).await;
            match result {
                Ok(value) => (
                    EffectResult::Done(fields(&value)),
                    format!("设备 {device}.{action}：成功"),
                ),
                Err(e) => {
                    let code = failure_code(&e);
                    (
                        failed(&code, &e.to_string()),
                        format!("设备 {device}.{action}：失败（{code}）"),
                    )
                }
            }
        }
        Effect::Action { name, slots } => {
            let result = match action(ctx, name, slots).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(action = %name, error = %format!("{e:#}"), "action failed");
                    failed("internal", "the action failed inside")
                }
            };
            let note = match &result {
                // A knowledge answer names its citation, so the transcript (and a case
                // handed to staff) shows which article and version the customer heard.
                EffectResult::Done(out) => match (out.get("article"), out.get("article_version")) {
                    (Some(id), Some(v)) => format!("操作 {name}：成功（引用 {id} 第{v}版）"),
                    _ => format!("操作 {name}：成功"),
                },
                EffectResult::Failed { code, .. } => format!("操作 {name}：未成功（{code}）"),
            };
            (result, note)
        }
        Effect::Handoff {
            to,
            reason,
            intent,
            slots,
            risk,
        } => {
            let result = record_handoff(ctx, to, reason, intent.as_deref(), slots, risk).await;
            let note = format!(
                "转交{}（原因：{reason}{}）",
                if to == "remote_expert" {
                    "远程专家"
                } else {
                    "柜员"
                },
                if risk.is_empty() {
                    String::new()
                } else {
                    format!("；风险：{}", risk.join(","))
                }
            );
            match result {
                Ok(id) => {
                    let mut out = BTreeMap::new();
                    out.insert("handoff_id".to_string(), id);
                    (EffectResult::Done(out), note)
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "handoff could not be recorded");
                    (failed("internal", "handoff not recorded"), note)
                }
            }
        }
    }
}

fn failed(code: &str, note: &str) -> EffectResult {
    EffectResult::Failed {
        code: code.to_string(),
        note: note.to_string(),
    }
}

fn done(pairs: &[(&str, String)]) -> EffectResult {
    EffectResult::Done(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// A device result's top-level fields as strings (at most 32, each at most 256 chars).
fn fields(value: &Value) -> BTreeMap<String, String> {
    let Some(obj) = value.as_object() else {
        return BTreeMap::new();
    };
    obj.iter()
        .take(32)
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.chars().take(64).collect(), s.chars().take(256).collect())
        })
        .collect()
}

async fn action(
    ctx: &Context<'_>,
    name: &str,
    slots: &BTreeMap<String, String>,
) -> anyhow::Result<EffectResult> {
    let get = |k: &str| slots.get(k).map(String::as_str).unwrap_or_default();
    let bank = ctx.app.bank.as_ref();
    Ok(match name {
        "queue.take" => take_number(ctx, get("service"), get("flow")).await?,
        "appointment.book" => {
            book(ctx, get("service"), get("date"), get("time"), get("phone")).await?
        }
        "appointment.find" => find_appointments(ctx, get("phone")).await?,
        "appointment.cancel" => cancel_appointment(ctx, get("code"), get("phone")).await?,
        "banking.identify" => match bank.customer_by_id_number(get("id_number")).await? {
            Some(c) => done(&[
                ("customer_id", c.id),
                ("customer_name", c.name),
                ("phone_masked", c.phone_masked),
            ]),
            None => failed("customer_not_found", "no customer with this ID number"),
        },
        "banking.verify_phone" => {
            if bank.phone_matches(get("customer_id"), get("phone")).await? {
                done(&[])
            } else {
                failed("phone_mismatch", "not the reserved phone")
            }
        }
        "banking.choose_card" => {
            let cards = bank.cards(get("customer_id")).await?;
            let last4 = match get("card_last4") {
                "" => get("card_number")
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect(),
                l => l.to_string(),
            };
            match cards.into_iter().find(|c| c.last4 == last4) {
                Some(c) => done(&[
                    ("card", c.handle),
                    ("card_masked", c.masked),
                    ("card_status", c.status),
                ]),
                None => failed("card_not_found", "no such card for this customer"),
            }
        }
        "banking.verify_pin" => {
            if bank.pin_matches(get("card"), get("pin_block")).await? {
                done(&[])
            } else {
                failed("pin_wrong", "PIN did not match")
            }
        }
        "banking.balance" => match bank.balance_cents(get("card")).await? {
            Some(c) => done(&[("balance", cents_to_yuan(c))]),
            None => failed("card_not_found", "no such card"),
        },
        "banking.freeze_card" => {
            if bank.freeze(get("card"), "客户在自助设备挂失").await? {
                let at = crate::clock::now_local()
                    .format("%Y-%m-%d %H:%M")
                    .to_string();
                done(&[("frozen_at", at)])
            } else {
                failed("card_not_found", "no such card")
            }
        }
        "knowledge.answer" => answer(ctx, get("question")),
        "knowledge.topic" => answer_topic(ctx, get("question"), get("topic")),
        "case.prepare" => {
            let id = uuid::Uuid::new_v4().to_string();
            done(&[("case_id", id[..8].to_uppercase())])
        }
        other => failed("unknown_action", &format!("no action `{other}`")),
    })
}

async fn take_number(ctx: &Context<'_>, service: &str, flow: &str) -> anyhow::Result<EffectResult> {
    let service = if service.is_empty() { flow } else { service };
    let (line, counter) = crate::queue::line_of(service);
    let today = crate::clock::now_local().date_naive().to_string();
    for _ in 0..5 {
        let mut tx = ctx.app.db.begin_write().await?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(number) FROM queue_tickets WHERE branch_id = $1 AND day = $2 AND line = $3",
        )
        .bind(ctx.branch_id)
        .bind(&today)
        .bind(line)
        .fetch_one(&mut **tx)
        .await?;
        let number = last.unwrap_or(0) + 1;
        let inserted = sqlx::query(
            "INSERT INTO queue_tickets (id, branch_id, day, line, number, service, session_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(ctx.branch_id)
        .bind(&today)
        .bind(line)
        .bind(number)
        .bind(service)
        .bind(ctx.session_id)
        .bind(now_ms())
        .execute(&mut **tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                // People ahead: numbers of this line not yet called; the pace: how fast
                // tellers called numbers in the last hour.
                let db = &ctx.app.db;
                let waiting = crate::queue::waiting(db, ctx.branch_id, line, Some(number)).await?;
                let fallback = f64::from(ctx.app.settings.branch.average_service_minutes);
                let pace = crate::queue::service_minutes(db, ctx.branch_id, line, fallback).await?;
                let minutes = (waiting as f64 * pace).round() as i64;
                return Ok(done(&[
                    ("ticket", format!("{line}{number:03}")),
                    ("waiting", waiting.to_string()),
                    ("wait_minutes", minutes.to_string()),
                    ("counter_type", counter.to_string()),
                ]));
            }
            Err(e) if is_conflict(&e) => continue, // another node took this number
            Err(e) => return Err(e.into()),
        }
    }
    Ok(failed("busy", "could not allocate a queue number"))
}

fn is_conflict(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

async fn book(
    ctx: &Context<'_>,
    service: &str,
    date: &str,
    time: &str,
    phone: &str,
) -> anyhow::Result<EffectResult> {
    let b = &ctx.app.settings.branch;
    let (Ok(day), Ok(at)) = (
        NaiveDate::parse_from_str(date, "%Y-%m-%d"),
        NaiveTime::parse_from_str(time, "%H:%M"),
    ) else {
        return Ok(failed("bad_request", "date or time missing"));
    };
    if phone.is_empty() || service.is_empty() {
        return Ok(failed("bad_request", "service or phone missing"));
    }
    let now = crate::clock::now_local().naive_local();
    if day.and_time(at) <= now {
        return Ok(failed("in_past", "that time has passed"));
    }
    if !b
        .open_weekdays
        .contains(&day.weekday().number_from_monday())
    {
        return Ok(failed("closed_day", "the branch is closed that day"));
    }
    if ctx.app.tickets.rules.calendar.holidays.contains(&day) {
        return Ok(failed("closed_day", "the branch is closed on that holiday"));
    }
    let opens = NaiveTime::parse_from_str(&b.opens, "%H:%M")?;
    let closes = NaiveTime::parse_from_str(&b.closes, "%H:%M")?;
    if at < opens || at >= closes {
        return Ok(failed("outside_hours", "outside opening hours"));
    }
    let slot = format!(
        "{:02}:{:02}",
        at.hour(),
        if at.minute() < 30 { 0 } else { 30 }
    );
    let mut tx = ctx.app.db.begin_write().await?;
    let taken: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM appointments WHERE branch_id = $1 AND service = $2 AND day = $3 \
         AND slot = $4 AND status = 'booked'",
    )
    .bind(ctx.branch_id)
    .bind(service)
    .bind(date)
    .bind(&slot)
    .fetch_one(&mut **tx)
    .await?;
    let capacity = ctx
        .app
        .tickets
        .rules
        .capacity_of(service, b.appointment_capacity_per_slot);
    if taken >= i64::from(capacity) {
        return Ok(failed("slot_full", "no capacity left in this slot"));
    }
    let code = confirmation_code();
    sqlx::query(
        "INSERT INTO appointments (code, branch_id, service, day, slot, phone_hash, phone_masked, \
         session_id, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'booked', $9)",
    )
    .bind(&code)
    .bind(ctx.branch_id)
    .bind(service)
    .bind(date)
    .bind(&slot)
    .bind(hash(phone))
    .bind(mask_pii(phone))
    .bind(ctx.session_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    tx.commit().await?;
    Ok(done(&[
        ("code", code),
        ("branch_name", ctx.branch_id.to_string()),
    ]))
}

/// Six characters without look-alikes (no 0/O, 1/I).
fn confirmation_code() -> String {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn find_appointments(ctx: &Context<'_>, phone: &str) -> anyhow::Result<EffectResult> {
    let today = crate::clock::now_local().date_naive().to_string();
    let rows = sqlx::query(
        "SELECT code, service, day, slot FROM appointments WHERE phone_hash = $1 \
         AND status = 'booked' AND day >= $2 ORDER BY day, slot LIMIT 5",
    )
    .bind(hash(phone))
    .bind(&today)
    .fetch_all(&ctx.app.db.pool)
    .await?;
    if rows.is_empty() {
        return Ok(failed(
            "not_found",
            "no upcoming appointment for this phone",
        ));
    }
    let labels = service_labels(ctx);
    let list: Vec<String> = rows
        .iter()
        .map(|r| {
            let service: String = r.get("service");
            let day: String = r.get("day");
            let slot: String = r.get("slot");
            let code: String = r.get("code");
            let label = labels.get(&service).cloned().unwrap_or(service);
            format!("{day} {slot} {label}（确认码 {code}）")
        })
        .collect();
    Ok(done(&[
        ("code", rows[0].get::<String, _>("code")),
        ("appointment_list", list.join("；")),
        ("appointment_count", rows.len().to_string()),
    ]))
}

fn service_labels(ctx: &Context<'_>) -> BTreeMap<String, String> {
    ctx.app
        .content
        .dialogs
        .intents
        .iter()
        .filter_map(|i| i.label.clone().map(|l| (i.name.clone(), l)))
        .collect()
}

async fn cancel_appointment(
    ctx: &Context<'_>,
    code: &str,
    phone: &str,
) -> anyhow::Result<EffectResult> {
    let n = sqlx::query(
        "UPDATE appointments SET status = 'cancelled', cancelled_at = $3 \
         WHERE code = $1 AND phone_hash = $2 AND status = 'booked'",
    )
    .bind(code.to_uppercase())
    .bind(hash(phone))
    .bind(now_ms())
    .execute(&ctx.app.db.pool)
    .await?
    .rows_affected();
    Ok(if n > 0 {
        done(&[("code", code.to_uppercase())])
    } else {
        failed("not_found", "no such booked appointment for this phone")
    })
}

/// Answers from the published customer articles in force for this branch today: the best
/// article's spoken summary (`kind: answer`), or the two closest titles to choose from
/// (`kind: clarify`), or `no_answer` — it would rather say it does not know than answer the
/// wrong question.
fn answer(ctx: &Context<'_>, question: &str) -> EffectResult {
    use crate::knowledge::Answer;
    match ctx.app.knowledge.answer(question, ctx.branch_id) {
        Answer::Found { hit, spoken } => found(hit, spoken),
        Answer::Clarify(a, b) => done(&[
            ("kind", "clarify".to_string()),
            ("choice_a", a.title),
            ("article_a", a.id),
            ("choice_b", b.title),
            ("article_b", b.id),
        ]),
        Answer::Unknown => failed("no_answer", "no article answers this well enough"),
    }
}

/// The article the customer picked after a clarifying question (`topic`: an article id
/// from the choices, or their own words, which are searched together with the question).
fn answer_topic(ctx: &Context<'_>, question: &str, topic: &str) -> EffectResult {
    use crate::knowledge::Answer;
    let kb = &ctx.app.knowledge;
    if let Some(doc) = kb.live(topic) {
        let today = crate::clock::now_local().date_naive().to_string();
        let d = &doc.draft;
        let in_force = d
            .effective_from
            .as_deref()
            .is_none_or(|f| f <= today.as_str())
            && d.effective_to
                .as_deref()
                .is_none_or(|t| t >= today.as_str());
        let here = d.branches.is_empty() || d.branches.iter().any(|b| b == ctx.branch_id);
        if d.audience == "customer" && in_force && here {
            return done(&[
                ("kind", "answer".to_string()),
                ("answer", d.spoken_summary()),
                ("article", doc.id.clone()),
                ("article_version", doc.version.to_string()),
                ("article_title", d.title.clone()),
            ]);
        }
    }
    match kb.answer(&format!("{question} {topic}"), ctx.branch_id) {
        Answer::Found { hit, spoken } => found(hit, spoken),
        Answer::Clarify(hit, _) => {
            let spoken = kb
                .live(&hit.id)
                .map(|d| d.draft.spoken_summary())
                .unwrap_or_default();
            found(hit, spoken)
        }
        Answer::Unknown => failed("no_answer", "no article answers this well enough"),
    }
}

fn found(hit: crate::knowledge::index::Hit, spoken: String) -> EffectResult {
    done(&[
        ("kind", "answer".to_string()),
        ("answer", spoken),
        ("article", hit.id),
        ("article_version", hit.version.to_string()),
        ("article_title", hit.title),
    ])
}

/// A device result that does not have the fields its action promises is a device failure
/// (`bad_result`), not a journey that goes on with holes in it.
fn checked(
    device: &str,
    action: &str,
    value: serde_json::Value,
) -> Result<serde_json::Value, DeviceFailure> {
    match kiosk_protocol::devices::Action::parse(device, action) {
        Some(a) => match a.check(&value) {
            Ok(()) => Ok(value),
            Err(why) => {
                tracing::warn!(%device, %action, reason = %why, "device result does not fit its action");
                Err(DeviceFailure::Device(kiosk_protocol::DeviceError {
                    code: "bad_result".into(),
                    message: format!("the {device} answered {action} without the expected fields"),
                }))
            }
        },
        None => Ok(value),
    }
}

/// The stable code a flow's `error` slot gets for a failed device call.
fn failure_code(e: &DeviceFailure) -> String {
    match e {
        DeviceFailure::NoPeer(_) => "no_device".to_string(),
        DeviceFailure::Timeout(_) => "timeout".to_string(),
        DeviceFailure::Device(d) => d.code.chars().take(64).collect(),
        DeviceFailure::Disconnected => "disconnected".to_string(),
    }
}

/// Result fields never kept, not even masked.
const NEVER_KEPT: [&str; 3] = ["pin_block", "photo", "image"];

/// Writes a device call to `device_calls`: kiosk, session, device, action, outcome, time
/// taken, and the result with identifiers masked. A failure to write is logged, never
/// fatal to the journey.
async fn audit_device_call(
    ctx: &Context<'_>,
    device: &str,
    action: &str,
    result: &Result<serde_json::Value, DeviceFailure>,
    took: Duration,
) {
    let (ok, code, masked) = match result {
        Ok(v) => {
            let kept: serde_json::Map<String, serde_json::Value> = v
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !NEVER_KEPT.contains(&k.as_str()))
                .map(|(k, v)| {
                    // Identifiers stay in their masked form (the audit can tell which card);
                    // any other text (a name, an address) is not kept at all.
                    let v = match v {
                        serde_json::Value::String(s) => {
                            let masked = mask_pii(s);
                            serde_json::Value::String(if masked != *s {
                                masked
                            } else {
                                "***".into()
                            })
                        }
                        other => other.clone(),
                    };
                    (k.clone(), v)
                })
                .collect();
            (true, None, serde_json::Value::Object(kept).to_string())
        }
        Err(e) => (false, Some(failure_code(e)), "{}".to_string()),
    };
    let written = sqlx::query(
        "INSERT INTO device_calls (id, kiosk_id, session_id, device, action, ok, code, duration_ms, \
         result_masked, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(ctx.kiosk_id)
    .bind(ctx.session_id)
    .bind(device)
    .bind(action)
    .bind(i64::from(ok))
    .bind(&code)
    .bind(took.as_millis() as i64)
    .bind(masked)
    .bind(now_ms())
    .execute(&ctx.app.db.pool)
    .await;
    if let Err(e) = written {
        tracing::error!(error = %e, %device, %action, "device call not audited");
    }
}

async fn record_handoff(
    ctx: &Context<'_>,
    to: &str,
    reason: &str,
    intent: Option<&str>,
    slots: &BTreeMap<String, String>,
    risk: &[String],
) -> anyhow::Result<String> {
    let masked: BTreeMap<&String, String> = slots
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "pin_block" | "card" | "balance"))
        .map(|(k, v)| (k, mask_pii(v)))
        .collect();
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO handoffs (id, session_id, kiosk_id, branch_id, target, reason, intent, case_json, risk, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(ctx.session_id)
    .bind(ctx.kiosk_id)
    .bind(ctx.branch_id)
    .bind(to)
    .bind(reason)
    .bind(intent)
    .bind(serde_json::to_string(&masked)?)
    .bind(risk.join(","))
    .bind(now_ms())
    .execute(&ctx.app.db.pool)
    .await?;
    // The ticket a person picks up: the case packet is everything said and done so far
    // (masked transcript with device results and knowledge citations), the masked slots,
    // why, and the risk flags.
    let transcript = super::store::transcript(&ctx.app.db, ctx.session_id).await?;
    let customer_ref = slots
        .get("phone")
        .or_else(|| slots.get("id_number"))
        .map(|v| mask_pii(v));
    let case = serde_json::json!({
        "reason": reason,
        "intent": intent,
        "slots": masked,
        "risk": risk,
        "transcript": transcript,
    });
    let kind = if to == "remote_expert" {
        "handoff_remote"
    } else {
        "handoff"
    };
    let conditions: Vec<&str> = if risk.iter().any(|r| r.contains("fraud")) {
        vec!["fraud"]
    } else {
        Vec::new()
    };
    let ticket = ctx
        .app
        .tickets
        .open(
            kind,
            ctx.branch_id,
            Some(ctx.kiosk_id),
            Some(ctx.session_id),
            customer_ref.as_deref(),
            case,
            &conditions,
            "kiosk",
        )
        .await
        .map_err(|e| anyhow::anyhow!("ticket: {e}"))?;
    Ok(ticket.number)
}
