//! Logs and metrics: tracing set up once (human text or JSON lines, filter from `RUST_LOG`),
//! and the Prometheus registry behind `/metrics` with the figures operators watch.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines (development).
    #[default]
    Text,
    /// One JSON object per line (production log shippers).
    Json,
}

/// Installs the global subscriber (once; later calls are ignored, which tests rely on).
pub fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

/// The stages of a turn whose latency is measured.
pub const STAGES: [&str; 4] = ["nlu", "dialog", "store", "turn"];

/// Every metric Concierge exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Screen sessions currently connected.
    pub sessions_open: IntGauge,
    /// Connected peers by role (screen, devices).
    pub peers_open: IntGaugeVec,
    /// Turns by outcome (ok, error).
    pub turns_total: IntCounterVec,
    /// Seconds per turn stage.
    pub stage_seconds: HistogramVec,
    /// `error` frames sent, by code.
    pub ws_errors_total: IntCounterVec,
    /// Device calls by device and outcome (ok, failed, timeout, no_peer).
    pub device_calls_total: IntCounterVec,
    /// HTTP responses by matched route and status.
    pub http_responses_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("concierge".into()), None).expect("registry");
        let sessions_open =
            IntGauge::new("sessions_open", "Screen sessions currently connected").unwrap();
        let peers_open = IntGaugeVec::new(
            Opts::new("peers_open", "Connected kiosk peers by role"),
            &["role"],
        )
        .unwrap();
        let turns_total =
            IntCounterVec::new(Opts::new("turns_total", "Turns by outcome"), &["outcome"]).unwrap();
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("stage_seconds", "Latency of each turn stage in seconds").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            &["stage"],
        )
        .unwrap();
        let ws_errors_total = IntCounterVec::new(
            Opts::new("ws_errors_total", "Error frames sent, by code"),
            &["code"],
        )
        .unwrap();
        let device_calls_total = IntCounterVec::new(
            Opts::new("device_calls_total", "Device calls by device and outcome"),
            &["device", "outcome"],
        )
        .unwrap();
        let http_responses_total = IntCounterVec::new(
            Opts::new("http_responses_total", "HTTP responses by route and status"),
            &["route", "status"],
        )
        .unwrap();
        for c in [
            Box::new(sessions_open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(peers_open.clone()),
            Box::new(turns_total.clone()),
            Box::new(stage_seconds.clone()),
            Box::new(ws_errors_total.clone()),
            Box::new(device_calls_total.clone()),
            Box::new(http_responses_total.clone()),
        ] {
            registry.register(c).expect("register metric");
        }
        for stage in STAGES {
            stage_seconds.with_label_values(&[stage]);
        }
        Metrics {
            registry,
            sessions_open,
            peers_open,
            turns_total,
            stage_seconds,
            ws_errors_total,
            device_calls_total,
            http_responses_total,
        }
    }

    /// Records how long a stage took.
    pub fn observe(&self, stage: &str, started: std::time::Instant) {
        self.stage_seconds
            .with_label_values(&[stage])
            .observe(started.elapsed().as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode metrics");
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
