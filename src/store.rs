//! The database: one sqlx `AnyPool` over SQLite (the embedded default, a WAL file created on
//! first start) or PostgreSQL, and the migrations of each. Queries elsewhere are written once,
//! in the SQL both engines accept (`$1` placeholders, `RETURNING`, `ON CONFLICT`); times are
//! Unix milliseconds and booleans 0/1 integers so the same Rust types decode on both.

use std::path::Path;
use std::str::FromStr;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub mod scratch;
pub mod wake;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool plus the engine it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite has one writer at a time; writers of this process queue here, in order,
    /// instead of in SQLite's busy handler (which sleeps and polls, up to 100 ms a try).
    writer: Arc<Semaphore>,
    /// Writers wake followers here after their commits ([`wake`]); with PostgreSQL the
    /// listener of [`Db::listen`] wakes them for other nodes' writes too.
    pub wake: Arc<wake::Wakeups>,
    /// For the listener's own connection.
    url: SecretString,
}

/// A write transaction (see [`Db::begin_write`]); dereferences to the sqlx transaction.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<OwnedSemaphorePermit>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::Transaction<'static, sqlx::Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names neither sqlite nor postgres.
    #[error("unsupported database url (use sqlite://PATH or postgres://…)")]
    UnsupportedUrl,
    /// Connecting failed.
    #[error("cannot open the database: {0:#}")]
    Connect(anyhow::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The schema of a database against the migrations compiled into this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Migrations applied successfully.
    pub applied: usize,
    /// This build's migrations not applied yet (`version_description`), oldest first.
    pub pending: Vec<String>,
    /// Migrations recorded as failed (a half-applied schema).
    pub failed: Vec<String>,
    /// Versions applied that this build does not know (a newer build migrated it).
    pub unknown: Vec<i64>,
}

/// Milliseconds since the Unix epoch, the time unit of every table.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Db {
    /// Opens the pool; for SQLite creates the file (and its folder) if missing and turns on WAL
    /// with `synchronous = FULL` (durable commits). A PostgreSQL URL's `sslmode` (and
    /// `sslrootcert`, `sslcert`, `sslkey`) is honoured: TLS with rustls, the Mozilla roots
    /// or the given CA.
    pub async fn connect(url: &SecretString, max_connections: u32) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let raw = url.expose_secret();
        let backend = if raw.starts_with("sqlite:") {
            Backend::Sqlite
        } else if raw.starts_with("postgres:") || raw.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let mut url = raw.to_string();
        if backend == Backend::Sqlite {
            prepare_sqlite_path(&url).map_err(StoreError::Connect)?;
            if !url.contains("mode=") && !url.contains(":memory:") {
                url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
        }
        let options = AnyConnectOptions::from_str(&url)
            .context("parse database url")
            .map_err(StoreError::Connect)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        // FULL: a commit is on disk before it returns. With NORMAL a power
                        // cut could lose ticket events already delivered by webhook and
                        // links of the audit chain (docs/benchmarks.md: the cost).
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("connect")
            .map_err(StoreError::Connect)?;
        Ok(Db {
            pool,
            backend,
            writer: Arc::new(Semaphore::new(1)),
            wake: Arc::default(),
            url: SecretString::from(raw.to_string()),
        })
    }

    /// With PostgreSQL, listens for other nodes' changes until `stop` ([`wake::listen`]);
    /// SQLite serves one node, whose writers wake its followers themselves.
    pub fn listen(&self, stop: tokio_util::sync::CancellationToken) {
        if self.backend == Backend::Postgres {
            wake::listen(self.url.clone(), self.wake.clone(), stop);
        }
    }

    /// One connection attempt without retries, closed at once: the pool of [`Db::connect`]
    /// retries a refused connection until its acquire timeout, while `concierge doctor`
    /// wants the reason now. Creates nothing (SQLite files must exist).
    pub async fn probe(url: &SecretString) -> Result<(), sqlx::Error> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let conn = sqlx::AnyConnection::connect(url.expose_secret()).await?;
        conn.close().await
    }

    /// Applies every pending migration of this engine.
    ///
    /// Migrations only add to the schema, so a node of the previous release may start on a
    /// database a newer release has migrated (a rolling upgrade, a rollback): migrations
    /// this build does not know are left alone instead of refusing to start.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Where the schema stands against this build's migrations, without changing anything
    /// (for `concierge doctor`).
    pub async fn migration_status(&self) -> Result<MigrationStatus, sqlx::Error> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let exists_sql = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let exists: i64 = sqlx::query_scalar(exists_sql).fetch_one(&self.pool).await?;
        let (applied, failed): (Vec<i64>, Vec<i64>) = if exists == 0 {
            (Vec::new(), Vec::new())
        } else {
            (
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(&self.pool)
                    .await?,
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE NOT success")
                    .fetch_all(&self.pool)
                    .await?,
            )
        };
        let known: Vec<&sqlx::migrate::Migration> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        let name = |m: &sqlx::migrate::Migration| format!("{}_{}", m.version, m.description);
        Ok(MigrationStatus {
            pending: known
                .iter()
                .filter(|m| !applied.contains(&m.version) && !failed.contains(&m.version))
                .map(|m| name(m))
                .collect(),
            failed: known
                .iter()
                .filter(|m| failed.contains(&m.version))
                .map(|m| name(m))
                .collect(),
            unknown: applied
                .iter()
                .filter(|v| !known.iter().any(|m| m.version == **v))
                .copied()
                .collect(),
            applied: applied.len(),
        })
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails at once
    /// with SQLITE_BUSY when another writer committed in between, and the busy timeout does
    /// not help with that; waiting for the lock at the start does.
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let turn = self.writer.clone().acquire_owned().await.ok();
                Ok(WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _turn: turn,
                })
            }
            Backend::Postgres => Ok(WriteTx {
                tx: self.pool.begin().await?,
                _turn: None,
            }),
        }
    }

    /// True when a trivial query answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// The file of a `sqlite://PATH` URL (`None` for other engines and `:memory:`).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path).to_path_buf())
}

/// Creates the folder of a `sqlite://dir/file.db` URL so the file can be created.
fn prepare_sqlite_path(url: &str) -> anyhow::Result<()> {
    let Some(path) = sqlite_path(url) else {
        return Ok(());
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("create database folder {}", dir.display()))?;
        }
    }
    Ok(())
}
