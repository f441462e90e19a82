//! How a sentence is put: a question about something, a request to have it done, or
//! neither (a bare "开户", an answer). Declared in `dialogs/forms.yaml` as patterns over the
//! normalised text, checked with `file:line` errors. The understanding step uses it to
//! answer questions about a service instead of starting the service.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::datafile::{line_of, parse_yaml, read_data_file, DataError};

/// How a sentence is put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// Asking for information ("…要带什么", "…多久到账").
    Question,
    /// Asking for something to be done ("我要…", "帮我…").
    Request,
    /// Neither ("开户", "明天上午").
    #[default]
    Plain,
}

/// The compiled patterns of `forms.yaml`.
#[derive(Debug, Clone, Default)]
pub struct Forms {
    question: Vec<regex::Regex>,
    polite: Vec<regex::Regex>,
    request: Vec<regex::Regex>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormsFile {
    #[serde(default)]
    question: Vec<String>,
    #[serde(default)]
    polite: Vec<String>,
    #[serde(default)]
    request: Vec<String>,
}

/// Longest pattern accepted (a pattern is a phrase list, not a program).
const MAX_PATTERN_CHARS: usize = 400;

impl Forms {
    /// Loads `path` (optional: without it every sentence is `Plain`), adding every problem
    /// to `errors`.
    pub fn load(path: &Path, errors: &mut Vec<DataError>) -> Forms {
        if !path.exists() {
            return Forms::default();
        }
        let Some(text) = read_data_file(path, errors) else {
            return Forms::default();
        };
        let Some(file) = parse_yaml::<FormsFile>(path, &text, errors) else {
            return Forms::default();
        };
        let mut compile = |patterns: &[String]| -> Vec<regex::Regex> {
            let mut out = Vec::new();
            for p in patterns {
                let problem = if p.trim().is_empty() {
                    Some("an empty pattern matches everything".to_string())
                } else if p.chars().count() > MAX_PATTERN_CHARS {
                    Some(format!(
                        "a pattern is longer than {MAX_PATTERN_CHARS} characters"
                    ))
                } else {
                    match regex::Regex::new(p) {
                        Ok(re) => {
                            out.push(re);
                            None
                        }
                        Err(e) => Some(format!("not a valid regular expression: {e}")),
                    }
                };
                if let Some(message) = problem {
                    errors.push(DataError {
                        file: path.to_path_buf(),
                        line: line_of(&text, p),
                        message: format!("pattern `{p}`: {message}"),
                    });
                }
            }
            out
        };
        Forms {
            question: compile(&file.question),
            polite: compile(&file.polite),
            request: compile(&file.request),
        }
    }

    /// The form of a normalised (`matching`) text.
    pub fn of(&self, matching: &str) -> Form {
        let any = |set: &[regex::Regex]| set.iter().any(|r| r.is_match(matching));
        if any(&self.question) {
            Form::Question
        } else if any(&self.request) {
            Form::Request
        } else if any(&self.polite) {
            Form::Question
        } else {
            Form::Plain
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::normalize::normalize;

    fn repo_forms() -> Forms {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogs/forms.yaml");
        let mut errors = Vec::new();
        let forms = Forms::load(&path, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        forms
    }

    #[test]
    fn questions_about_a_service_are_questions_and_requests_are_requests() {
        let f = repo_forms();
        let form = |t: &str| f.of(&normalize(t).matching);
        for q in [
            "开存款证明要带什么",
            "一年能换多少外币",
            "跨行转账多久到账",
            "挂失收费吗",
            "我想问一下开户要带什么",
            "能不能在这儿换外币",
            "补卡要几天",
        ] {
            assert_eq!(form(q), Form::Question, "{q}");
        }
        for r in [
            "我要挂失",
            "帮我取个号",
            "我想开个户",
            "能帮我挂失吗",
            "麻烦帮我查下余额",
        ] {
            assert_eq!(form(r), Form::Request, "{r}");
        }
        for p in ["开户", "明天上午", "是的"] {
            assert_eq!(form(p), Form::Plain, "{p}");
        }
    }

    #[test]
    fn bad_patterns_are_reported_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forms.yaml");
        std::fs::write(
            &path,
            "question:\n  - 多久\n  - \"(unclosed\"\nrequest:\n  - \"\"\n",
        )
        .unwrap();
        let mut errors = Vec::new();
        let forms = Forms::load(&path, &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].line, 3);
        assert!(errors[0].message.contains("regular expression"));
        assert_eq!(forms.of("多久"), Form::Question);
        let mut errors = Vec::new();
        std::fs::write(&path, "questions: [a]\n").unwrap();
        Forms::load(&path, &mut errors);
        assert_eq!(errors.len(), 1, "unknown keys are refused: {errors:?}");
    }
}
