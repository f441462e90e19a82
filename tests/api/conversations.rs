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
//! ```
//!
//! A failing expectation names the file, the script and the turn.

use std::path::{Path, PathBuf};

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
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.extend(file.scripts.into_iter().map(|s| (path.clone(), s)));
    }
    out
}

/// Runs one script in a fresh session; returns every failed expectation.
async fn run(app: &TestApp, token: &str, file: &Path, script: &Script) -> Vec<String> {
    let mut k = app.connect().await;
    k.hello("KCONV", token, None).await;
    k.recv_type("bot.say").await;
    let mut failures = Vec::new();
    for (i, turn) in script.turns.iter().enumerate() {
        let at = format!("{}: {} · turn {}", file.display(), script.name, i + 1);
        let msg = match (&turn.user, &turn.tap) {
            (Some(text), None) => json!({"type": "user.text", "text": text}),
            (None, Some(value)) => json!({"type": "user.choice", "value": value}),
            _ => {
                failures.push(format!("{at}: a turn needs exactly one of `user` or `tap`"));
                break;
            }
        };
        k.send(msg).await;
        let reply = k.recv_type("bot.say").await;
        let text = reply["text"].as_str().unwrap_or_default();
        let spoken = reply["speak"].as_str().unwrap_or(text);
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
        let offered: Vec<&str> = reply["ui"]["choices"]
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
        if turn.ends {
            let end: Value = k.recv().await;
            if end["type"] != "session.end" {
                failures.push(format!("{at}: the session should end; next was {end}"));
            }
            break;
        }
    }
    failures
}

#[tokio::test]
async fn every_conversation_script_passes() {
    let app = spawn_app().await;
    let token = app
        .kiosk("KCONV", "B001", kiosk_protocol::PeerRole::Screen)
        .await;
    let mut failures = Vec::new();
    let all = scripts();
    for (file, script) in &all {
        failures.extend(run(&app, &token, file, script).await);
    }
    assert!(
        failures.is_empty(),
        "{} of {} scripts failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
