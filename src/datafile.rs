//! Data files that operators edit (`dialogs/`, `knowledge/`, `voices/`, the rules): reading
//! them within a size limit, parsing YAML, and reporting every problem as `file:line:
//! message` ([`DataError`]), so an operator fixes a file in one pass.

use std::fmt;
use std::path::{Path, PathBuf};

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

/// The `*.yaml` / `*.yml` files of a folder, sorted; an unreadable folder is an error.
pub fn yaml_files(folder: &Path, errors: &mut Vec<DataError>) -> Vec<PathBuf> {
    files_with_ext(folder, &["yaml", "yml"], errors)
}

/// The files of `dir` with one of the extensions `exts`, sorted; an unreadable folder is
/// an error.
pub fn files_with_ext(dir: &Path, exts: &[&str], errors: &mut Vec<DataError>) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| exts.contains(&e))
                })
                .collect();
            files.sort();
            files
        }
        Err(e) => {
            errors.push(DataError {
                file: dir.to_path_buf(),
                line: 1,
                message: format!("cannot read folder: {e}"),
            });
            Vec::new()
        }
    }
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
    match serde_norway::from_str(text) {
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

/// Reads the data file at `path` and hands its text to `parse` (which reports problems
/// with `file:line`).
pub fn load_with<T>(
    path: &Path,
    parse: impl FnOnce(&Path, &str) -> Result<T, Vec<DataError>>,
) -> Result<T, Vec<DataError>> {
    let mut errors = Vec::new();
    match read_data_file(path, &mut errors) {
        Some(text) => parse(path, &text),
        None => Err(errors),
    }
}

/// The problems of one data file, each placed at the first line that holds a needle.
pub struct Problems<'a> {
    file: &'a Path,
    text: &'a str,
    pub errors: Vec<DataError>,
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Problems<'a> {
        Problems {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// A problem at the first line holding `needle` (line 1 when none does).
    pub fn at(&mut self, needle: &str, message: String) {
        self.errors.push(DataError {
            file: self.file.to_path_buf(),
            line: line_of(self.text, needle),
            message,
        });
    }

    /// `value` when no problem was found.
    pub fn or_value<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<DataError>> {
        if self.errors.is_empty() {
            Ok(value())
        } else {
            Err(self.errors)
        }
    }
}

/// The 1-based line of each item of a top-level YAML list (each line starting with `-`),
/// so the n-th parsed item's problems name its line.
pub fn item_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with('-'))
        .map(|(i, _)| i + 1)
        .collect()
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

/// Every problem as one error, one `file:line: message` a line.
pub fn as_one_error(errors: Vec<DataError>) -> anyhow::Error {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!(
        "the data files have {} problem(s):\n{}",
        list.len(),
        list.join("\n")
    )
}
