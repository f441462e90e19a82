//! Knowledge routes: search (every staff role; `audience=staff` is the teller helper),
//! hit-testing (why a question finds what it finds), article CRUD with versions, diffs and
//! history, the review lifecycle (submit, approve/schedule, reject, rollback, retire), and
//! the synonym and golden-question documents. Actors are recorded by staff name.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Staff;
use super::json::ApiJson;
use crate::access::Role;
use crate::error::ApiError;
use crate::knowledge::index::{Audience, Query1};
use crate::knowledge::model::KbError;
use crate::knowledge::model::{ArticleDraft, State as KbState};
use crate::knowledge::{Decision, GOLDEN, SYNONYMS};
use crate::state::AppState;

const EDIT: &[Role] = &[Role::ContentEditor, Role::ContentReviewer, Role::Admin];
const REVIEW: &[Role] = &[Role::ContentReviewer, Role::Admin];

impl From<KbError> for ApiError {
    fn from(e: KbError) -> Self {
        match e {
            KbError::Invalid(problems) => ApiError::BadRequest(
                "invalid_article",
                problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            KbError::NotFound(what) => ApiError::NotFound(what),
            KbError::Conflict(code, m) => ApiError::Conflict(code, m),
            KbError::Refused(code, m) => ApiError::Refused(code, m),
            KbError::Db(e) => ApiError::Internal(e.into()),
            KbError::Other(e) => ApiError::Internal(e),
        }
    }
}

#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    audience: Option<String>,
    branch: Option<String>,
    limit: Option<usize>,
}

fn query_of<'a>(app: &AppState, p: &'a SearchParams) -> Result<(&'a str, Audience), ApiError> {
    let q = p.q.as_deref().unwrap_or("").trim();
    if q.is_empty() {
        return Err(ApiError::BadRequest("missing_query", "give q=…".into()));
    }
    if q.chars().count() > app.knowledge.settings.max_query_chars {
        return Err(ApiError::BadRequest(
            "query_too_long",
            format!(
                "a query has at most {} characters",
                app.knowledge.settings.max_query_chars
            ),
        ));
    }
    let audience = match p.audience.as_deref() {
        None => Audience::Customer,
        Some(a) => Audience::parse(a).ok_or_else(|| {
            ApiError::BadRequest("invalid_audience", "audience is customer or staff".into())
        })?,
    };
    Ok((q, audience))
}

async fn run_search(
    app: &AppState,
    p: &SearchParams,
    explain: bool,
) -> Result<Json<Value>, ApiError> {
    let (q, audience) = query_of(app, p)?;
    let found = app
        .knowledge
        .search(&Query1 {
            text: q,
            audience,
            branch: p.branch.as_deref(),
            day: crate::domain::clock::now_local().date_naive(),
            limit: p.limit.unwrap_or(5).clamp(1, 50),
            explain,
        })
        .await?;
    Ok(Json(
        json!({"query": q, "audience": audience, "words": found.words, "hits": found.hits}),
    ))
}

/// Roles: every staff role. `audience=staff` (the teller helper) includes staff-only
/// articles; kiosks never reach this route (they answer through their WebSocket).
pub async fn search(
    State(app): State<AppState>,
    staff: Staff,
    Query(p): Query<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    staff.require(&Role::ALL)?;
    run_search(&app, &p, false).await
}

/// Roles: every staff role. Like search, plus each hit's score explanation and the words
/// it matched (directly or through a synonym), its BM25, dense and fused scores, what the
/// kiosk would do with the question, and how far embedding the articles has come.
pub async fn hit_test(
    State(app): State<AppState>,
    staff: Staff,
    Query(p): Query<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    staff.require(&Role::ALL)?;
    let Json(mut v) = run_search(&app, &p, true).await?;
    let (q, _) = query_of(&app, &p)?;
    let kiosk = match app
        .knowledge
        .answer(q, p.branch.as_deref().unwrap_or("*"))
        .await
    {
        crate::knowledge::Answer::Found { hit, .. } => json!({"does": "answer", "article": hit.id}),
        crate::knowledge::Answer::Clarify(a, b) => {
            json!({"does": "clarify", "between": [a.id, b.id]})
        }
        crate::knowledge::Answer::Unknown => json!({"does": "unknown"}),
    };
    v["kiosk"] = kiosk;
    v["embedding"] = json!(app.knowledge.embedding_status());
    Ok(Json(v))
}

#[derive(Deserialize)]
pub struct ListParams {
    state: Option<String>,
}

/// Roles: content editor, reviewer, admin.
pub async fn list(
    State(app): State<AppState>,
    staff: Staff,
    Query(p): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    staff.require(EDIT)?;
    let state = match p.state.as_deref() {
        None => None,
        Some(s) => Some(
            KbState::parse(s)
                .ok_or_else(|| ApiError::BadRequest("invalid_state", format!("no state `{s}`")))?,
        ),
    };
    let articles = app.knowledge.articles(state).await?;
    Ok(Json(json!({ "articles": articles })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    id: String,
    #[serde(flatten)]
    article: ArticleDraft,
}

/// Roles: content editor, reviewer, admin. Creates an article (version 1, a draft).
pub async fn create(
    State(app): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = staff.require(EDIT)?;
    let body: CreateBody = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest("invalid_body", e.to_string()))?;
    let saved = app
        .knowledge
        .save(&user.name, &body.id, None, body.article)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(saved))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// The version the editor started from; a newer one means someone else saved since.
    base_version: i64,
    #[serde(flatten)]
    article: ArticleDraft,
}

/// Roles: content editor, reviewer, admin. Saves a new version (409 `version_conflict` when
/// `base_version` is not the newest).
pub async fn update(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(EDIT)?;
    let body: UpdateBody = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest("invalid_body", e.to_string()))?;
    let saved = app
        .knowledge
        .save(&user.name, &id, Some(body.base_version), body.article)
        .await?;
    Ok(Json(json!(saved)))
}

/// Roles: content editor, reviewer, admin. The article: newest and live versions, history.
pub async fn get_article(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    staff.require(EDIT)?;
    let kb = &app.knowledge;
    let (head, live) = kb.heads(&id).await?;
    let head_version = kb.version(&id, head).await?;
    let live_version = match live {
        Some(v) if v != head => Some(kb.version(&id, v).await?),
        Some(_) => Some(head_version.clone()),
        None => None,
    };
    let history = kb.history(&id).await?;
    Ok(Json(json!({
        "id": id, "head": head_version, "live": live_version, "history": history,
    })))
}

/// Roles: content editor, reviewer, admin. Every version, newest first.
pub async fn versions(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    staff.require(EDIT)?;
    Ok(Json(
        json!({"versions": app.knowledge.versions(&id).await?}),
    ))
}

/// Roles: content editor, reviewer, admin.
pub async fn version(
    State(app): State<AppState>,
    staff: Staff,
    Path((id, v)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    staff.require(EDIT)?;
    Ok(Json(json!(app.knowledge.version(&id, v).await?)))
}

#[derive(Deserialize)]
pub struct DiffParams {
    from: i64,
    to: i64,
}

/// How long a diff may search for the smallest edit script.
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(300);

/// A unified line diff of `a` and `b` that stops searching for the smallest edit script at
/// `deadline` (then it is coarser, still correct).
fn bounded_diff(a: &str, b: &str, from: &str, to: &str, deadline: std::time::Duration) -> String {
    similar::TextDiff::configure()
        .timeout(deadline)
        .diff_lines(a, b)
        .unified_diff()
        .header(from, to)
        .to_string()
}

/// Roles: content editor, reviewer, admin. A unified diff of two versions (as Markdown
/// files with front matter) and the fields that differ.
pub async fn diff(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(p): Query<DiffParams>,
) -> Result<Json<Value>, ApiError> {
    staff.require(EDIT)?;
    let a = app.knowledge.version(&id, p.from).await?;
    let b = app.knowledge.version(&id, p.to).await?;
    let (ma, mb) = (a.draft.to_markdown(&id), b.draft.to_markdown(&id));
    let header = (format!("{id} v{}", p.from), format!("{id} v{}", p.to));
    // Both sides are bounded by the article limits; the time is bounded too (past the
    // deadline `similar` settles for a coarser, still correct diff), off the executor.
    let unified = tokio::task::spawn_blocking(move || {
        bounded_diff(&ma, &mb, &header.0, &header.1, DIFF_DEADLINE)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    let (ja, jb) = (json!(a.draft), json!(b.draft));
    let changed: Vec<&String> = ja
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| ja[k.as_str()] != jb[k.as_str()])
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(
        json!({"from": p.from, "to": p.to, "changed": changed, "unified": unified}),
    ))
}

/// Roles: content editor, reviewer, admin. Every transition, oldest first.
pub async fn history(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    staff.require(EDIT)?;
    Ok(Json(json!({"history": app.knowledge.history(&id).await?})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    comment: String,
    /// Approve: publish at this time (RFC 3339) instead of now.
    #[serde(default)]
    publish_at: Option<String>,
    /// An admin's reason to go ahead although golden questions would fail.
    #[serde(default)]
    override_reason: Option<String>,
    /// Rollback: the version to republish.
    #[serde(default)]
    version: Option<i64>,
}

impl DecisionBody {
    fn decision(&self) -> Result<Decision, ApiError> {
        if self.comment.chars().count() > 1000 {
            return Err(ApiError::BadRequest(
                "comment_too_long",
                "a comment has at most 1000 characters".into(),
            ));
        }
        Ok(Decision {
            comment: self.comment.trim().to_string(),
            override_reason: self.override_reason.clone(),
        })
    }
}

/// Roles: content editor, reviewer, admin. Draft → in review.
pub async fn submit(
    State(app): State<AppState>,
    staff: Staff,
    Path((id, v)): Path<(String, i64)>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(EDIT)?;
    let d = body.decision()?;
    app.knowledge.submit(&user.name, &id, v, &d.comment).await?;
    Ok(Json(json!({"id": id, "version": v, "state": "in_review"})))
}

/// Roles: content reviewer, admin — never the version's author. In review → published
/// (now, golden questions checked) or scheduled (`publish_at`).
pub async fn approve(
    State(app): State<AppState>,
    staff: Staff,
    Path((id, v)): Path<(String, i64)>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(REVIEW)?;
    let d = body.decision()?;
    let at = match &body.publish_at {
        None => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| {
                    ApiError::BadRequest(
                        "invalid_publish_at",
                        "publish_at is an RFC 3339 time like 2026-12-01T08:00:00+08:00".into(),
                    )
                })?
                .timestamp_millis(),
        ),
    };
    let state = app
        .knowledge
        .approve(&user.name, &user.roles, &id, v, at, &d)
        .await?;
    Ok(Json(
        json!({"id": id, "version": v, "state": state.as_str()}),
    ))
}

/// Roles: content reviewer, admin — never the version's author. In review → draft, with a
/// comment saying what must change.
pub async fn reject(
    State(app): State<AppState>,
    staff: Staff,
    Path((id, v)): Path<(String, i64)>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(REVIEW)?;
    let d = body.decision()?;
    app.knowledge.reject(&user.name, &id, v, &d.comment).await?;
    Ok(Json(json!({"id": id, "version": v, "state": "draft"})))
}

/// Roles: content reviewer, admin. Republishes `version` (golden questions checked).
pub async fn rollback(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(REVIEW)?;
    let d = body.decision()?;
    let v = body.version.ok_or_else(|| {
        ApiError::BadRequest("missing_version", "give the version to republish".into())
    })?;
    app.knowledge
        .rollback(&user.name, &user.roles, &id, v, &d)
        .await?;
    Ok(Json(json!({"id": id, "version": v, "state": "published"})))
}

/// Roles: content reviewer, admin. Takes the article out of search.
pub async fn retire(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(REVIEW)?;
    let d = body.decision()?;
    app.knowledge
        .retire(&user.name, &user.roles, &id, &d)
        .await?;
    Ok(Json(json!({"id": id, "state": "retired"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentBody {
    text: String,
    /// The revision the editor started from (409 when someone saved since).
    #[serde(default)]
    base_revision: Option<i64>,
}

async fn get_document(app: &AppState, name: &str) -> Result<Json<Value>, ApiError> {
    let (text, revision) = app.knowledge.document(name).await?.unwrap_or_default();
    Ok(Json(
        json!({"name": name, "text": text, "revision": revision}),
    ))
}

/// Roles: content editor, reviewer, admin.
pub async fn synonyms(State(app): State<AppState>, staff: Staff) -> Result<Json<Value>, ApiError> {
    staff.require(EDIT)?;
    get_document(&app, SYNONYMS).await
}

/// Roles: content editor, reviewer, admin. Replaces the synonym dictionary (YAML, checked
/// with line numbers); the index is rebuilt with it.
pub async fn put_synonyms(
    State(app): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<DocumentBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(EDIT)?;
    let revision = app
        .knowledge
        .put_synonyms(&user.name, &body.text, body.base_revision)
        .await?;
    Ok(Json(json!({"name": SYNONYMS, "revision": revision})))
}

/// Roles: content editor, reviewer, admin. The golden questions and how each does now.
pub async fn golden(State(app): State<AppState>, staff: Staff) -> Result<Json<Value>, ApiError> {
    staff.require(EDIT)?;
    let Json(mut v) = get_document(&app, GOLDEN).await?;
    let results = app.knowledge.run_golden().await;
    v["passing"] = json!(results.iter().filter(|r| r.pass).count());
    v["results"] = json!(results);
    Ok(Json(v))
}

/// Roles: content reviewer, admin. Replaces the golden questions (YAML, checked).
pub async fn put_golden(
    State(app): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<DocumentBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(REVIEW)?;
    let revision = app
        .knowledge
        .put_golden(&user.name, &body.text, body.base_revision)
        .await?;
    Ok(Json(json!({"name": GOLDEN, "revision": revision})))
}

#[cfg(test)]
mod tests {
    use super::bounded_diff;
    use std::time::{Duration, Instant};

    /// The worst case for an edit-script search: two long texts that share almost nothing
    /// in an order that keeps the search wide. Past the deadline the diff settles for a
    /// coarse answer instead of searching on; it still lists every line that changed.
    #[test]
    fn a_diff_of_unlike_texts_stops_at_its_deadline_and_stays_correct() {
        let a: String = (0..20_000)
            .map(|i| format!("a{}\n", i * 7 % 20_000))
            .collect();
        let b: String = (0..20_000)
            .map(|i| format!("a{}\n", i * 13 % 20_000))
            .collect();
        let started = Instant::now();
        let diff = bounded_diff(&a, &b, "v1", "v2", Duration::from_millis(50));
        let took = started.elapsed();
        // Generous: without the deadline this search takes far longer on this input.
        assert!(took < Duration::from_secs(20), "took {took:?}");
        assert!(diff.starts_with("--- v1\n+++ v2\n"), "{}", &diff[..40]);
        let removed = diff
            .lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("---"))
            .count();
        let added = diff
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count();
        // Both texts have as many lines, so any correct diff removes as many as it adds.
        assert!(
            removed > 0 && removed == added,
            "{removed} removed, {added} added"
        );
    }
}
