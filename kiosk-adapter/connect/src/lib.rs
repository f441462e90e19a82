//! kiosk-connect: the client end of Concierge's kiosk WebSocket, over `ws://` or `wss://`.
//!
//! One [`Connector`] per process holds the TLS client settings (rustls with the ring
//! provider, the one crypto provider of Concierge's processes): the Mozilla roots of
//! `webpki-roots` plus, optionally, the certificates of a CA file (a bank's own CA), and,
//! optionally, a client certificate for mutual TLS. It also holds the plain-text policy: a
//! `ws://` URL to a host that is not this machine is refused unless the connector was built
//! with [`TlsOptions::allow_plain_remote`] (the kiosk adapter's `--insecure`), because the
//! kiosk token and every customer's words would cross the branch LAN in clear.
//!
//! Used by the `kiosk-adapter` device peer and by `concierge chat` and `bench`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The WebSocket stream a [`Connector`] opens (plain or TLS).
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How to reach the server.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM file of CA certificates trusted in addition to the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// PEM file of this client's certificate chain (mutual TLS); needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM file of the private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
    /// Allow `ws://` (no TLS) to hosts other than this machine.
    pub allow_plain_remote: bool,
}

/// Why a connector could not be built or a connection not opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    #[error("`{0}` is not a ws:// or wss:// URL with a host")]
    BadUrl(String),
    /// Plain `ws://` to another machine without permission.
    #[error(
        "refusing plain ws:// to `{0}`, which is not this machine: the token and the \
         conversation would cross the network unencrypted; use wss:// (or --insecure on a \
         network you trust)"
    )]
    PlainRemote(String),
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// Only one of the client certificate and its key was given.
    #[error("a client certificate and its key go together (both or neither)")]
    HalfClientIdentity,
    /// rustls refused the settings (e.g. a key that does not match the certificate).
    #[error("TLS settings: {0}")]
    Tls(#[from] rustls::Error),
    /// The connection or the WebSocket handshake failed (TLS errors included).
    #[error("{0}")]
    WebSocket(#[from] Box<tungstenite::Error>),
}

/// Opens kiosk WebSocket connections with one set of TLS settings (cheap to share).
#[derive(Debug, Clone)]
pub struct Connector {
    tls: Arc<rustls::ClientConfig>,
    allow_plain_remote: bool,
}

impl Connector {
    /// Builds the TLS client settings; fails on unreadable or unusable files.
    pub fn new(options: &TlsOptions) -> Result<Connector, ConnectError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &options.ca_file {
            for cert in read_certificates(path)? {
                roots.add(cert).map_err(|e| file_error(path, e))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let mut config = match (&options.client_cert, &options.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certificates(cert)?;
                builder.with_client_auth_cert(chain, read_private_key(key)?)?
            }
            _ => return Err(ConnectError::HalfClientIdentity),
        };
        // WebSocket upgrades are HTTP/1.1: say so to servers and proxies that speak h2 too.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Connector {
            tls: Arc::new(config),
            allow_plain_remote: options.allow_plain_remote,
        })
    }

    /// Refuses what the policy forbids (see [`check_url`]).
    pub fn check(&self, url: &str) -> Result<(), ConnectError> {
        check_url(url, self.allow_plain_remote)
    }

    /// Connects to `url` (`ws://` or `wss://`) and completes the WebSocket handshake.
    pub async fn connect(&self, url: &str) -> Result<Ws, ConnectError> {
        self.check(url)?;
        let request = url.into_client_request().map_err(Box::new)?;
        // Nagle off (`disable_nagle`): a message is one small frame written when it is
        // ready; with Nagle, a frame written while the last one (a pong, say) waits for its
        // acknowledgement is held until the server's delayed ACK, up to 40 ms.
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            true,
            Some(tokio_tungstenite::Connector::Rustls(self.tls.clone())),
        )
        .await
        .map_err(Box::new)?;
        Ok(ws)
    }
}

/// Checks the plain-text policy: `wss://` always passes; `ws://` passes to this machine
/// (`localhost`, 127.0.0.0/8, `::1`) and, with `allow_plain_remote`, to any host.
pub fn check_url(url: &str, allow_plain_remote: bool) -> Result<(), ConnectError> {
    let bad = || ConnectError::BadUrl(url.chars().take(200).collect());
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    let host = parsed.host().ok_or_else(bad)?;
    match parsed.scheme() {
        "wss" => Ok(()),
        "ws" if allow_plain_remote || is_loopback(&host) => Ok(()),
        "ws" => Err(ConnectError::PlainRemote(host.to_string())),
        _ => Err(bad()),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Every certificate of a PEM file; at least one (also used by the server's TLS set-up).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConnectError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> ConnectError {
    ConnectError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ws_is_allowed_to_this_machine_only_unless_permitted() {
        for url in [
            "ws://127.0.0.1:8080/v1/kiosk/ws",
            "ws://127.9.9.9/v1/kiosk/ws",
            "ws://localhost:1/v1/kiosk/ws",
            "ws://LOCALHOST/v1/kiosk/ws",
            "ws://[::1]:8080/v1/kiosk/ws",
            "wss://concierge.bank.example/v1/kiosk/ws",
        ] {
            assert!(check_url(url, false).is_ok(), "{url}");
        }
        for url in [
            "ws://concierge.bank.example/v1/kiosk/ws",
            "ws://10.1.2.3:8080/v1/kiosk/ws",
            "ws://localhost.bank.example/v1/kiosk/ws",
            "ws://[fe80::1]/v1/kiosk/ws",
        ] {
            let err = check_url(url, false).unwrap_err();
            assert!(matches!(err, ConnectError::PlainRemote(_)), "{url}: {err}");
            assert!(err.to_string().contains("--insecure"), "{err}");
            assert!(check_url(url, true).is_ok(), "{url} with permission");
        }
    }

    #[test]
    fn what_is_not_a_websocket_url_is_refused_whatever_the_permission() {
        for url in ["http://127.0.0.1/", "127.0.0.1:8080", "", "ws://"] {
            assert!(
                matches!(check_url(url, true), Err(ConnectError::BadUrl(_))),
                "{url}"
            );
        }
        let long = format!("x{}", "y".repeat(10_000));
        let ConnectError::BadUrl(echo) = check_url(&long, false).unwrap_err() else {
            panic!("not a bad url")
        };
        assert_eq!(echo.chars().count(), 200, "a long URL is not echoed whole");
    }

    #[test]
    fn unusable_files_are_named_and_half_an_identity_is_refused() {
        let dir = std::env::temp_dir().join(format!("kiosk-connect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Connector::new(&TlsOptions {
            ca_file: Some(empty.clone()),
            ..TlsOptions::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
        let err = Connector::new(&TlsOptions {
            ca_file: Some(dir.join("missing.pem")),
            ..TlsOptions::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = Connector::new(&TlsOptions {
            client_cert: Some(empty),
            ..TlsOptions::default()
        })
        .unwrap_err();
        assert!(matches!(err, ConnectError::HalfClientIdentity), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(Connector::new(&TlsOptions::default()).is_ok());
    }
}
