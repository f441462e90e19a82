//! `concierge bench tickets`: tickets at a branch network's scale. Times ticket creation
//! through the ordinary path (`Tickets::open`: number, row, history event, audit link,
//! outbox rows, with a handoff's case packet), one at a time; then fills the table with
//! open tickets (bulk rows written directly, without history: the watcher reads only the
//! ticket rows) and times the SLA watcher's pass — with some tickets due, and in the steady
//! state when none is — beside a read of every open ticket, which is what the watcher did
//! before `sla_next_at` ([`super::sla`]).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::json;

use super::rules::Rules;
use super::{sla, Tickets};
use crate::branch::rules::BranchRules;
use crate::config::Settings;
use crate::datafile::as_one_error;
use crate::store::scratch::{Medium, Scratch};
use crate::store::{now_ms, Db};

/// The flags of `concierge bench tickets`.
#[derive(Debug, Clone, clap::Args)]
pub struct TicketBenchArgs {
    /// Tickets opened one at a time through the ordinary path, each timed.
    #[arg(long, default_value_t = 2_000)]
    pub creates: usize,
    /// Open tickets in the table when the SLA watcher is timed (the created ones included).
    #[arg(long, default_value_t = 100_000)]
    pub open: usize,
    /// How many of them are due a warning at the first timed pass.
    #[arg(long, default_value_t = 100)]
    pub due: usize,
    /// Database to fill (default: a new SQLite file in the system's temporary folder,
    /// removed after). Use an empty database: the bench writes tickets into it.
    #[arg(long, value_name = "URL")]
    pub bench_database_url: Option<String>,
}

/// Runs the benchmark on `--bench-database-url` or a temporary SQLite file.
pub async fn run(settings: Settings, args: TicketBenchArgs) -> anyhow::Result<ExitCode> {
    // On disk, not in /dev/shm: a ticket's commit is a synced write, as in a branch.
    let db = Scratch::new(args.bench_database_url.as_deref(), "ticket", Medium::Disk)?;
    bench(&settings, &args, &db.url).await
}

/// Milliseconds of a duration, for printing.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

/// A handoff's case packet as the kiosk writes it: reason, intent, masked slots, risk
/// flags and a dozen masked transcript lines (about 1.5 KB).
fn case_packet(i: usize) -> serde_json::Value {
    let transcript: Vec<serde_json::Value> = (0..12)
        .map(|n| {
            if n % 2 == 0 {
                json!({"speaker": "customer", "text": format!("我的卡尾号****{:04}好像被吞了，第{n}次说", i % 10_000)})
            } else {
                json!({"speaker": "bot", "text": "好的，我来为您转接柜员，请稍候。您的卡号已为您记下。"})
            }
        })
        .collect();
    json!({
        "reason": "asked",
        "intent": "card.report_loss",
        "slots": {"card_tail": "****0122", "phone": "138****5678"},
        "risk": [],
        "transcript": transcript,
    })
}

async fn bench(settings: &Settings, args: &TicketBenchArgs, url: &str) -> anyhow::Result<ExitCode> {
    let engine = if url.starts_with("sqlite") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let db = Db::connect(&SecretString::from(url.to_string()), 8).await?;
    db.migrate().await?;
    let rules = Rules::load(&settings.tickets.rules_file).map_err(as_one_error)?;
    let branch = BranchRules::load(&settings.branch.rules_file).map_err(as_one_error)?;
    let tickets = Tickets::new(
        db.clone(),
        settings.tickets.clone(),
        rules,
        branch.calendar.clone(),
        &settings.outbox,
    );
    println!(
        "database {engine}; {} webhook(s) get an outbox row per event",
        settings.outbox.webhooks.len()
    );

    // 1. Creation, one at a time, through the ordinary path.
    let mut took = Vec::with_capacity(args.creates);
    let started = Instant::now();
    for i in 0..args.creates {
        let t0 = Instant::now();
        tickets
            .open(
                "handoff",
                "B001",
                Some("K-BENCH"),
                Some(&format!("bench-session-{i}")),
                Some("138****5678"),
                case_packet(i),
                &[],
                "kiosk",
            )
            .await?;
        took.push(t0.elapsed());
    }
    let wall = started.elapsed();
    took.sort();
    if !took.is_empty() {
        println!(
            "create ({} tickets with a case packet, one at a time): {:.0}/s; p50 {:.2} / p95 {:.2} / p99 {:.2} / max {:.2} ms",
            took.len(),
            took.len() as f64 / wall.as_secs_f64(),
            ms(quantile(&took, 0.50)),
            ms(quantile(&took, 0.95)),
            ms(quantile(&took, 0.99)),
            ms(*took.last().unwrap_or(&Duration::ZERO)),
        );
    }

    // 2. Fill the table with open tickets, `due` of them past their warning moment.
    let now = now_ms();
    let fill = args.open.saturating_sub(args.creates);
    let started = Instant::now();
    fill_open(&db, fill, args.due.min(fill), now).await?;
    println!(
        "filled {fill} more open tickets directly in {:.1} s ({} due a warning now)",
        started.elapsed().as_secs_f64(),
        args.due.min(fill)
    );
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tickets WHERE state IN ('new', 'assigned', 'in_progress', 'pending_customer')",
    )
    .fetch_one(&db.pool)
    .await?;

    // 3. The watcher.
    let t0 = Instant::now();
    let looked = tickets.check_sla(now_ms()).await?;
    let first = t0.elapsed();
    let mut steady = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        tickets.check_sla(now_ms()).await?;
        steady.push(t0.elapsed());
    }
    steady.sort();
    let t0 = Instant::now();
    let all: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM tickets WHERE state IN ('new', 'assigned', 'in_progress', 'pending_customer') \
         AND (escalated_response_at IS NULL OR escalated_resolution_at IS NULL)",
    )
    .fetch_all(&db.pool)
    .await?;
    let every = t0.elapsed();
    let t0 = Instant::now();
    let rows = sqlx::query(
        "SELECT id, number, kind, queue, priority, state, branch_id, kiosk_id, session_id, \
         customer_ref, case_json, assignee, created_at, updated_at, first_response_due, \
         resolution_due, first_response_at, resolved_at, closed_at FROM tickets \
         WHERE state IN ('new', 'assigned', 'in_progress', 'pending_customer')",
    )
    .fetch_all(&db.pool)
    .await?;
    let every_full = t0.elapsed();
    println!(
        "SLA watcher over {open} open tickets: first pass {:.1} ms ({looked} due, each warned once); \
         steady pass (none due) p50 {:.2} / max {:.2} ms over {} passes",
        ms(first),
        ms(quantile(&steady, 0.5)),
        ms(*steady.last().unwrap_or(&Duration::ZERO)),
        steady.len()
    );
    println!(
        "for comparison, reading every open ticket as the watcher did before: ids only {:.1} ms \
         ({} rows), whole rows {:.1} ms ({} rows)",
        ms(every),
        all.len(),
        ms(every_full),
        rows.len()
    );
    db.pool.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Writes `n` open tickets in transactions of 500 rows: created an hour ago with their
/// response due in a day, except `due` of them created 40 minutes ago with a 45-minute
/// response time (past 75 %).
async fn fill_open(db: &Db, n: usize, due: usize, now: i64) -> anyhow::Result<()> {
    const ROWS: usize = 500;
    let case = case_packet(0).to_string();
    let mut i = 0;
    while i < n {
        let chunk = ROWS.min(n - i);
        let mut tx = db.begin_write().await?;
        let mut sql = String::from(
            "INSERT INTO tickets (id, number, kind, queue, priority, state, branch_id, kiosk_id, \
             session_id, customer_ref, case_json, assignee, created_at, updated_at, \
             first_response_due, resolution_due, events, sla_next_at) VALUES ",
        );
        let mut values = Vec::with_capacity(chunk);
        for k in 0..chunk {
            let j = i + k;
            let (created, response) = if j < due {
                (now - 40 * 60_000, now + 5 * 60_000)
            } else {
                (now - 3_600_000, now + 86_400_000)
            };
            let resolution = created + 3 * 86_400_000;
            let next = sla::next_action(
                super::model::TicketState::New,
                &sla::Clocks {
                    created_at: created,
                    first_response_due: Some(response),
                    resolution_due: Some(resolution),
                    ..Default::default()
                },
            );
            values.push(format!(
                "('bench-{j}', 'BENCH-{j:07}', 'complaint', 'back_office', 'normal', 'new', \
                 'B{:03}', NULL, NULL, NULL, $1, NULL, {created}, {created}, {response}, \
                 {resolution}, 1, {})",
                1 + j % 200,
                next.map_or("NULL".to_string(), |v| v.to_string())
            ));
        }
        sql.push_str(&values.join(", "));
        sqlx::query(&sql).bind(&case).execute(&mut **tx).await?;
        tx.commit().await?;
        i += chunk;
    }
    Ok(())
}
