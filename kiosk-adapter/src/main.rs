//! The `kiosk-adapter` binary: connects a kiosk's devices to Concierge.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use kiosk_adapter::drivers::{Driver, Drivers};
use kiosk_adapter::peer::{self, PeerConfig};
use kiosk_adapter::sim::SimulatedDevices;
use kiosk_adapter::xfs4iot::devices::XfsDevices;
use kiosk_connect::{Connector, TlsOptions};
use serde::Deserialize;

/// Connects this kiosk PC's devices to Concierge as the kiosk's device peer.
///
/// Register the peer first with `concierge kiosk register --id K --branch B --role devices`
/// and pass the printed token. Settings come from flags, the environment
/// (KIOSK_ADAPTER_*), or a TOML file given with --config (keys: url, kiosk, token, xfs4iot,
/// simulate, ca_file, client_cert, client_key, insecure); flags win.
///
/// Use wss:// to reach a server on another machine: the server's certificate is checked
/// against the Mozilla roots and --ca-file; --client-cert/--client-key present this kiosk's
/// certificate when the server (or its proxy) requires mutual TLS. Plain ws:// is refused
/// to any host but this machine unless --insecure is given.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// A TOML file with the settings below.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Concierge's kiosk WebSocket, wss://HOST/v1/kiosk/ws
    /// [default: ws://127.0.0.1:8080/v1/kiosk/ws].
    #[arg(long, env = "KIOSK_ADAPTER_URL")]
    url: Option<String>,
    /// The kiosk's id (the same as its screen's).
    #[arg(long, env = "KIOSK_ADAPTER_KIOSK")]
    kiosk: Option<String>,
    /// The device peer's token.
    #[arg(long, env = "KIOSK_ADAPTER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The XFS4IoT service publisher of this kiosk's devices
    /// (e.g. ws://127.0.0.1:5846/xfs4iot/v1.0); its devices are driven through it.
    #[arg(long, env = "KIOSK_ADAPTER_XFS4IOT", value_name = "URL")]
    xfs4iot: Option<String>,
    /// Simulate every device no real driver serves (the default without --xfs4iot).
    #[arg(long)]
    simulate: bool,
    /// Make the first call of a simulated device fail: DEVICE=CODE (e.g. id_card=no_card,
    /// receipt_printer=paper_out, pin_pad=timeout); repeatable.
    #[arg(long = "fail", value_name = "DEVICE=CODE")]
    fail: Vec<String>,
    /// Read commands from standard input while running: `fail DEVICE CODE` scripts the next
    /// call of a simulated device to fail.
    #[arg(long)]
    interactive: bool,
    /// PEM file of CA certificates to trust besides the Mozilla roots (the bank's own CA).
    #[arg(long, env = "KIOSK_ADAPTER_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// PEM file of this kiosk's client certificate chain (mutual TLS); needs --client-key.
    #[arg(long, env = "KIOSK_ADAPTER_CLIENT_CERT", value_name = "FILE")]
    client_cert: Option<PathBuf>,
    /// PEM file of the private key of --client-cert.
    #[arg(long, env = "KIOSK_ADAPTER_CLIENT_KEY", value_name = "FILE")]
    client_key: Option<PathBuf>,
    /// Allow plain ws:// to a host other than this machine (unencrypted: a trusted network
    /// only).
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    url: Option<String>,
    kiosk: Option<String>,
    token: Option<String>,
    xfs4iot: Option<String>,
    #[serde(default)]
    simulate: bool,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    #[serde(default)]
    insecure: bool,
}

/// The connector `tls` describes, checked against `url` now: settings that can never work
/// stop the adapter before any device is touched.
fn connector(tls: &TlsOptions, url: &str) -> Result<Connector, kiosk_connect::ConnectError> {
    let connector = Connector::new(tls)?;
    connector.check(url)?;
    if tls.allow_plain_remote && kiosk_connect::check_url(url, false).is_err() {
        tracing::warn!("--insecure: the connection to the server is not encrypted");
    }
    Ok(connector)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let file = match &args.config {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str::<FileConfig>(&t).map_err(|e| e.to_string()))
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("kiosk-adapter: {}: {e}", path.display());
                return std::process::ExitCode::from(2);
            }
        },
        None => FileConfig::default(),
    };
    let (Some(kiosk), Some(token)) = (args.kiosk.or(file.kiosk), args.token.or(file.token)) else {
        eprintln!("kiosk-adapter: --kiosk and --token are needed (flags, environment or --config)");
        return std::process::ExitCode::from(2);
    };
    let config = PeerConfig {
        url: args
            .url
            .or(file.url)
            .unwrap_or_else(|| "ws://127.0.0.1:8080/v1/kiosk/ws".into()),
        kiosk_id: kiosk,
        token,
    };
    let tls = TlsOptions {
        ca_file: args.ca_file.or(file.ca_file),
        client_cert: args.client_cert.or(file.client_cert),
        client_key: args.client_key.or(file.client_key),
        allow_plain_remote: args.insecure || file.insecure,
    };
    let connector = match connector(&tls, &config.url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kiosk-adapter: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let xfs_url = args.xfs4iot.or(file.xfs4iot);
    let mut list: Vec<Arc<dyn Driver>> = Vec::new();
    let mut xfs = None;
    if let Some(url) = &xfs_url {
        let found = XfsDevices::discover(url, std::time::Duration::from_secs(10)).await;
        match found {
            Ok(d) => {
                tracing::info!(%url, kinds = ?d.kinds(), "XFS4IoT devices found");
                let d = Arc::new(d);
                list.push(d.clone());
                xfs = Some(d);
            }
            Err(e) => {
                eprintln!("kiosk-adapter: XFS4IoT service publisher {url}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if xfs_url.is_none() || args.simulate || file.simulate {
        let sim = Arc::new(SimulatedDevices::new());
        for f in &args.fail {
            let Some((device, code)) = f.split_once('=') else {
                eprintln!("kiosk-adapter: --fail takes DEVICE=CODE, not `{f}`");
                return std::process::ExitCode::from(2);
            };
            sim.fail_next(device.trim(), code.trim());
        }
        if args.interactive {
            let sim = sim.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                        ["fail", device, code] => {
                            sim.fail_next(device, code);
                            eprintln!("the next {device} call fails with {code}");
                        }
                        [] => {}
                        _ => eprintln!("commands: fail DEVICE CODE"),
                    }
                }
            });
        }
        list.push(sim);
    }
    let drivers = Arc::new(Drivers::new(list));
    if let Some(xfs) = xfs {
        // Card removed, paper low/out, offline: queued for the server (also while away).
        let d = drivers.clone();
        xfs.on_event(move |e| {
            d.push_event(kiosk_adapter::drivers::DeviceEvent {
                device: e.device,
                event: e.event,
                data: e.data,
            })
        });
    }
    let err = peer::run_with(config, connector, drivers).await;
    eprintln!("kiosk-adapter: {err}");
    std::process::ExitCode::FAILURE
}
