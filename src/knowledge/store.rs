//! Articles in the database (SQLite or PostgreSQL): every save is a new version, every state
//! change a recorded transition (who, when, comment), and every change that alters what is
//! searchable bumps one revision counter that each node's index follows. Concurrent editors
//! are caught by the version they started from; state changes are conditional updates, so
//! two reviewers (or two nodes publishing a due version) cannot both win.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::index::LiveDoc;
use super::model::{ArticleDraft, ArticleSummary, KbError, Saved, State, Transition, Version};
use crate::store::wake::Topic;
use crate::store::{now_ms, Db};

impl From<&Version> for LiveDoc {
    fn from(v: &Version) -> Self {
        LiveDoc {
            id: v.article_id.clone(),
            version: v.version,
            hash: v.content_hash.clone(),
            draft: v.draft.clone(),
        }
    }
}

const VERSION_COLUMNS: &str = "article_id, version, state, title, body, summary, questions, \
    tags, audience, branches, effective_from, effective_to, content_hash, author, created_at, \
    reviewer, reviewed_at, publish_at";

fn list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn version_of(row: &AnyRow) -> Result<Version, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(Version {
        article_id: row.try_get("article_id")?,
        version: row.try_get("version")?,
        state: State::parse(&state).unwrap_or(State::Draft),
        draft: ArticleDraft {
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            summary: row.try_get("summary")?,
            questions: list(&row.try_get::<String, _>("questions")?),
            tags: list(&row.try_get::<String, _>("tags")?),
            audience: row.try_get("audience")?,
            branches: list(&row.try_get::<String, _>("branches")?),
            effective_from: row.try_get("effective_from")?,
            effective_to: row.try_get("effective_to")?,
        },
        content_hash: row.try_get("content_hash")?,
        author: row.try_get("author")?,
        created_at: row.try_get("created_at")?,
        reviewer: row.try_get("reviewer")?,
        reviewed_at: row.try_get("reviewed_at")?,
        publish_at: row.try_get("publish_at")?,
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Records a transition (the article's next sequence number).
#[allow(clippy::too_many_arguments)]
async fn record(
    tx: &mut Tx,
    id: &str,
    version: i64,
    from: &str,
    to: State,
    actor: &str,
    comment: &str,
    override_reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE kb_articles SET transitions = transitions + 1, updated_at = $2 WHERE id = $1 \
         RETURNING transitions",
    )
    .bind(id)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO kb_transitions (article_id, seq, version, from_state, to_state, actor, at, \
         comment, override_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(seq)
    .bind(version)
    .bind(from)
    .bind(to.as_str())
    .bind(actor)
    .bind(now_ms())
    .bind(comment)
    .bind(override_reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn bump_revision(tx: &mut Tx) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE kb_revision SET revision = revision + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Makes `version` the live one: the previously live version becomes superseded.
async fn make_live(
    tx: &mut Tx,
    id: &str,
    version: i64,
    actor: &str,
    comment: &str,
) -> Result<(), sqlx::Error> {
    let old: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM kb_versions WHERE article_id = $1 AND state = 'published' AND version <> $2",
    )
    .bind(id)
    .bind(version)
    .fetch_all(&mut **tx)
    .await?;
    for v in old {
        sqlx::query(
            "UPDATE kb_versions SET state = 'superseded' WHERE article_id = $1 AND version = $2",
        )
        .bind(id)
        .bind(v)
        .execute(&mut **tx)
        .await?;
        let note = format!("replaced by version {version}");
        let note = if comment.is_empty() {
            note
        } else {
            format!("{note}: {comment}")
        };
        record(
            tx,
            id,
            v,
            "published",
            State::Superseded,
            actor,
            &note,
            None,
        )
        .await?;
    }
    sqlx::query("UPDATE kb_articles SET live_version = $2 WHERE id = $1")
        .bind(id)
        .bind(version)
        .execute(&mut **tx)
        .await?;
    bump_revision(tx).await
}

/// The database side of the knowledge base (private to [`super::Knowledge`]: callers go
/// through the service).
#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    /// The wake-ups of this node's database ([`crate::store::wake`]).
    pub fn wakeups(&self) -> std::sync::Arc<crate::store::wake::Wakeups> {
        self.db.wake.clone()
    }

    /// The store over `db`.
    pub fn new(db: Db) -> Store {
        Store { db }
    }

    /// Saves `draft` as a new version. `base`: the version the editor started from (`None`
    /// creates the article). Unchanged content makes no version.
    pub async fn save(
        &self,
        actor: &str,
        id: &str,
        base: Option<i64>,
        draft: &ArticleDraft,
    ) -> Result<Saved, KbError> {
        let mut tx = self.db.begin_write().await?;
        let head: Option<i64> =
            sqlx::query_scalar("SELECT head_version FROM kb_articles WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
        let now = now_ms();
        let hash = draft.content_hash();
        let version = match (head, base) {
            (None, None) => {
                sqlx::query(
                    "INSERT INTO kb_articles (id, head_version, live_version, created_by, \
                     created_at, updated_at, transitions) VALUES ($1, 1, NULL, $2, $3, $3, 0)",
                )
                .bind(id)
                .bind(actor)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                1
            }
            (None, Some(_)) => return Err(KbError::NotFound("article")),
            (Some(_), None) => {
                return Err(KbError::Conflict(
                    "article_exists",
                    format!("an article `{id}` exists already; edit it instead"),
                ))
            }
            (Some(h), Some(b)) if h != b => {
                let by: String = sqlx::query_scalar(
                    "SELECT author FROM kb_versions WHERE article_id = $1 AND version = $2",
                )
                .bind(id)
                .bind(h)
                .fetch_one(&mut **tx)
                .await?;
                return Err(KbError::Conflict(
                    "version_conflict",
                    format!(
                        "you edited version {b}, but {by} has saved version {h} since; \
                         reload it and apply your changes again"
                    ),
                ));
            }
            (Some(h), Some(_)) => {
                let head_hash: String = sqlx::query_scalar(
                    "SELECT content_hash FROM kb_versions WHERE article_id = $1 AND version = $2",
                )
                .bind(id)
                .bind(h)
                .fetch_one(&mut **tx)
                .await?;
                if head_hash == hash {
                    return Ok(Saved {
                        id: id.to_string(),
                        version: h,
                        created: false,
                    });
                }
                let n = sqlx::query(
                    "UPDATE kb_articles SET head_version = $2, updated_at = $3 \
                     WHERE id = $1 AND head_version = $4",
                )
                .bind(id)
                .bind(h + 1)
                .bind(now)
                .bind(h)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(KbError::Conflict(
                        "version_conflict",
                        "someone saved this article at the same moment; reload it".into(),
                    ));
                }
                h + 1
            }
        };
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        sqlx::query(&format!(
            "INSERT INTO kb_versions ({VERSION_COLUMNS}) VALUES ($1, $2, 'draft', $3, $4, $5, \
             $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, NULL)"
        ))
        .bind(id)
        .bind(version)
        .bind(&draft.title)
        .bind(&draft.body)
        .bind(&draft.summary)
        .bind(json(&draft.questions))
        .bind(json(&draft.tags))
        .bind(&draft.audience)
        .bind(json(&draft.branches))
        .bind(&draft.effective_from)
        .bind(&draft.effective_to)
        .bind(&hash)
        .bind(actor)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        record(&mut tx, id, version, "", State::Draft, actor, "saved", None).await?;
        tx.commit().await?;
        self.db.wake.poke(Topic::Knowledge);
        Ok(Saved {
            id: id.to_string(),
            version,
            created: true,
        })
    }

    /// Moves `version` from `from` to `to` if it is still in `from` (else a conflict).
    #[allow(clippy::too_many_arguments)]
    pub async fn transition(
        &self,
        actor: &str,
        id: &str,
        version: i64,
        from: State,
        to: State,
        comment: &str,
        override_reason: Option<&str>,
        publish_at: Option<i64>,
    ) -> Result<(), KbError> {
        let mut tx = self.db.begin_write().await?;
        let reviewed = from == State::InReview
            && matches!(to, State::Published | State::Scheduled | State::Draft);
        let n = sqlx::query(
            "UPDATE kb_versions SET state = $4, \
             reviewer = CASE WHEN $5 THEN $6 ELSE reviewer END, \
             reviewed_at = CASE WHEN $5 THEN $7 ELSE reviewed_at END, \
             publish_at = COALESCE($8, publish_at) \
             WHERE article_id = $1 AND version = $2 AND state = $3",
        )
        .bind(id)
        .bind(version)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(reviewed)
        .bind(actor)
        .bind(now_ms())
        .bind(publish_at)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            let now: Option<String> = sqlx::query_scalar(
                "SELECT state FROM kb_versions WHERE article_id = $1 AND version = $2",
            )
            .bind(id)
            .bind(version)
            .fetch_optional(&mut **tx)
            .await?;
            return Err(match now {
                None => KbError::NotFound("version"),
                Some(s) => KbError::Conflict(
                    "wrong_state",
                    format!(
                        "version {version} is {s}, not {}; reload and try again",
                        from.as_str()
                    ),
                ),
            });
        }
        record(
            &mut tx,
            id,
            version,
            from.as_str(),
            to,
            actor,
            comment,
            override_reason,
        )
        .await?;
        match to {
            State::Published => make_live(&mut tx, id, version, actor, comment).await?,
            State::Retired => {
                sqlx::query("UPDATE kb_articles SET live_version = NULL WHERE id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                bump_revision(&mut tx).await?;
            }
            State::Scheduled => bump_revision(&mut tx).await?,
            _ => {}
        }
        tx.commit().await?;
        self.db.wake.poke(Topic::Knowledge);
        Ok(())
    }

    /// The scheduled versions whose publish time has come, oldest first.
    pub async fn due(&self, now: i64) -> Result<Vec<(String, i64)>, KbError> {
        Ok(sqlx::query_as(
            "SELECT article_id, version FROM kb_versions WHERE state = 'scheduled' \
             AND publish_at <= $1 ORDER BY publish_at, article_id",
        )
        .bind(now)
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// The admin's override reason recorded when `version` was scheduled, if any.
    pub async fn scheduled_override(
        &self,
        id: &str,
        version: i64,
    ) -> Result<Option<String>, KbError> {
        let reason: Option<Option<String>> = sqlx::query_scalar(
            "SELECT override_reason FROM kb_transitions WHERE article_id = $1 AND version = $2 \
             AND to_state = 'scheduled' ORDER BY seq DESC LIMIT 1",
        )
        .bind(id)
        .bind(version)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(reason.flatten())
    }

    /// The revision counter and the earliest scheduled publish time.
    pub async fn revision(&self) -> Result<(i64, Option<i64>), KbError> {
        let rev: i64 = sqlx::query_scalar("SELECT revision FROM kb_revision WHERE id = 1")
            .fetch_one(&self.db.pool)
            .await?;
        let due: Option<i64> =
            sqlx::query_scalar("SELECT MIN(publish_at) FROM kb_versions WHERE state = 'scheduled'")
                .fetch_one(&self.db.pool)
                .await?;
        Ok((rev, due))
    }

    /// (id, version, content hash) of every live version.
    pub async fn live_versions(&self) -> Result<Vec<(String, i64, String)>, KbError> {
        Ok(sqlx::query_as(
            "SELECT article_id, version, content_hash FROM kb_versions WHERE state = 'published'",
        )
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// The live versions of `ids` (all of them when `None`), with their content.
    pub async fn live_docs(&self, ids: Option<&[String]>) -> Result<Vec<LiveDoc>, KbError> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM kb_versions WHERE state = 'published'"
        ))
        .fetch_all(&self.db.pool)
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let v = version_of(row)?;
            if ids.is_none_or(|ids| ids.contains(&v.article_id)) {
                out.push(LiveDoc::from(&v));
            }
        }
        Ok(out)
    }

    pub async fn version(&self, id: &str, version: i64) -> Result<Version, KbError> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM kb_versions WHERE article_id = $1 AND version = $2"
        ))
        .bind(id)
        .bind(version)
        .fetch_optional(&self.db.pool)
        .await?
        .ok_or(KbError::NotFound("version"))?;
        Ok(version_of(&row)?)
    }

    /// Every version of an article, newest first.
    pub async fn versions(&self, id: &str) -> Result<Vec<Version>, KbError> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM kb_versions WHERE article_id = $1 ORDER BY version DESC"
        ))
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        if rows.is_empty() {
            return Err(KbError::NotFound("article"));
        }
        Ok(rows.iter().map(version_of).collect::<Result<_, _>>()?)
    }

    /// The article's head and live version numbers.
    pub async fn heads(&self, id: &str) -> Result<(i64, Option<i64>), KbError> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT head_version, live_version FROM kb_articles WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.db.pool)
                .await?;
        row.ok_or(KbError::NotFound("article"))
    }

    pub async fn history(&self, id: &str) -> Result<Vec<Transition>, KbError> {
        let rows = sqlx::query(
            "SELECT seq, version, from_state, to_state, actor, at, comment, override_reason \
             FROM kb_transitions WHERE article_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Transition {
                    seq: r.try_get("seq")?,
                    version: r.try_get("version")?,
                    from: r.try_get("from_state")?,
                    to: r.try_get("to_state")?,
                    actor: r.try_get("actor")?,
                    at: r.try_get("at")?,
                    comment: r.try_get("comment")?,
                    override_reason: r.try_get("override_reason")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(KbError::from)
    }

    /// Every article (its newest version), optionally only those whose newest version is
    /// in `state`.
    pub async fn list(&self, state: Option<State>) -> Result<Vec<ArticleSummary>, KbError> {
        let rows = sqlx::query(
            "SELECT a.id, a.head_version, a.live_version, a.updated_at, v.title, v.audience, v.state \
             FROM kb_articles a JOIN kb_versions v ON v.article_id = a.id AND v.version = a.head_version \
             ORDER BY a.id",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let head_state =
                State::parse(&r.try_get::<String, _>("state")?).unwrap_or(State::Draft);
            if state.is_some_and(|s| s != head_state) {
                continue;
            }
            out.push(ArticleSummary {
                id: r.try_get("id")?,
                title: r.try_get("title")?,
                audience: r.try_get("audience")?,
                head_version: r.try_get("head_version")?,
                head_state,
                live_version: r.try_get("live_version")?,
                updated_at: r.try_get("updated_at")?,
            });
        }
        Ok(out)
    }

    /// A named document (`synonyms`, `golden`): its text and revision.
    pub async fn document(&self, name: &str) -> Result<Option<(String, i64)>, KbError> {
        Ok(
            sqlx::query_as("SELECT body, revision FROM kb_documents WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.db.pool)
                .await?,
        )
    }

    /// Replaces a document; `base` is the revision the editor started from (`None`: any).
    /// Returns the new revision; unchanged text keeps the revision.
    pub async fn put_document(
        &self,
        actor: &str,
        name: &str,
        body: &str,
        base: Option<i64>,
    ) -> Result<i64, KbError> {
        let mut tx = self.db.begin_write().await?;
        let now: Option<(String, i64)> =
            sqlx::query_as("SELECT body, revision FROM kb_documents WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
        let revision = match now {
            Some((_, rev)) if base.is_some_and(|b| b != rev) => {
                return Err(KbError::Conflict(
                    "version_conflict",
                    format!(
                        "{name} was changed since revision {}; reload it",
                        base.unwrap_or(0)
                    ),
                ))
            }
            Some((old, rev)) if old == body => return Ok(rev),
            Some((_, rev)) => {
                sqlx::query(
                    "UPDATE kb_documents SET body = $2, revision = $3, updated_by = $4, \
                     updated_at = $5 WHERE name = $1 AND revision = $6",
                )
                .bind(name)
                .bind(body)
                .bind(rev + 1)
                .bind(actor)
                .bind(now_ms())
                .bind(rev)
                .execute(&mut **tx)
                .await?;
                rev + 1
            }
            None => {
                sqlx::query(
                    "INSERT INTO kb_documents (name, body, revision, updated_by, updated_at) \
                     VALUES ($1, $2, 1, $3, $4)",
                )
                .bind(name)
                .bind(body)
                .bind(actor)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
                1
            }
        };
        bump_revision(&mut tx).await?;
        tx.commit().await?;
        self.db.wake.poke(Topic::Knowledge);
        Ok(revision)
    }

    /// Number of articles.
    pub async fn count(&self) -> Result<i64, KbError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM kb_articles")
            .fetch_one(&self.db.pool)
            .await?)
    }
}
