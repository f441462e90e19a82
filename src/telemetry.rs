//! Logs, traces and metrics: tracing set up once (logs as human text or JSON lines, filter
//! from `RUST_LOG`; spans to an OpenTelemetry collector when `[telemetry] otlp_endpoint` is
//! set, [`trace`]), and the Prometheus registry behind `/metrics` with the figures operators
//! watch.
//!
//! Counters and histograms are updated where things happen; the gauges of shared state
//! (handoffs waiting, tickets at SLA risk, outbox rows) are read from the database at
//! scrape time (`crate::api::health::refresh_gauges`), so every node reports the same figures (dashboards
//! take `max` over nodes). `deploy/grafana/concierge.json` and `deploy/prometheus/rules.yaml`
//! use only the names in [`METRIC_NAMES`]; `tests/api/dashboards.rs` checks that.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TelemetrySettings;

pub mod trace;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines (development).
    #[default]
    Text,
    /// One JSON object per line (production log shippers).
    Json,
}

/// Installs the global subscriber (once; later calls are ignored, which tests rely on): logs
/// to stderr, filtered by `RUST_LOG` (else `default_filter`), and, with `traces` naming a
/// collector, Concierge's spans exported over OTLP whatever the log filter says. The
/// exporter, when one started, is returned: shut it down before the process exits.
pub fn init_tracing(
    format: LogFormat,
    default_filter: &str,
    traces: Option<&TelemetrySettings>,
) -> anyhow::Result<Option<trace::Exporter>> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let (spans, exporter) = match traces {
        Some(t) => trace::layer(t)?.unzip(),
        None => (None, None),
    };
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(spans)
        .with(logs.with_filter(filter))
        .try_init();
    Ok(exporter)
}

/// The process metrics (Prometheus' standard ones under the registry's `concierge_`
/// prefix, Linux only) exported besides [`METRIC_NAMES`].
pub const PROCESS_METRIC_NAMES: [&str; 8] = [
    "concierge_process_cpu_seconds_total",
    "concierge_process_max_fds",
    "concierge_process_open_fds",
    "concierge_process_resident_memory_bytes",
    "concierge_process_start_time_seconds",
    "concierge_process_threads",
    "concierge_process_virtual_memory_bytes",
    "concierge_process_virtual_memory_max_bytes",
];

/// The stages of a turn whose latency is measured.
pub const STAGES: [&str; 4] = ["nlu", "dialog", "store", "turn"];

/// The name of every metric family Concierge exports (with the `concierge_` prefix;
/// histograms add `_bucket`, `_sum` and `_count`). A unit test keeps it equal to the registry.
pub const METRIC_NAMES: [&str; 13] = [
    "concierge_sessions_open",
    "concierge_peers_open",
    "concierge_turns_total",
    "concierge_stage_seconds",
    "concierge_ws_errors_total",
    "concierge_device_calls_total",
    "concierge_device_errors_total",
    "concierge_http_responses_total",
    "concierge_knowledge_answers_total",
    "concierge_asr_real_time_factor",
    "concierge_handoffs_waiting",
    "concierge_tickets_sla",
    "concierge_outbox_rows",
];

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
    /// Failed device calls by kiosk, device and outcome (failed, timeout, no_peer): which
    /// kiosk's hardware needs a visit. Kiosk ids are operator-assigned names, not PII.
    pub device_errors_total: IntCounterVec,
    /// HTTP responses by matched route and status.
    pub http_responses_total: IntCounterVec,
    /// Knowledge answers by outcome (answer, clarify, no_answer): `no_answer` is the
    /// "I don't know" the don't-know rate counts.
    pub knowledge_answers_total: IntCounterVec,
    /// Recognition time divided by audio duration, per utterance (below 1: faster than
    /// the customer speaks).
    pub asr_real_time_factor: Histogram,
    /// Handoff tickets nobody has taken yet (state `new`), by ticket kind (handoff, handoff_remote).
    pub handoffs_waiting: IntGaugeVec,
    /// Open tickets whose SLA is at risk (75 % used, warned) or breached (escalated), by
    /// stage (response, resolution) and status (at_risk, breached).
    pub tickets_sla: IntGaugeVec,
    /// Outbox rows by state (pending, delivered, dead).
    pub outbox_rows: IntGaugeVec,
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
        let device_errors_total = IntCounterVec::new(
            Opts::new(
                "device_errors_total",
                "Failed device calls by kiosk, device and outcome",
            ),
            &["kiosk", "device", "outcome"],
        )
        .unwrap();
        let knowledge_answers_total = IntCounterVec::new(
            Opts::new(
                "knowledge_answers_total",
                "Knowledge answers by outcome (answer, clarify, no_answer)",
            ),
            &["outcome"],
        )
        .unwrap();
        let asr_real_time_factor = Histogram::with_opts(
            HistogramOpts::new(
                "asr_real_time_factor",
                "Recognition time divided by audio duration, per utterance",
            )
            .buckets(vec![
                0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
            ]),
        )
        .unwrap();
        let handoffs_waiting = IntGaugeVec::new(
            Opts::new("handoffs_waiting", "Handoff tickets not yet taken, by kind"),
            &["kind"],
        )
        .unwrap();
        let tickets_sla = IntGaugeVec::new(
            Opts::new(
                "tickets_sla",
                "Open tickets with SLA at risk or breached, by stage and status",
            ),
            &["stage", "status"],
        )
        .unwrap();
        let outbox_rows =
            IntGaugeVec::new(Opts::new("outbox_rows", "Outbox rows by state"), &["state"]).unwrap();
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
            Box::new(device_errors_total.clone()),
            Box::new(knowledge_answers_total.clone()),
            Box::new(asr_real_time_factor.clone()),
            Box::new(handoffs_waiting.clone()),
            Box::new(tickets_sla.clone()),
            Box::new(outbox_rows.clone()),
        ] {
            registry.register(c).expect("register metric");
        }
        // The process's own CPU seconds, resident memory, threads and descriptors (Linux):
        // `bench kiosks` reads the server's CPU per turn and memory from them.
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("register process metrics");
        for stage in STAGES {
            stage_seconds.with_label_values(&[stage]);
        }
        // Series that exist from the start, so dashboards and rules see zeros, not gaps.
        for outcome in ["answer", "clarify", "no_answer"] {
            knowledge_answers_total.with_label_values(&[outcome]);
        }
        for outcome in ["ok", "error"] {
            turns_total.with_label_values(&[outcome]);
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
            device_errors_total,
            knowledge_answers_total,
            asr_real_time_factor,
            handoffs_waiting,
            tickets_sla,
            outbox_rows,
        }
    }

    /// Counts a failed device call against its kiosk (labels bounded by the caller).
    pub fn device_error(&self, kiosk: &str, device: &str, outcome: &str) {
        self.device_errors_total
            .with_label_values(&[label(kiosk), label(device), outcome])
            .inc();
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

/// A label value from outside (a kiosk id, a device name): short ASCII names pass, anything
/// else is `other`, so a peer cannot grow the label set without bound or put text in it.
pub fn label(value: &str) -> &str {
    if !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        value
    } else {
        "other"
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_lists_exactly_the_registered_families() {
        let m = Metrics::new();
        m.sessions_open.set(0);
        m.peers_open.with_label_values(&["screen"]).set(0);
        m.ws_errors_total.with_label_values(&["x"]).inc();
        m.device_calls_total.with_label_values(&["x", "ok"]).inc();
        m.device_error("k1", "x", "failed");
        m.http_responses_total
            .with_label_values(&["/", "200"])
            .inc();
        m.asr_real_time_factor.observe(0.5);
        m.handoffs_waiting.with_label_values(&["handoff"]).set(0);
        m.tickets_sla
            .with_label_values(&["response", "at_risk"])
            .set(0);
        m.outbox_rows.with_label_values(&["dead"]).set(0);
        let mut got: Vec<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        got.sort();
        let mut want: Vec<String> = METRIC_NAMES.iter().map(|s| s.to_string()).collect();
        if cfg!(target_os = "linux") {
            want.extend(PROCESS_METRIC_NAMES.iter().map(|s| s.to_string()));
        }
        // Exported only when the process has an address-space limit.
        let optional = "concierge_process_virtual_memory_max_bytes";
        got.retain(|n| n != optional);
        want.retain(|n| n != optional);
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn outside_label_values_are_bounded() {
        assert_eq!(label("kiosk-01"), "kiosk-01");
        assert_eq!(label("card_reader"), "card_reader");
        assert_eq!(label("13800138000 张三"), "other");
        assert_eq!(label(&"a".repeat(33)), "other");
        assert_eq!(label(""), "other");
    }
}
