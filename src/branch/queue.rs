//! The queue numbers of a branch in the database: per day and service line (the lines are
//! data, [`super::rules`]), people ahead (numbers not yet called), how fast numbers were
//! called recently, and call-next for tellers (two tellers calling at once never get the
//! same number).

use serde::Serialize;
use sqlx::Row;

use crate::store::{now_ms, Db};

fn today() -> String {
    crate::domain::clock::now_local().date_naive().to_string()
}

/// Issues the next number of `line` today; `None` when five tries in a row lost the race
/// to other nodes (the caller says the queue is busy).
pub async fn issue(
    db: &Db,
    branch: &str,
    line: &str,
    service: &str,
    session_id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let today = today();
    for _ in 0..5 {
        let mut tx = db.begin_write().await?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(number) FROM queue_tickets WHERE branch_id = $1 AND day = $2 AND line = $3",
        )
        .bind(branch)
        .bind(&today)
        .bind(line)
        .fetch_one(&mut **tx)
        .await?;
        let number = last.unwrap_or(0) + 1;
        let inserted = sqlx::query(
            "INSERT INTO queue_tickets (id, branch_id, day, line, number, service, session_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(branch)
        .bind(&today)
        .bind(line)
        .bind(number)
        .bind(service)
        .bind(session_id)
        .bind(now_ms())
        .execute(&mut **tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                return Ok(Some(number));
            }
            Err(e) if is_conflict(&e) => continue, // another node took this number
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn is_conflict(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Numbers of a line not yet called today (before `number`, when given).
pub async fn waiting(
    db: &Db,
    branch: &str,
    line: &str,
    before: Option<i64>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM queue_tickets WHERE branch_id = $1 AND day = $2 AND line = $3 \
         AND called_at IS NULL AND number < $4",
    )
    .bind(branch)
    .bind(today())
    .bind(line)
    .bind(before.unwrap_or(i64::MAX))
    .fetch_one(&db.pool)
    .await
}

/// Minutes per customer in a line: the average gap between the last calls of the past hour
/// (at least three calls), else `fallback`.
pub async fn service_minutes(
    db: &Db,
    branch: &str,
    line: &str,
    fallback: f64,
) -> Result<f64, sqlx::Error> {
    let since = now_ms() - 3_600_000;
    let calls: Vec<i64> = sqlx::query_scalar(
        "SELECT called_at FROM queue_tickets WHERE branch_id = $1 AND line = $2 \
         AND called_at IS NOT NULL AND called_at >= $3 ORDER BY called_at",
    )
    .bind(branch)
    .bind(line)
    .bind(since)
    .fetch_all(&db.pool)
    .await?;
    if calls.len() < 3 {
        return Ok(fallback);
    }
    let span = (calls[calls.len() - 1] - calls[0]) as f64 / 60_000.0;
    Ok((span / (calls.len() - 1) as f64).max(0.5))
}

/// A number called to a counter.
#[derive(Debug, Clone, Serialize)]
pub struct Called {
    pub ticket: String,
    pub line: String,
    pub number: i64,
    pub service: String,
    pub counter: String,
    pub waited_minutes: i64,
}

/// Calls the lowest waiting number of `line` to `counter`; `None` when nobody waits.
pub async fn call_next(
    db: &Db,
    branch: &str,
    line: &str,
    counter: &str,
    staff: &str,
) -> Result<Option<Called>, sqlx::Error> {
    for _ in 0..10 {
        let row = sqlx::query(
            "SELECT id, number, service, created_at FROM queue_tickets WHERE branch_id = $1 \
             AND day = $2 AND line = $3 AND called_at IS NULL ORDER BY number LIMIT 1",
        )
        .bind(branch)
        .bind(today())
        .bind(line)
        .fetch_optional(&db.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.get("id");
        let now = now_ms();
        let mut tx = db.begin_write().await?;
        let n = sqlx::query(
            "UPDATE queue_tickets SET called_at = $2, called_by = $3, counter = $4 \
             WHERE id = $1 AND called_at IS NULL",
        )
        .bind(&id)
        .bind(now)
        .bind(staff)
        .bind(counter)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if n == 1 {
            let number: i64 = row.get("number");
            let created: i64 = row.get("created_at");
            return Ok(Some(Called {
                ticket: format!("{line}{number:03}"),
                line: line.to_string(),
                number,
                service: row.get("service"),
                counter: counter.to_string(),
                waited_minutes: (now - created) / 60_000,
            }));
        }
        // Another teller called it first: try the next one.
    }
    Ok(None)
}

/// The line today: numbers waiting (in order) and the last ones called.
pub async fn board(db: &Db, branch: &str, line: &str) -> Result<serde_json::Value, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT number, service, called_at, counter FROM queue_tickets WHERE branch_id = $1 \
         AND day = $2 AND line = $3 ORDER BY number",
    )
    .bind(branch)
    .bind(today())
    .bind(line)
    .fetch_all(&db.pool)
    .await?;
    let mut waiting = Vec::new();
    let mut called = Vec::new();
    for r in &rows {
        let number: i64 = r.get("number");
        let ticket = format!("{line}{number:03}");
        match r.get::<Option<i64>, _>("called_at") {
            None => waiting.push(serde_json::json!({"ticket": ticket, "service": r.get::<String, _>("service")})),
            Some(at) => called.push(serde_json::json!({"ticket": ticket, "counter": r.get::<Option<String>, _>("counter"), "called_at": at})),
        }
    }
    called.reverse();
    called.truncate(10);
    Ok(serde_json::json!({"line": line, "waiting": waiting, "called": called}))
}
