//! Import and export of a knowledge folder: `*.md` articles with front matter, plus
//! `synonyms.yaml` and `golden.yaml`. Import checks every file first (all problems as
//! `file:line`, nothing written when there is one), then saves each article as a new
//! version only when its content changed, and publishes it (recorded as the importing
//! actor). Export writes the live versions, so export → import changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::model::KbError;
use super::model::{ArticleDraft, State};
use super::{golden, text::Synonyms, Knowledge, GOLDEN, SYNONYMS};
use crate::datafile::DataError;

/// Why an import wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} problem(s):\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Files(Vec<DataError>),
    #[error(transparent)]
    Kb(#[from] KbError),
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    /// Articles with a new (published) version.
    pub created: usize,
    /// Articles whose content was already the newest version.
    pub unchanged: usize,
    /// Documents (synonyms, golden) replaced.
    pub documents: usize,
}

fn file_error(path: &Path, line: usize, message: String) -> DataError {
    DataError {
        file: path.to_path_buf(),
        line,
        message,
    }
}

/// Imports `dir` as `actor`.
pub async fn import(kb: &Knowledge, dir: &Path, actor: &str) -> Result<ImportReport, ImportError> {
    let mut errors = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ImportError::Files(vec![file_error(dir, 1, format!("cannot read folder: {e}"))])
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "md"))
        .collect();
    paths.sort();
    let limits = kb.limits();
    let mut articles: BTreeMap<String, (PathBuf, ArticleDraft)> = BTreeMap::new();
    for path in paths {
        let text = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() > limits.max_body_bytes + 16 * 1024 => {
                errors.push(file_error(
                    &path,
                    1,
                    format!(
                        "the file is {} bytes; the limit is {}",
                        bytes.len(),
                        limits.max_body_bytes
                    ),
                ));
                continue;
            }
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    errors.push(file_error(&path, 1, "the file is not UTF-8".into()));
                    continue;
                }
            },
            Err(e) => {
                errors.push(file_error(&path, 1, format!("cannot read: {e}")));
                continue;
            }
        };
        let Some(file) = crate::content::parse_article(&path, &text, &mut errors) else {
            continue;
        };
        let mut draft = ArticleDraft::from(&file);
        for problem in draft.validate(&limits) {
            let line = crate::datafile::line_of(&text, &format!("{}:", problem.field));
            errors.push(file_error(
                &path,
                line,
                format!("{}: {}", problem.field, problem.message),
            ));
        }
        if let Some((other, _)) = articles.get(&file.front.id) {
            errors.push(file_error(
                &path,
                crate::datafile::line_of(&text, "id:"),
                format!(
                    "article id `{}` is also used by {}",
                    file.front.id,
                    other.display()
                ),
            ));
        }
        articles.insert(file.front.id.clone(), (path, draft));
    }
    let mut documents = Vec::new();
    for (name, check) in [
        (
            SYNONYMS,
            check_synonyms as fn(&Path, &str) -> Vec<DataError>,
        ),
        (GOLDEN, check_golden),
    ] {
        let path = dir.join(format!("{name}.yaml"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            let problems = check(&path, &text);
            if problems.is_empty() {
                documents.push((name, text));
            }
            errors.extend(problems);
        }
    }
    if !errors.is_empty() {
        return Err(ImportError::Files(errors));
    }
    let mut report = ImportReport::default();
    for (name, text) in documents {
        let before = kb.store.document(name).await?.map(|d| d.1);
        let after = kb.store.put_document(actor, name, &text, None).await?;
        if before != Some(after) {
            report.documents += 1;
        }
    }
    for (id, (path, draft)) in articles {
        let base = match kb.store.heads(&id).await {
            Ok((head, _)) => Some(head),
            Err(KbError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let saved = kb.store.save(actor, &id, base, &draft).await?;
        if saved.created {
            let comment = format!("imported from {}", path.display());
            kb.store
                .transition(
                    actor,
                    &id,
                    saved.version,
                    State::Draft,
                    State::Published,
                    &comment,
                    None,
                    None,
                )
                .await?;
            report.created += 1;
        } else {
            report.unchanged += 1;
        }
    }
    kb.refresh().await.map_err(KbError::Other)?;
    Ok(report)
}

fn check_synonyms(path: &Path, text: &str) -> Vec<DataError> {
    Synonyms::parse(path, text).err().unwrap_or_default()
}

fn check_golden(path: &Path, text: &str) -> Vec<DataError> {
    golden::parse(path, text).err().unwrap_or_default()
}

/// Writes every live article (`ID.md`) and the documents into `dir`. Returns the number
/// of articles written.
pub async fn export(kb: &Knowledge, dir: &Path) -> Result<usize, KbError> {
    std::fs::create_dir_all(dir).map_err(|e| KbError::Other(e.into()))?;
    let mut docs = kb.store.live_docs(None).await?;
    docs.sort_by(|a, b| a.id.cmp(&b.id));
    for d in &docs {
        std::fs::write(dir.join(format!("{}.md", d.id)), d.draft.to_markdown(&d.id))
            .map_err(|e| KbError::Other(e.into()))?;
    }
    for name in [SYNONYMS, GOLDEN] {
        if let Some((text, _)) = kb.store.document(name).await? {
            std::fs::write(dir.join(format!("{name}.yaml")), text)
                .map_err(|e| KbError::Other(e.into()))?;
        }
    }
    Ok(docs.len())
}
