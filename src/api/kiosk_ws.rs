//! `GET /v1/kiosk/ws`: checks the handshake's `Origin`, upgrades, and adapts axum's WebSocket
//! to the transport-neutral [`Frame`] the connection loop speaks.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};

use super::auth::bearer;
use crate::error::ApiError;
use crate::session::connection::{self, Frame};
use crate::state::AppState;

/// Kiosk peers (token in `hello` or `Authorization: Bearer`).
pub async fn upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !super::origin::allowed(&headers, &app.settings.server.allowed_origins) {
        tracing::warn!(origin = ?headers.get("origin"), "websocket origin refused");
        return ApiError::Forbidden.into_response();
    }
    if app.shutdown.is_cancelled() {
        return ApiError::Upstream(
            "shutting_down",
            "the server is shutting down".into(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response();
    }
    let k = &app.settings.kiosk;
    // The transport refuses only frames far beyond our limits; frames between our limit and
    // this get an `error` frame and the connection survives.
    let transport_max = (k.max_text_frame_bytes.max(k.max_binary_frame_bytes) * 4).max(1 << 20);
    let token = bearer(&headers);
    let tracker = app.connections.clone();
    ws.max_message_size(transport_max)
        .max_frame_size(transport_max)
        .read_buffer_size(super::WS_BUFFER_BYTES)
        .write_buffer_size(super::WS_BUFFER_BYTES)
        .on_upgrade(move |socket| tracker.track_future(connection::run(app, adapt(socket), token)))
}

fn adapt(
    socket: WebSocket,
) -> impl futures_util::Stream<Item = Result<Frame, axum::Error>>
       + futures_util::Sink<Frame, Error = axum::Error>
       + Send {
    socket
        .map(|m| {
            m.map(|m| match m {
                Message::Text(t) => Frame::Text(t.to_string()),
                Message::Binary(b) => Frame::Binary(b.to_vec()),
                Message::Close(c) => {
                    Frame::Close(c.as_ref().map(|c| c.code).unwrap_or(1005), String::new())
                }
                Message::Ping(_) | Message::Pong(_) => Frame::Control,
            })
        })
        .with(|f: Frame| async move {
            Ok::<_, axum::Error>(match f {
                Frame::Text(t) => Message::Text(t.into()),
                Frame::Binary(b) => Message::Binary(b.into()),
                Frame::Close(code, reason) => Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
                Frame::Control => Message::Ping(Vec::new().into()),
            })
        })
}
