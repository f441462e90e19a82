//! The `Origin` check of WebSocket handshakes. Browsers always send `Origin`; a request
//! without one is not from a browser page (kiosk-adapter, `concierge chat`) and is judged by
//! its token alone. A browser origin must be in `server.allowed_origins`, where `self` means
//! the host this server was reached at and `*` admits any.

use axum::http::HeaderMap;

/// True when the handshake's `Origin` is admitted.
pub fn allowed(headers: &HeaderMap, allowlist: &[String]) -> bool {
    let Some(origin) = headers.get("origin") else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    allowlist.iter().any(|allowed| match allowed.as_str() {
        "*" => true,
        "self" => host
            .as_ref()
            .is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}")),
        other => other.trim_end_matches('/').eq_ignore_ascii_case(&origin),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", host.parse().unwrap());
        if let Some(o) = origin {
            h.insert("origin", o.parse().unwrap());
        }
        h
    }

    #[test]
    fn self_admits_pages_of_this_server_only() {
        let list = vec!["self".to_string()];
        assert!(allowed(
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"),
            &list
        ));
        assert!(!allowed(
            &headers(Some("http://evil.example"), "127.0.0.1:8080"),
            &list
        ));
        assert!(allowed(&headers(None, "127.0.0.1:8080"), &list));
    }

    #[test]
    fn listed_origins_match_without_trailing_slash_or_case() {
        let list = vec!["https://Kiosk.Bank.example/".to_string()];
        assert!(allowed(
            &headers(Some("https://kiosk.bank.example"), "x"),
            &list
        ));
        assert!(!allowed(
            &headers(Some("https://kiosk.bank.example.evil"), "x"),
            &list
        ));
    }
}
