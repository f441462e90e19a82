//! Handing a kiosk customer to a person: opening the handoff (a `handoffs` row and the
//! ticket a teller or remote expert picks up, with the masked case packet), and the typed
//! states a handoff shows on the kiosk screen. The live side — waiting, the person joining,
//! relaying lines, handing back — is the session's ([`crate::session::handoff`]), driven by
//! ticket events.

use std::collections::BTreeMap;

use kiosk_protocol::HandoffKind;

use crate::access::masking::mask_pii;
use crate::store::{now_ms, Db};
use crate::tickets::Tickets;

/// Where a handoff is, as the kiosk screen shows it (`handoff.status` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffStatus {
    /// Waiting for a person to accept the ticket.
    Waiting,
    /// A person accepted: their lines are relayed (and the call link shown, for a remote
    /// expert).
    Connected,
    /// The person ended the conversation (or handed the customer back to the bot).
    Ended,
}

impl HandoffStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffStatus::Waiting => "waiting",
            HandoffStatus::Connected => "connected",
            HandoffStatus::Ended => "ended",
        }
    }
}

/// The ticket type a handoff to `to` opens (`deploy/config/tickets.yaml`).
pub fn ticket_type(to: HandoffKind) -> &'static str {
    match to {
        HandoffKind::Teller => "handoff",
        HandoffKind::RemoteExpert => "handoff_remote",
    }
}

/// Who a handoff ticket of `ticket_type` goes to, if it is one.
pub fn kind_of_ticket(ticket_type: &str) -> Option<HandoffKind> {
    match ticket_type {
        "handoff" => Some(HandoffKind::Teller),
        "handoff_remote" => Some(HandoffKind::RemoteExpert),
        _ => None,
    }
}

/// How the handoff is named in the transcript.
pub fn said_name(to: HandoffKind) -> &'static str {
    match to {
        HandoffKind::Teller => "柜员",
        HandoffKind::RemoteExpert => "远程专家",
    }
}

/// A handoff to open.
pub struct NewHandoff<'a> {
    pub session_id: &'a str,
    pub kiosk_id: &'a str,
    pub branch_id: &'a str,
    pub to: HandoffKind,
    /// Why (`customer_asked`, `fraud_suspected`, `step_failed`, `flow`…).
    pub reason: &'a str,
    /// The journey the customer was in.
    pub intent: Option<&'a str>,
    /// The journey's slots (masked before they are stored).
    pub slots: &'a BTreeMap<String, String>,
    pub risk: &'a [String],
    /// The session's transcript so far (already masked).
    pub transcript: serde_json::Value,
}

/// Slots that never go into a case, not even masked.
const NEVER_IN_CASE: [&str; 3] = ["pin_block", "card", "balance"];

/// Records the handoff and opens its ticket; the ticket's number.
pub async fn open(db: &Db, tickets: &Tickets, h: &NewHandoff<'_>) -> anyhow::Result<String> {
    let masked: BTreeMap<&String, String> = h
        .slots
        .iter()
        .filter(|(k, _)| !NEVER_IN_CASE.contains(&k.as_str()))
        .map(|(k, v)| (k, mask_pii(v)))
        .collect();
    let target = match h.to {
        HandoffKind::Teller => "teller",
        HandoffKind::RemoteExpert => "remote_expert",
    };
    sqlx::query(
        "INSERT INTO handoffs (id, session_id, kiosk_id, branch_id, target, reason, intent, case_json, risk, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(h.session_id)
    .bind(h.kiosk_id)
    .bind(h.branch_id)
    .bind(target)
    .bind(h.reason)
    .bind(h.intent)
    .bind(serde_json::to_string(&masked)?)
    .bind(h.risk.join(","))
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    // The ticket a person picks up: the case packet is everything said and done so far
    // (masked transcript with device results and knowledge citations), the masked slots,
    // why, and the risk flags.
    let customer_ref = h
        .slots
        .get("phone")
        .or_else(|| h.slots.get("id_number"))
        .map(|v| mask_pii(v));
    let case = serde_json::json!({
        "reason": h.reason,
        "intent": h.intent,
        "slots": masked,
        "risk": h.risk,
        "transcript": h.transcript,
    });
    let conditions: Vec<&str> = if h.risk.iter().any(|r| r.contains("fraud")) {
        vec!["fraud"]
    } else {
        Vec::new()
    };
    let ticket = tickets
        .open(
            ticket_type(h.to),
            h.branch_id,
            Some(h.kiosk_id),
            Some(h.session_id),
            customer_ref.as_deref(),
            case,
            &conditions,
            "kiosk",
        )
        .await
        .map_err(|e| anyhow::anyhow!("ticket: {e}"))?;
    Ok(ticket.number)
}
