//! Traces: OpenTelemetry export over OTLP/HTTP (`[telemetry] otlp_endpoint`, off by
//! default) and the W3C trace context (`traceparent`) carried to the core-banking host and
//! the webhooks.
//!
//! A customer turn is one trace: its root is the `turn` span (or, for a spoken turn, the
//! `utterance` span whose `asr` children recognised it), with child spans for understanding
//! (`nlu`), knowledge search (`knowledge`), the flow step (`flow`), server actions
//! (`action`), device calls (`device`), core-banking calls (`bank`) and speech synthesis
//! (`tts`). Spans carry ids and names only — kiosk, session and turn ids, device, action
//! and intent names, outcomes and sizes — never what a customer said or an identifier.
//!
//! Only spans of Concierge's own code reach the collector ([`exported`]): log events stay
//! in the logs, so a log line's fields never leave the node through the trace pipeline, and
//! the HTTP client's own spans (the exporter's requests among them) are not traced.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::config::TelemetrySettings;

/// The header of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The export pipeline, once started: flush it before the process exits.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Sends the spans still buffered and stops the exporter (blocking: call it from a
    /// blocking thread).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("concierge: traces not all exported at shutdown: {e}");
        }
    }
}

/// The URL spans are posted to: the collector's base URL with `/v1/traces` (as
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is read), unless the path already names it.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

/// A boxed layer of subscriber `S`.
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// The layer that turns Concierge's spans into OpenTelemetry spans exported to
/// `settings.otlp_endpoint` in batches, and the exporter to shut down at the end. `None`
/// when no endpoint is set.
pub fn layer<S>(settings: &TelemetrySettings) -> anyhow::Result<Option<(BoxedLayer<S>, Exporter)>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    if settings.otlp_endpoint.trim().is_empty() {
        return Ok(None);
    }
    // The exporter's HTTP client (reqwest 0.13, for https:// collectors) asks for the
    // process's rustls provider: ring, as everywhere else in Concierge.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(&settings.otlp_endpoint))
        .with_timeout(Duration::from_millis(settings.timeout_ms))
        .build()
        .context("telemetry.otlp_endpoint: cannot build the OTLP exporter")?;
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .with_sampler(sampler)
        .build();
    Ok(Some((spans_to(&provider), Exporter { provider })))
}

/// The layer that hands the [`exported`] spans to `provider`.
fn spans_to<S>(provider: &SdkTracerProvider) -> BoxedLayer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("concierge"))
        .with_tracked_inactivity(false)
        .with_filter(tracing_subscriber::filter::filter_fn(exported));
    Box::new(layer)
}

/// What goes to the collector: spans (not events) of Concierge's own code, at INFO or
/// above.
pub fn exported(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span()
        && meta.target().starts_with("concierge")
        && *meta.level() <= tracing::Level::INFO
}

/// The `traceparent` of `span`, when it is being traced and sampled.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` of the current span (see [`traceparent_of`]).
pub fn traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// Makes `span` a child of the remote span `traceparent` names (a webhook delivery
/// continues the turn that caused its event). Malformed or absent: `span` stays a root.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent.filter(|v| v.len() <= 128) else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_string(), value.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The trace id of `span` in hex, when it is being traced (tests and logs).
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_to_a_base_url_once() {
        assert_eq!(traces_url("http://otel:4318"), "http://otel:4318/v1/traces");
        assert_eq!(
            traces_url("http://otel:4318/"),
            "http://otel:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.bank/v1/traces"),
            "https://otel.bank/v1/traces"
        );
    }

    #[test]
    fn without_an_exporter_there_is_no_trace_context_to_send() {
        let span = tracing::info_span!("turn");
        assert_eq!(traceparent_of(&span), None);
        assert_eq!(trace_id_of(&span), None);
        // A malformed parent is ignored, not a panic.
        continue_trace(&span, Some("00-zz-01"));
        continue_trace(&span, Some(&"0".repeat(500)));
    }

    #[test]
    fn a_turn_is_one_trace_of_spans_with_ids_and_no_events() {
        use opentelemetry_sdk::trace::InMemorySpanExporter;
        use tracing_subscriber::layer::SubscriberExt;

        let memory = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(memory.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(spans_to(&provider));
        let (sent, remote_child_trace) = tracing::subscriber::with_default(subscriber, || {
            let turn = tracing::info_span!(parent: None, "turn", kiosk_id = "K001", turn_id = "t1");
            let sent = turn.in_scope(|| {
                let nlu = tracing::info_span!("nlu", intent = "card_loss");
                let _g = nlu.enter();
                // A log line inside a span is not exported (it may carry anything).
                tracing::info!(said = "13812345678", "customer said");
                traceparent()
            });
            let webhook = tracing::info_span!(parent: None, "webhook");
            continue_trace(&webhook, sent.as_deref());
            let remote = trace_id_of(&webhook);
            drop(webhook);
            drop(turn);
            // Another turn: a trace of its own.
            drop(tracing::info_span!(parent: None, "turn", turn_id = "t2"));
            (sent, remote)
        });
        let spans = memory.get_finished_spans().unwrap();
        let by_name = |n: &str| spans.iter().filter(|s| s.name == n).collect::<Vec<_>>();
        let turns = by_name("turn");
        assert_eq!(turns.len(), 2);
        assert_ne!(
            turns[0].span_context.trace_id(),
            turns[1].span_context.trace_id(),
            "one trace per turn"
        );
        let first = turns
            .iter()
            .find(|s| s.attributes.iter().any(|kv| kv.value.as_str() == "t1"))
            .unwrap();
        let nlu = by_name("nlu")[0];
        assert_eq!(nlu.parent_span_id, first.span_context.span_id());
        assert_eq!(nlu.span_context.trace_id(), first.span_context.trace_id());
        assert!(nlu.events.is_empty(), "log events stay in the logs");
        let sent = sent.expect("a traced span has a traceparent");
        let trace = first.span_context.trace_id().to_string();
        assert!(sent.starts_with(&format!("00-{trace}-")), "{sent}");
        assert_eq!(remote_child_trace.as_deref(), Some(trace.as_str()));
        let webhook = by_name("webhook")[0];
        assert_eq!(
            webhook.span_context.trace_id(),
            first.span_context.trace_id()
        );
        for s in &spans {
            for kv in &s.attributes {
                assert!(!kv.value.as_str().contains("13812345678"));
            }
        }
    }
}
