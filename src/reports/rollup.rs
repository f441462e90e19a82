//! Hourly rollups: what happened in one hour, counted from the raw tables into
//! `report_hours` rows (hour × branch × kiosk × flow × measure → value), with the sums per
//! branch (kiosk `*`) and over the network (branch and kiosk `*`) beside them. An hour is always
//! recomputed whole in one transaction (its rows deleted, then written again), so running
//! it twice, or on two nodes at once, gives the same rows. The job ([`run`]) recomputes the
//! hours since the last one it finished, with the hour before it once more (for turns that
//! committed late), every [`EVERY`]; `concierge reports rebuild --from DATE` recomputes any
//! range ([`rebuild`]).
//!
//! Measures (flow `*` unless said):
//! - `sessions` (started in the hour), `sessions_ended`, `sessions_contained` (ended with a
//!   customer turn and no handoff), `sessions_handed_off`, `turns` (customer lines),
//!   `unanswered:{dont_know,not_understood,out_of_scope,clarified}` (customer lines the
//!   engine could not serve).
//! - per flow: `journey_started`, `journey_completed`, `journey_cancelled`,
//!   `journey_handed_off`, `journey_retry_limit`, `journey_abandoned`, `journey_failed`,
//!   and `step:{label}` (journeys that reached that step: the funnel).
//! - per flow (the intent handed off, `*` when none): `handoff:{target}`,
//!   `handoff_reason:{reason}`.
//! - `queue_issued`, `queue_called`, `queue_wait_ms` (sum of issue → call).
//! - `appointments_booked`, `appointments_cancelled`.
//! - `tickets_created`; `tickets_first_response_in_sla` / `_late` and
//!   `tickets_first_response_ms` (sum); `tickets_resolved_in_sla` / `_late` and
//!   `tickets_resolution_ms` (sum).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::store::{now_ms, Db};

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// How often the job looks.
pub const EVERY: Duration = Duration::from_secs(60);

/// How far back the job's first run reaches (older hours: `reports rebuild`).
const FIRST_RUN_DAYS: i64 = 31;

/// The start of the hour `at` is in.
pub fn hour_of(at: i64) -> i64 {
    at.div_euclid(HOUR_MS) * HOUR_MS
}

/// One rollup row before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub branch: String,
    pub kiosk: String,
    pub flow: String,
    pub measure: String,
    pub value: i64,
}

/// The `(branch, kiosk, flow, measure, value)` rows of the query `sql` over `[$1, $2)`:
/// each row is branch, kiosk, flow, measure suffix, value.
async fn cells(
    db: &Db,
    sql: &str,
    hour: i64,
    prefix: &str,
    out: &mut Vec<Cell>,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(sql)
        .bind(hour)
        .bind(hour + HOUR_MS)
        .fetch_all(&db.pool)
        .await?;
    for r in rows {
        let value: Option<i64> = r.try_get(4)?;
        let value = value.unwrap_or(0);
        if value == 0 {
            continue;
        }
        let suffix: String = r.try_get(3)?;
        out.push(Cell {
            branch: r.try_get(0)?,
            kiosk: r.try_get(1)?,
            flow: r.try_get(2)?,
            measure: format!("{prefix}{suffix}"),
            value,
        });
    }
    Ok(())
}

/// Every measure of the hour starting at `hour`, from the raw tables.
pub async fn compute(db: &Db, hour: i64) -> Result<Vec<Cell>, sqlx::Error> {
    let mut out = Vec::new();
    // (query, measure prefix). Each returns branch, kiosk, flow, suffix, value for rows
    // in [$1, $2). CAST keeps counts and sums BIGINT on both engines.
    let queries: [(&str, &str); 18] = [
        (
            "SELECT branch_id, kiosk_id, '*', 'sessions', CAST(COUNT(*) AS BIGINT) FROM sessions \
             WHERE created_at >= $1 AND created_at < $2 GROUP BY branch_id, kiosk_id",
            "",
        ),
        (
            "SELECT branch_id, kiosk_id, '*', 'sessions_ended', CAST(COUNT(*) AS BIGINT) FROM sessions \
             WHERE ended_at >= $1 AND ended_at < $2 GROUP BY branch_id, kiosk_id",
            "",
        ),
        (
            "SELECT s.branch_id, s.kiosk_id, '*', 'sessions_handed_off', CAST(COUNT(*) AS BIGINT) \
             FROM sessions s WHERE s.ended_at >= $1 AND s.ended_at < $2 \
             AND EXISTS (SELECT 1 FROM handoffs h WHERE h.session_id = s.id) \
             GROUP BY s.branch_id, s.kiosk_id",
            "",
        ),
        (
            "SELECT s.branch_id, s.kiosk_id, '*', 'sessions_contained', CAST(COUNT(*) AS BIGINT) \
             FROM sessions s WHERE s.ended_at >= $1 AND s.ended_at < $2 AND s.turn_count > 0 \
             AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.session_id = s.id) \
             GROUP BY s.branch_id, s.kiosk_id",
            "",
        ),
        (
            "SELECT s.branch_id, s.kiosk_id, '*', 'turns', CAST(COUNT(*) AS BIGINT) \
             FROM transcript_lines l JOIN sessions s ON s.id = l.session_id \
             WHERE l.at >= $1 AND l.at < $2 AND l.speaker = 'customer' \
             GROUP BY s.branch_id, s.kiosk_id",
            "",
        ),
        (
            "SELECT s.branch_id, s.kiosk_id, '*', l.unanswered, CAST(COUNT(*) AS BIGINT) \
             FROM transcript_lines l JOIN sessions s ON s.id = l.session_id \
             WHERE l.at >= $1 AND l.at < $2 AND l.unanswered IS NOT NULL \
             GROUP BY s.branch_id, s.kiosk_id, l.unanswered",
            "unanswered:",
        ),
        (
            "SELECT branch_id, kiosk_id, flow, event, CAST(COUNT(*) AS BIGINT) FROM journey_events \
             WHERE at >= $1 AND at < $2 AND event <> 'step' \
             GROUP BY branch_id, kiosk_id, flow, event",
            "journey_",
        ),
        (
            "SELECT branch_id, kiosk_id, flow, step, CAST(COUNT(*) AS BIGINT) FROM journey_events \
             WHERE at >= $1 AND at < $2 AND event = 'step' \
             GROUP BY branch_id, kiosk_id, flow, step",
            "step:",
        ),
        (
            "SELECT branch_id, kiosk_id, COALESCE(intent, '*'), target, CAST(COUNT(*) AS BIGINT) \
             FROM handoffs WHERE created_at >= $1 AND created_at < $2 \
             GROUP BY branch_id, kiosk_id, COALESCE(intent, '*'), target",
            "handoff:",
        ),
        (
            "SELECT branch_id, kiosk_id, COALESCE(intent, '*'), reason, CAST(COUNT(*) AS BIGINT) \
             FROM handoffs WHERE created_at >= $1 AND created_at < $2 \
             GROUP BY branch_id, kiosk_id, COALESCE(intent, '*'), reason",
            "handoff_reason:",
        ),
        (
            "SELECT q.branch_id, COALESCE(s.kiosk_id, '-'), '*', 'queue_issued', CAST(COUNT(*) AS BIGINT) \
             FROM queue_tickets q LEFT JOIN sessions s ON s.id = q.session_id \
             WHERE q.created_at >= $1 AND q.created_at < $2 \
             GROUP BY q.branch_id, COALESCE(s.kiosk_id, '-')",
            "",
        ),
        (
            "SELECT q.branch_id, COALESCE(s.kiosk_id, '-'), '*', 'queue_called', CAST(COUNT(*) AS BIGINT) \
             FROM queue_tickets q LEFT JOIN sessions s ON s.id = q.session_id \
             WHERE q.called_at >= $1 AND q.called_at < $2 \
             GROUP BY q.branch_id, COALESCE(s.kiosk_id, '-')",
            "",
        ),
        (
            "SELECT q.branch_id, COALESCE(s.kiosk_id, '-'), '*', 'queue_wait_ms', \
             CAST(SUM(q.called_at - q.created_at) AS BIGINT) \
             FROM queue_tickets q LEFT JOIN sessions s ON s.id = q.session_id \
             WHERE q.called_at >= $1 AND q.called_at < $2 \
             GROUP BY q.branch_id, COALESCE(s.kiosk_id, '-')",
            "",
        ),
        (
            "SELECT a.branch_id, COALESCE(s.kiosk_id, '-'), '*', 'appointments_booked', CAST(COUNT(*) AS BIGINT) \
             FROM appointments a LEFT JOIN sessions s ON s.id = a.session_id \
             WHERE a.created_at >= $1 AND a.created_at < $2 \
             GROUP BY a.branch_id, COALESCE(s.kiosk_id, '-')",
            "",
        ),
        (
            "SELECT a.branch_id, COALESCE(s.kiosk_id, '-'), '*', 'appointments_cancelled', CAST(COUNT(*) AS BIGINT) \
             FROM appointments a LEFT JOIN sessions s ON s.id = a.session_id \
             WHERE a.cancelled_at >= $1 AND a.cancelled_at < $2 \
             GROUP BY a.branch_id, COALESCE(s.kiosk_id, '-')",
            "",
        ),
        (
            "SELECT branch_id, COALESCE(kiosk_id, '-'), '*', 'tickets_created', CAST(COUNT(*) AS BIGINT) \
             FROM tickets WHERE created_at >= $1 AND created_at < $2 \
             GROUP BY branch_id, COALESCE(kiosk_id, '-')",
            "",
        ),
        (
            "SELECT branch_id, COALESCE(kiosk_id, '-'), '*', \
             CASE WHEN first_response_due IS NULL OR first_response_at <= first_response_due \
             THEN 'first_response_in_sla' ELSE 'first_response_late' END, CAST(COUNT(*) AS BIGINT) \
             FROM tickets WHERE first_response_at >= $1 AND first_response_at < $2 \
             GROUP BY branch_id, COALESCE(kiosk_id, '-'), \
             CASE WHEN first_response_due IS NULL OR first_response_at <= first_response_due \
             THEN 'first_response_in_sla' ELSE 'first_response_late' END",
            "tickets_",
        ),
        (
            "SELECT branch_id, COALESCE(kiosk_id, '-'), '*', \
             CASE WHEN resolution_due IS NULL OR resolved_at <= resolution_due \
             THEN 'resolved_in_sla' ELSE 'resolved_late' END, CAST(COUNT(*) AS BIGINT) \
             FROM tickets WHERE resolved_at >= $1 AND resolved_at < $2 \
             GROUP BY branch_id, COALESCE(kiosk_id, '-'), \
             CASE WHEN resolution_due IS NULL OR resolved_at <= resolution_due \
             THEN 'resolved_in_sla' ELSE 'resolved_late' END",
            "tickets_",
        ),
    ];
    for (sql, prefix) in queries {
        cells(db, sql, hour, prefix, &mut out).await?;
    }
    for (column, start, measure) in [
        (
            "first_response_at",
            "created_at",
            "tickets_first_response_ms",
        ),
        ("resolved_at", "created_at", "tickets_resolution_ms"),
    ] {
        let sql = format!(
            "SELECT branch_id, COALESCE(kiosk_id, '-'), '*', '{measure}', \
             CAST(SUM({column} - {start}) AS BIGINT) FROM tickets \
             WHERE {column} >= $1 AND {column} < $2 GROUP BY branch_id, COALESCE(kiosk_id, '-')"
        );
        cells(db, &sql, hour, "", &mut out).await?;
    }
    Ok(out)
}

/// `cells` (per branch and kiosk) with their sums per branch (kiosk [`ALL`]) and over the
/// whole network (branch and kiosk [`ALL`]), so a report of a branch or of every branch
/// reads a few rows an hour instead of one per kiosk.
pub fn with_totals(cells: Vec<Cell>) -> Vec<Cell> {
    let mut sums: BTreeMap<(String, String, String, String), i64> = BTreeMap::new();
    for c in &cells {
        for (branch, kiosk) in [(c.branch.as_str(), ALL), (ALL, ALL)] {
            *sums
                .entry((
                    branch.to_string(),
                    kiosk.to_string(),
                    c.flow.clone(),
                    c.measure.clone(),
                ))
                .or_default() += c.value;
        }
    }
    let mut out = cells;
    out.extend(
        sums.into_iter()
            .map(|((branch, kiosk, flow, measure), value)| Cell {
                branch,
                kiosk,
                flow,
                measure,
                value,
            }),
    );
    out
}

/// The branch and kiosk of the sums over every branch or kiosk (never an id: ids are
/// letters, digits, `-` and `_`).
pub const ALL: &str = "*";

/// Rows per `INSERT` statement when an hour is written.
const ROWS_PER_INSERT: usize = 100;

/// Recomputes the hour starting at `hour` and replaces its rows. Returns how many rows it
/// wrote.
pub async fn roll_up_hour(db: &Db, hour: i64) -> Result<usize, sqlx::Error> {
    let cells = with_totals(compute(db, hour).await?);
    let mut tx = db.begin_write().await?;
    // Two nodes rolling up at once take turns here (a row lock on PostgreSQL; SQLite has
    // one writer anyway), so an hour is never half one node's and half the other's.
    sqlx::query("UPDATE report_state SET done_until = done_until WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM report_hours WHERE hour = $1")
        .bind(hour)
        .execute(&mut **tx)
        .await?;
    for chunk in cells.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = 2 + 5 * i;
                format!("($1, ${p}, ${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4)
            })
            .collect();
        let sql = format!(
            "INSERT INTO report_hours (hour, branch_id, kiosk_id, flow, measure, value) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(hour);
        for c in chunk {
            q = q
                .bind(&c.branch)
                .bind(&c.kiosk)
                .bind(&c.flow)
                .bind(&c.measure)
                .bind(c.value);
        }
        q.execute(&mut **tx).await?;
    }
    tx.commit().await?;
    Ok(cells.len())
}

/// Recomputes every hour from the one holding `from` to the one holding `to`. Returns the
/// number of hours and rows.
pub async fn rebuild(db: &Db, from: i64, to: i64) -> Result<(usize, usize), sqlx::Error> {
    let (mut hours, mut rows) = (0, 0);
    let mut h = hour_of(from);
    while h <= hour_of(to) {
        rows += roll_up_hour(db, h).await?;
        hours += 1;
        h += HOUR_MS;
    }
    Ok((hours, rows))
}

/// One pass of the job at `now`: recomputes the hours since the last pass finished (the
/// one before it too, for late commits), then records how far it got. Returns the hours
/// recomputed.
pub async fn catch_up(db: &Db, now: i64) -> Result<usize, sqlx::Error> {
    let done_until: i64 = sqlx::query_scalar("SELECT done_until FROM report_state WHERE id = 1")
        .fetch_one(&db.pool)
        .await?;
    let current = hour_of(now);
    let start = if done_until == 0 {
        let first: Option<i64> = sqlx::query_scalar("SELECT MIN(created_at) FROM sessions")
            .fetch_one(&db.pool)
            .await?;
        hour_of(
            first
                .unwrap_or(now)
                .max(now - FIRST_RUN_DAYS * 24 * HOUR_MS),
        )
    } else {
        (done_until - HOUR_MS).max(current - FIRST_RUN_DAYS * 24 * HOUR_MS)
    };
    let (hours, _) = rebuild(db, start, now).await?;
    sqlx::query("UPDATE report_state SET done_until = $1 WHERE id = 1 AND done_until < $1")
        .bind(current)
        .execute(&db.pool)
        .await?;
    Ok(hours)
}

/// The rollup job: a pass at start, then every [`EVERY`], until `stop`.
pub fn run(db: Db, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = catch_up(&db, now_ms()).await {
                tracing::warn!(error = %e, "report rollup failed; trying again later");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(branch: &str, kiosk: &str, measure: &str, value: i64) -> Cell {
        Cell {
            branch: branch.into(),
            kiosk: kiosk.into(),
            flow: "*".into(),
            measure: measure.into(),
            value,
        }
    }

    #[test]
    fn totals_are_kept_per_branch_and_over_the_network() {
        let cells = with_totals(vec![
            cell("B001", "K1", "sessions", 2),
            cell("B001", "K2", "sessions", 3),
            cell("B002", "K3", "sessions", 4),
        ]);
        let get = |b: &str, k: &str| {
            cells
                .iter()
                .find(|c| c.branch == b && c.kiosk == k)
                .map(|c| c.value)
        };
        assert_eq!(get("B001", ALL), Some(5));
        assert_eq!(get("B002", ALL), Some(4));
        assert_eq!(get(ALL, ALL), Some(9));
        assert_eq!(get("B001", "K1"), Some(2));
        assert_eq!(cells.len(), 3 + 2 + 1);
    }

    #[test]
    fn hours_start_on_the_hour() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_MS - 1), 0);
        assert_eq!(hour_of(HOUR_MS), HOUR_MS);
        assert_eq!(hour_of(-1), -HOUR_MS);
    }
}
