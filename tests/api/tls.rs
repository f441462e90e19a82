//! TLS end to end, with certificates generated here (a test CA, a server certificate for
//! localhost and 127.0.0.1, client certificates): `serve` terminating TLS, `chat` and the
//! kiosk adapter over wss://, mutual TLS, the adapter's refusal of plain ws:// to another
//! machine, and PostgreSQL URLs' `sslmode`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kiosk_adapter::drivers::Drivers;
use kiosk_adapter::peer::{self, PeerConfig, PeerError};
use kiosk_adapter::sim::SimulatedDevices;
use kiosk_connect::{Connector, TlsOptions};
use kiosk_protocol::PeerRole;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::helpers::*;

/// A CA and what it signed, as PEM files in a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA named `name`, a server certificate for localhost/127.0.0.1 and a kiosk client
    /// certificate, both signed by it.
    fn new(name: &str) -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.issue(name);
        pki
    }

    fn issue(&self, name: &str) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        self.write("ca.pem", &ca.self_signed(&ca_key).unwrap().pem());
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |sans: Vec<String>, usage: ExtendedKeyUsagePurpose, file: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).unwrap();
            self.write(&format!("{file}.pem"), &cert.pem());
            self.write(&format!("{file}.key"), &key.serialize_pem());
        };
        leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        leaf(
            vec!["kiosk-K001".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            "client",
        );
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join(file), text).unwrap();
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Client settings trusting this CA, presenting this PKI's client certificate or not.
    fn client(&self, with_certificate: bool) -> Connector {
        Connector::new(&TlsOptions {
            ca_file: Some(self.path("ca.pem")),
            client_cert: with_certificate.then(|| self.path("client.pem")),
            client_key: with_certificate.then(|| self.path("client.key")),
            allow_plain_remote: false,
        })
        .unwrap()
    }
}

/// An app serving HTTPS with `pki`'s server certificate; client certificates from
/// `client_ca` required when given.
async fn spawn_tls(pki: &Pki, client_ca: Option<&Path>) -> TestApp {
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let client_ca = client_ca.map(Path::to_path_buf).unwrap_or_default();
    spawn_app_with(Engine::Sqlite, move |s| {
        s.server.tls.cert = cert;
        s.server.tls.key = key;
        s.server.tls.client_ca = client_ca;
    })
    .await
}

fn wss_url(app: &TestApp, host: &str) -> String {
    format!("wss://{host}:{}/v1/kiosk/ws", app.port)
}

fn adapter_config(url: String, token: String) -> PeerConfig {
    PeerConfig {
        url,
        kiosk_id: "K001".into(),
        token,
    }
}

fn drivers() -> Arc<Drivers> {
    Arc::new(Drivers::new(vec![Arc::new(SimulatedDevices::new())]))
}

/// Waits until the kiosk's device peer has registered its devices.
async fn until_devices(app: &TestApp, kiosk: &str) -> bool {
    for _ in 0..250 {
        if !app.state.broker.devices_of(kiosk).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn chat_and_the_adapter_connect_over_wss_to_a_serve_with_its_own_certificate() {
    let pki = Pki::new("Concierge Test CA");
    let app = spawn_tls(&pki, None).await;

    // The device peer, trusting the bank's CA through its CA file.
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let config = adapter_config(wss_url(&app, "localhost"), token);
    let adapter = tokio::spawn(peer::run_with(config, pki.client(false), drivers()));
    assert!(until_devices(&app, "K001").await, "the adapter connected");

    // chat, the terminal kiosk screen, given the server's https:// address.
    let token = app.kiosk("K002", "B001", PeerRole::Screen).await;
    let dir = tempfile::tempdir().unwrap();
    let mut chat = concierge();
    chat.args(["chat", "--url", &format!("https://127.0.0.1:{}", app.port)])
        .args(["--kiosk", "K002", "--token", &token, "--ca-file"])
        .arg(pki.path("ca.pem"))
        .arg("--session-file")
        .arg(dir.path().join("chat.session"));
    let out = tokio::task::spawn_blocking(move || run_with_stdin(chat, "你好\n".as_bytes()))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("小安："), "{stdout}");

    // HTTPS for the rest of the API; plain HTTP on the TLS port gets nothing.
    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let res = client
        .get(format!("https://localhost:{}/healthz", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(reqwest::get(app.http("/healthz")).await.is_err());

    // Without the CA file the server's certificate is not trusted.
    let untrusting = Connector::new(&TlsOptions::default()).unwrap();
    let err = untrusting
        .connect(&wss_url(&app, "localhost"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");

    // Graceful shutdown still works with TLS (the adapter is told and let go).
    app.stop().await;
    adapter.abort();
}

#[tokio::test]
async fn mutual_tls_refuses_an_adapter_without_a_certificate_and_admits_one_with() {
    let pki = Pki::new("Concierge Test CA");
    let stranger = Pki::new("Some Other CA");
    let app = spawn_tls(&pki, Some(&pki.path("ca.pem"))).await;
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let config = adapter_config(wss_url(&app, "localhost"), token);

    // No client certificate: the handshake fails, and the peer would retry (not "refused":
    // a certificate may be installed later).
    let err = peer::serve_once_with(&config, &pki.client(false), &drivers())
        .await
        .unwrap_err();
    assert!(matches!(err, PeerError::Connection(_)), "{err}");
    // A certificate from another CA: refused too.
    let foreign = Connector::new(&TlsOptions {
        ca_file: Some(pki.path("ca.pem")),
        client_cert: Some(stranger.path("client.pem")),
        client_key: Some(stranger.path("client.key")),
        allow_plain_remote: false,
    })
    .unwrap();
    let err = peer::serve_once_with(&config, &foreign, &drivers())
        .await
        .unwrap_err();
    assert!(matches!(err, PeerError::Connection(_)), "{err}");
    assert!(app.state.broker.devices_of("K001").is_empty());

    // With the kiosk's certificate: admitted.
    let adapter = tokio::spawn(peer::run_with(config, pki.client(true), drivers()));
    assert!(until_devices(&app, "K001").await, "the adapter connected");
    app.stop().await;
    adapter.abort();
}

#[tokio::test]
async fn the_adapter_refuses_plain_ws_to_another_machine_unless_insecure() {
    // Refused before any connection is attempted (nothing leaves this machine), for good:
    // run_with returns instead of retrying.
    let config = adapter_config("ws://concierge.bank.example/v1/kiosk/ws".into(), "t".into());
    let strict = Connector::new(&TlsOptions::default()).unwrap();
    let err = tokio::time::timeout(WAIT, peer::run_with(config.clone(), strict, drivers()))
        .await
        .expect("refused at once, not retried");
    assert!(
        matches!(&err, PeerError::Refused(m) if m.contains("--insecure")),
        "{err}"
    );
    // With --insecure the policy lets it through (not connected here: no such host).
    let insecure = Connector::new(&TlsOptions {
        allow_plain_remote: true,
        ..TlsOptions::default()
    })
    .unwrap();
    assert!(insecure.check(&config.url).is_ok());

    // Loopback stays allowed in plain text: the adapter on the same PC as the server.
    let app = spawn_app().await;
    let token = app.kiosk("K001", "B001", PeerRole::Devices).await;
    let strict = Connector::new(&TlsOptions::default()).unwrap();
    let adapter = tokio::spawn(peer::run_with(
        adapter_config(app.ws_url(), token),
        strict,
        drivers(),
    ));
    assert!(until_devices(&app, "K001").await, "the adapter connected");
    app.stop().await;
    adapter.abort();
}

#[tokio::test]
async fn serve_refuses_half_a_tls_configuration() {
    let pki = Pki::new("Concierge Test CA");
    let (url, _dir) = fresh_database(Engine::Sqlite).await;
    type Tweak = fn(&mut concierge::config::TlsSettings, &Pki);
    let halves: [(&str, Tweak, &str); 3] = [
        (
            "a certificate without its key",
            |t, p| t.cert = p.path("server.pem"),
            "server.tls_cert and server.tls_key go together",
        ),
        (
            "a key without its certificate",
            |t, p| t.key = p.path("server.key"),
            "server.tls_cert and server.tls_key go together",
        ),
        (
            "client CAs without a certificate",
            |t, p| t.client_ca = p.path("ca.pem"),
            "server.tls_client_ca needs server.tls_cert",
        ),
    ];
    for (what, tweak, message) in halves {
        let mut settings = concierge::config::Settings::for_tests(&url, &project_root());
        tweak(&mut settings.server.tls, &pki);
        let err = concierge::startup::Application::build(settings)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what} is refused"));
        assert!(err.to_string().contains(message), "{what}: {err}");
    }
    // A key that is not the certificate's: refused at start-up, not at the first client.
    let other = Pki::new("Another CA");
    let mut settings = concierge::config::Settings::for_tests(&url, &project_root());
    settings.server.tls.cert = pki.path("server.pem");
    settings.server.tls.key = other.path("server.key");
    assert!(concierge::startup::Application::build(settings)
        .await
        .is_err());
}

#[tokio::test]
async fn postgres_urls_honour_sslmode() {
    let url = fresh_postgres().await;
    let with = |mode: &str| secrecy::SecretString::from(format!("{url}?sslmode={mode}"));
    // The test server speaks no TLS: `require` must fail on that (and not because TLS is
    // not built in), `prefer` falls back to plain text.
    let err = concierge::store::Db::connect(&with("require"), 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("server does not support TLS"), "{err}");
    let db = concierge::store::Db::connect(&with("prefer"), 1)
        .await
        .unwrap();
    assert!(db.ping().await);
}
