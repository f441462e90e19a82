//! The web pages, served from the binary: `/kiosk` (the customer's touch screen with the
//! digital human 小安), `/console` (tellers and remote experts), `/studio` (content staff),
//! `/record` (a session's printable compliance record), `/reports` (the branch dashboard),
//! and their scripts, styles and pictures under `/assets/…` (uPlot, the dashboard's charts,
//! vendored under `assets/vendor/uplot/` with its licence).
//!
//! Everything under `web/` is embedded at compile time (`include_bytes!`), so a deployment
//! is one binary and an asset can only be one of the files listed here: a request path is
//! looked up in a fixed table, never joined to a directory, so `..` cannot reach anything.
//! Every answer carries a strict `Content-Security-Policy` (scripts and styles only from
//! this server, no inline code, WebSockets only back to the host the page came from),
//! `X-Content-Type-Options: nosniff`, and `Cache-Control: no-cache` with an `ETag`, so a
//! kiosk revalidates cheaply and picks up a new release at once.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// One embedded file.
struct Asset {
    /// The URL path under `/assets/` (or the page's own path for the HTML pages).
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ctype:expr) => {
        Asset {
            path: $path,
            content_type: $ctype,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The pages.
static PAGES: &[Asset] = &[
    asset!("kiosk.html", HTML),
    asset!("console.html", HTML),
    asset!("studio.html", HTML),
    asset!("record.html", HTML),
    asset!("reports.html", HTML),
];

/// Everything under `/assets/`.
static ASSETS: &[Asset] = &[
    asset!("assets/base.css", CSS),
    asset!("assets/kiosk.css", CSS),
    asset!("assets/staff.css", CSS),
    asset!("assets/dom.js", JS),
    asset!("assets/locale.js", JS),
    asset!("assets/markdown.js", JS),
    asset!("assets/api.js", JS),
    asset!("assets/kiosk.js", JS),
    asset!("assets/avatar.js", JS),
    asset!("assets/voice.js", JS),
    asset!("assets/mic-worklet.js", JS),
    asset!("assets/console.js", JS),
    asset!("assets/studio.js", JS),
    asset!("assets/record.js", JS),
    asset!("assets/labels.js", JS),
    asset!("assets/reports.js", JS),
    asset!("assets/vendor/uplot/uPlot.esm.js", JS),
    asset!("assets/vendor/uplot/uPlot.min.css", CSS),
    asset!("assets/img/id_card.svg", SVG),
    asset!("assets/img/pin_pad.svg", SVG),
    asset!("assets/img/card_reader.svg", SVG),
    asset!("assets/img/printer.svg", SVG),
    asset!("assets/img/camera.svg", SVG),
    asset!("assets/img/favicon.svg", SVG),
];

/// The page routes and `/assets/{*path}` (they need no state).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { page("kiosk.html", &h) }),
        )
        .route(
            "/kiosk",
            get(|h: HeaderMap| async move { page("kiosk.html", &h) }),
        )
        .route(
            "/console",
            get(|h: HeaderMap| async move { page("console.html", &h) }),
        )
        .route(
            "/studio",
            get(|h: HeaderMap| async move { page("studio.html", &h) }),
        )
        .route(
            "/reports",
            get(|h: HeaderMap| async move { page("reports.html", &h) }),
        )
        .route(
            "/record",
            get(|h: HeaderMap| async move { page("record.html", &h) }),
        )
        .route("/assets/{*path}", get(asset))
}

fn page(name: &str, headers: &HeaderMap) -> Response {
    match PAGES.iter().position(|a| a.path == name) {
        Some(i) => serve(&PAGES[i], etag(true, i), headers),
        None => ApiError::NotFound("page").into_response(),
    }
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let wanted = format!("assets/{path}");
    match ASSETS.iter().position(|a| a.path == wanted) {
        Some(i) => serve(&ASSETS[i], etag(false, i), &headers),
        None => ApiError::NotFound("asset").into_response(),
    }
}

/// A strong validator per file, computed once.
fn etag(is_page: bool, i: usize) -> &'static str {
    static PAGE_TAGS: OnceLock<Vec<String>> = OnceLock::new();
    static ASSET_TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let make = |list: &[Asset]| -> Vec<String> {
        list.iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                format!("\"{}\"", hex::encode(&digest[..12]))
            })
            .collect()
    };
    if is_page {
        &PAGE_TAGS.get_or_init(|| make(PAGES))[i]
    } else {
        &ASSET_TAGS.get_or_init(|| make(ASSETS))[i]
    }
}

/// The policy of every page: nothing inline, nothing from elsewhere; WebSockets back to the
/// host the page was loaded from; audio played from buffers (`blob:`), the microphone's
/// AudioWorklet from this server.
fn content_security_policy(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        });
    let sockets = match host {
        Some(h) => format!(" ws://{h} wss://{h}"),
        None => String::new(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         font-src 'self'; connect-src 'self'{sockets}; media-src 'self' blob:; \
         worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

fn serve(a: &Asset, etag: &'static str, headers: &HeaderMap) -> Response {
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(a.content_type),
            )],
            a.body,
        )
            .into_response()
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(headers)) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("microphone=(self), camera=(), geolocation=()"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// The page routes alone, with a state they never touch.
    async fn get_path(path: &str, extra: &[(&str, &str)]) -> Response {
        let app: Router = routes().fallback(|| async { ApiError::NotFound("route") });
        let mut req = Request::builder()
            .uri(path)
            .header("host", "127.0.0.1:8080");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    fn header_of<'a>(res: &'a Response, name: &str) -> &'a str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn the_three_pages_are_html_with_a_strict_policy() {
        for path in ["/kiosk", "/console", "/studio", "/"] {
            let res = get_path(path, &[]).await;
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(header_of(&res, "content-type"), HTML, "{path}");
            assert_eq!(header_of(&res, "x-content-type-options"), "nosniff");
            assert_eq!(header_of(&res, "cache-control"), "no-cache");
            let csp = header_of(&res, "content-security-policy");
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(csp.contains("default-src 'none'"), "{csp}");
            assert!(!csp.contains("unsafe-inline"), "{csp}");
            assert!(!csp.contains("unsafe-eval"), "{csp}");
            assert!(
                csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"),
                "{csp}"
            );
        }
    }

    #[tokio::test]
    async fn assets_have_their_content_types() {
        for (path, ctype) in [
            ("/assets/kiosk.js", JS),
            ("/assets/mic-worklet.js", JS),
            ("/assets/kiosk.css", CSS),
            ("/assets/img/id_card.svg", SVG),
        ] {
            let res = get_path(path, &[]).await;
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(header_of(&res, "content-type"), ctype, "{path}");
            assert!(!header_of(&res, "etag").is_empty());
        }
    }

    #[tokio::test]
    async fn unknown_assets_and_traversal_are_not_found() {
        for path in [
            "/assets/nope.js",
            "/assets/../Cargo.toml",
            "/assets/%2e%2e/Cargo.toml",
            "/assets/..%2f..%2fCargo.toml",
            "/assets/img/../../kiosk.html",
            "/assets/",
            "/assets//etc/passwd",
            "/kiosk.html",
            "/web/kiosk.html",
        ] {
            let res = get_path(path, &[]).await;
            assert_eq!(res.status(), 404, "{path}");
        }
    }

    #[tokio::test]
    async fn a_matching_etag_is_answered_not_modified() {
        let first = get_path("/assets/kiosk.js", &[]).await;
        let tag = header_of(&first, "etag").to_string();
        let again = get_path("/assets/kiosk.js", &[("if-none-match", &tag)]).await;
        assert_eq!(again.status(), 304);
    }

    #[test]
    fn a_strange_host_header_does_not_widen_the_policy() {
        let mut h = HeaderMap::new();
        h.insert("host", "evil.example; script-src *".parse().unwrap());
        let csp = content_security_policy(&h);
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        assert!(!csp.contains("script-src *"), "{csp}");
    }

    #[test]
    fn pages_load_no_inline_script_or_style() {
        for p in PAGES {
            let text = std::str::from_utf8(p.body).unwrap();
            for bad in [
                "<script>",
                "<style",
                " style=",
                "onclick=",
                "onload=",
                "javascript:",
            ] {
                assert!(!text.contains(bad), "{} contains {bad}", p.path);
            }
        }
    }
}
