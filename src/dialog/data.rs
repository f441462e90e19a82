//! Loads and validates `dialogs/`: `intents.yaml` (exact phrases and service words per
//! intent), `examples/*.yaml` (training examples), `risk.yaml` (risk-flag patterns) and
//! `responses.yaml`.
//!
//! Every problem is reported as `file:line: message`, and all problems are reported at once,
//! so an operator fixes a file in one pass.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use kiosk_protocol::Choice;
use serde::Deserialize;

use crate::nlu;

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
];

pub const REQUIRED_RESPONSES: [&str; 5] = [
    "welcome",
    "fallback",
    "offer_human",
    "unsupported",
    "fraud_warning",
];

/// Largest data file we read, so a stray huge file cannot exhaust memory.
pub const MAX_DATA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// One problem in a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

impl std::error::Error for DataError {}

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
struct IntentsFile {
    intents: Vec<IntentSpec>,
}

/// An intent as written in `intents.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentSpec {
    pub name: String,
    /// How the intent is named to customers ("开户"), e.g. as the `service` of a booking.
    #[serde(default)]
    pub label: Option<String>,
    /// Whole utterances that make this intent certain ("挂失", "转人工"): when the customer
    /// says exactly this (after normalisation), the classifier is not asked.
    #[serde(default)]
    pub exact: Vec<String>,
    /// Phrases that name this service inside another request ("预约开户" → the `service`
    /// slot is `account.open`).
    #[serde(default)]
    pub services: Vec<String>,
    /// How customers say it (training data for the classifier), besides `examples/`.
    #[serde(default)]
    pub examples: Vec<String>,
}

/// One training example and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub intent: String,
    pub text: String,
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExamplesFile {
    examples: BTreeMap<String, Vec<String>>,
}

/// A risk flag as written in `risk.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSpec {
    pub name: String,
    #[serde(default)]
    pub why: String,
    pub patterns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RiskFile {
    flags: Vec<RiskSpec>,
}

/// Fewest examples per intent the classifier is trained with (checked when `examples/`
/// exists).
pub const MIN_EXAMPLES_PER_INTENT: usize = 25;
/// Longest example, in characters.
pub const MAX_EXAMPLE_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponsesFile {
    responses: BTreeMap<String, ResponseSpec>,
}

/// Everything in `dialogs/`, validated.
#[derive(Debug, Clone)]
pub struct DialogData {
    pub intents: Vec<IntentSpec>,
    pub responses: BTreeMap<String, ResponseSpec>,
    /// Every training example: `examples/*.yaml` and inline `examples` of `intents.yaml`.
    pub examples: Vec<Example>,
    /// Risk flags with their compiled patterns.
    pub risk: Vec<(RiskSpec, Vec<regex::Regex>)>,
    /// The flows of `flows/*.yaml`, by intent.
    pub flows: BTreeMap<String, super::flow::Flow>,
}

impl DialogData {
    /// Loads `dir/intents.yaml` and `dir/responses.yaml`; returns every problem found.
    pub fn load(dir: &Path) -> Result<DialogData, Vec<DataError>> {
        let mut errors = Vec::new();
        let intents_path = dir.join("intents.yaml");
        let responses_path = dir.join("responses.yaml");
        let intents_text = read_data_file(&intents_path, &mut errors);
        let responses_text = read_data_file(&responses_path, &mut errors);
        let intents: Option<IntentsFile> = intents_text
            .as_deref()
            .and_then(|t| parse_yaml(&intents_path, t, &mut errors));
        let responses: Option<ResponsesFile> = responses_text
            .as_deref()
            .and_then(|t| parse_yaml(&responses_path, t, &mut errors));
        let (Some(intents), Some(responses)) = (intents, responses) else {
            return Err(errors);
        };
        let intents_text = intents_text.unwrap_or_default();
        let responses_text = responses_text.unwrap_or_default();

        let mut seen = BTreeMap::new();
        let mut keyword_owner: BTreeMap<String, String> = BTreeMap::new();
        for intent in &intents.intents {
            let line = line_of(&intents_text, &format!("name: {}", intent.name));
            let err = |message: String| DataError {
                file: intents_path.clone(),
                line,
                message,
            };
            if !nlu::is_intent(&intent.name) {
                errors.push(err(format!(
                    "unknown intent `{}` (the intent names are fixed; see DESIGN.md)",
                    intent.name
                )));
            }
            if seen.insert(intent.name.clone(), line).is_some() {
                errors.push(err(format!("intent `{}` is declared twice", intent.name)));
            }
            for kw in intent.exact.iter().chain(&intent.services) {
                let norm = nlu::normalize::normalize(kw).matching;
                let kw_line = line_of_after(&intents_text, kw, line);
                if norm.is_empty() {
                    errors.push(DataError {
                        file: intents_path.clone(),
                        line: kw_line,
                        message: format!(
                            "phrase `{kw}` of `{}` is empty after normalisation",
                            intent.name
                        ),
                    });
                } else if let Some(other) = keyword_owner.insert(norm, intent.name.clone()) {
                    if other != intent.name {
                        errors.push(DataError {
                            file: intents_path.clone(),
                            line: kw_line,
                            message: format!(
                                "phrase `{kw}` is claimed by both `{other}` and `{}`",
                                intent.name
                            ),
                        });
                    }
                }
            }
        }

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
        let mut examples = load_examples(
            dir,
            &intents.intents,
            &intents_path,
            &intents_text,
            &mut errors,
        );
        examples.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        let risk = load_risk(&dir.join("risk.yaml"), &mut errors);
        let flows = super::flow::load_flows(dir, &mut errors);
        if errors.is_empty() {
            Ok(DialogData {
                intents: intents.intents,
                responses: responses.responses,
                examples,
                risk,
                flows,
            })
        } else {
            Err(errors)
        }
    }
}

/// Loads `dir/examples/*.yaml` (if the folder exists) plus inline examples, checking
/// intent names, duplicates across intents, length and the minimum count per intent.
fn load_examples(
    dir: &Path,
    intents: &[IntentSpec],
    intents_path: &Path,
    intents_text: &str,
    errors: &mut Vec<DataError>,
) -> Vec<Example> {
    let mut out = Vec::new();
    for intent in intents {
        let line = line_of(intents_text, &format!("name: {}", intent.name));
        for text in &intent.examples {
            out.push(Example {
                intent: intent.name.clone(),
                text: text.clone(),
                file: intents_path.to_path_buf(),
                line: line_of_after(intents_text, text, line),
            });
        }
    }
    let folder = dir.join("examples");
    if !folder.is_dir() {
        return out;
    }
    let files = yaml_files(&folder, errors);
    let mut owner: BTreeMap<String, (String, PathBuf, usize)> = BTreeMap::new();
    for file in files {
        let Some(text) = read_data_file(&file, errors) else {
            continue;
        };
        let Some(parsed) = parse_yaml::<ExamplesFile>(&file, &text, errors) else {
            continue;
        };
        for (intent, list) in parsed.examples {
            let intent_line = line_of(&text, &format!("{intent}:"));
            if !nlu::is_intent(&intent) {
                errors.push(DataError {
                    file: file.clone(),
                    line: intent_line,
                    message: format!(
                        "unknown intent `{intent}` (the intent names are fixed; see DESIGN.md)"
                    ),
                });
                continue;
            }
            for example in list {
                let line = line_of_after(&text, &example, intent_line);
                let err = |message: String| DataError {
                    file: file.clone(),
                    line,
                    message,
                };
                let key = nlu::normalize::normalize(&example).matching;
                if key.is_empty() {
                    errors.push(err(format!(
                        "example `{example}` is empty after normalisation"
                    )));
                    continue;
                }
                if example.chars().count() > MAX_EXAMPLE_CHARS {
                    errors.push(err(format!(
                        "example is longer than {MAX_EXAMPLE_CHARS} characters"
                    )));
                    continue;
                }
                if let Some((other, other_file, other_line)) =
                    owner.insert(key, (intent.clone(), file.clone(), line))
                {
                    if other != intent {
                        errors.push(err(format!(
                            "example `{example}` is labelled `{intent}` here but `{other}` at {}:{other_line}",
                            other_file.display()
                        )));
                    }
                }
                out.push(Example {
                    intent: intent.clone(),
                    text: example,
                    file: file.clone(),
                    line,
                });
            }
        }
    }
    for name in nlu::INTENTS {
        let n = out.iter().filter(|e| e.intent == name).count();
        if n < MIN_EXAMPLES_PER_INTENT {
            errors.push(DataError {
                file: folder.clone(),
                line: 1,
                message: format!(
                    "intent `{name}` has {n} examples; the classifier needs at least {MIN_EXAMPLES_PER_INTENT}"
                ),
            });
        }
    }
    out
}

/// The `*.yaml` / `*.yml` files of a folder, sorted; an unreadable folder is an error.
pub fn yaml_files(folder: &Path, errors: &mut Vec<DataError>) -> Vec<PathBuf> {
    match std::fs::read_dir(folder) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            files
        }
        Err(e) => {
            errors.push(DataError {
                file: folder.to_path_buf(),
                line: 1,
                message: format!("cannot read folder: {e}"),
            });
            Vec::new()
        }
    }
}

/// Loads `risk.yaml` (optional) and compiles its patterns.
fn load_risk(path: &Path, errors: &mut Vec<DataError>) -> Vec<(RiskSpec, Vec<regex::Regex>)> {
    if !path.exists() {
        return Vec::new();
    }
    let Some(text) = read_data_file(path, errors) else {
        return Vec::new();
    };
    let Some(file) = parse_yaml::<RiskFile>(path, &text, errors) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for flag in file.flags {
        let line = line_of(&text, &format!("name: {}", flag.name));
        let mut compiled = Vec::new();
        for pattern in &flag.patterns {
            match regex::Regex::new(pattern) {
                Ok(re) => compiled.push(re),
                Err(e) => errors.push(DataError {
                    file: path.to_path_buf(),
                    line: line_of_after(&text, pattern, line),
                    message: format!(
                        "pattern of `{}` is not a valid regular expression: {e}",
                        flag.name
                    ),
                }),
            }
        }
        if flag.patterns.is_empty() {
            errors.push(DataError {
                file: path.to_path_buf(),
                line,
                message: format!("flag `{}` has no patterns", flag.name),
            });
        }
        out.push((flag, compiled));
    }
    out
}

/// Reads a UTF-8 data file no larger than [`MAX_DATA_FILE_BYTES`].
pub fn read_data_file(path: &Path, errors: &mut Vec<DataError>) -> Option<String> {
    let fail = |message: String| DataError {
        file: path.to_path_buf(),
        line: 1,
        message,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_DATA_FILE_BYTES => {
            errors.push(fail(format!(
                "file is {} bytes; data files are limited to {MAX_DATA_FILE_BYTES}",
                m.len()
            )));
            return None;
        }
        Ok(_) => {}
        Err(e) => {
            errors.push(fail(format!("cannot read: {e}")));
            return None;
        }
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count();
                errors.push(DataError {
                    file: path.to_path_buf(),
                    line,
                    message: "not valid UTF-8".into(),
                });
                None
            }
        },
        Err(e) => {
            errors.push(fail(format!("cannot read: {e}")));
            None
        }
    }
}

/// Parses YAML, turning a syntax or shape error into `file:line`.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    errors: &mut Vec<DataError>,
) -> Option<T> {
    match serde_yaml::from_str(text) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(DataError {
                file: path.to_path_buf(),
                line: e.location().map(|l| l.line()).unwrap_or(1),
                message: e.to_string(),
            });
            None
        }
    }
}

/// The 1-based line of the first occurrence of `needle` (1 if absent).
pub fn line_of(text: &str, needle: &str) -> usize {
    line_of_after(text, needle, 1)
}

/// The 1-based line of the first occurrence of `needle` at or after line `from`.
pub fn line_of_after(text: &str, needle: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .unwrap_or(from.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, intents: &str, responses: &str) {
        std::fs::write(dir.join("intents.yaml"), intents).unwrap();
        std::fs::write(dir.join("responses.yaml"), responses).unwrap();
    }

    const GOOD_RESPONSES: &str = "responses:\n  welcome:\n    text: 您好\n  fallback:\n    text: 没听懂\n  offer_human:\n    text: 转人工？\n  unsupported:\n    text: 请到柜台\n  fraud_warning:\n    text: 小心诈骗\n";

    #[test]
    fn the_project_dialogs_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogs");
        let data = DialogData::load(&dir).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(data.intents.len() >= 8);
    }

    #[test]
    fn an_unknown_intent_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intents:\n  - name: greet\n    exact: [你好]\n  - name: greeet\n    exact: [嗨]\n",
            GOOD_RESPONSES,
        );
        let errors = DialogData::load(dir.path()).unwrap_err();
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
        let errors = DialogData::load(dir.path()).unwrap_err();
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
        let errors = DialogData::load(dir.path()).unwrap_err();
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
        let errors = DialogData::load(dir.path()).unwrap_err();
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
        let errors = DialogData::load(dir.path()).unwrap_err();
        assert!(errors[0].message.contains("claimed by both"), "{errors:?}");
    }
}
