//! Tickets in the database: numbers per branch per day, the state machine enforced by
//! conditional updates (two tellers claiming one ticket: exactly one wins), and events.
//! Every event is written in the ticket's transaction together with its link in the audit
//! chain (a SHA-256 hash over the previous link and the event) and one outbox row per
//! webhook, so history, audit and delivery can never disagree.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::anchor::AnchorKey;
use super::model::{Conflict, Event, Filter, NewEvent, Ticket, TicketError, TicketState};
use super::sla;
use crate::store::wake::Topic;
use crate::store::{now_ms, Db};

/// What a new ticket carries.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub kind: String,
    pub queue: String,
    pub priority: String,
    pub branch_id: String,
    pub kiosk_id: Option<String>,
    pub session_id: Option<String>,
    pub customer_ref: Option<String>,
    pub case: Value,
    pub first_response_due: i64,
    pub resolution_due: i64,
}

const TICKET_COLUMNS: &str = "id, number, kind, queue, priority, state, branch_id, kiosk_id, \
    session_id, customer_ref, case_json, assignee, created_at, updated_at, first_response_due, \
    resolution_due, first_response_at, resolved_at, closed_at";

fn ticket_of(r: &AnyRow) -> Result<Ticket, sqlx::Error> {
    let state: String = r.try_get("state")?;
    let case: String = r.try_get("case_json")?;
    Ok(Ticket {
        id: r.try_get("id")?,
        number: r.try_get("number")?,
        kind: r.try_get("kind")?,
        queue: r.try_get("queue")?,
        priority: r.try_get("priority")?,
        state: TicketState::parse(&state).unwrap_or(TicketState::New),
        branch_id: r.try_get("branch_id")?,
        kiosk_id: r.try_get("kiosk_id")?,
        session_id: r.try_get("session_id")?,
        customer_ref: r.try_get("customer_ref")?,
        case: serde_json::from_str(&case).unwrap_or(Value::Null),
        assignee: r.try_get("assignee")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        first_response_due: r.try_get("first_response_due")?,
        resolution_due: r.try_get("resolution_due")?,
        first_response_at: r.try_get("first_response_at")?,
        resolved_at: r.try_get("resolved_at")?,
        closed_at: r.try_get("closed_at")?,
    })
}

/// The SLA clocks of a row that has the ticket's deadline and mark columns.
fn clocks_of(r: &AnyRow) -> Result<sla::Clocks, sqlx::Error> {
    Ok(sla::Clocks {
        created_at: r.try_get("created_at")?,
        first_response_due: r.try_get("first_response_due")?,
        first_response_at: r.try_get("first_response_at")?,
        resolution_due: r.try_get("resolution_due")?,
        marks: [
            r.try_get("warned_response_at")?,
            r.try_get("escalated_response_at")?,
            r.try_get("warned_resolution_at")?,
            r.try_get("escalated_resolution_at")?,
        ],
    })
}

const EVENT_COLUMNS: &str = "ticket_id, seq, event_id, kind, from_state, to_state, actor, at, \
    comment, data_json, chain_seq, prev_hash, hash";

fn event_of(r: &AnyRow) -> Result<Event, sqlx::Error> {
    let data: String = r.try_get("data_json")?;
    Ok(Event {
        ticket_id: r.try_get("ticket_id")?,
        seq: r.try_get("seq")?,
        event_id: r.try_get("event_id")?,
        kind: r.try_get("kind")?,
        from: r.try_get("from_state")?,
        to: r.try_get("to_state")?,
        actor: r.try_get("actor")?,
        at: r.try_get("at")?,
        comment: r.try_get("comment")?,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        chain_seq: r.try_get("chain_seq")?,
        hash: r.try_get("hash")?,
    })
}

/// The link of one event in the audit chain.
pub fn chain_hash(prev: &str, e: &Event) -> String {
    let canonical = json!([
        prev,
        e.ticket_id,
        e.seq,
        e.event_id,
        e.kind,
        e.from,
        e.to,
        e.actor,
        e.at,
        e.comment,
        e.data,
        e.chain_seq
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The ticket store (private to [`super::Tickets`]: callers go through the service).
#[derive(Clone)]
pub struct Store {
    db: Db,
    /// Webhook names: each event gets one outbox row per name.
    webhooks: Vec<String>,
    /// Seals the chain head with every event ([`super::anchor`]).
    anchor: Option<AnchorKey>,
}

impl Store {
    /// The store over `db`; every event gets one outbox row per name in `webhooks`.
    pub fn new(db: Db, webhooks: Vec<String>) -> Store {
        Store {
            db,
            webhooks,
            anchor: None,
        }
    }

    /// The same store, sealing the chain head with `anchor` at every event.
    pub fn with_anchor(self, anchor: Option<AnchorKey>) -> Store {
        Store { anchor, ..self }
    }

    /// The wake-ups of this node's database ([`crate::store::wake`]).
    pub fn wakeups(&self) -> std::sync::Arc<crate::store::wake::Wakeups> {
        self.db.wake.clone()
    }

    /// After a commit that appended events: this node's follower and outbox look now
    /// (other nodes hear it from PostgreSQL, [`crate::store::wake`]).
    fn committed(&self) {
        self.db.wake.poke(Topic::TicketEvents);
        if !self.webhooks.is_empty() {
            self.db.wake.poke(Topic::Outbox);
        }
    }

    async fn load(&self, tx: &mut Tx, id: &str) -> Result<Ticket, TicketError> {
        let row = sqlx::query(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(TicketError::NotFound)?;
        Ok(ticket_of(&row)?)
    }

    /// Appends an event to the ticket's history, the audit chain and the outbox.
    async fn append(&self, tx: &mut Tx, t: &Ticket, e: NewEvent<'_>) -> Result<Event, TicketError> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE tickets SET events = events + 1, updated_at = $2 WHERE id = $1 \
             RETURNING events, state, sla_next_at, created_at, first_response_due, \
             first_response_at, resolution_due, warned_response_at, escalated_response_at, \
             warned_resolution_at, escalated_resolution_at",
        )
        .bind(&t.id)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        let seq: i64 = row.try_get("events")?;
        // Whatever this event changed (state, response, an SLA mark), the watcher's next
        // moment for the ticket moves with it, in the same transaction.
        let state: String = row.try_get("state")?;
        let next = sla::next_action(
            TicketState::parse(&state).unwrap_or(TicketState::New),
            &clocks_of(&row)?,
        );
        if next != row.try_get::<Option<i64>, _>("sla_next_at")? {
            sqlx::query("UPDATE tickets SET sla_next_at = $2 WHERE id = $1")
                .bind(&t.id)
                .bind(next)
                .execute(&mut **tx)
                .await?;
        }
        // Locks the chain head for this transaction (PostgreSQL row lock; SQLite's writer).
        let (prev, chain_seq): (String, i64) = sqlx::query_as(
            "UPDATE audit_head SET count = count + 1 WHERE id = 1 RETURNING hash, count",
        )
        .fetch_one(&mut **tx)
        .await?;
        let mut event = Event {
            ticket_id: t.id.clone(),
            seq,
            event_id: uuid::Uuid::new_v4().to_string(),
            kind: e.kind.to_string(),
            from: e.from.map(|s| s.as_str().to_string()),
            to: e.to.map(|s| s.as_str().to_string()),
            actor: e.actor.to_string(),
            at: now,
            comment: e.comment.to_string(),
            data: e.data,
            chain_seq,
            hash: String::new(),
        };
        event.hash = chain_hash(&prev, &event);
        let anchor = self.anchor.as_ref().map(|k| k.seal(chain_seq, &event.hash));
        sqlx::query("UPDATE audit_head SET hash = $1, anchor = $2 WHERE id = 1")
            .bind(&event.hash)
            .bind(anchor)
            .execute(&mut **tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO ticket_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&event.ticket_id)
        .bind(event.seq)
        .bind(&event.event_id)
        .bind(&event.kind)
        .bind(&event.from)
        .bind(&event.to)
        .bind(&event.actor)
        .bind(event.at)
        .bind(&event.comment)
        .bind(event.data.to_string())
        .bind(event.chain_seq)
        .bind(&prev)
        .bind(&event.hash)
        .execute(&mut **tx)
        .await?;
        let state = event
            .to
            .clone()
            .unwrap_or_else(|| t.state.as_str().to_string());
        let payload = json!({
            "event_id": event.event_id,
            "type": format!("ticket.{}", event.kind),
            "at": chrono::DateTime::from_timestamp_millis(now).map(|d| d.to_rfc3339()),
            "actor": event.actor,
            "comment": event.comment,
            "data": event.data,
            "ticket": {
                "id": t.id, "number": t.number, "kind": t.kind, "queue": t.queue,
                "priority": t.priority, "state": state, "branch_id": t.branch_id,
                "assignee": event.data.get("assignee").cloned().unwrap_or(json!(t.assignee)),
            },
        })
        .to_string();
        crate::ports::outbox::enqueue(tx, &event.event_id, &self.webhooks, &payload, now).await?;
        Ok(event)
    }

    /// Creates a ticket with the next number of its branch today (`B001-20261125-0042`).
    pub async fn create(
        &self,
        new: &NewTicket,
        actor: &str,
    ) -> Result<(Ticket, Event), TicketError> {
        let mut tx = self.db.begin_write().await?;
        let now = now_ms();
        let day = crate::domain::clock::now_local()
            .format("%Y%m%d")
            .to_string();
        let last: Option<i64> = sqlx::query_scalar(
            "UPDATE ticket_numbers SET last = last + 1 WHERE branch_id = $1 AND day = $2 RETURNING last",
        )
        .bind(&new.branch_id)
        .bind(&day)
        .fetch_optional(&mut **tx)
        .await?;
        let n = match last {
            Some(n) => n,
            None => {
                sqlx::query("INSERT INTO ticket_numbers (branch_id, day, last) VALUES ($1, $2, 1)")
                    .bind(&new.branch_id)
                    .bind(&day)
                    .execute(&mut **tx)
                    .await?;
                1
            }
        };
        let number = format!("{}-{day}-{n:04}", new.branch_id);
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(&format!(
            "INSERT INTO tickets ({TICKET_COLUMNS}, events) VALUES ($1, $2, $3, $4, $5, 'new', $6, $7, $8, \
             $9, $10, NULL, $11, $11, $12, $13, NULL, NULL, NULL, 0)"
        ))
        .bind(&id)
        .bind(&number)
        .bind(&new.kind)
        .bind(&new.queue)
        .bind(&new.priority)
        .bind(&new.branch_id)
        .bind(&new.kiosk_id)
        .bind(&new.session_id)
        .bind(&new.customer_ref)
        .bind(new.case.to_string())
        .bind(now)
        .bind(new.first_response_due)
        .bind(new.resolution_due)
        .execute(&mut **tx)
        .await?;
        let ticket = self.load(&mut tx, &id).await?;
        let event = self
            .append(
                &mut tx,
                &ticket,
                NewEvent {
                    kind: "created",
                    from: None,
                    to: Some(TicketState::New),
                    actor,
                    comment: "",
                    data: json!({"queue": new.queue, "priority": new.priority}),
                },
            )
            .await?;
        tx.commit().await?;
        self.committed();
        Ok((ticket, event))
    }

    /// Moves a ticket to `to`, if that is a legal step from where it stands. `assignee`
    /// (with `Assigned`) sets who owns it. Conditional on the state read, so a concurrent
    /// change makes this one fail (`state_changed`) instead of both happening.
    pub async fn transition(
        &self,
        id: &str,
        to: TicketState,
        actor: &str,
        comment: &str,
        assignee: Option<&str>,
    ) -> Result<(Ticket, Event), TicketError> {
        let mut tx = self.db.begin_write().await?;
        let t = self.load(&mut tx, id).await?;
        if !t.state.next().contains(&to) {
            return Err(TicketError::Conflict(
                Conflict::IllegalTransition,
                format!(
                    "a ticket that is {} cannot become {} (allowed: {})",
                    t.state.as_str(),
                    to.as_str(),
                    t.state
                        .next()
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let now = now_ms();
        let new_assignee = match to {
            TicketState::Assigned => assignee.map(String::from).or(t.assignee.clone()),
            TicketState::New => None,
            _ => t.assignee.clone(),
        };
        let responded = matches!(to, TicketState::InProgress | TicketState::Resolved);
        let n = sqlx::query(
            "UPDATE tickets SET state = $3, assignee = $4, updated_at = $5, \
             first_response_at = CASE WHEN $6 AND first_response_at IS NULL THEN $5 ELSE first_response_at END, \
             resolved_at = CASE WHEN $7 THEN $5 ELSE resolved_at END, \
             closed_at = CASE WHEN $8 THEN $5 ELSE closed_at END \
             WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(t.state.as_str())
        .bind(to.as_str())
        .bind(&new_assignee)
        .bind(now)
        .bind(responded)
        .bind(to == TicketState::Resolved)
        .bind(matches!(to, TicketState::Closed | TicketState::Cancelled))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(TicketError::Conflict(
                if to == TicketState::Assigned {
                    Conflict::AlreadyClaimed
                } else {
                    Conflict::StateChanged
                },
                "the ticket changed at the same moment; reload it".into(),
            ));
        }
        let after = self.load(&mut tx, id).await?;
        let event = self
            .append(
                &mut tx,
                &after,
                NewEvent {
                    kind: "state",
                    from: Some(t.state),
                    to: Some(to),
                    actor,
                    comment,
                    data: json!({"assignee": new_assignee}),
                },
            )
            .await?;
        tx.commit().await?;
        self.committed();
        Ok((after, event))
    }

    /// A teller takes a new ticket. Exactly one of several concurrent claims wins.
    pub async fn claim(&self, id: &str, staff: &str) -> Result<(Ticket, Event), TicketError> {
        match self
            .transition(id, TicketState::Assigned, staff, "claimed", Some(staff))
            .await
        {
            Err(TicketError::Conflict(Conflict::IllegalTransition, _)) => {
                Err(TicketError::Conflict(
                    Conflict::AlreadyClaimed,
                    "someone else has taken this ticket".into(),
                ))
            }
            other => other,
        }
    }

    /// Gives an open ticket to `staff` (a supervisor's reassignment).
    pub async fn reassign(
        &self,
        id: &str,
        staff: &str,
        actor: &str,
        comment: &str,
    ) -> Result<(Ticket, Event), TicketError> {
        let mut tx = self.db.begin_write().await?;
        let t = self.load(&mut tx, id).await?;
        if !t.state.open() {
            return Err(TicketError::Conflict(
                Conflict::IllegalTransition,
                format!("a ticket that is {} cannot be reassigned", t.state.as_str()),
            ));
        }
        let to = if t.state == TicketState::New {
            TicketState::Assigned
        } else {
            t.state
        };
        let n = sqlx::query(
            "UPDATE tickets SET assignee = $3, state = $4, updated_at = $5 WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(t.state.as_str())
        .bind(staff)
        .bind(to.as_str())
        .bind(now_ms())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(TicketError::Conflict(
                Conflict::StateChanged,
                "the ticket changed at the same moment; reload it".into(),
            ));
        }
        let after = self.load(&mut tx, id).await?;
        let event = self
            .append(
                &mut tx,
                &after,
                NewEvent {
                    kind: "reassigned",
                    from: Some(t.state),
                    to: Some(to),
                    actor,
                    comment,
                    data: json!({"assignee": staff, "previous": t.assignee}),
                },
            )
            .await?;
        tx.commit().await?;
        self.committed();
        Ok((after, event))
    }

    /// An event without a state change (comment, relay line, SLA warning…).
    pub async fn note(&self, id: &str, e: NewEvent<'_>) -> Result<(Ticket, Event), TicketError> {
        let mut tx = self.db.begin_write().await?;
        let t = self.load(&mut tx, id).await?;
        let event = self.append(&mut tx, &t, e).await?;
        tx.commit().await?;
        self.committed();
        Ok((t, event))
    }

    /// Marks an SLA stage once (`warned_response_at` …); false when it was already marked
    /// (another node did it), so each warning and escalation happens exactly once.
    pub async fn mark_once(
        &self,
        id: &str,
        column: &str,
        e: NewEvent<'_>,
    ) -> Result<bool, TicketError> {
        const COLUMNS: [&str; 4] = [
            "warned_response_at",
            "escalated_response_at",
            "warned_resolution_at",
            "escalated_resolution_at",
        ];
        if !COLUMNS.contains(&column) {
            return Err(TicketError::Invalid(format!("no SLA stage {column}")));
        }
        let mut tx = self.db.begin_write().await?;
        let n = sqlx::query(&format!(
            "UPDATE tickets SET {column} = $2 WHERE id = $1 AND {column} IS NULL"
        ))
        .bind(id)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        let t = self.load(&mut tx, id).await?;
        self.append(&mut tx, &t, e).await?;
        tx.commit().await?;
        self.committed();
        Ok(true)
    }

    /// The ticket with this id or number.
    pub async fn get(&self, id: &str) -> Result<Ticket, TicketError> {
        let row = sqlx::query(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1 OR number = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?
        .ok_or(TicketError::NotFound)?;
        Ok(ticket_of(&row)?)
    }

    /// The ticket's history, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<Event>, TicketError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM ticket_events WHERE ticket_id = $1 ORDER BY seq"
        ))
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(event_of).collect::<Result<_, _>>()?)
    }

    /// Events after `chain_seq` (every ticket), oldest first: what a node has not yet told
    /// its staff and kiosks.
    pub async fn events_after(
        &self,
        chain_seq: i64,
        limit: i64,
    ) -> Result<Vec<Event>, TicketError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM ticket_events WHERE chain_seq > $1 ORDER BY chain_seq LIMIT $2"
        ))
        .bind(chain_seq)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(event_of).collect::<Result<_, _>>()?)
    }

    /// The newest link of the audit chain.
    pub async fn chain_head(&self) -> Result<i64, TicketError> {
        Ok(
            sqlx::query_scalar("SELECT count FROM audit_head WHERE id = 1")
                .fetch_one(&self.db.pool)
                .await?,
        )
    }

    /// Tickets matching the filters, newest first. Every filter (the queue scope too) is
    /// in the query, so the limit counts only matching tickets.
    pub async fn list(&self, f: &Filter) -> Result<Vec<Ticket>, TicketError> {
        let queues = f.queues.as_deref();
        if queues.is_some_and(|q| q.is_empty()) {
            return Ok(Vec::new());
        }
        let in_queues = queues
            .map(|q| {
                let marks: Vec<String> = (0..q.len()).map(|i| format!("${}", i + 8)).collect();
                format!("AND queue IN ({}) ", marks.join(", "))
            })
            .unwrap_or_default();
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets \
             WHERE ($1 IS NULL OR queue = $1) AND ($2 IS NULL OR state = $2) \
             AND ($3 IS NULL OR assignee = $3) AND ($4 IS NULL OR branch_id = $4) \
             AND ($5 IS NULL OR kind = $5) AND ($6 IS NULL OR session_id = $6) {in_queues}\
             ORDER BY created_at DESC LIMIT $7"
        );
        let mut query = sqlx::query(&sql)
            .bind(&f.queue)
            .bind(&f.state)
            .bind(&f.assignee)
            .bind(&f.branch)
            .bind(&f.kind)
            .bind(&f.session)
            .bind(f.limit.clamp(1, 500));
        for q in queues.unwrap_or_default() {
            query = query.bind(q);
        }
        let rows = query.fetch_all(&self.db.pool).await?;
        Ok(rows.iter().map(ticket_of).collect::<Result<_, _>>()?)
    }

    /// Up to `limit` tickets whose next SLA moment ([`sla`]) is at or before `now`, soonest
    /// first, with their marks: what the watcher has to look at, read through the index
    /// on `sla_next_at`, however many tickets are open.
    pub async fn sla_due(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(Ticket, [Option<i64>; 4])>, TicketError> {
        let rows = sqlx::query(&format!(
            "SELECT {TICKET_COLUMNS}, warned_response_at, escalated_response_at, warned_resolution_at, \
             escalated_resolution_at FROM tickets WHERE sla_next_at <= $1 \
             ORDER BY sla_next_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((ticket_of(r)?, clocks_of(r)?.marks)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(TicketError::from)
    }

    /// Sets the ticket's next SLA moment from what it is now (after the watcher looked at
    /// it and had nothing to mark, e.g. another node marked it first, or the clock it was
    /// predates the migration that added the column). Conditional on `updated_at`, so a
    /// concurrent event — which recomputes it itself — is never overwritten.
    pub async fn reschedule_sla(&self, id: &str) -> Result<(), TicketError> {
        let Some(row) = sqlx::query(
            "SELECT state, updated_at, created_at, first_response_due, first_response_at, \
             resolution_due, warned_response_at, escalated_response_at, warned_resolution_at, \
             escalated_resolution_at FROM tickets WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?
        else {
            return Ok(());
        };
        let state: String = row.try_get("state")?;
        let updated_at: i64 = row.try_get("updated_at")?;
        let next = sla::next_action(
            TicketState::parse(&state).unwrap_or(TicketState::New),
            &clocks_of(&row)?,
        );
        sqlx::query("UPDATE tickets SET sla_next_at = $3 WHERE id = $1 AND updated_at = $2")
            .bind(id)
            .bind(updated_at)
            .bind(next)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Open tickets per assignee (the load of each teller).
    pub async fn load_of(&self, staff: &[String]) -> Result<Vec<(String, i64)>, TicketError> {
        let mut out = Vec::new();
        for s in staff {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tickets WHERE assignee = $1 AND state IN ('assigned', 'in_progress', 'pending_customer')",
            )
            .bind(s)
            .fetch_one(&self.db.pool)
            .await?;
            out.push((s.clone(), n));
        }
        Ok(out)
    }

    /// Walks the whole audit chain; the first broken link, if any.
    pub async fn verify_chain(&self) -> Result<(i64, Option<String>), TicketError> {
        let mut prev = "0".repeat(64);
        let mut after = 0i64;
        let mut checked = 0i64;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {EVENT_COLUMNS} FROM ticket_events WHERE chain_seq > $1 ORDER BY chain_seq LIMIT 1000"
            ))
            .bind(after)
            .fetch_all(&self.db.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let e = event_of(r)?;
                let stored_prev: String = r.try_get("prev_hash")?;
                if e.chain_seq != after + 1 {
                    return Ok((checked, Some(format!("link {} is missing", after + 1))));
                }
                if stored_prev != prev || chain_hash(&prev, &e) != e.hash {
                    return Ok((
                        checked,
                        Some(format!(
                            "link {} (ticket {} event {}) does not match its content",
                            e.chain_seq, e.ticket_id, e.seq
                        )),
                    ));
                }
                prev = e.hash.clone();
                after = e.chain_seq;
                checked += 1;
            }
        }
        let (head, count): (String, i64) =
            sqlx::query_as("SELECT hash, count FROM audit_head WHERE id = 1")
                .fetch_one(&self.db.pool)
                .await?;
        if count != checked || (count > 0 && head != prev) {
            return Ok((
                checked,
                Some(format!("the head says {count} links, {checked} found")),
            ));
        }
        Ok((checked, None))
    }
}
