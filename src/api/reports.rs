//! `GET /v1/reports/{summary|journeys|handoffs|sla|queue}`: the reports over the hourly
//! rollups ([`crate::reports`]); `GET /v1/reports/now`: the branch this minute (queue,
//! waiting handoffs, tickets at risk of their SLA); `GET /v1/reports/unanswered`: content
//! staff's queue of questions nobody answered, grouped by wording. Query: `from`, `to` (days, branch time, both included;
//! default today), `branch`, `kiosk`, `group_by=hour|day`, `format=json|csv`. Staff of one
//! branch see only that branch (asking for another is `403 other_branch`); staff without a
//! branch and admins see every branch, or the one they ask for.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::auth::Staff;
use crate::access::Role;
use crate::error::ApiError;
use crate::reports::query::{self, Window};
use crate::state::AppState;

/// The roles that read reports.
const READERS: &[Role] = &[Role::Teller, Role::RemoteExpert, Role::Admin];

/// The roles that read the unanswered-question queue.
const CONTENT: &[Role] = &[Role::ContentEditor, Role::ContentReviewer, Role::Admin];

/// Longest query string value taken.
const MAX_PARAM_CHARS: usize = 64;

/// Roles: teller, remote expert, admin; for `unanswered`: content editor, content reviewer,
/// admin (branch-scoped when they have a branch).
pub async fn report(
    State(app): State<AppState>,
    staff: Staff,
    Path(name): Path<String>,
    Query(mut params): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    // The unanswered questions are content staff's work list; the rest is the floor's.
    let user = staff.require(if name == "unanswered" {
        CONTENT
    } else {
        READERS
    })?;
    if let Some((k, _)) = params
        .iter()
        .find(|(_, v)| v.chars().count() > MAX_PARAM_CHARS)
    {
        return Err(ApiError::BadRequest(
            "invalid_window",
            format!("`{k}` is longer than {MAX_PARAM_CHARS} characters"),
        ));
    }
    if let Some(own) = &user.branch {
        match params.get("branch").filter(|b| !b.is_empty()) {
            Some(b) if b != own => {
                return Err(ApiError::Refused(
                    "other_branch",
                    "you work for another branch".into(),
                ))
            }
            _ => {
                params.insert("branch".into(), own.clone());
            }
        }
    }
    let csv = match params.get("format").map(String::as_str) {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(
                "invalid_format",
                format!("`format` is `json` or `csv`, not `{other}`"),
            ))
        }
    };
    let today = crate::domain::clock::now_local().date_naive();
    let w = Window::parse(&params, today)
        .map_err(|e| ApiError::BadRequest("invalid_window", e.to_string()))?;
    let db = &app.db;
    if name == "now" {
        let body = query::now(db, w.branch.as_deref())
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        return Ok(Json(body).into_response());
    }
    let (body, list) = match name.as_str() {
        "summary" => (query::summary(db, &w).await, "buckets"),
        "journeys" => {
            let engine = app.engine.clone();
            let order = move |flow: &str| engine.step_order(flow);
            let body = query::journeys(db, &w, &order).await.map(|mut body| {
                // Each journey with the name customers know it by (开户, 取号…).
                for j in body["journeys"].as_array_mut().into_iter().flatten() {
                    let flow = j["flow"].as_str().unwrap_or_default().to_string();
                    j["label"] = serde_json::json!(app.engine.labels().get(&flow));
                }
                body
            });
            (body, "journeys")
        }
        "handoffs" => (query::handoffs(db, &w).await, "by_reason"),
        "sla" => (query::sla(db, &w).await, ""),
        "queue" => (query::queue(db, &w).await, "buckets"),
        "unanswered" => (crate::reports::unanswered::report(db, &w).await, "groups"),
        _ => return Err(ApiError::NotFound("report")),
    };
    let body = body.map_err(|e| ApiError::Internal(e.into()))?;
    if !csv {
        return Ok(Json(body).into_response());
    }
    let rows = csv_rows(&body, list);
    let file = format!(
        "attachment; filename=\"{name}-{}-{}.csv\"",
        w.from_day, w.to_day
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        query::csv(&rows),
    )
        .into_response())
}

/// The rows a report's CSV holds: its list (`buckets`, `journeys`), a map of counts as
/// `name,count` rows, or, for a report without a list, its figures as one row.
fn csv_rows(body: &Value, list: &str) -> Vec<Value> {
    match body.get(list) {
        Some(Value::Array(rows)) => rows.clone(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| serde_json::json!({"name": k, "count": v}))
            .collect(),
        _ => {
            let mut flat = serde_json::Map::new();
            if let Value::Object(map) = body {
                for (k, v) in map.iter().filter(|(k, _)| *k != "window") {
                    match v {
                        Value::Object(inner) => {
                            for (ik, iv) in inner {
                                flat.insert(format!("{k}_{ik}"), iv.clone());
                            }
                        }
                        other => {
                            flat.insert(k.clone(), other.clone());
                        }
                    }
                }
            }
            vec![Value::Object(flat)]
        }
    }
}
