//! The compliance record of one session (事后追溯): everything Concierge kept about it, in one
//! document — the session, its masked transcript, the actions its flows ran (with the
//! articles and versions the customer was answered from), the device calls, handoffs and
//! their risk flags, the tickets with every event and its link in the audit chain, and who
//! has viewed the record before. Every view is itself written down (`record_views`) before
//! the record is returned, so a compliance officer sees who looked.
//!
//! Everything here is read as stored: transcripts, device results and ticket comments are
//! masked when they are written, so the record holds no raw identifier either.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::session::store::{self, TranscriptLine};
use crate::store::{now_ms, Db};
use crate::tickets::model::{Event, Filter, Ticket};
use crate::tickets::Tickets;

/// The session itself.
#[derive(Debug, Serialize)]
pub struct SessionPart {
    pub id: String,
    pub kiosk_id: String,
    pub branch_id: String,
    pub status: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub turns: i64,
}

/// An action a flow ran, as the transcript noted it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Step {
    pub seq: i64,
    pub at: i64,
    pub turn_id: Option<String>,
    pub text: String,
}

/// A knowledge article the customer was answered from.
#[derive(Debug, Serialize, PartialEq)]
pub struct Citation {
    pub seq: i64,
    pub at: i64,
    pub article: String,
    pub version: i64,
}

/// One device call of the session (result masked as stored).
#[derive(Debug, Serialize)]
pub struct DeviceCall {
    pub at: i64,
    pub device: String,
    pub action: String,
    pub ok: bool,
    pub code: Option<String>,
    pub duration_ms: i64,
    pub result: Value,
}

/// A handoff to a person.
#[derive(Debug, Serialize)]
pub struct Handoff {
    pub at: i64,
    pub target: String,
    pub reason: String,
    pub intent: Option<String>,
    pub risk: Vec<String>,
}

/// A ticket of the session with its history; each event carries its audit-chain link.
#[derive(Debug, Serialize)]
pub struct TicketPart {
    pub ticket: Ticket,
    pub events: Vec<Event>,
}

/// An earlier view of this record.
#[derive(Debug, Serialize)]
pub struct View {
    pub at: i64,
    pub staff: String,
}

/// The whole record.
#[derive(Debug, Serialize)]
pub struct Record {
    pub session: SessionPart,
    pub transcript: Vec<TranscriptLine>,
    pub steps: Vec<Step>,
    pub citations: Vec<Citation>,
    pub device_calls: Vec<DeviceCall>,
    pub handoffs: Vec<Handoff>,
    /// Every risk flag raised in the session, sorted.
    pub risk_flags: Vec<String>,
    pub tickets: Vec<TicketPart>,
    /// Earlier views, oldest first (this one is not among them).
    pub views: Vec<View>,
    pub generated_at: i64,
    pub generated_for: String,
}

/// The session's row, if it exists and `branch` (the viewer's, `None`: every branch) may
/// see it.
pub async fn session(
    db: &Db,
    id: &str,
    branch: Option<&str>,
) -> Result<Option<SessionPart>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, kiosk_id, branch_id, status, created_at, ended_at, end_reason, turn_count \
         FROM sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let part = SessionPart {
        id: r.try_get("id")?,
        kiosk_id: r.try_get("kiosk_id")?,
        branch_id: r.try_get("branch_id")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        ended_at: r.try_get("ended_at")?,
        end_reason: r.try_get("end_reason")?,
        turns: r.try_get("turn_count")?,
    };
    Ok(branch.is_none_or(|b| b == part.branch_id).then_some(part))
}

/// Writes down that `staff` viewed the record of `session`, then assembles the record.
/// Errors are database errors; a session the viewer may not see is `None` (and not
/// written down: there was nothing to view).
pub async fn view(
    db: &Db,
    tickets: &Tickets,
    session_id: &str,
    staff: &str,
    branch: Option<&str>,
) -> anyhow::Result<Option<Record>> {
    let Some(session) = session(db, session_id, branch).await? else {
        return Ok(None);
    };
    let views =
        sqlx::query("SELECT at, staff FROM record_views WHERE session_id = $1 ORDER BY at, id")
            .bind(session_id)
            .fetch_all(&db.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(View {
                    at: r.try_get("at")?,
                    staff: r.try_get("staff")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let now = now_ms();
    // Written before anything is returned: a view that cannot be recorded is refused.
    sqlx::query(
        "INSERT INTO record_views (id, session_id, branch_id, staff, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(session_id)
    .bind(&session.branch_id)
    .bind(staff)
    .bind(now)
    .execute(&db.pool)
    .await?;
    tracing::info!(target: "security", event = "record_viewed", session = session_id, staff,
        "compliance record viewed");

    let transcript = store::transcript(db, session_id).await?;
    let (steps, citations) = steps_of(&transcript);
    let device_calls = sqlx::query(
        "SELECT at, device, action, ok, code, duration_ms, result_masked FROM device_calls \
         WHERE session_id = $1 ORDER BY at, id",
    )
    .bind(session_id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        let result: String = r.try_get("result_masked")?;
        Ok(DeviceCall {
            at: r.try_get("at")?,
            device: r.try_get("device")?,
            action: r.try_get("action")?,
            ok: r.try_get::<i64, _>("ok")? != 0,
            code: r.try_get("code")?,
            duration_ms: r.try_get("duration_ms")?,
            result: serde_json::from_str(&result).unwrap_or(Value::String(result)),
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let handoffs = sqlx::query(
        "SELECT created_at, target, reason, intent, risk FROM handoffs WHERE session_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(session_id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        let risk: String = r.try_get("risk")?;
        Ok(Handoff {
            at: r.try_get("created_at")?,
            target: r.try_get("target")?,
            reason: r.try_get("reason")?,
            intent: r.try_get("intent")?,
            risk: risk
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let risk_flags: BTreeSet<String> = handoffs.iter().flat_map(|h| h.risk.clone()).collect();
    let mut parts = Vec::new();
    let mut of_session = tickets
        .list(&Filter {
            session: Some(session_id.to_string()),
            limit: 500,
            ..Default::default()
        })
        .await?;
    of_session.reverse();
    for ticket in of_session {
        let events = tickets.history(&ticket.id).await?;
        parts.push(TicketPart { ticket, events });
    }
    Ok(Some(Record {
        session,
        transcript,
        steps,
        citations,
        device_calls,
        handoffs,
        risk_flags: risk_flags.into_iter().collect(),
        tickets: parts,
        views,
        generated_at: now,
        generated_for: staff.to_string(),
    }))
}

/// The actions and handoffs the transcript notes (system lines `操作 …` and `转交…`), and
/// the citations among them (`（引用 {article} 第{version}版）`, as
/// `session::effects` writes them).
pub fn steps_of(lines: &[TranscriptLine]) -> (Vec<Step>, Vec<Citation>) {
    let mut steps = Vec::new();
    let mut citations = Vec::new();
    for l in lines.iter().filter(|l| l.speaker == "system") {
        if !(l.text.starts_with("操作 ") || l.text.starts_with("转交")) {
            continue;
        }
        steps.push(Step {
            seq: l.seq,
            at: l.at,
            turn_id: l.turn_id.clone(),
            text: l.text.clone(),
        });
        if let Some((article, version)) = citation_in(&l.text) {
            citations.push(Citation {
                seq: l.seq,
                at: l.at,
                article,
                version,
            });
        }
    }
    (steps, citations)
}

/// `(article, version)` from `…（引用 {article} 第{version}版）`.
fn citation_in(text: &str) -> Option<(String, i64)> {
    let rest = &text[text.find("引用 ")? + "引用 ".len()..];
    let (article, rest) = rest.split_once(' ')?;
    let version = rest.strip_prefix('第')?.split_once('版')?.0.parse().ok()?;
    Some((article.to_string(), version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: i64, speaker: &str, text: &str) -> TranscriptLine {
        TranscriptLine {
            seq,
            at: seq * 10,
            speaker: speaker.into(),
            kind: "text".into(),
            text: text.into(),
            turn_id: None,
        }
    }

    #[test]
    fn actions_handoffs_and_citations_are_read_from_the_system_lines() {
        let lines = vec![
            line(
                1,
                "customer",
                "操作 knowledge.answer：成功（引用 fake 第9版）",
            ),
            line(
                2,
                "system",
                "操作 knowledge.answer：成功（引用 kb-parking 第3版）",
            ),
            line(3, "system", "操作 queue.take：未成功（closed）"),
            line(4, "system", "会话开始"),
            line(5, "system", "转交柜员（原因：asked）"),
        ];
        let (steps, citations) = steps_of(&lines);
        assert_eq!(
            steps.iter().map(|s| s.seq).collect::<Vec<_>>(),
            vec![2, 3, 5]
        );
        assert_eq!(
            citations,
            vec![Citation {
                seq: 2,
                at: 20,
                article: "kb-parking".into(),
                version: 3
            }]
        );
    }

    #[test]
    fn a_malformed_citation_is_not_one() {
        for text in [
            "操作 x：成功（引用 a 第版）",
            "操作 x：成功（引用 a）",
            "操作 x：成功（引用 第3版）",
        ] {
            assert_eq!(citation_in(text), None, "{text}");
        }
    }
}
