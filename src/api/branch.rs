//! The branch floor for tellers: the day's appointments and the queue lines, with
//! call-next. A person scoped to a branch sees only theirs.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Staff;
use super::json::ApiJson;
use crate::access::staff::StaffUser;
use crate::access::Role;
use crate::error::ApiError;
use crate::state::AppState;

const FLOOR: &[Role] = &[Role::Teller, Role::RemoteExpert, Role::Admin];

/// The branch a request is about: the person's own, or the one asked for when they serve
/// every branch.
fn branch_of(user: &StaffUser, asked: Option<&str>) -> Result<String, ApiError> {
    match (user.branch.as_deref(), asked) {
        (Some(own), Some(b)) if own != b => Err(ApiError::Refused(
            "other_branch",
            "you work for another branch".into(),
        )),
        (Some(own), _) => Ok(own.to_string()),
        (None, Some(b)) if !b.is_empty() && b.len() <= 32 => Ok(b.to_string()),
        (None, _) => Err(ApiError::BadRequest(
            "missing_branch",
            "give branch=…".into(),
        )),
    }
}

#[derive(Deserialize)]
pub struct DayParams {
    branch: Option<String>,
    /// `YYYY-MM-DD`; default today (branch time).
    day: Option<String>,
}

/// Roles: teller, remote expert, admin. The appointments of a day (phones masked).
pub async fn appointments(
    State(app): State<AppState>,
    staff: Staff,
    Query(p): Query<DayParams>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(FLOOR)?;
    let branch = branch_of(user, p.branch.as_deref())?;
    let day = match p.day {
        Some(d) => chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
            .map_err(|_| ApiError::BadRequest("invalid_day", "day is YYYY-MM-DD".into()))?,
        None => crate::domain::clock::now_local().date_naive(),
    };
    let list = app
        .branch
        .appointments_on(&branch, &day.to_string())
        .await?;
    Ok(Json(
        json!({"branch": branch, "day": day.to_string(), "appointments": list}),
    ))
}

#[derive(Deserialize)]
pub struct LineParams {
    branch: Option<String>,
    line: Option<String>,
}

/// A line of the branch file (default: the first).
fn line_of<'a>(app: &'a AppState, line: Option<&str>) -> Result<&'a str, ApiError> {
    let mut lines = app.branch.rules.line_names();
    let found = match line {
        None => lines.next(),
        Some(l) => lines.find(|x| *x == l),
    };
    found.ok_or_else(|| {
        let names: Vec<&str> = app.branch.rules.line_names().collect();
        ApiError::BadRequest(
            "invalid_line",
            format!("line is one of {}", names.join(", ")),
        )
    })
}

/// Roles: teller, remote expert, admin. A line today: waiting numbers, the last called,
/// and the current pace (minutes per customer).
pub async fn queue(
    State(app): State<AppState>,
    staff: Staff,
    Query(p): Query<LineParams>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(FLOOR)?;
    let branch = branch_of(user, p.branch.as_deref())?;
    let line = line_of(&app, p.line.as_deref())?;
    let mut board = app.branch.board(&branch, line).await?;
    board["minutes_per_customer"] = json!(app.branch.pace(&branch, line).await?);
    board["branch"] = json!(branch);
    Ok(Json(board))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    #[serde(default)]
    branch: Option<String>,
    line: String,
    /// The counter the customer should go to ("3号窗口").
    counter: String,
}

/// Roles: teller, admin. Calls the next waiting number of a line to a counter (`called`
/// is null when nobody waits). Two tellers calling at once get different numbers.
pub async fn call_next(
    State(app): State<AppState>,
    staff: Staff,
    ApiJson(body): ApiJson<CallBody>,
) -> Result<Json<Value>, ApiError> {
    let user = staff.require(&[Role::Teller, Role::Admin])?;
    let branch = branch_of(user, body.branch.as_deref())?;
    let line = line_of(&app, Some(&body.line))?;
    let counter = body.counter.trim();
    if counter.is_empty() || counter.chars().count() > 20 {
        return Err(ApiError::BadRequest(
            "invalid_counter",
            "counter has 1 to 20 characters".into(),
        ));
    }
    let called = app
        .branch
        .call_next(&branch, line, counter, &user.name)
        .await?;
    Ok(Json(json!({"called": called})))
}
