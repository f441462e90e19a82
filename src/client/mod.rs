//! The terminal clients of a Concierge server, speaking the kiosk protocol over a real
//! WebSocket as a kiosk screen does: [`chat`] (one person at a terminal), [`bench`] (the
//! load generator of `concierge bench kiosks`) and [`eval`] (question sets asked of an
//! application built in-process, `concierge eval kiosk`).

pub mod bench;
pub mod chat;
pub mod eval;

/// Turns `http://host:port` (or `ws://…`, with or without the path) into the kiosk
/// WebSocket URL.
pub fn kiosk_ws_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let url = if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.to_string()
    };
    if url.ends_with("/v1/kiosk/ws") {
        url
    } else {
        format!("{url}/v1/kiosk/ws")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_become_the_kiosk_websocket() {
        assert_eq!(
            kiosk_ws_url("http://127.0.0.1:8080"),
            "ws://127.0.0.1:8080/v1/kiosk/ws"
        );
        assert_eq!(
            kiosk_ws_url("https://a.example/"),
            "wss://a.example/v1/kiosk/ws"
        );
        assert_eq!(kiosk_ws_url("ws://h:1/v1/kiosk/ws"), "ws://h:1/v1/kiosk/ws");
    }
}
