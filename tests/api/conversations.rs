//! Conversation tests as data: every `tests/conversations/*.yaml` is a script of customer
//! turns and what the bot must do, run against a real app over the kiosk WebSocket.
//!
//! Format (one file may hold several scripts):
//!
//! ```yaml
//! scripts:
//!   - name: 问候与道别
//!     turns:
//!       - user: 你好                # or `tap: <choice value>`
//!         says: 您好                # substring of the reply text (a list: all of them)
//!         matches: "有什么.*帮您"     # regular expression over the reply text
//!         not_says: 余额             # must not appear in text or speech
//!         choices: [handoff.teller]  # these choice values are offered
//!         ends: true                 # the session ends after this reply
//!         fail: {id_card: no_card}   # before the turn: the next call of a device fails
//!         invokes: [id_card.read]    # these device calls happen during the turn
//!         no_devices: true           # no device is called during the turn
//!         shows: "52380.75"          # shown in a screen-only (sensitive) field
//!         hands_off: teller          # a handoff to teller / remote_expert is recorded
//!         cites: card-loss           # this knowledge article is on screen (`none`: no article)
//! ```
//!
//! The kiosk declares every simulated device of kiosk-adapter and answers device calls
//! from them (the sandbox bank is seeded, so 张三's ID card and bank card work). A turn's
//! replies are all `bot.say` messages until the kiosk has been quiet for a moment.
//! A failing expectation names the file, the script and the turn.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use kiosk_adapter::sim::SimulatedDevices;
use tokio_tungstenite::tungstenite::Message;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::helpers::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scripts: Vec<Script>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Script {
    name: String,
    turns: Vec<Turn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Turn {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    tap: Option<String>,
    #[serde(default)]
    says: OneOrMany,
    #[serde(default)]
    matches: Option<String>,
    #[serde(default)]
    not_says: OneOrMany,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    ends: bool,
    #[serde(default)]
    fail: BTreeMap<String, String>,
    #[serde(default)]
    invokes: Vec<String>,
    /// No device is called during the turn (a question is answered, nothing started).
    #[serde(default)]
    no_devices: bool,
    #[serde(default)]
    shows: Option<String>,
    #[serde(default)]
    hands_off: Option<String>,
    #[serde(default)]
    cites: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn all(&self) -> Vec<&str> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

fn scripts() -> Vec<(PathBuf, Script)> {
    let dir = project_root().join("tests/conversations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/conversations exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no conversation tests in {}",
        dir.display()
    );
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file: File =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.extend(file.scripts.into_iter().map(|s| (path.clone(), s)));
    }
    out
}

/// What the kiosk saw during one turn.
#[derive(Default)]
struct Seen {
    says: Vec<Value>,
    invoked: Vec<String>,
    ended: bool,
}

/// Reads until the kiosk has been quiet for a moment after at least one reply, answering
/// device calls from the simulated devices.
async fn collect(k: &mut Kiosk, devices: &SimulatedDevices) -> Seen {
    let mut seen = Seen::default();
    loop {
        let wait = if seen.says.is_empty() {
            WAIT
        } else {
            Duration::from_millis(300)
        };
        let frame = match tokio::time::timeout(wait, k.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                seen.ended = true;
                return seen;
            }
            Ok(Some(Ok(_))) => continue,
            Err(_) => return seen,
        };
        let m: Value = serde_json::from_str(&frame).expect("server sends JSON");
        match m["type"].as_str() {
            Some("bot.say") => seen.says.push(m),
            Some("session.end") => {
                seen.ended = true;
                return seen;
            }
            Some("device.invoke") => {
                let call = m["call_id"].as_str().unwrap_or_default();
                let device = m["device"].as_str().unwrap_or_default();
                let action = m["action"].as_str().unwrap_or_default();
                seen.invoked.push(format!("{device}.{action}"));
                let reply = match devices.handle(call, device, action, &m["args"]) {
                    Ok(result) => {
                        json!({"type": "device.result", "call_id": call, "ok": true, "data": result})
                    }
                    Err(e) => {
                        json!({"type": "device.result", "call_id": call, "ok": false, "error": e})
                    }
                };
                k.send(reply).await;
            }
            _ => {}
        }
    }
}

async fn handoffs(app: &TestApp, session: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT target FROM handoffs WHERE session_id = $1 ORDER BY created_at")
        .bind(session)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
}

/// Runs one script in a fresh session; returns every failed expectation.
async fn run(app: &TestApp, token: &str, file: &Path, script: &Script) -> Vec<String> {
    let mut k = app.connect().await;
    let mut caps = vec!["text".to_string(), "choices".to_string()];
    caps.extend(SimulatedDevices::capabilities());
    k.send(json!({"type": "hello", "kiosk_id": "KCONV", "token": token, "capabilities": caps}))
        .await;
    let welcome = k.recv_type("welcome").await;
    let session = welcome["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    k.recv_type("bot.say").await;
    let devices = SimulatedDevices::new();
    let mut failures = Vec::new();
    for (i, turn) in script.turns.iter().enumerate() {
        let at = format!("{}: {} · turn {}", file.display(), script.name, i + 1);
        for (device, code) in &turn.fail {
            devices.fail_next(device, code);
        }
        let handed_before = handoffs(app, &session).await.len();
        let msg = match (&turn.user, &turn.tap) {
            (Some(text), None) => json!({"type": "user.text", "text": text}),
            (None, Some(value)) => json!({"type": "user.choice", "value": value}),
            _ => {
                failures.push(format!("{at}: a turn needs exactly one of `user` or `tap`"));
                break;
            }
        };
        k.send(msg).await;
        let seen = collect(&mut k, &devices).await;
        let text: String = seen
            .says
            .iter()
            .filter_map(|m| m["text"].as_str())
            .collect::<Vec<_>>()
            .join(" / ");
        let spoken: String = seen
            .says
            .iter()
            .map(|m| {
                m["speak"]
                    .as_str()
                    .or(m["text"].as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" / ");
        let text = text.as_str();
        if seen.says.is_empty() {
            failures.push(format!("{at}: no reply"));
            break;
        }
        for want in turn.says.all() {
            if !text.contains(want) {
                failures.push(format!(
                    "{at}: reply should contain `{want}`; it was `{text}`"
                ));
            }
        }
        if let Some(pattern) = &turn.matches {
            let re = regex::Regex::new(pattern).expect("valid `matches` pattern");
            if !re.is_match(text) {
                failures.push(format!(
                    "{at}: reply should match /{pattern}/; it was `{text}`"
                ));
            }
        }
        for banned in turn.not_says.all() {
            if text.contains(banned) || spoken.contains(banned) {
                failures.push(format!(
                    "{at}: reply must not contain `{banned}`; it was `{text}`"
                ));
            }
        }
        let last = seen.says.last().cloned().unwrap_or_default();
        let offered: Vec<&str> = last["ui"]["choices"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["value"].as_str()).collect())
            .unwrap_or_default();
        for want in &turn.choices {
            if !offered.contains(&want.as_str()) {
                failures.push(format!(
                    "{at}: choice `{want}` should be offered; got {offered:?}"
                ));
            }
        }
        for want in &turn.invokes {
            if !seen.invoked.contains(want) {
                failures.push(format!(
                    "{at}: device call `{want}` expected; saw {:?}",
                    seen.invoked
                ));
            }
        }
        if turn.no_devices && !seen.invoked.is_empty() {
            failures.push(format!(
                "{at}: no device call expected; saw {:?}",
                seen.invoked
            ));
        }
        if let Some(value) = &turn.shows {
            let shown = seen.says.iter().any(|m| {
                m["ui"]["sensitive"] == true
                    && m["ui"]["fields"].as_array().is_some_and(|f| {
                        f.iter().any(|f| {
                            f["value"]
                                .as_str()
                                .is_some_and(|v| v.contains(value.as_str()))
                        })
                    })
            });
            if !shown {
                failures.push(format!(
                    "{at}: `{value}` should be shown in a screen-only field"
                ));
            }
        }
        if let Some(want) = &turn.cites {
            let cited: Vec<&str> = seen
                .says
                .iter()
                .filter_map(|m| m["ui"]["article"]["id"].as_str())
                .collect();
            let ok = if want == "none" {
                cited.is_empty()
            } else {
                cited.contains(&want.as_str())
                    && seen.says.iter().any(|m| {
                        m["ui"]["article"]["version"]
                            .as_i64()
                            .is_some_and(|v| v > 0)
                            && m["ui"]["article"]["body"]
                                .as_str()
                                .is_some_and(|b| !b.is_empty())
                    })
            };
            if !ok {
                failures.push(format!(
                    "{at}: should cite `{want}` on screen; cited {cited:?}"
                ));
            }
        }
        if let Some(target) = &turn.hands_off {
            let now = handoffs(app, &session).await;
            if now.len() <= handed_before || now.last() != Some(target) {
                failures.push(format!(
                    "{at}: a handoff to `{target}` should be recorded; have {now:?}"
                ));
            }
        }
        if turn.ends != seen.ended {
            failures.push(format!(
                "{at}: session should {}end here",
                if turn.ends { "" } else { "not " }
            ));
        }
        if seen.ended {
            break;
        }
    }
    failures
}

/// Seeds the sandbox bank and runs every script on `app`; fails on any failed expectation.
pub(crate) async fn run_every_script(app: &TestApp) {
    let token = app
        .kiosk("KCONV", "B001", kiosk_protocol::PeerRole::Screen)
        .await;
    concierge::ports::banking::sandbox::SandboxBank::new(app.state.db.clone())
        .seed(&project_root().join("deploy/sandbox/customers.yaml"))
        .await
        .expect("sandbox seeds");
    let mut failures = Vec::new();
    let all = scripts();
    for (file, script) in &all {
        failures.extend(run(app, &token, file, script).await);
    }
    assert!(
        failures.is_empty(),
        "{} of {} scripts failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

/// Every customer line of the scripts (`user:`), in order.
pub(crate) fn customer_lines() -> Vec<String> {
    scripts()
        .into_iter()
        .flat_map(|(_, s)| s.turns.into_iter().filter_map(|t| t.user))
        .collect()
}

#[tokio::test]
async fn every_conversation_script_passes() {
    let app = spawn_app().await;
    run_every_script(&app).await;
}
