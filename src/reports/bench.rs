//! `concierge bench reports`: reports at a network's scale. Fills a database with N ended
//! sessions spread over D days, B branches and their kiosks — each with the journey marks
//! a session leaves (a journey started, a step, how it ended) and, one in ten, a handoff
//! — written directly in bulk (not through conversations: minutes instead of hours; no
//! transcript lines, so `turns` stays 0), then times the rollup of every hour and the
//! reports read over the whole window, for every branch and for one.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;

use super::query::{self, Window};
use super::rollup::{self, HOUR_MS};
use crate::config::Settings;
use crate::store::scratch::{Medium, Scratch};
use crate::store::{now_ms, Db};

/// The flags of `concierge bench reports`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportsBenchArgs {
    /// Ended sessions to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub sessions: usize,
    /// Days they spread over, ending now.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Branches (four kiosks each).
    #[arg(long, default_value_t = 50)]
    pub branches: usize,
    /// Database to fill (default: a new SQLite file in the system's temporary folder,
    /// removed after). Use an empty database.
    #[arg(long, value_name = "URL")]
    pub bench_database_url: Option<String>,
}

/// Journeys the generated sessions take, with a step each reaches.
const JOURNEYS: [(&str, &str); 5] = [
    ("queue.take_number", "ask:service"),
    ("appointment.book", "ask:date"),
    ("card.report_loss", "device:id_card"),
    ("knowledge.question", "action:knowledge.answer"),
    ("balance.check", "device:card_reader"),
];

/// How generated journeys end (weights out of 100).
const ENDINGS: [(&str, u32); 4] = [
    ("completed", 70),
    ("cancelled", 10),
    ("handed_off", 10),
    ("abandoned", 10),
];

/// Runs the benchmark on `--bench-database-url` or a temporary SQLite file.
pub async fn run(settings: Settings, args: ReportsBenchArgs) -> anyhow::Result<ExitCode> {
    settings.branch.apply_time_zone();
    let db = Scratch::new(args.bench_database_url.as_deref(), "reports", Medium::Disk)?;
    bench(&args, &db.url).await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn bench(args: &ReportsBenchArgs, url: &str) -> anyhow::Result<ExitCode> {
    let db = Db::connect(&SecretString::from(url.to_string()), 8).await?;
    db.migrate().await?;
    let now = now_ms();
    let start = rollup::hour_of(now - args.days * 24 * HOUR_MS);
    let started = Instant::now();
    fill(&db, args, start, now).await?;
    println!(
        "wrote {} ended sessions over {} days, {} branches × 4 kiosks, with their journey \
         marks and one handoff in ten, in {:.1} s ({})",
        args.sessions,
        args.days,
        args.branches,
        started.elapsed().as_secs_f64(),
        if url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );

    let started = Instant::now();
    let (hours, rows) = rollup::rebuild(&db, start, now).await?;
    let took = started.elapsed();
    println!(
        "rollup: {hours} hours ({rows} rows) in {:.1} s, {:.1} ms an hour",
        took.as_secs_f64(),
        ms(took) / hours.max(1) as f64
    );
    let t0 = Instant::now();
    rollup::roll_up_hour(&db, rollup::hour_of(now)).await?;
    println!(
        "the job's pass over the current hour: {:.1} ms",
        ms(t0.elapsed())
    );

    let today = crate::domain::clock::now_local().date_naive();
    let from = today - chrono::Duration::days(args.days);
    for branch in [None, Some("B001")] {
        let mut params = std::collections::BTreeMap::new();
        params.insert("from".to_string(), from.to_string());
        params.insert("to".to_string(), today.to_string());
        if let Some(b) = branch {
            params.insert("branch".to_string(), b.to_string());
        }
        let w = Window::parse(&params, today).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut line = Vec::new();
        for name in ["summary", "journeys", "handoffs", "sla", "queue"] {
            let mut took = Vec::new();
            let mut sessions = 0;
            for _ in 0..5 {
                let t0 = Instant::now();
                let body = match name {
                    "summary" => query::summary(&db, &w).await?,
                    "journeys" => query::journeys(&db, &w, &|_| Vec::new()).await?,
                    "handoffs" => query::handoffs(&db, &w).await?,
                    "sla" => query::sla(&db, &w).await?,
                    _ => query::queue(&db, &w).await?,
                };
                took.push(t0.elapsed());
                if name == "summary" {
                    sessions = body["totals"]["sessions"].as_i64().unwrap_or(0);
                }
            }
            took.sort();
            line.push(format!("{name} {:.1} ms", ms(took[took.len() / 2])));
            if name == "summary" {
                line.push(format!("({sessions} sessions)"));
            }
        }
        println!(
            "reports over {} days, {} (median of 5): {}",
            args.days,
            branch.map_or("every branch".to_string(), |b| format!("branch {b}")),
            line.join(", ")
        );
    }
    db.pool.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Writes the kiosks, sessions, journey marks and handoffs, 500 sessions a transaction.
async fn fill(db: &Db, args: &ReportsBenchArgs, start: i64, now: i64) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(19);
    let kiosks: Vec<(String, String)> = (0..args.branches)
        .flat_map(|b| (0..4).map(move |k| (format!("B{:03}", b + 1), format!("K{:03}-{k}", b + 1))))
        .collect();
    for chunk in kiosks.chunks(200) {
        let values: Vec<String> = chunk
            .iter()
            .map(|(b, k)| format!("('{k}', '{b}', 1, {now})"))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO kiosks (id, branch_id, enabled, created_at) VALUES {}",
            values.join(", ")
        ))
        .execute(&db.pool)
        .await?;
    }
    let span = (now - start).max(1);
    const CHUNK: usize = 500;
    let mut i = 0;
    while i < args.sessions {
        let n = CHUNK.min(args.sessions - i);
        let (mut sessions, mut marks, mut handoffs) = (Vec::new(), Vec::new(), Vec::new());
        for j in i..i + n {
            let (branch, kiosk) = &kiosks[rng.gen_range(0..kiosks.len())];
            let at = start + rng.gen_range(0..span);
            let end = at + rng.gen_range(30_000..300_000);
            let id = format!("bench-{j}");
            let (flow, step) = JOURNEYS[rng.gen_range(0..JOURNEYS.len())];
            let roll = rng.gen_range(0..100);
            let mut acc = 0;
            let ending = ENDINGS
                .iter()
                .find(|(_, w)| {
                    acc += w;
                    roll < acc
                })
                .map_or("completed", |e| e.0);
            sessions.push(format!(
                "('{id}', '{kiosk}', '{branch}', 'ended', '{{}}', {}, {at}, {end}, {end}, 'completed')",
                rng.gen_range(1..8)
            ));
            marks.push(format!(
                "('{id}', {at}, '{branch}', '{kiosk}', '{flow}', 'started', '#0')"
            ));
            marks.push(format!(
                "('{id}', {}, '{branch}', '{kiosk}', '{flow}', 'step', '{step}')",
                at + 1
            ));
            if ending != "abandoned" {
                marks.push(format!(
                    "('{id}', {}, '{branch}', '{kiosk}', '{flow}', '{ending}', '{step}')",
                    at + 2
                ));
            }
            if ending == "handed_off" {
                handoffs.push(format!(
                    "('h-{id}', '{id}', '{kiosk}', '{branch}', 'teller', 'customer_asked', '{flow}', '{{}}', '', {})",
                    at + 2
                ));
            }
        }
        let mut tx = db.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO sessions (id, kiosk_id, branch_id, status, state, turn_count, created_at, \
             updated_at, ended_at, end_reason) VALUES {}",
            sessions.join(", ")
        ))
        .execute(&mut **tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO journey_events (session_id, at, branch_id, kiosk_id, flow, event, step) VALUES {}",
            marks.join(", ")
        ))
        .execute(&mut **tx)
        .await?;
        if !handoffs.is_empty() {
            sqlx::query(&format!(
                "INSERT INTO handoffs (id, session_id, kiosk_id, branch_id, target, reason, intent, \
                 case_json, risk, created_at) VALUES {}",
                handoffs.join(", ")
            ))
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        i += n;
    }
    Ok(())
}
