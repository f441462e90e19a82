//! `concierge serve`: the server (HTTP API, kiosk WebSocket, metrics) until Ctrl-C or SIGTERM,
//! then a shutdown that ends within `server.stop_timeout_secs` whatever hangs.

use std::process::ExitCode;
use std::time::Duration;

use super::Global;
use crate::startup::{self, Application};
use crate::telemetry::{self, trace};

/// The flags of `concierge serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

/// Builds the application and serves until a shutdown signal.
pub(super) async fn run(global: &Global, args: ServeArgs) -> anyhow::Result<ExitCode> {
    startup::raise_fd_limit();
    let settings = global.settings_listening(args.listen)?;
    let exporter = telemetry::init_tracing(
        global.log_format,
        global.log_level,
        Some(&settings.telemetry),
    )?;
    if exporter.is_some() {
        tracing::info!(
            endpoint = %trace::traces_url(&settings.telemetry.otlp_endpoint),
            "traces exported over OTLP"
        );
    }
    let deadline = Duration::from_secs(settings.server.stop_timeout_secs);
    let stop = async move {
        startup::shutdown_signal().await;
        stop_deadline(deadline);
    };
    let served = async {
        let app = Application::build(settings).await?;
        tracing::info!(port = app.port(), "concierge serving");
        let scheme = if app.is_tls() { "https" } else { "http" };
        eprintln!("concierge: serving on {scheme}://{}", app_addr(&app));
        app.run_until_stopped(stop).await
    }
    .await;
    if let Some(exporter) = exporter {
        // The spans still buffered go out before the process ends.
        let _ = tokio::task::spawn_blocking(move || exporter.shutdown()).await;
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The address the server is reachable at: the configured host with the port it bound.
fn app_addr(app: &Application) -> String {
    let s = app.state();
    let listen = &s.settings.server.listen;
    match listen.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{}", app.port()),
        None => listen.clone(),
    }
}

/// Ends the process `after` the shutdown signal if it is still running then: whatever
/// hangs (a database that stopped answering, a model worker, a peer that never closes),
/// shutdown is bounded. A thread of its own, so a stuck runtime cannot hold it.
fn stop_deadline(after: Duration) {
    let started = std::thread::Builder::new()
        .name("stop-deadline".into())
        .spawn(move || {
            std::thread::sleep(after);
            tracing::error!(
                secs = after.as_secs(),
                "shutdown did not finish in time (server.stop_timeout_secs): exiting"
            );
            eprintln!(
                "concierge: shutdown did not finish within {} s (server.stop_timeout_secs): exiting",
                after.as_secs()
            );
            std::process::exit(1);
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "cannot start the shutdown deadline");
    }
}
