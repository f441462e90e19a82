//! The data folders, loaded: `dialogs/` (intents, responses, flows), `knowledge/` (Markdown
//! articles with front matter) and `voices/` (voice profiles). Every problem is reported as
//! `file:line: message`, all at once. The checks that need other layers (synonyms, golden
//! questions, the speech lexicon) are added by [`crate::validate`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::DataSettings;
use crate::datafile::DataError;
use crate::datafile::{files_with_ext, line_of, parse_yaml, read_data_file};
use crate::dialog::flow::ActionCatalog;
use crate::dialog::DialogData;

/// Everything loaded from the data folders.
#[derive(Debug, Clone)]
pub struct Content {
    pub dialogs: DialogData,
    pub articles: Vec<ArticleFile>,
    pub voices: BTreeMap<String, VoiceProfile>,
}

/// A knowledge article as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleFile {
    pub path: PathBuf,
    pub front: ArticleFront,
    pub body: String,
}

/// The front matter of a knowledge article.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArticleFront {
    pub id: String,
    pub title: String,
    pub audience: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub questions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// A TTS voice profile (`voices/*.yaml`, documented in docs/voices.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceProfile {
    pub name: String,
    /// `espeak-ng` or `openai`: which backend speaks with this profile.
    pub engine: String,
    /// The engine's own voice name (`cmn` for espeak-ng, the server's voice for openai).
    pub voice: String,
    /// espeak-ng speaking rate, words per minute (80 to 450).
    pub rate: u32,
    /// espeak-ng pitch, 0 to 99.
    pub pitch: u32,
    /// openai `speed` (0.25 to 4.0); unset leaves the server's default. espeak-ng uses
    /// `rate` instead.
    #[serde(default)]
    pub speed: Option<f64>,
    /// Word → reading, applied after numbers are normalised, longest word first.
    #[serde(default)]
    pub lexicon: BTreeMap<String, String>,
}

impl Content {
    /// Loads and validates every data folder.
    pub fn load(
        data: &DataSettings,
        actions: &dyn ActionCatalog,
    ) -> Result<Content, Vec<DataError>> {
        let mut errors = Vec::new();
        let dialogs = match DialogData::load(&data.dialogs_dir, actions) {
            Ok(d) => Some(d),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        };
        let articles = load_articles(&data.knowledge_dir, &mut errors);
        let voices = load_voices(&data.voices_dir, &mut errors);
        match dialogs {
            Some(dialogs) if errors.is_empty() => Ok(Content {
                dialogs,
                articles,
                voices,
            }),
            _ => Err(errors),
        }
    }
}

/// The articles of `dir`, each parsed and validated; ids are unique.
pub fn load_articles(dir: &Path, errors: &mut Vec<DataError>) -> Vec<ArticleFile> {
    let mut articles = Vec::new();
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in files_with_ext(dir, &["md"], errors) {
        let Some(text) = read_data_file(&path, errors) else {
            continue;
        };
        let Some(article) = parse_article(&path, &text, errors) else {
            continue;
        };
        if let Some(other) = ids.insert(article.front.id.clone(), path.clone()) {
            errors.push(DataError {
                file: path.clone(),
                line: line_of(&text, "id:"),
                message: format!(
                    "article id `{}` is also used by {}",
                    article.front.id,
                    other.display()
                ),
            });
        }
        articles.push(article);
    }
    articles
}

/// Splits `---` front matter from the Markdown body and validates it.
pub fn parse_article(path: &Path, text: &str, errors: &mut Vec<DataError>) -> Option<ArticleFile> {
    let err = |line: usize, message: String| DataError {
        file: path.to_path_buf(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        errors.push(err(
            1,
            "an article starts with `---` front matter (id, title, audience)".into(),
        ));
        return None;
    };
    let Some(end) = rest.find("\n---") else {
        errors.push(err(
            1,
            "the front matter is not closed by a `---` line".into(),
        ));
        return None;
    };
    let yaml = &rest[..end + 1];
    let body = rest[end + 4..].trim_start_matches(['\r', '\n']).to_string();
    let mut yaml_errors = Vec::new();
    let front: Option<ArticleFront> = parse_yaml(path, yaml, &mut yaml_errors);
    for mut e in yaml_errors {
        e.line += 1; // the opening `---`
        errors.push(e);
    }
    let front = front?;
    let before = errors.len();
    let id_ok = !front.id.is_empty()
        && front.id.len() <= 80
        && front
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        errors.push(err(
            line_of(text, "id:"),
            format!("article id `{}` must be 1-80 of a-z, 0-9 and '-'", front.id),
        ));
    }
    if front.title.trim().is_empty() {
        errors.push(err(line_of(text, "title:"), "the title is empty".into()));
    }
    if front.audience != "customer" && front.audience != "staff" {
        errors.push(err(
            line_of(text, "audience:"),
            format!("audience `{}` must be customer or staff", front.audience),
        ));
    }
    for (key, value) in [
        ("effective_from:", &front.effective_from),
        ("effective_to:", &front.effective_to),
    ] {
        if let Some(v) = value {
            if chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_err() {
                errors.push(err(
                    line_of(text, key),
                    format!("`{v}` is not a date like 2026-12-01"),
                ));
            }
        }
    }
    if body.trim().is_empty() {
        errors.push(err(1, "the article has no body".into()));
    }
    (errors.len() == before).then(|| ArticleFile {
        path: path.to_path_buf(),
        front,
        body,
    })
}

fn load_voices(dir: &Path, errors: &mut Vec<DataError>) -> BTreeMap<String, VoiceProfile> {
    let mut voices = BTreeMap::new();
    for path in files_with_ext(dir, &["yaml"], errors) {
        let Some(text) = read_data_file(&path, errors) else {
            continue;
        };
        let Some(voice) = parse_yaml::<VoiceProfile>(&path, &text, errors) else {
            continue;
        };
        let err = |key: &str, message: String| DataError {
            file: path.clone(),
            line: line_of(&text, key),
            message,
        };
        if crate::config::TtsBackend::for_voice_engine(&voice.engine).is_none() {
            errors.push(err(
                "engine:",
                format!("engine `{}` must be espeak-ng or openai", voice.engine),
            ));
        }
        if !(80..=450).contains(&voice.rate) {
            errors.push(err(
                "rate:",
                format!("rate {} must be between 80 and 450", voice.rate),
            ));
        }
        if voice.pitch > 99 {
            errors.push(err(
                "pitch:",
                format!("pitch {} must be between 0 and 99", voice.pitch),
            ));
        }
        if let Some(speed) = voice.speed {
            if !(0.25..=4.0).contains(&speed) {
                errors.push(err(
                    "speed:",
                    format!("speed {speed} must be between 0.25 and 4.0"),
                ));
            }
        }
        for (word, reading) in &voice.lexicon {
            let at = |message: String| DataError {
                file: path.clone(),
                line: crate::datafile::line_of_after(&text, word, line_of(&text, "lexicon:")),
                message,
            };
            if word.trim().is_empty() || reading.trim().is_empty() {
                errors.push(at(format!(
                    "lexicon entry `{word}: {reading}` needs both a word and a reading"
                )));
            } else if word.bytes().any(|b| b.is_ascii_digit()) {
                errors.push(at(format!(
                    "lexicon word `{word}` has digits, which are read out before the lexicon \
                     applies: write the reading of the words around them instead"
                )));
            }
        }
        if voices.contains_key(&voice.name) {
            errors.push(err(
                "name:",
                format!("voice `{}` is defined twice", voice.name),
            ));
        }
        voices.insert(voice.name.clone(), voice);
    }
    voices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_data() -> DataSettings {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        DataSettings {
            dialogs_dir: root.join("dialogs"),
            knowledge_dir: root.join("knowledge"),
            voices_dir: root.join("voices"),
        }
    }

    #[test]
    fn the_project_data_folders_are_valid() {
        let content = Content::load(&project_data(), &crate::actions::Registry::standard())
            .unwrap_or_else(|e| {
                panic!(
                    "{}",
                    e.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            });
        assert!(!content.articles.is_empty());
        assert!(content.voices.contains_key("xiaoan"));
    }

    #[test]
    fn an_article_with_a_bad_audience_points_at_its_line() {
        let mut errors = Vec::new();
        let text = "---\nid: a\ntitle: T\naudience: everyone\n---\nbody\n";
        assert!(parse_article(Path::new("k/a.md"), text, &mut errors).is_none());
        assert_eq!(
            errors[0].to_string(),
            "k/a.md:4: audience `everyone` must be customer or staff"
        );
    }

    #[test]
    fn an_article_without_front_matter_is_refused() {
        let mut errors = Vec::new();
        assert!(parse_article(Path::new("k/a.md"), "# hello\n", &mut errors).is_none());
        assert!(errors[0].message.contains("front matter"));
    }

    #[test]
    fn a_yaml_error_in_front_matter_counts_the_opening_line() {
        let mut errors = Vec::new();
        let text = "---\nid: a\ntitle: [unclosed\naudience: customer\n---\nbody\n";
        assert!(parse_article(Path::new("k/a.md"), text, &mut errors).is_none());
        assert!(errors[0].line >= 3, "{errors:?}");
    }
}
