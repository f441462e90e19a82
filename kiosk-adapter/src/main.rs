//! The `kiosk-adapter` binary: connects a kiosk's devices to Concierge.

use std::sync::Arc;

use clap::Parser;
use kiosk_adapter::peer::{self, PeerConfig};
use kiosk_adapter::sim::SimulatedDevices;

/// Connects this kiosk PC's devices to Concierge as the kiosk's device peer.
///
/// Register the peer first with `concierge kiosk register --id K --branch B --role devices`
/// and pass the printed token. Devices are simulated until hardware drivers are configured.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Concierge's kiosk WebSocket.
    #[arg(
        long,
        env = "KIOSK_ADAPTER_URL",
        default_value = "ws://127.0.0.1:8080/v1/kiosk/ws"
    )]
    url: String,
    /// The kiosk's id (the same as its screen's).
    #[arg(long, env = "KIOSK_ADAPTER_KIOSK")]
    kiosk: String,
    /// The device peer's token.
    #[arg(long, env = "KIOSK_ADAPTER_TOKEN", hide_env_values = true)]
    token: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = PeerConfig {
        url: args.url,
        kiosk_id: args.kiosk,
        token: args.token,
    };
    let err = peer::run(config, Arc::new(SimulatedDevices::new())).await;
    eprintln!("kiosk-adapter: {err}");
    std::process::ExitCode::FAILURE
}
