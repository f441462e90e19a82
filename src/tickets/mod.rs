//! Work orders: tickets with routing, priority and SLA from rules as data ([`rules`]; SLAs
//! count the business minutes of the branch calendar), a state machine with a hash-chained
//! history and an outbox ([`store`]), staff online on this node ([`hub`]), and the node's
//! follower ([`Tickets::follow`]) that tells staff consoles and kiosk sessions about every
//! ticket event — from this node or another — and runs the SLA watcher.

pub mod hub;
pub mod rules;
pub mod store;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::access::Role;
use crate::branch::calendar::Calendar;
use crate::config::{OutboxSettings, TicketSettings};
use crate::store::{now_ms, Db};
use hub::StaffHub;
use rules::Rules;
use store::{Event, NewEvent, NewTicket, Store, Ticket, TicketError, TicketState};

/// Ticket events a node reads from the database per look.
const FOLLOW_BATCH: i64 = 500;
/// How often a node looks for new ticket events (staff and kiosks hear within this).
const FOLLOW_EVERY: Duration = Duration::from_millis(150);

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
    pub store: Store,
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
            store: Store {
                db,
                webhooks: outbox.webhooks.iter().map(|w| w.name.clone()).collect(),
            },
            rules,
            settings,
            staff: StaffHub::default(),
            round_robin: AtomicUsize::new(0),
        }
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
        let spec = self.rules.types.get(kind).ok_or_else(|| {
            TicketError::Invalid(
                "invalid_ticket",
                format!("no ticket type `{kind}` in the rules"),
            )
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

    /// Tells this node's staff consoles and kiosk sessions about every new ticket event,
    /// and checks SLA deadlines, until `stop`.
    pub fn follow<S: SessionInbox>(self: &Arc<Self>, stop: CancellationToken, sessions: Arc<S>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut seen = me.store.chain_head().await.unwrap_or(0);
            let mut sla_at = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
                match me.store.events_after(seen, FOLLOW_BATCH).await {
                    Ok(events) => {
                        for e in events {
                            seen = e.chain_seq;
                            if let Err(err) = me.tell(&e, sessions.as_ref()).await {
                                tracing::warn!(error = %err, ticket = %e.ticket_id, "ticket event not passed on");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read ticket events"),
                }
                if sla_at.elapsed() >= Duration::from_secs(me.settings.sla_check_secs.max(1)) {
                    sla_at = tokio::time::Instant::now();
                    if let Err(e) = me.check_sla(now_ms()).await {
                        tracing::warn!(error = %e, "SLA check failed");
                    }
                    if let Err(e) = me.auto_close(now_ms()).await {
                        tracing::warn!(error = %e, "auto-close failed");
                    }
                }
            }
        });
    }

    async fn tell<S: SessionInbox>(&self, e: &Event, sessions: &S) -> Result<(), TicketError> {
        let t = self.store.get(&e.ticket_id).await?;
        let supervisor = self
            .rules
            .queues
            .get(&t.queue)
            .map(|q| q.supervisor.clone());
        let msg = json!({"type": "ticket.event", "ticket": summary(&t), "event": e});
        self.staff.send(&msg, |name, roles, branch| {
            t.assignee.as_deref() == Some(name)
                || supervisor.as_deref() == Some(name)
                || (t.state == TicketState::New && self.sees(&t, roles, branch))
                || (roles.contains(&Role::Admin) && branch.is_none_or(|b| b == t.branch_id))
        });
        if let Some(session) = &t.session_id {
            sessions
                .deliver(
                    session,
                    SessionEvent {
                        ticket: t.clone(),
                        event: e.clone(),
                    },
                )
                .await;
        }
        Ok(())
    }

    /// Warns the assignee at 75 % of a deadline and escalates to the queue's supervisor at
    /// 100 % — once each, whichever node gets there first.
    pub async fn check_sla(&self, now: i64) -> Result<(), TicketError> {
        for (t, marks) in self.store.sla_candidates().await? {
            let stages = [
                (
                    t.first_response_due,
                    t.first_response_at.is_none(),
                    "response",
                    0usize,
                ),
                (t.resolution_due, true, "resolution", 2usize),
            ];
            for (due, pending, what, i) in stages {
                let Some(due) = due else { continue };
                if !pending {
                    continue;
                }
                let span = (due - t.created_at).max(1);
                let supervisor = self
                    .rules
                    .queues
                    .get(&t.queue)
                    .map(|q| q.supervisor.clone())
                    .unwrap_or_default();
                if marks[i + 1].is_none() && now >= due {
                    let column = format!("escalated_{what}_at");
                    self.store
                        .mark_once(
                            &t.id,
                            &column,
                            NewEvent {
                                kind: "sla_escalated",
                                from: None,
                                to: None,
                                actor: "sla",
                                comment: &format!(
                                    "{what} deadline passed; escalated to {supervisor}"
                                ),
                                data: json!({"stage": what, "due": due, "supervisor": supervisor}),
                            },
                        )
                        .await?;
                } else if marks[i].is_none() && now >= t.created_at + span * 3 / 4 {
                    let column = format!("warned_{what}_at");
                    self.store
                        .mark_once(
                            &t.id,
                            &column,
                            NewEvent {
                                kind: "sla_warning",
                                from: None,
                                to: None,
                                actor: "sla",
                                comment: &format!("75 % of the {what} time used"),
                                data: json!({"stage": what, "due": due, "assignee": t.assignee}),
                            },
                        )
                        .await?;
                }
            }
        }
        Ok(())
    }
}

impl Tickets {
    /// Closes tickets resolved more than `auto_close_resolved_hours` ago (the customer had
    /// no more to say). Returns how many this node closed.
    pub async fn auto_close(&self, now: i64) -> Result<usize, TicketError> {
        let cutoff = now - i64::from(self.rules.auto_close_resolved_hours) * 3_600_000;
        let resolved = self
            .store
            .list(&store::Filter {
                state: Some("resolved".into()),
                limit: 500,
                ..Default::default()
            })
            .await?;
        let mut closed = 0;
        for t in resolved
            .iter()
            .filter(|t| t.resolved_at.is_some_and(|r| r <= cutoff))
        {
            let comment = format!(
                "closed automatically {} hours after resolution",
                self.rules.auto_close_resolved_hours
            );
            match self
                .store
                .transition(&t.id, TicketState::Closed, "auto_close", &comment, None)
                .await
            {
                Ok(_) => closed += 1,
                Err(TicketError::Conflict(..)) => {} // reopened or closed meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok(closed)
    }
}

/// What consoles need of a ticket in a notification (no case packet).
pub fn summary(t: &Ticket) -> Value {
    json!({
        "id": t.id, "number": t.number, "kind": t.kind, "queue": t.queue,
        "priority": t.priority, "state": t.state, "branch_id": t.branch_id,
        "assignee": t.assignee, "session_id": t.session_id,
        "first_response_due": t.first_response_due, "resolution_due": t.resolution_due,
    })
}
