//! `GET /v1/staff/ws`: tellers' and remote experts' live channel (bearer token in the
//! `Authorization` header, or `?token=` for browsers). The messages are
//! [`crate::tickets::wire`]'s, each with an example in `docs/tickets.md`. The server pushes
//! every event of the tickets a person may work (`ticket.event`: new handoffs of their
//! queues, their own tickets, SLA warnings, customer lines of a handoff they own). The
//! person sends `accept` (take a waiting handoff: exactly one of several wins; the kiosk is
//! told `handoff {status: "connected"}`), `say` (speak to the customer of a handoff they
//! own), `release` (hand the customer back to the bot) or `ping`, and gets `ok`, `pong` or
//! an `error` with a stable code; a bad frame never closes the connection. The token is
//! checked again every `[live] recheck_secs`: logged out, expired or disabled, the console
//! is closed with code 1008 (policy).

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::auth::bearer;
use crate::access::staff::StaffUser;
use crate::access::Role;
use crate::error::ApiError;
use crate::live::{self, Kick};
use crate::session::connection::close;
use crate::state::AppState;
use crate::tickets::model::{NewEvent, TicketError, TicketState};
use crate::tickets::wire::{
    self, Command, ErrorCode, Frame, StaffMessage, StaffRequest, MAX_REQUEST_BYTES, MAX_SAY_CHARS,
};

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
    ws.max_message_size(MAX_REQUEST_BYTES * 4)
        .read_buffer_size(super::WS_BUFFER_BYTES)
        .write_buffer_size(super::WS_BUFFER_BYTES)
        .on_upgrade(move |socket| tracker.track_future(run(app, socket, user, token)))
}

async fn run(app: AppState, socket: WebSocket, user: StaffUser, token: String) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Frame>(crate::tickets::hub::STAFF_QUEUE);
    let id = app
        .tickets
        .staff
        .join(&user.name, &user.roles, user.branch.as_deref(), tx.clone());
    tracing::info!(staff = %user.name, "staff console connected");
    let welcome = StaffMessage::Welcome {
        name: user.name.clone(),
        roles: user.roles.clone(),
    };
    let _ = tx.send(welcome.encode()).await;
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink
                .send(Message::Text(frame.as_ref().into()))
                .await
                .is_err()
            {
                return None;
            }
        }
        Some(sink)
    });
    let kick = Kick::new();
    let _recheck = live::recheck(app.settings.live.recheck_every(), kick.clone(), {
        let db = app.db.clone();
        move || {
            let (db, token) = (db.clone(), token.clone());
            async move {
                Ok::<_, sqlx::Error>(
                    crate::access::staff::authenticate(&db, &token)
                        .await?
                        .is_some(),
                )
            }
        }
    });
    let mut kicked = None;
    loop {
        let msg = tokio::select! {
            _ = app.shutdown.cancelled() => break,
            reason = kick.kicked() => {
                kicked = Some(reason);
                break;
            }
            m = stream.next() => m,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        let reply = match wire::decode(&text) {
            Ok(request) => handle(&app, &user, &request).await,
            Err(e) => e.answer(),
        };
        if tx.send(reply.encode()).await.is_err() {
            break;
        }
    }
    app.tickets.staff.leave(id);
    drop(tx);
    if let Ok(Some(mut sink)) = writer.await {
        if let Some(reason) = kicked {
            tracing::warn!(staff = %user.name, reason, "staff console closed: its token is no longer valid");
            let frame = CloseFrame {
                code: close::POLICY,
                reason: reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    }
    tracing::info!(staff = %user.name, "staff console disconnected");
}

/// The answer to a refused ticket operation (a database failure is logged here).
fn refused(e: TicketError) -> StaffMessage {
    if let TicketError::Db(err) = &e {
        tracing::error!(error = %err, "staff command failed");
    }
    StaffMessage::refused(&e)
}

/// Carries out one request of `user`'s console; the answer to send back.
async fn handle(app: &AppState, user: &StaffUser, request: &StaffRequest) -> StaffMessage {
    let Some((command, id)) = request.command() else {
        return StaffMessage::Pong;
    };
    let tickets = &app.tickets;
    let t = match tickets.get(id).await {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    if !tickets.sees(&t, &user.roles, user.branch.as_deref()) {
        return refused(TicketError::NotFound);
    }
    let owns = t.assignee.as_deref() == Some(user.name.as_str());
    let result = match (command, request) {
        (Command::Accept, _) => tickets.claim(&t.id, &user.name).await.map(|_| ()),
        (Command::Say, StaffRequest::Say { text, .. }) if owns && t.state.open() => {
            let text: String = text.trim().chars().take(MAX_SAY_CHARS).collect();
            if text.is_empty() {
                return StaffMessage::error(ErrorCode::InvalidText, "说的话是空的。");
            }
            // The first line from the person is their first response.
            if t.state == TicketState::Assigned {
                let _ = tickets
                    .transition(&t.id, TicketState::InProgress, &user.name, "", None)
                    .await;
            }
            let masked = crate::access::mask_pii(&text);
            let line = NewEvent::note("relay_staff", &user.name, &masked, json!({}));
            tickets.note(&t.id, line).await.map(|_| ())
        }
        (Command::Release, _) if owns => {
            let back = NewEvent::note("released", &user.name, "handed back to the bot", json!({}));
            tickets.note(&t.id, back).await.map(|_| ())
        }
        (Command::Say | Command::Release, _) => {
            return StaffMessage::error(ErrorCode::NotOwner, "这张工单不在您名下。")
        }
    };
    match result {
        Ok(()) => StaffMessage::Ok {
            done: command,
            ticket: t.id,
        },
        Err(e) => refused(e),
    }
}
