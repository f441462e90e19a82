//! The Grafana dashboard (`deploy/grafana/concierge.json`) and the Prometheus alert rules
//! (`deploy/prometheus/rules.yaml`) against the metrics the app really exports: the JSON
//! parses, the rules have Prometheus' rule-group shape, and every PromQL expression names
//! only metrics of `concierge::telemetry::METRIC_NAMES` (or Prometheus' own `up`), which a
//! live app's `/metrics` is checked to serve.

use std::collections::BTreeSet;

use concierge::telemetry::{METRIC_NAMES, PROCESS_METRIC_NAMES};
use serde_json::{json, Value};

use crate::helpers::{project_root, spawn_app_with, Engine};

const DASHBOARD: &str = "deploy/grafana/concierge.json";
const RULES: &str = "deploy/prometheus/rules.yaml";

/// PromQL words that are not metric names.
const KEYWORDS: [&str; 12] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
];

/// The metric names an expression reads (label lists already removed): identifiers
/// outside strings, label matchers and ranges that are not functions (followed by `(`),
/// keywords or numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut cleaned = String::new();
    let mut chars = expr.chars().peekable();
    // Drop strings, `{…}` matchers and `[…]` ranges.
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            _ => cleaned.push(c),
        }
    }
    cleaned.push(' ');
    let words: Vec<(usize, &str)> = cleaned
        .match_indices(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .fold((Vec::new(), 0usize), |(mut v, start), (i, sep)| {
            if i > start {
                v.push((start, &cleaned[start..i]));
            }
            (v, i + sep.len())
        })
        .0;
    let mut names = BTreeSet::new();
    for (at, w) in words {
        let after = cleaned[at + w.len()..].trim_start();
        if KEYWORDS.contains(&w.to_ascii_lowercase().as_str())
            || w.chars().next().is_some_and(|c| c.is_ascii_digit())
            || after.starts_with('(')
        {
            continue;
        }
        names.insert(w.to_string());
    }
    names
}

/// Label lists after `by`, `without`, `on`, `ignoring`, `group_left`, `group_right` removed.
fn without_label_lists(expr: &str) -> String {
    let re =
        regex::Regex::new(r"(?i)\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
            .unwrap();
    re.replace_all(expr, " ").into_owned()
}

/// Every metric name an expression reads.
fn names_in(expr: &str) -> BTreeSet<String> {
    metric_names(&without_label_lists(expr))
}

/// What an expression may read: an exported family (histograms with their series
/// suffixes) or Prometheus' own `up`.
fn known(name: &str) -> bool {
    name == "up"
        || METRIC_NAMES.iter().any(|m| {
            name == *m
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{m}{s}"))
        })
}

fn read(rel: &str) -> (std::path::PathBuf, String) {
    let path = project_root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    (path, text)
}

/// Every `expr` (panel targets) and `query` (template variables) of the dashboard.
fn dashboard_exprs(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or("?").to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                title.clone(),
                t["expr"].as_str().expect("target expr").into(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"].as_str().unwrap_or_default();
            // label_values(metric, label)
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split(',').next())
                .unwrap_or(q);
            out.push((format!("variable {}", v["name"]), inner.to_string()));
        }
    }
    out
}

#[test]
fn the_expression_reader_finds_metric_names_and_nothing_else() {
    let e = r#"histogram_quantile(0.99, sum by (le, stage) (rate(concierge_stage_seconds_bucket{job="x",stage=~"turn|nlu"}[5m]))) > 2.5 and on (instance) up == 1"#;
    assert_eq!(
        names_in(e).into_iter().collect::<Vec<_>>(),
        ["concierge_stage_seconds_bucket", "up"]
    );
    assert!(names_in(r#"sum(rate(concierge_no_such_thing[5m]))"#)
        .iter()
        .any(|n| !known(n)));
    // A name at the very end counts too.
    assert_eq!(
        names_in("1 - concierge_sessions_open")
            .into_iter()
            .collect::<Vec<_>>(),
        ["concierge_sessions_open"]
    );
    assert!(known("concierge_asr_real_time_factor_bucket"));
    assert!(!known("concierge_turns"));
}

#[test]
fn the_dashboard_parses_and_reads_only_exported_metrics() {
    let (path, text) = read(DASHBOARD);
    let d: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("{}:{}: {e}", path.display(), e.line());
    });
    assert_eq!(d["uid"], "concierge");
    let exprs = dashboard_exprs(&d);
    // The panels the operators asked for.
    let wanted = [
        "concierge_turns_total",
        "concierge_stage_seconds_bucket",
        "concierge_asr_real_time_factor_bucket",
        "concierge_knowledge_answers_total",
        "concierge_handoffs_waiting",
        "concierge_tickets_sla",
        "concierge_outbox_rows",
        "concierge_device_errors_total",
    ];
    let all: BTreeSet<String> = exprs.iter().flat_map(|(_, e)| names_in(e)).collect();
    for w in wanted {
        assert!(all.contains(w), "{DASHBOARD}: no panel reads {w}");
    }
    let mut unknown = Vec::new();
    for (title, e) in &exprs {
        assert!(
            !names_in(e).is_empty(),
            "{DASHBOARD}: panel {title}: no metric in `{e}`"
        );
        for n in names_in(e) {
            if !known(&n) {
                unknown.push(format!("{DASHBOARD}: panel {title}: unknown metric {n}"));
            }
        }
    }
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
    for p in d["panels"].as_array().unwrap() {
        let g = &p["gridPos"];
        assert!(
            g["w"].as_u64().is_some() && g["h"].as_u64().is_some(),
            "{p}"
        );
    }
}

#[test]
fn the_alert_rules_have_the_prometheus_shape_and_read_only_exported_metrics() {
    let (path, text) = read(RULES);
    let mut errors = Vec::new();
    let rules: Option<Value> = concierge::datafile::parse_yaml(&path, &text, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let rules = rules.unwrap();
    let groups = rules["groups"].as_array().expect("groups: a list");
    assert!(!groups.is_empty());
    let duration = regex::Regex::new(r"^(\d+(ms|s|m|h|d|w|y))+$").unwrap();
    let mut alerts = BTreeSet::new();
    let mut problems = Vec::new();
    for g in groups {
        assert!(g["name"].is_string(), "a group without a name: {g}");
        for r in g["rules"].as_array().expect("groups[].rules: a list") {
            let name = r["alert"].as_str().unwrap_or_default().to_string();
            let line = concierge::datafile::line_of(&text, &format!("alert: {name}"));
            let at = format!("{RULES}:{line}: {name}");
            if name.is_empty() {
                problems.push(format!("{at}: no `alert`"));
            }
            let expr = r["expr"].as_str().unwrap_or_default();
            if expr.is_empty() {
                problems.push(format!("{at}: no `expr`"));
            }
            let for_ok = r["for"].as_str().is_some_and(|f| duration.is_match(f));
            if !for_ok {
                problems.push(format!("{at}: `for` is not a duration: {}", r["for"]));
            }
            match r["labels"]["severity"].as_str() {
                Some("critical" | "warning" | "info") => {}
                other => problems.push(format!("{at}: labels.severity is {other:?}")),
            }
            if !r["annotations"]["summary"].is_string() {
                problems.push(format!("{at}: no annotations.summary"));
            }
            let names = names_in(expr);
            if names.is_empty() {
                problems.push(format!("{at}: no metric in `{expr}`"));
            }
            for n in names.iter().filter(|n| !known(n)) {
                problems.push(format!("{at}: unknown metric {n}"));
            }
            if !alerts.insert(name.clone()) {
                problems.push(format!("{at}: alert named twice"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for wanted in [
        "ConciergeNodeDown",
        "ConciergeTurnLatencyHigh",
        "ConciergeDontKnowRateHigh",
        "ConciergeOutboxBacklog",
        "ConciergeOutboxDeadRows",
        "ConciergeSlaAtRisk",
        "ConciergeDeviceErrors",
    ] {
        assert!(alerts.contains(wanted), "{RULES}: no alert {wanted}");
    }
}

#[tokio::test]
async fn a_live_app_exports_the_metrics_the_dashboard_reads_with_database_gauges() {
    live_metrics(Engine::Sqlite).await;
}

#[tokio::test]
async fn a_live_app_on_postgresql_reads_the_database_gauges_too() {
    live_metrics(Engine::Postgres).await;
}

async fn live_metrics(engine: Engine) {
    let app = spawn_app_with(engine, |_| {}).await;
    let (mut kiosk, _, _) = app.new_session("K001").await;
    kiosk.recv_type("bot.say").await;
    // A customer who asks for a person: a handoff ticket nobody has taken yet.
    kiosk
        .send(json!({"type": "user.text", "text": "我要找人工柜员"}))
        .await;
    let waiting = kiosk.recv_type("handoff").await;
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    // Another customer asks what no article answers: one "I don't know".
    let (mut other, _, _) = app.new_session("K002").await;
    other.recv_type("bot.say").await;
    let said = other.say("网点有没有充电宝可以借").await;
    assert!(
        said["text"]
            .as_str()
            .unwrap_or_default()
            .contains("答不上来"),
        "{said}"
    );
    let metrics = reqwest::get(app.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families: BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // Families with series from the start (the others appear with their first event).
    for name in [
        "concierge_turns_total",
        "concierge_stage_seconds",
        "concierge_asr_real_time_factor",
        "concierge_knowledge_answers_total",
        "concierge_handoffs_waiting",
        "concierge_tickets_sla",
        "concierge_outbox_rows",
    ] {
        assert!(families.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    for name in &families {
        assert!(
            METRIC_NAMES.contains(name) || PROCESS_METRIC_NAMES.contains(name),
            "/metrics serves {name}, missing from METRIC_NAMES"
        );
    }
    // The process's own figures (bench kiosks reads CPU per turn and memory from them).
    for name in [
        "concierge_process_cpu_seconds_total",
        "concierge_process_resident_memory_bytes",
    ] {
        assert!(families.contains(name), "/metrics lacks {name}");
    }
    for series in [
        r#"concierge_handoffs_waiting{kind="handoff"} 1"#,
        r#"concierge_handoffs_waiting{kind="handoff_remote"} 0"#,
        r#"concierge_tickets_sla{stage="response",status="at_risk"} 0"#,
        r#"concierge_outbox_rows{state="dead"} 0"#,
        r#"concierge_knowledge_answers_total{outcome="no_answer"} 1"#,
        r#"concierge_knowledge_answers_total{outcome="answer"} 0"#,
    ] {
        assert!(
            metrics.contains(series),
            "/metrics lacks `{series}`:\n{metrics}"
        );
    }
    app.stop().await;
}
