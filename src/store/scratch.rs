//! A throwaway database for the load generators (`concierge bench knowledge|tickets|
//! reports`): the URL given with `--bench-database-url`, or a new SQLite file in a folder of
//! its own that is removed when the [`Scratch`] is dropped.

use std::path::{Path, PathBuf};

/// Where a benchmark writes.
pub struct Scratch {
    /// The database URL.
    pub url: String,
    /// The folder made for it, removed on drop (`None`: the caller's own database).
    dir: Option<PathBuf>,
}

/// Where a scratch SQLite file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// In memory (`/dev/shm`) where there is one: figures about computing, not the disk.
    Memory,
    /// The system's temporary folder on disk: commits are synced writes, as in a branch.
    Disk,
}

impl Scratch {
    /// `url` when given; otherwise a new SQLite file in a folder named after `name`.
    pub fn new(url: Option<&str>, name: &str, medium: Medium) -> std::io::Result<Scratch> {
        if let Some(url) = url {
            return Ok(Scratch {
                url: url.to_string(),
                dir: None,
            });
        }
        let base = match medium {
            Medium::Memory if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
            _ => std::env::temp_dir(),
        };
        let dir = base.join(format!(
            "concierge-{name}-bench-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch {
            url: format!("sqlite://{}", dir.join("bench.db").display()),
            dir: Some(dir),
        })
    }

    /// "SQLite" or "PostgreSQL", for what a benchmark prints.
    pub fn engine(&self) -> &'static str {
        if self.url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_folder_goes_with_its_scratch_and_a_given_url_is_kept() {
        let s = Scratch::new(None, "test", Medium::Disk).unwrap();
        let dir = s.dir.clone().unwrap();
        assert!(dir.is_dir() && s.url.starts_with("sqlite://"));
        assert_eq!(s.engine(), "SQLite");
        drop(s);
        assert!(!dir.exists());
        let given = Scratch::new(Some("postgres://x/y"), "test", Medium::Memory).unwrap();
        assert_eq!(
            (given.url.as_str(), given.engine()),
            ("postgres://x/y", "PostgreSQL")
        );
    }
}
