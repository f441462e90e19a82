//! Files written whole or not at all: data goes to a temporary file next to the target,
//! which is renamed over the target only once everything is written and synced.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{ConvertError, Result};

/// Runs `write` on a buffered temporary file next to `path`, then renames it to `path`.
/// On any error the temporary file is removed and `path` is left as it was. I/O errors of
/// `write` are reported against `path`, the file the caller asked for.
pub fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T>,
) -> Result<T> {
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp).map_err(ConvertError::io(&tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let value = write(&mut w).map_err(|e| match e {
            ConvertError::Io { error, .. } => ConvertError::Io {
                path: path.to_path_buf(),
                error,
            },
            e => e,
        })?;
        w.flush().map_err(ConvertError::io(&tmp))?;
        let file = w
            .into_inner()
            .map_err(|e| ConvertError::io(&tmp)(e.into_error()))?;
        file.sync_all().map_err(ConvertError::io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(ConvertError::io(path))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `dir/.name.tmp-PID`, hidden and unique per process.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        std::fs::write(&path, b"old").unwrap();
        let r: Result<()> = write_atomically(&path, |w| {
            w.write_all(b"new").unwrap();
            Err(ConvertError::Ggml("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomically(&path, |w| {
            w.write_all(b"new").map_err(ConvertError::io(&path))
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }
}
