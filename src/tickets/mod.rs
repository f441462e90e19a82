//! Work orders: tickets with routing, priority and SLA from rules as data ([`rules`]; SLAs
//! count the business minutes of the branch calendar), a state machine with a hash-chained
//! history and an outbox (the private `store`; callers use [`Tickets`] and the types of
//! [`model`]), staff online on this node ([`hub`]) and the messages of their WebSocket
//! ([`wire`]), and the node's follower (`follow`: [`Tickets::follow`]) that tells staff
//! consoles and kiosk sessions about every ticket event — from this node or another — and
//! runs the SLA watcher. Free text (comments, relay lines, notes) is masked and capped
//! ([`clean_text`]) before it is hashed into the audit chain or sent to webhooks.

pub mod anchor;
pub mod bench;
mod follow;
pub mod hub;
pub mod model;
pub mod rules;
pub mod sla;
mod store;
pub mod wire;

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::access::Role;
use crate::branch::calendar::Calendar;
use crate::config::{OutboxSettings, TicketSettings};
use crate::store::{now_ms, Db};
use hub::StaffHub;
use model::{Event, Filter, NewEvent, Ticket, TicketError, TicketState};
use rules::Rules;
use store::{NewTicket, Store};

/// Longest free text an event keeps, in characters (after masking).
pub const MAX_TEXT_CHARS: usize = 2000;

/// Free text as events keep it: personal identifiers masked, then at most
/// [`MAX_TEXT_CHARS`] characters. Every comment goes through this before it is hashed
/// into the audit chain and put in a webhook payload.
pub fn clean_text(text: &str) -> String {
    crate::domain::masking::mask_pii(text)
        .chars()
        .take(MAX_TEXT_CHARS)
        .collect()
}

/// A ticket event for a kiosk session (the live handoff).
#[derive(Debug, Clone)]
pub struct SessionEvent {
    pub ticket: Ticket,
    pub event: Event,
}

impl PartialEq for SessionEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event.event_id == other.event.event_id
    }
}

impl Eq for SessionEvent {}

/// Where [`Tickets::follow`] hands the events of a session's ticket: the live sessions of
/// this node (implemented by [`crate::live::Hub`]), so tickets never call into the
/// conversation code.
pub trait SessionInbox: Send + Sync + 'static {
    /// Gives `event` to the live connection of `session_id` on this node, if it has one
    /// here (a session elsewhere reads its ticket when it resumes).
    fn deliver(
        &self,
        session_id: &str,
        event: SessionEvent,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// The tickets of this node.
pub struct Tickets {
    store: Store,
    pub rules: Rules,
    /// The branch calendar SLA deadlines count in.
    pub calendar: Calendar,
    pub settings: TicketSettings,
    pub staff: StaffHub,
    round_robin: AtomicUsize,
}

impl Tickets {
    /// The ticket service over `rules` (validated by [`crate::validate::check_all`]), whose
    /// SLAs count the business minutes of `calendar`.
    pub fn new(
        db: Db,
        settings: TicketSettings,
        rules: Rules,
        calendar: Calendar,
        outbox: &OutboxSettings,
    ) -> Tickets {
        Tickets {
            calendar,
            store: Store::new(db, outbox.webhooks.iter().map(|w| w.name.clone()).collect()),
            rules,
            settings,
            staff: StaffHub::default(),
            round_robin: AtomicUsize::new(0),
        }
    }

    /// The same service, sealing the audit chain's head with `anchor` at every event
    /// ([`anchor`]; `None`: no anchor).
    pub fn with_anchor(mut self, anchor: Option<anchor::AnchorKey>) -> Tickets {
        self.store = self.store.with_anchor(anchor);
        self
    }

    /// Opens a ticket of `kind` with priority and SLA deadlines from the rules; tickets
    /// that are not live handoffs go to the least-loaded online teller with the skill.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        &self,
        kind: &str,
        branch_id: &str,
        kiosk_id: Option<&str>,
        session_id: Option<&str>,
        customer_ref: Option<&str>,
        case: Value,
        conditions: &[&str],
        actor: &str,
    ) -> Result<Ticket, TicketError> {
        let spec =
            self.rules.types.get(kind).ok_or_else(|| {
                TicketError::Invalid(format!("no ticket type `{kind}` in the rules"))
            })?;
        let mut conditions = conditions.to_vec();
        if kind == "complaint" {
            conditions.push("complaint");
        }
        let now = now_ms();
        let new = NewTicket {
            kind: kind.to_string(),
            queue: spec.queue.clone(),
            priority: self.rules.priority_of(&conditions),
            branch_id: branch_id.to_string(),
            kiosk_id: kiosk_id.map(String::from),
            session_id: session_id.map(String::from),
            customer_ref: customer_ref.map(String::from),
            case,
            first_response_due: self.calendar.add_minutes(now, spec.first_response_mins),
            resolution_due: self.calendar.add_minutes(now, spec.resolution_mins),
        };
        let (ticket, _) = self.store.create(&new, actor).await?;
        if !kind.starts_with("handoff") {
            if let Some(who) = self.least_loaded(&ticket.queue, branch_id).await? {
                return Ok(self
                    .store
                    .transition(
                        &ticket.id,
                        TicketState::Assigned,
                        "router",
                        "auto-assigned",
                        Some(&who),
                    )
                    .await?
                    .0);
            }
        }
        Ok(ticket)
    }

    /// The online staff member with the queue's skill and the fewest open tickets; ties
    /// go round-robin.
    async fn least_loaded(&self, queue: &str, branch: &str) -> Result<Option<String>, TicketError> {
        let Some(q) = self.rules.queues.get(queue) else {
            return Ok(None);
        };
        let online = self.staff.online_with(&q.skills, branch);
        if online.is_empty() {
            return Ok(None);
        }
        let loads = self.store.load_of(&online).await?;
        let least = loads.iter().map(|(_, n)| *n).min().unwrap_or(0);
        let tied: Vec<&String> = loads
            .iter()
            .filter(|(_, n)| *n == least)
            .map(|(s, _)| s)
            .collect();
        let i = self.round_robin.fetch_add(1, Ordering::Relaxed) % tied.len();
        Ok(Some(tied[i].clone()))
    }

    /// Whether `staff` (with `roles`) may see and work tickets of `queue`.
    pub fn works(&self, queue: &str, roles: &[Role]) -> bool {
        roles.contains(&Role::Admin)
            || self
                .rules
                .queues
                .get(queue)
                .is_some_and(|q| q.skills.iter().any(|s| roles.contains(s)))
    }

    /// Whether `user` may see and work `t`: a queue their roles serve, and their branch
    /// when they are scoped to one.
    pub fn sees(&self, t: &Ticket, roles: &[Role], branch: Option<&str>) -> bool {
        self.works(&t.queue, roles) && branch.is_none_or(|b| b == t.branch_id)
    }

    /// The ticket with this id or number.
    pub async fn get(&self, id_or_number: &str) -> Result<Ticket, TicketError> {
        self.store.get(id_or_number).await
    }

    /// Tickets matching `filter`, newest first.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Ticket>, TicketError> {
        self.store.list(filter).await
    }

    /// The ticket's history, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<Event>, TicketError> {
        self.store.events(id).await
    }

    /// `staff` takes a new ticket; exactly one of several concurrent claims wins (the
    /// others get [`model::Conflict::AlreadyClaimed`]).
    pub async fn claim(&self, id: &str, staff: &str) -> Result<(Ticket, Event), TicketError> {
        self.store.claim(id, staff).await
    }

    /// Moves the ticket to `to`, if that is a legal step from where it stands (`assignee`,
    /// with `Assigned`, says who owns it); a concurrent change makes this one fail.
    pub async fn transition(
        &self,
        id: &str,
        to: TicketState,
        actor: &str,
        comment: &str,
        assignee: Option<&str>,
    ) -> Result<(Ticket, Event), TicketError> {
        self.store
            .transition(id, to, actor, &clean_text(comment), assignee)
            .await
    }

    /// Gives an open ticket to `staff` (a supervisor's reassignment).
    pub async fn reassign(
        &self,
        id: &str,
        staff: &str,
        actor: &str,
        comment: &str,
    ) -> Result<(Ticket, Event), TicketError> {
        self.store
            .reassign(id, staff, actor, &clean_text(comment))
            .await
    }

    /// Adds an event without a state change (comment, relay line, hand-back…).
    pub async fn note(&self, id: &str, e: NewEvent<'_>) -> Result<(Ticket, Event), TicketError> {
        let comment = clean_text(e.comment);
        self.store
            .note(
                id,
                NewEvent {
                    comment: &comment,
                    ..e
                },
            )
            .await
    }
}

/// Walks the whole audit chain of the tickets in `db`: how many links are intact, and the
/// first broken one, if any.
pub async fn verify_chain(db: &Db) -> Result<(i64, Option<String>), TicketError> {
    Store::new(db.clone(), Vec::new()).verify_chain().await
}
