//! `GET /v1/staff/ws`: tellers' and remote experts' live channel (bearer token in the
//! `Authorization` header, or `?token=` for browsers). The server pushes every event of
//! the tickets a person may work (`{"type": "ticket.event", "ticket", "event"}`: new
//! handoffs of their queues, their own tickets, SLA warnings, customer lines of a handoff
//! they own). The person sends:
//!
//! - `{"type": "accept", "ticket": ID}` — take a waiting handoff (exactly one of several
//!   wins; the kiosk is told `handoff {status: "connected"}`);
//! - `{"type": "say", "ticket": ID, "text": …}` — speak to the customer of a handoff they own;
//! - `{"type": "release", "ticket": ID}` — hand the customer back to the bot;
//! - `{"type": "ping"}`.
//!
//! Answers: `{"type": "ok", "for": …, "ticket": …}` or `{"type": "error", "code", "message"}`.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::auth::bearer;
use crate::access::staff::StaffUser;
use crate::access::Role;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tickets::store::{NewEvent, TicketError, TicketState};

/// Largest message a console may send.
const MAX_STAFF_FRAME: usize = 16 * 1024;
/// Longest line a person may say to a customer, in characters.
const MAX_SAY_CHARS: usize = 500;

#[derive(Deserialize)]
pub struct TokenParam {
    token: Option<String>,
}

pub async fn upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenParam>,
    ws: WebSocketUpgrade,
) -> Response {
    if !super::origin::allowed(&headers, &app.settings.server.allowed_origins) {
        return ApiError::Forbidden.into_response();
    }
    let Some(token) = bearer(&headers).or(q.token.filter(|t| t.len() <= 256)) else {
        return ApiError::Unauthorized.into_response();
    };
    let user = match crate::access::staff::authenticate(&app.db, &token).await {
        Ok(Some(u)) => u,
        Ok(None) => return ApiError::Unauthorized.into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if !user.has_any(&[Role::Teller, Role::RemoteExpert, Role::Admin]) {
        return ApiError::Forbidden.into_response();
    }
    let tracker = app.connections.clone();
    ws.max_message_size(MAX_STAFF_FRAME * 4)
        .on_upgrade(move |socket| tracker.track_future(run(app, socket, user)))
}

async fn run(app: AppState, socket: WebSocket, user: StaffUser) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Value>(crate::tickets::hub::STAFF_QUEUE);
    let id = app
        .tickets
        .staff
        .join(&user.name, &user.roles, user.branch.as_deref(), tx.clone());
    tracing::info!(staff = %user.name, "staff console connected");
    let _ = tx
        .send(json!({"type": "welcome", "name": user.name, "roles": user.roles}))
        .await;
    let writer = tokio::spawn(async move {
        while let Some(v) = rx.recv().await {
            if sink
                .send(Message::Text(v.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = sink.close().await;
    });
    loop {
        let msg = tokio::select! {
            _ = app.shutdown.cancelled() => break,
            m = stream.next() => m,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        let reply = if text.len() > MAX_STAFF_FRAME {
            error("frame_too_large", "消息太长。")
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => handle(&app, &user, &v).await,
                Err(_) => error("malformed_message", "不是合法的 JSON。"),
            }
        };
        if tx.send(reply).await.is_err() {
            break;
        }
    }
    app.tickets.staff.leave(id);
    drop(tx);
    let _ = writer.await;
    tracing::info!(staff = %user.name, "staff console disconnected");
}

fn error(code: &str, message: &str) -> Value {
    json!({"type": "error", "code": code, "message": message})
}

fn ticket_error(e: TicketError) -> Value {
    match e {
        TicketError::NotFound => error("not_found", "没有这张工单。"),
        TicketError::Conflict(code, m) | TicketError::Invalid(code, m) => error(code, &m),
        TicketError::Db(e) => {
            tracing::error!(error = %e, "staff command failed");
            error("internal", "系统繁忙，请稍后再试。")
        }
    }
}

async fn handle(app: &AppState, user: &StaffUser, v: &Value) -> Value {
    let kind = v["type"].as_str().unwrap_or("");
    if kind == "ping" {
        return json!({"type": "pong"});
    }
    let Some(id) = v["ticket"].as_str().filter(|s| s.len() <= 64) else {
        return error("malformed_message", "缺少 ticket。");
    };
    let tickets = &app.tickets;
    let t = match tickets.store.get(id).await {
        Ok(t) => t,
        Err(e) => return ticket_error(e),
    };
    if !tickets.sees(&t, &user.roles, user.branch.as_deref()) {
        return error("not_found", "没有这张工单。");
    }
    let owns = t.assignee.as_deref() == Some(user.name.as_str());
    let result = match kind {
        "accept" => tickets.store.claim(&t.id, &user.name).await.map(|_| ()),
        "say" if owns && t.state.open() => {
            let text: String = v["text"]
                .as_str()
                .unwrap_or("")
                .trim()
                .chars()
                .take(MAX_SAY_CHARS)
                .collect();
            if text.is_empty() {
                return error("invalid_text", "说的话是空的。");
            }
            // The first line from the person is their first response.
            if t.state == TicketState::Assigned {
                let _ = tickets
                    .store
                    .transition(&t.id, TicketState::InProgress, &user.name, "", None)
                    .await;
            }
            tickets
                .store
                .note(
                    &t.id,
                    NewEvent {
                        kind: "relay_staff",
                        from: None,
                        to: None,
                        actor: &user.name,
                        comment: &crate::access::mask_pii(&text),
                        data: json!({}),
                    },
                )
                .await
                .map(|_| ())
        }
        "release" if owns => tickets
            .store
            .note(
                &t.id,
                NewEvent {
                    kind: "released",
                    from: None,
                    to: None,
                    actor: &user.name,
                    comment: "handed back to the bot",
                    data: json!({}),
                },
            )
            .await
            .map(|_| ()),
        "say" | "release" => return error("not_owner", "这张工单不在您名下。"),
        _ => return error("unknown_message_type", "不支持的消息类型。"),
    };
    match result {
        Ok(()) => json!({"type": "ok", "for": kind, "ticket": t.id}),
        Err(e) => ticket_error(e),
    }
}
