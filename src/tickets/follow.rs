//! The node's follower: reads every new ticket event from the database (whatever node
//! wrote it) and tells this node's staff consoles ([`super::hub`], as
//! [`StaffMessage::TicketEvent`]) and the kiosk session of the ticket
//! ([`super::SessionInbox`]); and the SLA watcher and auto-close it runs on the side.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::model::{Event, Filter, NewEvent, Ticket, TicketError, TicketState};
use super::wire::StaffMessage;
use super::{sla, SessionEvent, SessionInbox, Tickets};
use crate::access::Role;
use crate::store::now_ms;
use crate::store::wake::{next_look, Topic};

/// Ticket events a node reads from the database per look.
const FOLLOW_BATCH: i64 = 500;

/// Tickets the SLA watcher reads per batch.
const SLA_BATCH: i64 = 500;

/// Batches the SLA watcher reads per pass at most.
const SLA_BATCHES: usize = 20;

impl Tickets {
    /// Tells this node's staff consoles and kiosk sessions about every new ticket event,
    /// and checks SLA deadlines, until `stop`. It looks when an event is committed (on this
    /// node, or on another through PostgreSQL: [`crate::store::wake`]), and at least every
    /// `tickets.follow_ms` and `sla_check_secs`.
    pub fn follow<S: SessionInbox>(self: &Arc<Self>, stop: CancellationToken, sessions: Arc<S>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            // Subscribed first: a commit after the head was read wakes the first look.
            let mut waker = me.store.wakeups().subscribe(Topic::TicketEvents);
            let mut seen = me.store.chain_head().await.unwrap_or(0);
            let mut sla_at = tokio::time::Instant::now();
            let fallback = Duration::from_millis(me.settings.follow_ms.max(20));
            let sla_every = Duration::from_secs(me.settings.sla_check_secs.max(1));
            loop {
                let until_sla = sla_every.saturating_sub(sla_at.elapsed());
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = next_look(&mut waker, fallback.min(until_sla)) => {}
                }
                // A batch full: more may wait; look again at once.
                let mut full = true;
                while full {
                    full = false;
                    match me.store.events_after(seen, FOLLOW_BATCH).await {
                        Ok(events) => {
                            full = events.len() as i64 == FOLLOW_BATCH;
                            for e in events {
                                seen = e.chain_seq;
                                if let Err(err) = me.tell(&e, sessions.as_ref()).await {
                                    tracing::warn!(error = %err, ticket = %e.ticket_id, "ticket event not passed on");
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot read ticket events"),
                    }
                }
                if sla_at.elapsed() >= sla_every {
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
        let msg = StaffMessage::TicketEvent {
            ticket: Box::new(t.summary()),
            event: Box::new(e.clone()),
        };
        // Staff of one branch hear only that branch's tickets, whatever else they are to
        // the ticket (supervisor of its queue included); staff without a branch hear all.
        self.staff.send(&msg, |name, roles, branch| {
            branch.is_none_or(|b| b == t.branch_id)
                && (t.assignee.as_deref() == Some(name)
                    || supervisor.as_deref() == Some(name)
                    || (t.state == TicketState::New && self.sees(&t, roles, branch))
                    || roles.contains(&Role::Admin))
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
    /// 100 % — once each, whichever node gets there first. Reads only the tickets whose
    /// next SLA moment has come ([`super::sla`]), in batches of [`SLA_BATCH`], at most
    /// [`SLA_BATCHES`] batches a pass (the rest wait for the next pass). Returns how many
    /// tickets it looked at.
    pub async fn check_sla(&self, now: i64) -> Result<usize, TicketError> {
        let mut looked = 0;
        for _ in 0..SLA_BATCHES {
            let due = self.store.sla_due(now, SLA_BATCH).await?;
            let full = due.len() as i64 == SLA_BATCH;
            for (t, marks) in &due {
                if !self.check_ticket_sla(t, marks, now).await? {
                    // Nothing to mark (another node was first): move its moment on.
                    self.store.reschedule_sla(&t.id).await?;
                }
            }
            looked += due.len();
            if !full {
                break;
            }
        }
        Ok(looked)
    }

    /// Marks the stage of `t` whose moment has come; whether this node marked one.
    async fn check_ticket_sla(
        &self,
        t: &Ticket,
        marks: &[Option<i64>; 4],
        now: i64,
    ) -> Result<bool, TicketError> {
        let stages = [
            (
                t.first_response_due,
                t.first_response_at.is_none(),
                "response",
                0usize,
            ),
            (t.resolution_due, true, "resolution", 2usize),
        ];
        let supervisor = self
            .rules
            .queues
            .get(&t.queue)
            .map(|q| q.supervisor.clone())
            .unwrap_or_default();
        let mut marked = false;
        for (due, pending, what, i) in stages {
            let Some(due) = due else { continue };
            if !pending || !t.state.open() {
                continue;
            }
            // The deadline passed: escalate (once); 75 % of the time used: warn (once).
            let (mark, kind, comment, data) = if marks[i + 1].is_none() && now >= due {
                (
                    "escalated",
                    "sla_escalated",
                    format!("{what} deadline passed; escalated to {supervisor}"),
                    json!({"stage": what, "due": due, "supervisor": supervisor}),
                )
            } else if marks[i].is_none() && now >= sla::warn_at(t.created_at, due) {
                (
                    "warned",
                    "sla_warning",
                    format!("75 % of the {what} time used"),
                    json!({"stage": what, "due": due, "assignee": t.assignee}),
                )
            } else {
                continue;
            };
            let column = format!("{mark}_{what}_at");
            let event = NewEvent::note(kind, "sla", &comment, data);
            marked |= self.store.mark_once(&t.id, &column, event).await?;
        }
        Ok(marked)
    }

    /// Closes tickets resolved more than `auto_close_resolved_hours` ago (the customer had
    /// no more to say). Returns how many this node closed.
    pub async fn auto_close(&self, now: i64) -> Result<usize, TicketError> {
        let cutoff = now - i64::from(self.rules.auto_close_resolved_hours) * 3_600_000;
        let resolved = self
            .store
            .list(&Filter {
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
