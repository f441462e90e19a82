//! Loads and validates `dialogs/`: the NLU's files (through [`NluData`]), `responses.yaml`
//! and `flows/*.yaml`.
//!
//! Every problem is reported as `file:line: message`, and all problems are reported at once,
//! so an operator fixes a file in one pass.

use std::collections::BTreeMap;
use std::path::Path;

use kiosk_protocol::Choice;
use serde::Deserialize;

use super::flow::ActionCatalog;
use crate::datafile::{line_of, line_of_after, parse_yaml, read_data_file, DataError};
use crate::nlu;
use crate::nlu::data::NluData;

/// Responses the engine needs besides the per-intent ones.
/// Responses the engine uses when present (with a required one as fallback).
pub const OPTIONAL_RESPONSES: &[&str] = &[
    "handoff_done",
    "handoff_failed",
    "step_failed",
    "corrected",
    "idle_prompt",
    "idle_end",
    "invalid_no_such_date",
    "invalid_date_in_past",
    "invalid_bad_time",
    "invalid_bad_check_digit",
    "invalid_luhn_failed",
    "offer_journey",
    "offer_only",
    "offer_declined",
];

pub const REQUIRED_RESPONSES: [&str; 9] = [
    "welcome",
    "fallback",
    "offer_human",
    "unsupported",
    "fraud_warning",
    "handoff_nobody_free",
    "handoff_connected_teller",
    "handoff_connected_remote",
    "handoff_ended",
];

/// A bot response as written in `responses.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    pub text: String,
    /// What to speak when it differs from the text.
    #[serde(default)]
    pub speak: Option<String>,
    #[serde(default)]
    pub choices: Vec<ChoiceSpec>,
    /// Ends the session after this response (goodbye).
    #[serde(default)]
    pub end_session: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceSpec {
    pub label: String,
    /// An intent name: tapping the choice acts as if the customer asked for it.
    pub intent: String,
}

impl From<&ChoiceSpec> for Choice {
    fn from(c: &ChoiceSpec) -> Choice {
        Choice {
            label: c.label.clone(),
            value: c.intent.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponsesFile {
    responses: BTreeMap<String, ResponseSpec>,
}

/// Everything in `dialogs/`, validated.
#[derive(Debug, Clone)]
pub struct DialogData {
    /// What the NLU learns from: intents, examples, risk flags.
    pub nlu: NluData,
    pub responses: BTreeMap<String, ResponseSpec>,
    /// The flows of `flows/*.yaml`, by intent.
    pub flows: BTreeMap<String, super::flow::Flow>,
}

impl DialogData {
    /// Loads `dir/` (flows checked against the action `actions`); returns every problem
    /// found.
    pub fn load(dir: &Path, actions: &dyn ActionCatalog) -> Result<DialogData, Vec<DataError>> {
        let mut errors = Vec::new();
        let nlu = NluData::load(dir, &mut errors);
        let responses_path = dir.join("responses.yaml");
        let responses_text = read_data_file(&responses_path, &mut errors);
        let responses: Option<ResponsesFile> = responses_text
            .as_deref()
            .and_then(|t| parse_yaml(&responses_path, t, &mut errors));
        let (Some(nlu), Some(responses)) = (nlu, responses) else {
            return Err(errors);
        };
        let responses_text = responses_text.unwrap_or_default();

        for required in REQUIRED_RESPONSES {
            if !responses.responses.contains_key(required) {
                errors.push(DataError {
                    file: responses_path.clone(),
                    line: 1,
                    message: format!("missing the required response `{required}`"),
                });
            }
        }
        for (key, response) in &responses.responses {
            let line = line_of(&responses_text, &format!("{key}:"));
            let err = |message: String| DataError {
                file: responses_path.clone(),
                line,
                message,
            };
            if !REQUIRED_RESPONSES.contains(&key.as_str())
                && !OPTIONAL_RESPONSES.contains(&key.as_str())
                && !nlu::is_intent(key)
            {
                errors.push(err(format!(
                    "response `{key}` is neither a required response ({}), an optional one ({}) nor an intent name",
                    REQUIRED_RESPONSES.join(", "),
                    OPTIONAL_RESPONSES.join(", ")
                )));
            }
            if response.text.trim().is_empty() {
                errors.push(err(format!("response `{key}` has an empty text")));
            }
            for choice in &response.choices {
                if !nlu::is_intent(&choice.intent) {
                    errors.push(DataError {
                        file: responses_path.clone(),
                        line: line_of_after(
                            &responses_text,
                            &format!("intent: {}", choice.intent),
                            line,
                        ),
                        message: format!(
                            "choice `{}` points at unknown intent `{}`",
                            choice.label, choice.intent
                        ),
                    });
                }
            }
        }
        let flows = super::flow::load_flows(dir, actions, &mut errors);
        if errors.is_empty() {
            Ok(DialogData {
                nlu,
                responses: responses.responses,
                flows,
            })
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Registry;

    fn write(dir: &Path, intents: &str, responses: &str) {
        std::fs::write(dir.join("intents.yaml"), intents).unwrap();
        std::fs::write(dir.join("responses.yaml"), responses).unwrap();
    }

    const GOOD_RESPONSES: &str = "responses:\n  welcome:\n    text: 您好\n  fallback:\n    text: 没听懂\n  offer_human:\n    text: 转人工？\n  unsupported:\n    text: 请到柜台\n  fraud_warning:\n    text: 小心诈骗\n  handoff_nobody_free:\n    text: 都在忙\n  handoff_connected_teller:\n    text: 已接入\n  handoff_connected_remote:\n    text: 专家已接入\n  handoff_ended:\n    text: 已结束\n";

    #[test]
    fn the_project_dialogs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogs");
        let data = DialogData::load(&dir, &Registry::standard()).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(data.nlu.intents.len() >= 8);
    }

    #[test]
    fn an_unknown_intent_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intents:\n  - name: greet\n    exact: [你好]\n  - name: greeet\n    exact: [嗨]\n",
            GOOD_RESPONSES,
        );
        let errors = DialogData::load(dir.path(), &Registry::standard()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 4);
        assert!(errors[0]
            .to_string()
            .contains("intents.yaml:4: unknown intent `greeet`"));
    }

    #[test]
    fn a_yaml_syntax_error_carries_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intents:\n  - name: greet\n    exact: [你好\n",
            GOOD_RESPONSES,
        );
        let errors = DialogData::load(dir.path(), &Registry::standard()).unwrap_err();
        assert!(errors[0].line >= 3, "{errors:?}");
    }

    #[test]
    fn bad_examples_and_risk_patterns_are_reported_with_their_lines() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "intents:\n  - name: greet\n", GOOD_RESPONSES);
        std::fs::create_dir_all(dir.path().join("examples")).unwrap();
        std::fs::write(
            dir.path().join("examples/a.yaml"),
            "examples:\n  greet:\n    - 你好呀\n  thanks:\n    - 谢谢\n    - 你好呀\n  teleport:\n    - 传送\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("risk.yaml"),
            "flags:\n  - name: fraud_suspected\n    patterns:\n      - 安全账户\n      - (未闭合\n",
        )
        .unwrap();
        let errors = DialogData::load(dir.path(), &Registry::standard()).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let has = |needle: &str| text.iter().any(|e| e.contains(needle));
        assert!(has("a.yaml:7: unknown intent `teleport`"), "{text:?}");
        assert!(
            has("a.yaml:6: example `你好呀` is labelled `thanks` here but `greet`"),
            "{text:?}"
        );
        assert!(has("intent `help` has 0 examples"), "{text:?}");
        assert!(
            has("risk.yaml:5: pattern of `fraud_suspected` is not a valid regular expression"),
            "{text:?}"
        );
    }

    #[test]
    fn a_missing_required_response_and_a_bad_choice_are_both_reported() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intents:\n  - name: greet\n    exact: [你好]\n",
            "responses:\n  welcome:\n    text: 您好\n    choices:\n      - label: 跳舞\n        intent: dance\n  fallback:\n    text: 没听懂\n  offer_human:\n    text: 转人工？\n",
        );
        let errors = DialogData::load(dir.path(), &Registry::standard()).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.contains("missing the required response `unsupported`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e
                    .contains("responses.yaml:6: choice `跳舞` points at unknown intent `dance`")),
            "{text:?}"
        );
    }

    #[test]
    fn a_keyword_claimed_by_two_intents_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intents:\n  - name: greet\n    exact: [你好]\n  - name: thanks\n    exact: [你好]\n",
            GOOD_RESPONSES,
        );
        let errors = DialogData::load(dir.path(), &Registry::standard()).unwrap_err();
        assert!(errors[0].message.contains("claimed by both"), "{errors:?}");
    }
}
