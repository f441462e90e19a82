//! What a ticket is, as callers of [`super::Tickets`] see it: the ticket, its state machine,
//! the events of its history, list filters, the summary consoles get, and why an operation
//! was refused. No SQL here: the database lives in the (private) store.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    New,
    Assigned,
    InProgress,
    PendingCustomer,
    Resolved,
    Closed,
    Cancelled,
}

impl TicketState {
    /// Every state, in the order of the usual path.
    pub const ALL: [TicketState; 7] = [
        TicketState::New,
        TicketState::Assigned,
        TicketState::InProgress,
        TicketState::PendingCustomer,
        TicketState::Resolved,
        TicketState::Closed,
        TicketState::Cancelled,
    ];

    /// The state as stored and sent (`in_progress`).
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::New => "new",
            TicketState::Assigned => "assigned",
            TicketState::InProgress => "in_progress",
            TicketState::PendingCustomer => "pending_customer",
            TicketState::Resolved => "resolved",
            TicketState::Closed => "closed",
            TicketState::Cancelled => "cancelled",
        }
    }

    /// The state named `s`, if there is one.
    pub fn parse(s: &str) -> Option<TicketState> {
        TicketState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The states a ticket may move to from this one.
    pub fn next(self) -> &'static [TicketState] {
        use TicketState::*;
        match self {
            New => &[Assigned, Cancelled],
            Assigned => &[InProgress, New, Cancelled],
            InProgress => &[PendingCustomer, Resolved, Cancelled],
            PendingCustomer => &[InProgress, Resolved, Cancelled],
            Resolved => &[Closed, InProgress],
            Closed | Cancelled => &[],
        }
    }

    /// Still being worked on (counts towards a teller's load and the SLA).
    pub fn open(self) -> bool {
        !matches!(
            self,
            TicketState::Resolved | TicketState::Closed | TicketState::Cancelled
        )
    }
}

/// Why a ticket could not change as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Not a legal step from the ticket's state.
    IllegalTransition,
    /// Someone else took the ticket first.
    AlreadyClaimed,
    /// The ticket changed between reading and writing it.
    StateChanged,
}

impl Conflict {
    /// The stable error code (HTTP and staff WebSocket).
    pub fn code(self) -> &'static str {
        match self {
            Conflict::IllegalTransition => "illegal_transition",
            Conflict::AlreadyClaimed => "already_claimed",
            Conflict::StateChanged => "state_changed",
        }
    }
}

/// Why a ticket operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// code: `not_found`.
    #[error("ticket not found")]
    NotFound,
    /// code: [`Conflict::code`].
    #[error("{1}")]
    Conflict(Conflict, String),
    /// code: `invalid_ticket`.
    #[error("{0}")]
    Invalid(String),
    /// The database failed (code `internal`).
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A ticket.
#[derive(Debug, Clone, Serialize)]
pub struct Ticket {
    pub id: String,
    /// Per branch per day: `B001-20261125-0042`.
    pub number: String,
    pub kind: String,
    pub queue: String,
    pub priority: String,
    pub state: TicketState,
    pub branch_id: String,
    pub kiosk_id: Option<String>,
    pub session_id: Option<String>,
    pub customer_ref: Option<String>,
    /// The case packet: masked transcript, slots, device events, citations, risk flags.
    pub case: Value,
    pub assignee: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub first_response_due: Option<i64>,
    pub resolution_due: Option<i64>,
    pub first_response_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub closed_at: Option<i64>,
}

impl Ticket {
    /// What consoles need of the ticket in a list or a notification (no case packet).
    pub fn summary(&self) -> TicketSummary {
        TicketSummary {
            id: self.id.clone(),
            number: self.number.clone(),
            kind: self.kind.clone(),
            queue: self.queue.clone(),
            priority: self.priority.clone(),
            state: self.state,
            branch_id: self.branch_id.clone(),
            assignee: self.assignee.clone(),
            session_id: self.session_id.clone(),
            first_response_due: self.first_response_due,
            resolution_due: self.resolution_due,
        }
    }
}

/// A ticket without its case packet: the queue list, REST answers and staff notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketSummary {
    pub id: String,
    pub number: String,
    pub kind: String,
    pub queue: String,
    pub priority: String,
    pub state: TicketState,
    pub branch_id: String,
    pub assignee: Option<String>,
    pub session_id: Option<String>,
    pub first_response_due: Option<i64>,
    pub resolution_due: Option<i64>,
}

/// One event of a ticket's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub ticket_id: String,
    /// The event's place in its ticket's history, from 1.
    pub seq: i64,
    pub event_id: String,
    /// `created`, `state`, `comment`, `relay_customer`, `relay_staff`, `released`,
    /// `reassigned`, `sla_warning`, `sla_escalated`, `customer_left`.
    pub kind: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: String,
    pub at: i64,
    pub comment: String,
    pub data: Value,
    /// The event's link number in the audit chain (every ticket).
    pub chain_seq: i64,
    pub hash: String,
}

/// An event to append to a ticket's history.
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub from: Option<TicketState>,
    pub to: Option<TicketState>,
    pub actor: &'a str,
    pub comment: &'a str,
    pub data: Value,
}

impl<'a> NewEvent<'a> {
    /// An event without a state change (comment, relay line, hand-back…).
    pub fn note(kind: &'a str, actor: &'a str, comment: &'a str, data: Value) -> NewEvent<'a> {
        NewEvent {
            kind,
            from: None,
            to: None,
            actor,
            comment,
            data,
        }
    }
}

/// Ticket list filters (`None`: any).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub queue: Option<String>,
    pub state: Option<String>,
    pub assignee: Option<String>,
    pub branch: Option<String>,
    pub kind: Option<String>,
    pub session: Option<String>,
    /// Only these queues (`Some(empty)`: none), filtered in the query, before the limit.
    pub queues: Option<Vec<String>>,
    /// At most this many (clamped to 1–500).
    pub limit: i64,
}
