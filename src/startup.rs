//! Build, then run: [`Application::build`] loads the data, opens and migrates the database
//! and binds the socket (port 0 in tests); [`Application::run_until_stopped`] serves until
//! the stop future resolves, then shuts down gracefully: kiosks get
//! `session.end {reason: "shutdown"}` after their in-flight turns finish. With `[server] tls_cert`/`tls_key` the
//! server speaks HTTPS and wss:// itself ([`tls`]).

pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actions::Registry;
use crate::branch::Branch;
use crate::config::{BankBackend, Settings};
use crate::content::Content;
use crate::devices::DeviceBroker;
use crate::dialog::Engine;
use crate::domain::clock::{Clock, SystemClock};
use crate::live::Hub;
use crate::ports::banking::CoreBanking;
use crate::speech::Speech;
use crate::state::AppState;
use crate::store::Db;
use crate::telemetry::Metrics;
use crate::tickets::Tickets;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The TLS server settings, when `serve` terminates TLS.
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// Opens the configured database, applies pending migrations and attaches its keyring
/// (refused without keys on PostgreSQL; see [`crate::config::SecuritySettings::keyring`]).
pub async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let ring = settings.security.keyring(&settings.database.url)?;
    let db = Db::connect(&settings.database.url, settings.database.max_connections).await?;
    db.migrate().await?;
    crate::domain::vault::attach(&db.pool, Arc::new(ring));
    Ok(db)
}

/// The core-banking port the settings choose.
fn bank_port(settings: &Settings, db: &Db) -> anyhow::Result<Arc<dyn CoreBanking>> {
    Ok(match settings.banking.backend {
        BankBackend::Http => Arc::new(crate::ports::banking::http::HttpBank::new(
            &settings.banking.base_url,
            settings.banking.api_token.clone(),
            Duration::from_millis(settings.banking.timeout_ms),
        )?),
        BankBackend::Sandbox => {
            Arc::new(crate::ports::banking::sandbox::SandboxBank::new(db.clone()))
        }
    })
}

/// Speech recognition and synthesis, loaded off the executor (models take seconds); what
/// is missing is logged, and synthesis is tried once so a missing espeak-ng shows now.
async fn load_speech(settings: &Settings, content: &Arc<Content>) -> anyhow::Result<Speech> {
    let speech = {
        let settings = settings.speech.clone();
        let content = content.clone();
        tokio::task::spawn_blocking(move || {
            let texts = crate::speech::knowledge_texts(&content);
            Speech::load(&settings, &content, &texts)
        })
        .await
        .context("loading speech")?
    };
    for note in &speech.notes {
        tracing::warn!("{note}");
    }
    if let Some(tts) = speech.tts.clone() {
        tokio::spawn(async move {
            if let Err(e) = tts.check().await {
                tracing::warn!(error = %e, "speech synthesis is not usable; replies stay text-only");
            }
        });
    }
    Ok(speech)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let actions = Arc::new(Registry::standard());
        let checked = crate::validate::check_all(&settings, actions.as_ref())
            .map_err(crate::validate::as_one_error)?;
        let tls = tls::server_config(&settings.server.tls)?;
        settings.branch.apply_time_zone();
        let db = open_database(&settings).await?;
        if settings.live.screen_devices.iter().any(|d| d == "*") {
            tracing::warn!(target: "security", event = "screens_drive_every_device",
                "[live] screen_devices = \"*\": screens may read ID cards and PINs (development only)");
        }
        let listener = TcpListener::bind(settings.listen_addr())
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        let metrics = Metrics::new();
        let bank = bank_port(&settings, &db)?;
        // The sentence-embedding model (none: understanding and search are lexical only).
        let embedder = crate::embedding::setup::load(&settings).await?;
        let knowledge = crate::knowledge::Knowledge::open(
            db.clone(),
            settings.knowledge.clone(),
            &settings.data.knowledge_dir,
            embedder.clone(),
        )
        .await
        .context("knowledge base")?;
        let tickets = Arc::new(
            Tickets::new(
                db.clone(),
                settings.tickets.clone(),
                checked.rules,
                checked.branch.calendar.clone(),
                &settings.outbox,
            )
            .with_anchor(crate::tickets::anchor::AnchorKey::from_settings(
                &settings.audit,
            )),
        );
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let branch = Arc::new(Branch::new(
            db.clone(),
            checked.branch,
            settings.branch.clone(),
            clock.clone(),
            settings.outbox.reminder_webhooks(),
        ));
        let content = Arc::new(checked.content);
        let mut speech = load_speech(&settings, &content).await?;
        speech.asr_rtf = Some(metrics.asr_real_time_factor.clone());
        let engine = Arc::new(Engine::new(&content.dialogs)?.with_clock(clock.clone()));
        let services = Arc::new(crate::actions::Services {
            bank: bank.clone(),
            branch: branch.clone(),
            knowledge: knowledge.clone(),
            service_labels: engine.labels().clone(),
            clock,
        });
        let understanding = Arc::new(
            crate::understanding::Understanding::build(
                engine.clone(),
                knowledge.clone(),
                embedder.clone(),
                &content.dialogs,
                settings
                    .embedding
                    .cache_dir(&settings.speech.models_dir)
                    .as_deref(),
            )
            .await,
        );
        let state = AppState {
            understanding,
            speech: Arc::new(speech),
            tickets,
            knowledge,
            bank,
            branch,
            actions,
            services,
            engine,
            content,
            embedder,
            broker: Arc::new(DeviceBroker::new(metrics.clone())),
            hub: Arc::new(Hub::default()),
            metrics,
            db,
            login: Arc::new(crate::access::throttle::LoginGuard::new(&settings.login)),
            nlu_parse_limit: Arc::new(crate::access::rate::TokenBucket::new(
                settings.server.nlu_parse_per_sec,
                settings.server.nlu_parse_burst,
            )),
            settings: Arc::new(settings),
            shutdown: CancellationToken::new(),
            draining: CancellationToken::new(),
            connections: TaskTracker::new(),
        };
        Ok(Application {
            listener,
            state,
            tls,
        })
    }

    /// True when the server speaks HTTPS (and wss://) itself.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `stop` resolves, then shuts down in order: `/readyz` answers not ready
    /// for `server.drain_secs` while the node still serves, the listener closes, kiosks are
    /// told and their in-flight turns get `server.shutdown_grace_secs`, and the database
    /// pool closes (bounded: a hung database does not hold it). A stop from inside
    /// (`state.shutdown` cancelled) skips the drain. The process-wide deadline
    /// (`server.stop_timeout_secs`) is `serve`'s, which can end the process.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let shutdown = state.shutdown.clone();
        let router = crate::api::router(state.clone());
        state.db.listen(shutdown.clone());
        state.knowledge.follow(shutdown.clone());
        state.tickets.follow(shutdown.clone(), state.hub.clone());
        state.branch.follow(shutdown.clone());
        crate::ports::outbox::spawn(
            state.db.clone(),
            state.settings.outbox.clone(),
            shutdown.clone(),
        );
        crate::retention::spawn(
            state.db.clone(),
            state.settings.retention.clone(),
            shutdown.clone(),
        );
        crate::reports::rollup::run(state.db.clone(), shutdown.clone());
        let signal = {
            let shutdown = shutdown.clone();
            let draining = state.draining.clone();
            let drain = Duration::from_secs(state.settings.server.drain_secs);
            async move {
                let signalled = tokio::select! {
                    _ = stop => true,
                    _ = shutdown.cancelled() => false,
                };
                draining.cancel();
                if signalled && !drain.is_zero() {
                    tracing::info!(
                        secs = drain.as_secs(),
                        "draining: /readyz answers not ready"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(drain) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                shutdown.cancel();
            }
        };
        match self.tls {
            // The TLS server must give handlers ConnectInfo<SocketAddr> too (login throttling
            // per client address).
            Some(config) => tls::serve(self.listener, router, config, signal).await,
            None => axum::serve(
                // Replies are small frames written as they are ready: without TCP_NODELAY,
                // Nagle holds one back until the kiosk acknowledges the last, which the
                // kiosk delays (up to 40 ms on Linux).
                axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                }),
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(signal)
            .await
            .context("server")?,
        }
        state.connections.close();
        let grace = Duration::from_secs(state.settings.server.shutdown_grace_secs);
        if tokio::time::timeout(grace, state.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = state.connections.len(),
                "kiosk connections still open after the grace period"
            );
        }
        // Closing waits for connections in use to come back: a hung database would hold it.
        if tokio::time::timeout(POOL_CLOSE, state.db.pool.close())
            .await
            .is_err()
        {
            tracing::warn!("the database did not answer while closing; connections abandoned");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// How long closing the database pool may take at shutdown.
const POOL_CLOSE: Duration = Duration::from_secs(2);

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}

/// Raises the open-file limit to its hard maximum (many kiosk sockets per process).
pub fn raise_fd_limit() {
    #[cfg(unix)]
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
