//! Input fuzzing with proptest (issue #17, "Prove it"): every reader of outside input is fed
//! random and mutated input and must neither panic nor take long. The targets: the kiosk
//! protocol decoder, the NLU (normaliser, number reader, slot parsers, masking), the flow
//! and article file parsers, Markdown rendering (plain text, passages, reading for speech)
//! and the XFS4IoT message decoder of kiosk-adapter.
//!
//! `CONCIERGE_FUZZ_CASES` sets the cases per target (default 256, so the suite stays fast;
//! `scripts/fuzz` runs 100,000 each). A case slower than `CONCIERGE_FUZZ_MAX_MS` (default
//! 50 ms) is timed twice more and fails when even its fastest run is over the limit, so a
//! busy machine does not fail the test. Each target prints its case count and time.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::helpers::project_root;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `check` on `cases` inputs of `strategy`: no panic, each case within the limit.
fn fuzz<S>(name: &str, strategy: S, check: impl Fn(&S::Value))
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = env_number("CONCIERGE_FUZZ_CASES", 256) as u32;
    let limit = Duration::from_millis(env_number("CONCIERGE_FUZZ_MAX_MS", 50));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let slowest = std::cell::Cell::new(Duration::ZERO);
    let result = runner.run(&strategy, |input| {
        let timed = || {
            let t = Instant::now();
            check(&input);
            t.elapsed()
        };
        let mut took = timed();
        if took > limit {
            took = took.min(timed()).min(timed());
        }
        slowest.set(slowest.get().max(took));
        if took > limit {
            return Err(TestCaseError::fail(format!(
                "took {took:?} (limit {limit:?})"
            )));
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    eprintln!(
        "fuzz {name}: {cases} cases in {:.2} s ({:.0} cases/s, slowest {:.2} ms)",
        elapsed.as_secs_f64(),
        cases as f64 / elapsed.as_secs_f64().max(1e-9),
        slowest.get().as_secs_f64() * 1e3
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

/// Free text: any printable text, any text at all, and text dense in numerals, digits and
/// the separators the readers care about.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,200}",
        "(?s).{0,120}",
        "[0-9０-９一二三四五六七八九十百千万亿幺两〇零点半块元号月日年周星期上下午xX .,:/，、。-]{0,120}",
        "[ -~]{0,200}",
    ]
}

fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-12-03T10:00:00+08:00").unwrap()
}

// ---- the kiosk protocol ----

const CLIENT_TYPES: &[&str] = &[
    "hello",
    "user.text",
    "user.choice",
    "audio.start",
    "audio.end",
    "device.result",
    "device.event",
    "session.close",
    "ping",
    "bogus",
];

const KEYS: &[&str] = &[
    "type",
    "kiosk_id",
    "token",
    "session_id",
    "role",
    "capabilities",
    "text",
    "value",
    "call_id",
    "ok",
    "data",
    "error",
    "device",
    "event",
    "format",
    "sample_rate",
    "header",
    "payload",
    "name",
    "requestId",
    "completionCode",
    "errorCode",
    "timeout",
    "status",
    "version",
];

/// Any JSON value, objects keyed mostly by the protocols' own field names.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::from),
        prop::sample::select(CLIENT_TYPES).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(String::from),
                        "\\PC{0,8}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A frame: an object with a known `type` and random fields, random JSON, or random text.
fn frame() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (prop::sample::select(CLIENT_TYPES), json_value()).prop_map(|(kind, v)| {
            let mut obj = match v {
                Value::Object(o) => o,
                other => [("data".to_string(), other)].into_iter().collect(),
            };
            obj.insert("type".into(), kind.into());
            Value::Object(obj).to_string()
        }),
        1 => json_value().prop_map(|v| v.to_string()),
        1 => text(),
    ]
}

#[test]
fn the_protocol_decoder_takes_any_frame() {
    fuzz("protocol decoder", frame(), |f| {
        let _ = kiosk_protocol::decode_client(f);
    });
}

#[test]
fn device_results_are_checked_without_panicking() {
    use kiosk_protocol::devices::Action;
    fuzz(
        "device result check",
        (prop::sample::select(Action::ALL.to_vec()), json_value()),
        |(action, data)| {
            let (device, name) = action.names();
            if let Some(a) = Action::parse(device, name) {
                let _ = a.check(data);
            }
        },
    );
}

// ---- the XFS4IoT decoder (kiosk-adapter) ----

const XFS_TYPES: &[&str] = &[
    "command",
    "acknowledge",
    "event",
    "completion",
    "unsolicited",
    "other",
];

/// An XFS4IoT frame: a header of random fields around a random payload, or anything.
fn xfs_frame() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (prop::sample::select(XFS_TYPES), json_value(), json_value(), json_value())
            .prop_map(|(kind, name, id, payload)| {
                json!({"header": {"type": kind, "name": name, "requestId": id,
                       "completionCode": "success", "version": "2.0"},
                       "payload": payload})
                .to_string()
            }),
        1 => json_value().prop_map(|v| v.to_string()),
        1 => text(),
    ]
}

#[test]
fn the_xfs4iot_decoder_takes_any_frame() {
    use kiosk_adapter::xfs4iot::{Completion, XfsMessage};
    fuzz("xfs4iot decoder", xfs_frame(), |f| {
        if let Ok(msg) = serde_json::from_str::<XfsMessage>(f) {
            let _ = msg.request_id();
            let c = Completion::from_message(msg, vec!["CardReader.MediaInsertedEvent".into()]);
            let _ = c.is_success();
            let _ =
                kiosk_adapter::xfs4iot::map_failure(&c.completion_code, c.error_code.as_deref());
        }
    });
}

/// XFS4IoT payload fields (and a few of our own), so random payloads reach the mappers.
const XFS_KEYS: &[&str] = &[
    "track1",
    "track2",
    "track3",
    "chip",
    "data",
    "status",
    "completion",
    "pinBlock",
    "digits",
    "errorCode",
    "completionCode",
    "pictures",
    "picture",
    "paperSource",
    "threshold",
    "common",
    "device",
    "printer",
    "paper",
    "interfaces",
    "services",
];

fn xfs_payload() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
        prop::sample::select(&["ok", "success", "low", "out", "online", "offline", "auto"][..])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(XFS_KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// One wire case: a device call whose XFS4IoT command completes with a random outcome,
/// after a random frame and a random unsolicited message from the service.
#[derive(Debug, Clone)]
struct WireCase {
    call: usize,
    outcome: u8,
    payload: Value,
    code: String,
    frame: String,
    unsolicited: (usize, Value),
    args: Value,
}

/// (device, action, the XFS4IoT command it sends first, its service).
const WIRE_CALLS: &[(&str, &str, &str, &str)] = &[
    (
        "card_reader",
        "read",
        "CardReader.ReadRawData",
        "cardreader",
    ),
    ("card_reader", "eject", "CardReader.Move", "cardreader"),
    ("pin_pad", "enter_pin", "Keyboard.PinEntry", "pinpad"),
    ("camera", "capture", "Camera.TakePicture", "camera"),
];

const UNSOLICITED: &[&str] = &[
    "CardReader.MediaRemovedEvent",
    "Printer.PaperThresholdEvent",
    "Common.StatusChangedEvent",
    "Bogus.Event",
];

fn wire_case() -> impl Strategy<Value = WireCase> {
    (
        0..WIRE_CALLS.len(),
        0u8..4,
        xfs_payload(),
        "[a-zA-Z]{0,12}",
        xfs_frame(),
        (0..UNSOLICITED.len(), xfs_payload()),
        json_value(),
    )
        .prop_map(
            |(call, outcome, payload, code, frame, unsolicited, args)| WireCase {
                call,
                outcome,
                payload,
                code,
                frame,
                unsolicited,
                args,
            },
        )
}

/// The XFS4IoT client and device mapping of kiosk-adapter over a real WebSocket to the fake
/// service: random completions, frames and unsolicited events; no task of the test's
/// runtime may panic (a panicking reader task would be caught by tokio and go unseen).
#[test]
fn the_xfs4iot_client_takes_any_message_from_a_service() {
    use kiosk_adapter::xfs4iot::{FakeXfs, Outcome, XfsDevices};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (fake, devices) = rt.block_on(async {
        let fake = FakeXfs::start().await;
        let devices = XfsDevices::discover(&fake.publisher_url(), Duration::from_secs(2))
            .await
            .expect("discovery");
        (fake, devices)
    });
    let panics = Arc::new(AtomicUsize::new(0));
    let (seen, me) = (panics.clone(), std::thread::current().id());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        previous(info)
    }));
    let calls = AtomicUsize::new(0);
    fuzz("xfs4iot client", wire_case(), |c| {
        let (device, action, command, service) = WIRE_CALLS[c.call];
        let outcome = match c.outcome {
            0 => Outcome::SuccessWith(c.payload.clone()),
            1 => Outcome::error(&c.code, Some(&c.code)),
            2 => Outcome::Garbage,
            _ => Outcome::Success,
        };
        fake.script(command, outcome);
        fake.send_raw(service, &c.frame);
        fake.unsolicited(
            service,
            UNSOLICITED[c.unsolicited.0],
            c.unsolicited.1.clone(),
        );
        let id = format!("fuzz-{}", calls.fetch_add(1, Ordering::SeqCst));
        let _result = rt.block_on(devices.handle_with_timeout(
            &id,
            device,
            action,
            &c.args,
            Duration::from_secs(2),
        ));
        assert_eq!(panics.load(Ordering::SeqCst), 0, "a task panicked");
    });
}

// ---- the NLU ----

#[test]
fn the_nlu_readers_take_any_text() {
    use concierge::nlu::slots::{extract, ServiceWords};
    use concierge::text::numbers::{parse_number, rewrite_numerals};
    let services = ServiceWords::new([
        ("开户".to_string(), "account.open".to_string()),
        ("挂失".to_string(), "card.report_loss".to_string()),
    ]);
    let now = now();
    fuzz("nlu readers", text(), |t| {
        let n = concierge::text::normalize::normalize(t);
        let _ = extract(&n.text, now, &services);
        let _ = extract(t, now, &services);
        let _ = parse_number(t);
        let _ = rewrite_numerals(t);
        let _ = concierge::access::mask_pii(t);
    });
}

// ---- data files: flows and articles ----

/// How a real file is damaged: drop, repeat or replace a line, insert text, cut short.
#[derive(Debug, Clone)]
enum Damage {
    Drop(usize),
    Repeat(usize),
    Replace(usize, String),
    Insert(usize, String),
    Cut(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let snippet = prop_oneof![
        "\\PC{0,30}",
        "[ :\\-\\[\\]{}#&*!|>'\"%@`,?]{0,12}",
        prop::sample::select(
            &[
                "  - ",
                ": ",
                "---",
                "steps:",
                "  - say: x",
                "    goto: nowhere",
                "id: x",
                "title: ",
                "questions: [",
                "  next: ",
                "\t",
                "\u{feff}",
                "&a",
                "*a",
                "<<: *a",
                "!!binary",
                "? ",
                "- - -",
                "{{",
                "}}",
                "audience: staff",
            ][..]
        )
        .prop_map(String::from),
    ];
    prop_oneof![
        any::<usize>().prop_map(Damage::Drop),
        any::<usize>().prop_map(Damage::Repeat),
        (any::<usize>(), snippet.clone()).prop_map(|(i, s)| Damage::Replace(i, s)),
        (any::<usize>(), snippet).prop_map(|(i, s)| Damage::Insert(i, s)),
        any::<usize>().prop_map(Damage::Cut),
    ]
}

fn apply(text: &str, damages: &[Damage]) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for d in damages {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match d {
            Damage::Drop(i) => {
                lines.remove(i % n);
            }
            Damage::Repeat(i) => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Damage::Replace(i, s) => lines[i % n] = s.clone(),
            Damage::Insert(i, s) => {
                let line = &mut lines[i % n];
                let at = line
                    .char_indices()
                    .map(|(b, _)| b)
                    .nth(i % (line.chars().count() + 1))
                    .unwrap_or(line.len());
                line.insert_str(at, s);
            }
            Damage::Cut(i) => lines.truncate(i % n),
        }
    }
    lines.join("\n")
}

/// Every file of `dir` with extension `ext`.
fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// A real file of `originals` damaged a few times, or random text.
fn damaged(originals: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (prop::sample::select(originals), prop::collection::vec(damage(), 1..6))
            .prop_map(|(text, d)| apply(&text, &d)),
        1 => text(),
    ]
}

#[test]
fn the_flow_file_parser_takes_any_file() {
    let flows = files(&project_root().join("dialogs/flows"), "yaml");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    let file = dir.path().join("flows/fuzzed.yaml");
    let catalog = concierge::actions::Registry::standard();
    fuzz("flow file parser", damaged(flows), |text| {
        std::fs::write(&file, text).unwrap();
        let mut errors = Vec::new();
        let _ = concierge::dialog::flow::load_flows(dir.path(), &catalog, &mut errors);
    });
}

#[test]
fn the_article_parser_and_markdown_rendering_take_any_file() {
    use concierge::knowledge::model::{plain_text, ArticleDraft};
    use concierge::knowledge::passages::{chunks, passages};
    let articles = files(&project_root().join("knowledge"), "md");
    let lexicon: BTreeMap<String, String> = [("ATM", "A T M"), ("U盾", "U盾")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let path = Path::new("knowledge/fuzzed.md");
    fuzz("article parser + markdown", damaged(articles), |text| {
        let mut errors = Vec::new();
        if let Some(article) = concierge::content::parse_article(path, text, &mut errors) {
            let draft = ArticleDraft::from(&article);
            let _ = passages(&draft);
            let _ = draft.spoken_summary();
            let _ = draft.to_markdown("fuzzed");
        }
        let _ = plain_text(text);
        let _ = chunks(text, 120);
        let _ = concierge::speech::reading::for_reading(text, &lexicon);
    });
}
