//! Ticket routes for tellers, remote experts and supervisors (roles enforced; a person sees
//! and works only the queues their roles serve, admins all): list and filter, detail with
//! the case packet and history, claim, state transitions, comments, reassignment (the
//! queue's supervisor or an admin), and opening a back-office ticket. Branch and queue
//! scope are applied in the list query (before its limit); a ticket a person may not see
//! is answered exactly like a missing one. Staff free text is masked and capped before it
//! reaches the audit chain and webhooks ([`crate::tickets::clean_text`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Staff;
use super::json::ApiJson;
use crate::access::staff::StaffUser;
use crate::access::Role;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tickets::model::{Filter, NewEvent, Ticket, TicketError, TicketState, TicketSummary};

const WORKERS: &[Role] = &[Role::Teller, Role::RemoteExpert, Role::Admin];

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::NotFound => ApiError::NotFound("ticket"),
            TicketError::Conflict(c, m) => ApiError::Conflict(c.code(), m),
            TicketError::Invalid(m) => ApiError::BadRequest("invalid_ticket", m),
            TicketError::Db(e) => ApiError::Internal(e.into()),
        }
    }
}

async fn visible(app: &AppState, user: &StaffUser, id: &str) -> Result<Ticket, ApiError> {
    let t = app.tickets.get(id).await?;
    if app.tickets.sees(&t, &user.roles, user.branch.as_deref()) {
        Ok(t)
    } else {
        // Not told apart from a missing ticket: no probing of other queues or branches.
        Err(ApiError::NotFound("ticket"))
    }
}

#[derive(Deserialize)]
pub struct ListParams {
    queue: Option<String>,
    state: Option<String>,
    assignee: Option<String>,
    kind: Option<String>,
    branch: Option<String>,
    /// `true`: only tickets assigned to me.
    mine: Option<bool>,
    limit: Option<i64>,
}

/// Roles: teller, remote expert, admin. Tickets of the queues I work, newest first.
pub async fn list(
    State(app): State<AppState>,
    staff: Staff,
    Query(p): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(WORKERS)?;
    if let Some(s) = &p.state {
        if TicketState::parse(s).is_none() {
            return Err(ApiError::BadRequest(
                "invalid_state",
                format!("no state `{s}`"),
            ));
        }
    }
    // Scoped in the query, so the limit counts only tickets this person may see.
    let branch = match (user.branch.clone(), p.branch) {
        (Some(mine), Some(asked)) if mine != asked => return Ok(Json(json!({ "tickets": [] }))),
        (mine, asked) => mine.or(asked),
    };
    let queues = (!user.roles.contains(&Role::Admin)).then(|| {
        app.tickets
            .rules
            .queues
            .keys()
            .filter(|q| app.tickets.works(q, &user.roles))
            .cloned()
            .collect::<Vec<String>>()
    });
    let f = Filter {
        queue: p.queue,
        state: p.state,
        assignee: if p.mine == Some(true) {
            Some(user.name.clone())
        } else {
            p.assignee
        },
        branch,
        kind: p.kind,
        session: None,
        queues,
        limit: p.limit.unwrap_or(100),
    };
    let list: Vec<TicketSummary> = app
        .tickets
        .list(&f)
        .await?
        .iter()
        .filter(|t| app.tickets.sees(t, &user.roles, user.branch.as_deref()))
        .map(Ticket::summary)
        .collect();
    Ok(Json(json!({ "tickets": list })))
}

/// Roles: teller, remote expert, admin (of the ticket's queue). The ticket with its case
/// packet (masked) and full history.
pub async fn detail(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(WORKERS)?;
    let t = visible(&app, user, &id).await?;
    let events = app.tickets.history(&t.id).await?;
    Ok(Json(json!({"ticket": t, "events": events})))
}

/// Roles: teller, remote expert, admin. Takes a new ticket (409 `already_claimed` when
/// someone was first).
pub async fn claim(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(WORKERS)?;
    let t = visible(&app, user, &id).await?;
    let (t, _) = app.tickets.claim(&t.id, &user.name).await?;
    Ok(Json(json!({"ticket": t.summary()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    to: String,
    #[serde(default)]
    comment: String,
}

/// Roles: the assignee (or an admin). new → assigned → in_progress → pending_customer →
/// resolved → closed, or cancelled; anything else is 409 `illegal_transition`.
pub async fn transition(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransitionBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(WORKERS)?;
    let t = visible(&app, user, &id).await?;
    let to = TicketState::parse(&body.to)
        .ok_or_else(|| ApiError::BadRequest("invalid_state", format!("no state `{}`", body.to)))?;
    check_comment(&body.comment)?;
    let owner = t.assignee.as_deref() == Some(user.name.as_str());
    if !owner && !user.roles.contains(&Role::Admin) {
        return Err(ApiError::Refused(
            "not_owner",
            "only the ticket's assignee (or an admin) moves it".into(),
        ));
    }
    let (t, _) = app
        .tickets
        .transition(&t.id, to, &user.name, &body.comment, Some(&user.name))
        .await?;
    Ok(Json(json!({"ticket": t.summary()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    text: String,
}

/// Roles: teller, remote expert, admin (of the ticket's queue). Adds a comment (masked).
pub async fn comment(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CommentBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = staff.require(WORKERS)?;
    let t = visible(&app, user, &id).await?;
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > crate::tickets::MAX_TEXT_CHARS {
        return Err(ApiError::BadRequest(
            "invalid_comment",
            "a comment has 1 to 2000 characters".into(),
        ));
    }
    // Masked and capped by the ticket service before it is hashed and sent.
    let (_, e) = app
        .tickets
        .note(
            &t.id,
            NewEvent::note("comment", &user.name, text, json!({})),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"event": e}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReassignBody {
    to: String,
    #[serde(default)]
    comment: String,
}

/// Roles: the queue's supervisor or an admin, who can see the ticket (queue and branch):
/// gives it to someone else. A ticket they cannot see is 404, like a missing one.
pub async fn reassign(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReassignBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(WORKERS)?;
    let t = visible(&app, user, &id).await?;
    let to = body.to.trim();
    if to.is_empty() || to.chars().count() > 64 || to.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "invalid_assignee",
            "name the colleague: 1 to 64 characters".into(),
        ));
    }
    check_comment(&body.comment)?;
    let supervisor = app
        .tickets
        .rules
        .queues
        .get(&t.queue)
        .map(|q| q.supervisor.as_str());
    if supervisor != Some(user.name.as_str()) && !user.roles.contains(&Role::Admin) {
        return Err(ApiError::Forbidden);
    }
    let (t, _) = app
        .tickets
        .reassign(&t.id, to, &user.name, &body.comment)
        .await?;
    Ok(Json(json!({"ticket": t.summary()})))
}

/// A transition or reassignment comment: at most [`crate::tickets::MAX_TEXT_CHARS`].
fn check_comment(comment: &str) -> Result<(), ApiError> {
    if comment.chars().count() > crate::tickets::MAX_TEXT_CHARS {
        return Err(ApiError::BadRequest(
            "invalid_comment",
            format!(
                "a comment has at most {} characters",
                crate::tickets::MAX_TEXT_CHARS
            ),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    kind: String,
    branch: String,
    #[serde(default)]
    customer_ref: Option<String>,
    #[serde(default)]
    note: String,
    #[serde(default)]
    vip: bool,
}

/// Roles: teller, remote expert, admin. Opens a ticket (routed, prioritised and given SLA
/// deadlines by the rules; assigned to the least-loaded online colleague with the skill).
pub async fn create(
    State(app): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = staff.require(WORKERS)?;
    if body.branch.is_empty() || body.branch.len() > 32 || body.note.chars().count() > 2000 {
        return Err(ApiError::BadRequest(
            "invalid_ticket",
            "branch 1–32 characters, note up to 2000".into(),
        ));
    }
    if user.branch.as_deref().is_some_and(|b| b != body.branch) {
        return Err(ApiError::Refused(
            "other_branch",
            "you work for another branch".into(),
        ));
    }
    let masked_ref = body.customer_ref.as_deref().map(crate::access::mask_pii);
    let case = json!({"note": crate::access::mask_pii(&body.note), "opened_by": user.name});
    let conditions: Vec<&str> = if body.vip { vec!["vip"] } else { Vec::new() };
    let t = app
        .tickets
        .open(
            &body.kind,
            &body.branch,
            None,
            None,
            masked_ref.as_deref(),
            case,
            &conditions,
            &user.name,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"ticket": t.summary()}))))
}
