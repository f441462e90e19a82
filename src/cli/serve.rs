//! `concierge serve`: the server (HTTP API, kiosk WebSocket, metrics) until Ctrl-C or SIGTERM.

use std::process::ExitCode;

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
    let served = async {
        let app = Application::build(settings).await?;
        tracing::info!(port = app.port(), "concierge serving");
        let scheme = if app.is_tls() { "https" } else { "http" };
        eprintln!("concierge: serving on {scheme}://{}", app_addr(&app));
        app.run_until_stopped(startup::shutdown_signal()).await
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
