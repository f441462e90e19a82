//! TLS terminated by `serve` itself (`[server] tls_cert`, `tls_key`, `tls_client_ca`): the rustls server settings (ring, the one
//! crypto provider of the process; HTTP/1.1 by ALPN, which WebSocket upgrades need; client
//! certificates required when `client_ca` is set) and the accept loop that serves the router
//! over TLS with graceful shutdown: on stop it accepts no more connections and waits for the
//! requests in flight, as `axum::serve` does for plain HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::config::TlsSettings;

/// The longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of `cert` and `key` is set, or `client_ca` without them.
    #[error("tls: {0}")]
    Incomplete(&'static str),
    /// A PEM file could not be read or holds nothing usable.
    #[error("tls: {0}")]
    File(#[from] kiosk_connect::ConnectError),
    /// rustls refused the settings (e.g. a key that does not match the certificate).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA file cannot verify client certificates.
    #[error("server.tls_client_ca: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// The server settings `[server] tls_*` describe, or `None` for plain HTTP.
pub fn server_config(
    settings: &TlsSettings,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let empty = |p: &std::path::Path| p.as_os_str().is_empty();
    if !settings.enabled() {
        if !empty(&settings.client_ca) {
            return Err(TlsError::Incomplete(
                "server.tls_client_ca needs server.tls_cert and server.tls_key (serve terminates TLS)",
            ));
        }
        return Ok(None);
    }
    if empty(&settings.cert) || empty(&settings.key) {
        return Err(TlsError::Incomplete(
            "server.tls_cert and server.tls_key go together",
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if empty(&settings.client_ca) {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in kiosk_connect::read_certificates(&settings.client_ca)? {
            roots.add(cert)?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()?;
        builder.with_client_cert_verifier(verifier)
    };
    let chain = kiosk_connect::read_certificates(&settings.cert)?;
    let key = kiosk_connect::read_private_key(&settings.key)?;
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Serves `router` over TLS on `listener` until `stop` resolves, then stops accepting, asks
/// every connection to close once its request in flight is answered, and waits for them
/// (upgraded WebSockets have left their connection by then: they are the application's to
/// drain). Each request carries the peer's address as `ConnectInfo`, as with
/// `into_make_service_with_connect_info` on plain HTTP (login throttling needs it).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: Arc<rustls::ServerConfig>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let closing = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(stop);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    // As for plain HTTP (startup.rs): small frames go out at once.
                    if let Err(e) = pair.0.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                    pair
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, router, closing) = (acceptor.clone(), router.clone(), closing.clone());
        connections.spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let tls = tokio::select! {
                _ = closing.cancelled() => return,
                done = handshake => match done {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote, "TLS handshake timed out");
                        return;
                    }
                },
            };
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                router.clone().call(request)
            });
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = closing.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
}
