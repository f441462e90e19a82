//! Traces end to end: `concierge serve` as an operator runs it, with `[telemetry]
//! otlp_endpoint` naming a fake OTLP/HTTP collector started here (it decodes the protobuf
//! the exporter sends), the core-banking HTTP adapter pointed at the fake host, a webhook
//! receiver, and a fake transcription server. A kiosk reports a lost card by text (device
//! and bank calls), asks a question by voice (recognition, knowledge, synthesis) and asks
//! for a person (a ticket whose event goes to the webhook). Then: each turn is one trace
//! with its ids and child spans, the bank host and the webhook got `traceparent` in the
//! turn's trace, and no span carries what the customer said or an identifier.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{json, Value};

use crate::contracts::bank::{FakeHost, TOKEN, ZHANG_ID_NUMBER};
use crate::helpers::{concierge, Kiosk};
use crate::speech::{json_of, speak, until, In};

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Got {
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: BTreeMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Got>>>;

/// A fake OTLP/HTTP collector on 127.0.0.1:0: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`. Its base URL and what it received.
async fn fake_collector() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let seen = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                assert_eq!(
                    headers.get("content-type").and_then(|v| v.to_str().ok()),
                    Some("application/x-protobuf")
                );
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut seen = seen.lock().unwrap();
                for rs in request.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())));
                    assert_eq!(service.as_deref(), Some("concierge"));
                    for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                        seen.push(Got {
                            trace: hex::encode(&span.trace_id),
                            id: hex::encode(&span.span_id),
                            parent: hex::encode(&span.parent_span_id),
                            name: span.name,
                            attributes: span
                                .attributes
                                .iter()
                                .map(|kv| {
                                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                                    (kv.key.clone(), text(v))
                                })
                                .collect(),
                        });
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

/// An attribute value as text.
fn text(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// A server on 127.0.0.1:0 answering `POST path` with `answer`, recording each request's
/// `traceparent` header ("" when absent). Its base URL and the headers seen.
async fn recorder(path: &'static str, answer: Value) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = Router::new().route(
        path,
        // The body is read whole before answering: a server that answers while the client
        // is still sending (an audio upload) makes the client see a broken request.
        post(move |headers: HeaderMap, _body: axum::body::Bytes| {
            let s = s.clone();
            let answer = answer.clone();
            async move {
                let parent = headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                s.lock().unwrap().push(parent.to_string());
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// The trace id a `traceparent` value names.
fn trace_of(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

/// Says `text`, answering device calls as the simulated devices do, until the bot says
/// something containing `until`.
async fn say_until(k: &mut Kiosk, text: &str, until: &str) {
    let devices = kiosk_adapter::sim::SimulatedDevices::new();
    k.send(json!({"type": "user.text", "text": text})).await;
    let mut said = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !said.contains(until) {
        let next = tokio::time::timeout_at(deadline, k.recv()).await;
        let m = next.unwrap_or_else(|_| panic!("never said {until:?}; said {said:?}"));
        match m["type"].as_str() {
            Some("device.invoke") => {
                let call = m["call_id"].as_str().unwrap();
                let r = devices
                    .handle(
                        call,
                        m["device"].as_str().unwrap(),
                        m["action"].as_str().unwrap(),
                        &m["args"],
                    )
                    .unwrap();
                k.send(json!({"type": "device.result", "call_id": call, "ok": true, "data": r}))
                    .await;
            }
            Some("bot.say") => said.push_str(m["text"].as_str().unwrap_or_default()),
            _ => {}
        }
    }
}

/// `concierge serve` with traces on, killed at the end of the test if still running.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_turn_is_one_trace_at_the_collector_with_its_ids_and_no_identifiers() {
    let (collector, spans) = fake_collector().await;
    let host = FakeHost::start().await;
    let (hooks, hook_parents) = recorder("/hook", json!({"ok": true})).await;
    let (asr, _) = recorder("/v1/audio/transcriptions", json!({"text": "你们几点开门"})).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("c.db").display());
    let config = dir.path().join("concierge.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
drain_secs = 0
[database]
url = "{db}"
[banking]
backend = "http"
base_url = "{bank}"
api_token = "{TOKEN}"
[speech]
models_dir = "{models}"
asr_backend = "openai"
openai_base_url = "{asr}/v1"
[embedding]
backend = "off"
[live]
screen_devices = ["*"]
[outbox]
poll_ms = 100
[[outbox.webhooks]]
name = "crm"
url = "{hooks}/hook"
secret = "webhook-secret"
[telemetry]
otlp_endpoint = "{collector}"
"#,
            bank = host.base_url(),
            models = dir.path().display(),
        ),
    )
    .unwrap();
    let with_config = |args: &[&str]| {
        let mut c = concierge();
        c.arg("--config").arg(&config).args(args);
        c
    };
    let out = with_config(&["kiosk", "register", "--id", "K001", "--branch", "B001"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let mut child = with_config(&["serve", "--listen", "127.0.0.1:0"])
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut served = Served(child);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = log.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(at) = line.strip_prefix("concierge: serving on http://") {
                let _ = addr_tx.send(at.to_string());
            }
            l.lock().unwrap().push(line);
        }
    });
    let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("serve did not start: {:?}", log.lock().unwrap()));

    // A lost card, by text: understanding, the flow, the ID reader, the bank.
    let mut k = Kiosk::connect(&format!("ws://{addr}/v1/kiosk/ws")).await;
    let mut caps = vec!["text".to_string(), "audio".into(), "speaker".into()];
    caps.extend(kiosk_adapter::sim::SimulatedDevices::capabilities());
    k.send(json!({"type": "hello", "kiosk_id": "K001", "token": token, "capabilities": caps}))
        .await;
    let welcome = k.recv_type("welcome").await;
    let session = welcome["session_id"].as_str().unwrap().to_string();
    k.recv_type("bot.say").await;
    say_until(&mut k, "我的卡丢了，帮我挂失", "手机号").await;
    let bank_calls = host.traceparents().len();
    say_until(&mut k, "13812345678", "后四位").await;
    // That question is spoken too: its voice ends before the next request.
    until(&mut k, "bot.audio_end").await;
    k.send(json!({"type": "user.text", "text": "取消"})).await;
    // The reply is spoken: let the bot finish (its voice lasts as long as its audio) so the
    // question below is a turn of its own, not the customer talking over the bot.
    loop {
        let seen = until(&mut k, "bot.say").await;
        let said = json_of(&seen, "bot.say").unwrap_or_default();
        if said["text"].as_str().unwrap_or_default().contains("取消") {
            break;
        }
    }
    let reply = until(&mut k, "bot.audio_end").await;
    let bytes: usize = reply
        .iter()
        .map(|m| match m {
            In::Binary(n) => *n,
            In::Json(_) => 0,
        })
        .sum();
    // 16-bit samples at 8 kHz or more: at most this long.
    let voice = Duration::from_millis((bytes as u64 / 16).min(20_000));
    tokio::time::sleep(voice * 2 + Duration::from_secs(2)).await;

    // A question, by voice.
    let clip = concierge::speech::wav::read_wav(
        &crate::helpers::project_root().join("tests/fixtures/audio/p_3.16k.wav"),
    )
    .unwrap();
    speak(&mut k, &clip).await;
    // Its answer (the opening hours), not just any reply: the next request must not
    // overtake the spoken turn.
    let mut answer = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(150), async {
        loop {
            let seen = until(&mut k, "bot.say").await;
            let said = json_of(&seen, "bot.say").unwrap_or_default();
            answer.extend(seen);
            if said["text"].as_str().unwrap_or_default().contains("营业") {
                break;
            }
            assert!(
                answer.len() < 500,
                "no answer to the spoken question: {answer:?}"
            );
        }
    })
    .await;
    if answered.is_err() {
        let log = log.lock().unwrap();
        let tail: Vec<&String> = log.iter().rev().take(40).collect();
        panic!("no answer to the spoken question in 150 s; the server's log ends: {tail:#?}");
    }
    until(&mut k, "bot.audio_end").await;

    // A person, please: a handoff ticket, its event to the webhook.
    k.send(json!({"type": "user.text", "text": "转人工"})).await;
    k.recv_type("handoff").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while hook_parents.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no webhook delivery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(k);

    // A graceful stop sends what is still buffered.
    let pid = served.0.id() as i32;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || {
        let status = served.0.wait();
        (status, served)
    })
    .await
    .unwrap()
    .0
    .unwrap();
    assert!(status.success(), "serve stopped cleanly: {status:?}");

    let spans = spans.lock().unwrap().clone();
    let named = |n: &str| {
        spans
            .iter()
            .filter(|s| s.name == n)
            .cloned()
            .collect::<Vec<_>>()
    };
    let in_trace = |t: &str| {
        spans
            .iter()
            .filter(|s| s.trace == t)
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
    };

    // Every turn is a trace of its own, with the kiosk, session and turn ids.
    let turns = named("turn");
    assert!(turns.len() >= 5, "{turns:?}");
    for t in &turns {
        assert_eq!(t.attributes["kiosk_id"], "K001", "{t:?}");
        assert_eq!(t.attributes["session_id"], session, "{t:?}");
        assert_eq!(t.attributes["turn_id"].len(), 36, "{t:?}");
    }
    let traces: std::collections::BTreeSet<&str> = turns.iter().map(|t| t.trace.as_str()).collect();
    assert_eq!(traces.len(), turns.len(), "one trace per turn");
    for t in turns.iter().filter(|t| t.attributes["input"] == "text") {
        assert_eq!(t.parent, "", "a typed turn is a trace's root: {t:?}");
    }

    // The card-loss request: its spans are the turn's children.
    let bank_parents = host.traceparents();
    assert!(bank_calls >= 1 && bank_parents.len() > bank_calls);
    let first = trace_of(&bank_parents[0]);
    let names = in_trace(first);
    for want in ["turn", "nlu", "flow", "action", "device", "bank"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let turn = turns.iter().find(|t| t.trace == first).unwrap();
    let nlu = spans
        .iter()
        .find(|s| s.trace == first && s.name == "nlu")
        .unwrap();
    assert_eq!(nlu.parent, turn.id);
    assert_eq!(nlu.attributes["intent"], "card.report_loss");
    // Every bank request carried the trace context of its turn, and the phone check's
    // turn is another trace than the lookup's.
    assert!(
        bank_parents.iter().all(|p| p.starts_with("00-")),
        "{bank_parents:?}"
    );
    let phone = trace_of(&bank_parents[bank_calls]);
    assert_ne!(phone, first);
    assert!(turns.iter().any(|t| t.trace == phone));
    let bank_span_ids: Vec<&str> = bank_parents
        .iter()
        .map(|p| p.split('-').nth(2).unwrap())
        .collect();
    assert!(
        spans
            .iter()
            .any(|s| s.name == "bank" && bank_span_ids.contains(&s.id.as_str())),
        "the host's parent is the bank span"
    );

    // The spoken question: recognised under its utterance, then answered and spoken.
    let spoken = turns
        .iter()
        .find(|t| t.attributes["input"] == "speech")
        .unwrap_or_else(|| {
            panic!(
                "no spoken turn; the kiosk got {answer:?}; server log:\n{}",
                log.lock().unwrap().join("\n")
            )
        });
    let names = in_trace(&spoken.trace);
    for want in [
        "utterance",
        "asr",
        "turn",
        "nlu",
        "knowledge",
        "flow",
        "tts",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let utterance = named("utterance")
        .into_iter()
        .find(|u| u.trace == spoken.trace)
        .unwrap();
    assert_eq!(utterance.parent, "");
    assert_eq!(spoken.parent, utterance.id);

    // The webhook delivery continued the handoff turn's trace.
    let hooks = hook_parents.lock().unwrap().clone();
    assert!(
        hooks.iter().any(|hook| {
            let handoff = trace_of(hook);
            turns.iter().any(|t| t.trace == handoff) && in_trace(handoff).contains(&"webhook")
        }),
        "{hooks:?}"
    );

    // Ids and names only: nothing the customer said, no phone number, no ID number.
    for s in &spans {
        for (key, value) in &s.attributes {
            for secret in ["13812345678", "挂失", "几点", "人工", ZHANG_ID_NUMBER] {
                assert!(!value.contains(secret), "{} {key}={value}", s.name);
            }
        }
    }
}
