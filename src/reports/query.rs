//! Reading the rollups for the reports API: a [`Window`] (from, to, branch, kiosk, hourly
//! or daily buckets in branch time) read from `report_hours` — never from the raw tables:
//! a branch's or the network's report reads the sums the rollup keeps for it, one row per
//! hour, flow and measure, however many kiosks and sessions — then shaped into the figures
//! each report shows, and into CSV.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as Days, NaiveDate, TimeZone};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::Row;

use super::rollup::ALL;
use crate::store::Db;

/// The longest window a report covers.
pub const MAX_DAYS: i64 = 400;

/// Hourly buckets only up to this many days (at most 744 buckets).
pub const MAX_HOURLY_DAYS: i64 = 31;

/// How buckets are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Hour,
    Day,
}

/// What a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// UTC milliseconds, the start of the first day (branch time).
    pub from: i64,
    /// UTC milliseconds, the end of the last day (exclusive).
    pub to: i64,
    pub from_day: NaiveDate,
    pub to_day: NaiveDate,
    pub branch: Option<String>,
    pub kiosk: Option<String>,
    pub group_by: GroupBy,
}

/// Why a window is refused (`400 invalid_window` with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WindowError(pub String);

/// A branch or kiosk id as a filter: 1–40 letters, digits, `-` and `_`.
fn id_filter(what: &str, v: Option<&str>) -> Result<Option<String>, WindowError> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s)
            if s.len() <= 40
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Ok(Some(s.to_string()))
        }
        Some(_) => Err(WindowError(format!(
            "`{what}` is 1–40 letters, digits, `-` or `_`"
        ))),
    }
}

/// UTC milliseconds of the start of `day` in branch time.
fn day_start(day: NaiveDate) -> i64 {
    let zone = crate::domain::clock::branch_zone();
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    zone.from_local_datetime(&midnight)
        .earliest()
        .map(|d| d.timestamp_millis())
        .unwrap_or_else(|| midnight.and_utc().timestamp_millis())
}

impl Window {
    /// From the query parameters: `from` and `to` are days (`YYYY-MM-DD`, branch time, both
    /// included; default today), `branch`, `kiosk`, `group_by` (`day`, the default, or
    /// `hour`). `today` is the branch's date now.
    pub fn parse(
        params: &BTreeMap<String, String>,
        today: NaiveDate,
    ) -> Result<Window, WindowError> {
        let day = |key: &str| -> Result<NaiveDate, WindowError> {
            match params.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
                None => Ok(today),
                Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                    WindowError(format!("`{key}` is a date written YYYY-MM-DD, not `{s}`"))
                }),
            }
        };
        let (from_day, to_day) = (day("from")?, day("to")?);
        if to_day < from_day {
            return Err(WindowError("`to` is before `from`".into()));
        }
        let days = (to_day - from_day).num_days() + 1;
        if days > MAX_DAYS {
            return Err(WindowError(format!(
                "a report covers at most {MAX_DAYS} days"
            )));
        }
        let group_by = match params.get("group_by").map(String::as_str) {
            None | Some("") | Some("day") => GroupBy::Day,
            Some("hour") if days <= MAX_HOURLY_DAYS => GroupBy::Hour,
            Some("hour") => {
                return Err(WindowError(format!(
                    "hourly buckets cover at most {MAX_HOURLY_DAYS} days"
                )))
            }
            Some(other) => {
                return Err(WindowError(format!(
                    "`group_by` is `hour` or `day`, not `{other}`"
                )))
            }
        };
        Ok(Window {
            from: day_start(from_day),
            to: day_start(to_day + Days::days(1)),
            from_day,
            to_day,
            branch: id_filter("branch", params.get("branch").map(String::as_str))?,
            kiosk: id_filter("kiosk", params.get("kiosk").map(String::as_str))?,
            group_by,
        })
    }

    /// The start (UTC milliseconds) of the bucket holding the hour `hour`.
    fn bucket_of(&self, hour: i64) -> i64 {
        match self.group_by {
            GroupBy::Hour => hour,
            GroupBy::Day => {
                let zone = crate::domain::clock::branch_zone();
                let day = DateTime::from_timestamp_millis(hour)
                    .map(|d| d.with_timezone(&zone).date_naive())
                    .unwrap_or(self.from_day);
                day_start(day)
            }
        }
    }

    /// The window as reports echo it.
    pub fn describe(&self) -> Value {
        json!({
            "from": self.from_day.to_string(),
            "to": self.to_day.to_string(),
            "branch": self.branch,
            "kiosk": self.kiosk,
            "group_by": self.group_by,
            "time_zone": crate::domain::clock::branch_zone().name(),
        })
    }
}

/// A bucket's label in branch time: `2026-12-08` or `2026-12-08 14:00`.
fn label(group_by: GroupBy, start: i64) -> String {
    let zone = crate::domain::clock::branch_zone();
    let Some(t) = DateTime::from_timestamp_millis(start).map(|d| d.with_timezone(&zone)) else {
        return start.to_string();
    };
    match group_by {
        GroupBy::Day => t.format("%Y-%m-%d").to_string(),
        GroupBy::Hour => t.format("%Y-%m-%d %H:00").to_string(),
    }
}

/// Sums of one window: (hour, flow, measure) → value.
pub struct Sums {
    rows: Vec<(i64, String, String, i64)>,
}

impl Sums {
    /// Reads the window's sums, summed over branches and kiosks in SQL.
    pub async fn read(db: &Db, w: &Window, measure_like: &str) -> Result<Sums, sqlx::Error> {
        // A kiosk's own rows; otherwise the branch's sums (kiosk `*`) or the network's
        // (branch and kiosk `*`), which the rollup writes beside them.
        let (sql, branch, kiosk) = match &w.kiosk {
            Some(k) => (
                "SELECT hour, flow, measure, CAST(SUM(value) AS BIGINT) AS v FROM report_hours \
                 WHERE kiosk_id = $4 AND hour >= $1 AND hour < $2 AND branch_id <> '*' \
                 AND ($3 IS NULL OR branch_id = $3) AND measure LIKE $5 \
                 GROUP BY hour, flow, measure",
                w.branch.clone(),
                k.clone(),
            ),
            None => (
                "SELECT hour, flow, measure, value AS v FROM report_hours \
                 WHERE branch_id = $3 AND kiosk_id = $4 AND hour >= $1 AND hour < $2 \
                 AND measure LIKE $5",
                Some(w.branch.clone().unwrap_or_else(|| ALL.to_string())),
                ALL.to_string(),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(w.from)
            .bind(w.to)
            .bind(branch)
            .bind(kiosk)
            .bind(measure_like)
            .fetch_all(&db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)?,
                    r.try_get::<String, _>(1)?,
                    r.try_get::<String, _>(2)?,
                    r.try_get::<i64, _>(3)?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map(|rows| Sums { rows })
    }

    /// measure → total over the window (every flow).
    fn totals(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for (_, _, m, v) in &self.rows {
            *out.entry(m.clone()).or_default() += v;
        }
        out
    }

    /// flow → measure → total.
    fn by_flow(&self) -> BTreeMap<String, BTreeMap<String, i64>> {
        let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for (_, f, m, v) in &self.rows {
            *out.entry(f.clone())
                .or_default()
                .entry(m.clone())
                .or_default() += v;
        }
        out
    }

    /// bucket start → measure → total.
    fn by_bucket(&self, w: &Window) -> BTreeMap<i64, BTreeMap<String, i64>> {
        let mut out: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
        for (h, _, m, v) in &self.rows {
            *out.entry(w.bucket_of(*h))
                .or_default()
                .entry(m.clone())
                .or_default() += v;
        }
        out
    }
}

/// `part / whole`, rounded to 4 places; `null` when `whole` is 0.
fn ratio(part: i64, whole: i64) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!(((part as f64 / whole as f64) * 10_000.0).round() / 10_000.0)
    }
}

/// `sum_ms / n` in minutes, to 1 place; `null` when `n` is 0.
fn minutes(sum_ms: i64, n: i64) -> Value {
    if n == 0 {
        Value::Null
    } else {
        json!(((sum_ms as f64 / n as f64) / 60_000.0 * 10.0).round() / 10.0)
    }
}

/// The headline figures of a set of measure totals.
fn headline(t: &BTreeMap<String, i64>) -> Map<String, Value> {
    let g = |k: &str| t.get(k).copied().unwrap_or(0);
    let first = g("tickets_first_response_in_sla") + g("tickets_first_response_late");
    let resolved = g("tickets_resolved_in_sla") + g("tickets_resolved_late");
    let handoffs: i64 = t
        .iter()
        .filter(|(k, _)| k.starts_with("handoff:"))
        .map(|(_, v)| v)
        .sum();
    let unanswered: i64 = t
        .iter()
        .filter(|(k, _)| k.starts_with("unanswered:"))
        .map(|(_, v)| v)
        .sum();
    let mut m = Map::new();
    for (k, v) in [
        ("sessions", g("sessions")),
        ("turns", g("turns")),
        ("sessions_ended", g("sessions_ended")),
        ("contained", g("sessions_contained")),
        ("handed_off", g("sessions_handed_off")),
        ("handoffs", handoffs),
        ("journeys_started", g("journey_started")),
        ("journeys_completed", g("journey_completed")),
        ("queue_issued", g("queue_issued")),
        ("queue_called", g("queue_called")),
        ("appointments_booked", g("appointments_booked")),
        ("appointments_cancelled", g("appointments_cancelled")),
        ("tickets_created", g("tickets_created")),
        ("unanswered", unanswered),
        ("dont_know", g("unanswered:dont_know")),
        ("not_understood", g("unanswered:not_understood")),
    ] {
        m.insert(k.into(), json!(v));
    }
    m.insert(
        "containment".into(),
        ratio(g("sessions_contained"), g("sessions_ended")),
    );
    m.insert(
        "handoff_rate".into(),
        ratio(g("sessions_handed_off"), g("sessions_ended")),
    );
    m.insert(
        "journey_completion".into(),
        ratio(g("journey_completed"), g("journey_started")),
    );
    m.insert(
        "queue_wait_minutes".into(),
        minutes(g("queue_wait_ms"), g("queue_called")),
    );
    m.insert(
        "sla_first_response".into(),
        ratio(g("tickets_first_response_in_sla"), first),
    );
    m.insert(
        "sla_resolution".into(),
        ratio(g("tickets_resolved_in_sla"), resolved),
    );
    m
}

/// `GET /v1/reports/summary`: headline figures for the window and per bucket.
pub async fn summary(db: &Db, w: &Window) -> Result<Value, sqlx::Error> {
    let sums = Sums::read(db, w, "%").await?;
    let buckets: Vec<Value> = sums
        .by_bucket(w)
        .into_iter()
        .map(|(start, t)| {
            let mut m = headline(&t);
            m.insert("bucket".into(), json!(label(w.group_by, start)));
            m.insert("bucket_start_ms".into(), json!(start));
            Value::Object(m)
        })
        .collect();
    Ok(json!({
        "window": w.describe(),
        "totals": Value::Object(headline(&sums.totals())),
        "buckets": buckets,
    }))
}

/// How journeys end, in the order reports show them.
const ENDINGS: [&str; 6] = [
    "completed",
    "cancelled",
    "handed_off",
    "retry_limit",
    "abandoned",
    "failed",
];

/// `GET /v1/reports/journeys`: per journey, how often it started and how it ended, and the
/// funnel — how many reached each step, in the flow's own order (`order`: a flow's step
/// labels in order, [`crate::dialog::Engine::step_order`]; steps it does not name go last).
pub async fn journeys(
    db: &Db,
    w: &Window,
    order: &(dyn Fn(&str) -> Vec<String> + Sync),
) -> Result<Value, sqlx::Error> {
    let journeys = Sums::read(db, w, "journey_%").await?.by_flow();
    let steps = Sums::read(db, w, "step:%").await?.by_flow();
    let mut out = Vec::new();
    for (flow, t) in &journeys {
        let g = |k: &str| t.get(&format!("journey_{k}")).copied().unwrap_or(0);
        let started = g("started");
        let ended: i64 = ENDINGS.iter().map(|e| g(e)).sum();
        let mut row = Map::new();
        row.insert("flow".into(), json!(flow));
        row.insert("started".into(), json!(started));
        for e in ENDINGS {
            row.insert(e.into(), json!(g(e)));
        }
        // Started in the window and not (yet) ended in it: left mid-way, or still going.
        row.insert("unfinished".into(), json!((started - ended).max(0)));
        row.insert("completion".into(), ratio(g("completed"), started));
        let reached = steps.get(flow).cloned().unwrap_or_default();
        let order = order(flow);
        let mut funnel: Vec<(usize, String, i64)> = reached
            .iter()
            .map(|(m, n)| {
                let step = m.trim_start_matches("step:").to_string();
                let at = order.iter().position(|s| *s == step).unwrap_or(usize::MAX);
                (at, step, *n)
            })
            .collect();
        funnel.sort();
        row.insert(
            "funnel".into(),
            json!(funnel
                .into_iter()
                .map(|(_, step, n)| json!({"step": step, "reached": n}))
                .collect::<Vec<_>>()),
        );
        out.push((started, Value::Object(row)));
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.0));
    Ok(json!({
        "window": w.describe(),
        "journeys": out.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    }))
}

/// `GET /v1/reports/handoffs`: handoffs by target, by reason and by the journey they
/// interrupted.
pub async fn handoffs(db: &Db, w: &Window) -> Result<Value, sqlx::Error> {
    let sums = Sums::read(db, w, "handoff%").await?;
    let mut by_target = BTreeMap::new();
    let mut by_reason = BTreeMap::new();
    let mut by_flow: BTreeMap<String, i64> = BTreeMap::new();
    for (flow, t) in sums.by_flow() {
        for (m, v) in t {
            if let Some(target) = m.strip_prefix("handoff:") {
                *by_target.entry(target.to_string()).or_insert(0) += v;
                *by_flow.entry(flow.clone()).or_insert(0) += v;
            } else if let Some(reason) = m.strip_prefix("handoff_reason:") {
                *by_reason.entry(reason.to_string()).or_insert(0) += v;
            }
        }
    }
    let total: i64 = by_target.values().sum();
    Ok(json!({
        "window": w.describe(),
        "total": total,
        "by_target": by_target,
        "by_reason": by_reason,
        "by_journey": by_flow,
    }))
}

/// `GET /v1/reports/sla`: tickets created, first responses and resolutions within their SLA.
pub async fn sla(db: &Db, w: &Window) -> Result<Value, sqlx::Error> {
    let t = Sums::read(db, w, "tickets_%").await?.totals();
    let g = |k: &str| t.get(k).copied().unwrap_or(0);
    let stage = |name: &str, ms: &str| {
        let (ok, late) = (
            g(&format!("tickets_{name}_in_sla")),
            g(&format!("tickets_{name}_late")),
        );
        json!({
            "in_sla": ok,
            "late": late,
            "attainment": ratio(ok, ok + late),
            "average_minutes": minutes(g(ms), ok + late),
        })
    };
    Ok(json!({
        "window": w.describe(),
        "tickets_created": g("tickets_created"),
        "first_response": stage("first_response", "tickets_first_response_ms"),
        "resolution": stage("resolved", "tickets_resolution_ms"),
    }))
}

/// `GET /v1/reports/queue`: queue numbers issued and called, the wait actually had, and
/// appointments booked and cancelled.
pub async fn queue(db: &Db, w: &Window) -> Result<Value, sqlx::Error> {
    let sums = Sums::read(db, w, "%").await?;
    let per = |t: &BTreeMap<String, i64>| {
        let g = |k: &str| t.get(k).copied().unwrap_or(0);
        json!({
            "issued": g("queue_issued"),
            "called": g("queue_called"),
            "wait_minutes": minutes(g("queue_wait_ms"), g("queue_called")),
            "appointments_booked": g("appointments_booked"),
            "appointments_cancelled": g("appointments_cancelled"),
        })
    };
    let buckets: Vec<Value> = sums
        .by_bucket(w)
        .iter()
        .map(|(start, t)| {
            let mut v = per(t);
            v["bucket"] = json!(label(w.group_by, *start));
            v
        })
        .collect();
    Ok(json!({
        "window": w.describe(),
        "totals": per(&sums.totals()),
        "buckets": buckets,
    }))
}

/// `GET /v1/reports/now`: what the branch (or every branch) looks like this minute, read
/// from the live tables: queue numbers issued today and not yet called, handoffs waiting
/// for a person, open tickets past their SLA warning (at risk) and past a deadline
/// (breached).
pub async fn now(db: &Db, branch: Option<&str>) -> Result<Value, sqlx::Error> {
    let today = crate::domain::clock::now_local().date_naive().to_string();
    let queue_waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM queue_tickets WHERE ($1 IS NULL OR branch_id = $1) \
         AND day = $2 AND called_at IS NULL",
    )
    .bind(branch)
    .bind(&today)
    .fetch_one(&db.pool)
    .await?;
    let open = "state IN ('new', 'assigned', 'in_progress', 'pending_customer')";
    let tickets = |condition: String| async move {
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT COUNT(*) FROM tickets WHERE ($1 IS NULL OR branch_id = $1) AND {condition}"
        ))
        .bind(branch)
        .fetch_one(&db.pool)
        .await
    };
    let handoffs_waiting = tickets("kind LIKE 'handoff%' AND state = 'new'".into()).await?;
    let at_risk = tickets(format!(
        "{open} AND ((warned_response_at IS NOT NULL AND escalated_response_at IS NULL \
         AND first_response_at IS NULL) \
         OR (warned_resolution_at IS NOT NULL AND escalated_resolution_at IS NULL))"
    ))
    .await?;
    let breached = tickets(format!(
        "{open} AND ((escalated_response_at IS NOT NULL AND first_response_at IS NULL) \
         OR escalated_resolution_at IS NOT NULL)"
    ))
    .await?;
    Ok(json!({
        "branch": branch,
        "day": today,
        "queue_waiting": queue_waiting,
        "handoffs_waiting": handoffs_waiting,
        "sla_at_risk": at_risk,
        "sla_breached": breached,
    }))
}

/// A report as CSV: the rows of its list (`buckets`, `journeys`), one column per scalar
/// field in the order of the first row; nested values (a funnel) as JSON text. Fields are
/// quoted when they hold a comma, quote or line break, and a leading `=`, `+`, `-` or `@`
/// is prefixed with `'` so a spreadsheet never runs it as a formula.
pub fn csv(rows: &[Value]) -> String {
    let Some(Value::Object(first)) = rows.first() else {
        return String::new();
    };
    let columns: Vec<&String> = first.keys().collect();
    let cell = |v: Option<&Value>| -> String {
        let raw = match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other @ (Value::Array(_) | Value::Object(_))) => other.to_string(),
            Some(other) => other.to_string(),
        };
        let raw = if raw.starts_with(['=', '+', '-', '@']) {
            format!("'{raw}")
        } else {
            raw
        };
        if raw.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", raw.replace('"', "\"\""))
        } else {
            raw
        }
    };
    let mut out = columns
        .iter()
        .map(|c| cell(Some(&Value::String((*c).clone()))))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    for row in rows {
        let line: Vec<String> = columns.iter().map(|c| cell(row.get(c.as_str()))).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::rollup::HOUR_MS;
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 8).unwrap()
    }

    #[test]
    fn a_window_defaults_to_today_by_day_in_branch_time() {
        let w = Window::parse(&params(&[]), today()).unwrap();
        assert_eq!((w.from_day, w.to_day), (today(), today()));
        assert_eq!(w.group_by, GroupBy::Day);
        assert_eq!(w.to - w.from, 24 * HOUR_MS);
        // Shanghai midnight is 16:00 UTC the day before.
        assert_eq!(
            DateTime::from_timestamp_millis(w.from)
                .unwrap()
                .to_rfc3339(),
            "2026-12-07T16:00:00+00:00"
        );
    }

    #[test]
    fn bad_windows_are_refused_with_the_reason() {
        for (p, needle) in [
            (vec![("from", "2026-13-01")], "YYYY-MM-DD"),
            (vec![("from", "2026-12-09"), ("to", "2026-12-08")], "before"),
            (
                vec![("from", "2024-01-01"), ("to", "2026-12-08")],
                "at most",
            ),
            (vec![("from", "2026-10-01"), ("group_by", "hour")], "hourly"),
            (vec![("group_by", "week")], "`group_by`"),
            (vec![("branch", "B001'; DROP")], "`branch`"),
            (vec![("kiosk", &"K".repeat(41))], "`kiosk`"),
        ] {
            let err = Window::parse(&params(&p), today()).unwrap_err();
            assert!(err.0.contains(needle), "{p:?}: {err}");
        }
    }

    #[test]
    fn csv_quotes_what_it_must_and_never_writes_a_formula() {
        let rows = vec![
            json!({"bucket": "2026-12-08", "flow": "a,b", "note": "=SUM(A1)", "n": 3}),
            json!({"bucket": "2026-12-09", "flow": "say \"hi\"", "note": null, "n": 4}),
        ];
        let text = csv(&rows);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "bucket,flow,n,note");
        assert_eq!(lines[1], "2026-12-08,\"a,b\",3,'=SUM(A1)");
        assert_eq!(lines[2], "2026-12-09,\"say \"\"hi\"\"\",4,");
        assert_eq!(csv(&[]), "");
    }

    #[test]
    fn ratios_and_minutes_are_null_without_a_base() {
        assert_eq!(ratio(1, 0), Value::Null);
        assert_eq!(ratio(2, 3), json!(0.6667));
        assert_eq!(minutes(0, 0), Value::Null);
        assert_eq!(minutes(90_000, 1), json!(1.5));
    }
}
