//! The NLU's own data in `dialogs/`: `intents.yaml` (exact phrases and service words per
//! intent), `examples/*.yaml` (training examples), `risk.yaml` (risk-flag patterns) and
//! `forms.yaml` (how questions and requests are put),
//! validated with `file:line` errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::datafile::{line_of, line_of_after, parse_yaml, read_data_file, yaml_files, DataError};
use crate::nlu;

/// What the NLU is trained and configured from.
#[derive(Debug, Clone)]
pub struct NluData {
    pub intents: Vec<IntentSpec>,
    /// Every training example: `examples/*.yaml` and inline `examples` of `intents.yaml`.
    pub examples: Vec<Example>,
    /// Risk flags with their compiled patterns.
    pub risk: Vec<(RiskSpec, Vec<regex::Regex>)>,
    /// Question and request patterns.
    pub forms: nlu::forms::Forms,
}

impl NluData {
    /// Loads `dir/intents.yaml`, `dir/examples/` and `dir/risk.yaml`, adding every problem
    /// to `errors`; `None` when `intents.yaml` cannot be read at all.
    pub fn load(dir: &Path, errors: &mut Vec<DataError>) -> Option<NluData> {
        let intents_path = dir.join("intents.yaml");
        let intents_text = read_data_file(&intents_path, errors)?;
        let intents: IntentsFile = parse_yaml(&intents_path, &intents_text, errors)?;
        check_intents(&intents.intents, &intents_path, &intents_text, errors);
        let mut examples =
            load_examples(dir, &intents.intents, &intents_path, &intents_text, errors);
        examples.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        let risk = load_risk(&dir.join("risk.yaml"), errors);
        let forms = nlu::forms::Forms::load(&dir.join("forms.yaml"), errors);
        Some(NluData {
            intents: intents.intents,
            examples,
            risk,
            forms,
        })
    }
}

/// Intent names are known and declared once; an exact phrase or service word belongs to
/// one intent.
fn check_intents(
    intents: &[IntentSpec],
    intents_path: &Path,
    intents_text: &str,
    errors: &mut Vec<DataError>,
) {
    let mut seen = BTreeMap::new();
    let mut keyword_owner: BTreeMap<String, String> = BTreeMap::new();
    for intent in intents {
        let line = line_of(intents_text, &format!("name: {}", intent.name));
        let err = |message: String| DataError {
            file: intents_path.to_path_buf(),
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
            let norm = crate::text::normalize::normalize(kw).matching;
            let kw_line = line_of_after(intents_text, kw, line);
            if norm.is_empty() {
                errors.push(DataError {
                    file: intents_path.to_path_buf(),
                    line: kw_line,
                    message: format!(
                        "phrase `{kw}` of `{}` is empty after normalisation",
                        intent.name
                    ),
                });
            } else if let Some(other) = keyword_owner.insert(norm, intent.name.clone()) {
                if other != intent.name {
                    errors.push(DataError {
                        file: intents_path.to_path_buf(),
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
                let key = crate::text::normalize::normalize(&example).matching;
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
