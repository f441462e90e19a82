//! The terminal clients of a Concierge server, speaking the kiosk protocol over a real
//! WebSocket as a kiosk screen does: [`chat`] (one person at a terminal), [`bench`] (the
//! load generator of `concierge bench kiosks`) and [`eval`] (question sets asked of an
//! application built in-process, `concierge eval kiosk`).
//!
//! `chat` and `bench` reach a remote server over `wss://` through a
//! [`kiosk_connect::Connector`] ([`TlsArgs`]: the Mozilla roots, `--ca-file`, an optional
//! client certificate). Unlike the kiosk adapter they may use plain `ws://` to any host: they
//! are an operator's tools, pointed at a server on purpose.

pub mod bench;
pub mod chat;
pub mod eval;

use std::path::PathBuf;

use kiosk_connect::{Connector, TlsOptions};

/// The TLS flags of the terminal clients.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// PEM file of CA certificates to trust besides the Mozilla roots (for wss://).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM file of a client certificate chain, for a server that requires mutual TLS.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM file of the private key of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The connector these flags describe (fails on an unreadable or unusable file).
    pub fn connector(&self) -> anyhow::Result<Connector> {
        Ok(Connector::new(&TlsOptions {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            allow_plain_remote: true,
        })?)
    }
}

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
