//! `concierge knowledge …`: import/export Markdown folders, search, golden questions, and
//! calibrating the kiosk's answer thresholds on labelled questions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use super::Global;
use crate::config::Settings;
use crate::knowledge::index::{Audience, Query1};
use crate::knowledge::{calibrate, files, Answer, Knowledge};

/// `concierge knowledge …`.
#[derive(Subcommand)]
pub enum KnowledgeCommand {
    /// Import a folder of articles (`*.md` with front matter) plus `synonyms.yaml` and
    /// `golden.yaml`: every file is checked first (`file:line` errors, nothing written);
    /// changed articles get a new version, published as --as; unchanged ones nothing.
    Import {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Who the versions and transitions are recorded as.
        #[arg(long = "as", value_name = "NAME", default_value = "import")]
        actor: String,
    },
    /// Write every published article (and the synonyms and golden questions) into DIR.
    Export {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Search the published articles: ranked hits with title, id, version and score.
    Search(SearchArgs),
    /// Run the golden questions against the published articles; exit 1 if any fails.
    Golden,
    /// Replay the kiosk's answer decision on labelled questions (YAML: `{text, article}` or
    /// `{text, none: true}`, or the kiosk evaluation format) over a grid of thresholds and
    /// print precision and coverage for each.
    Calibrate(CalibrateArgs),
}

/// The flags of `concierge knowledge calibrate`.
#[derive(clap::Args)]
pub struct CalibrateArgs {
    /// The labelled questions.
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// The kiosk's branch (articles for every branch or this one).
    #[arg(long, value_name = "ID", default_value = "*")]
    branch: String,
    /// One JSON object with the table and the settings in force.
    #[arg(long)]
    json: bool,
}

/// The flags of `concierge knowledge search`.
#[derive(clap::Args)]
pub struct SearchArgs {
    #[arg(value_name = "QUERY")]
    query: String,
    /// `customer` (what kiosks see) or `staff` (the teller helper: both audiences).
    #[arg(long, default_value = "customer")]
    audience: String,
    /// Only articles for all branches or this branch.
    #[arg(long, value_name = "ID")]
    branch: Option<String>,
    #[arg(long, default_value_t = 5)]
    limit: usize,
    /// One JSON object with words, hits (BM25, dense and fused scores), matched words and
    /// highlights.
    #[arg(long)]
    json: bool,
}

/// Opens the knowledge base and runs one `knowledge` subcommand on it.
pub(super) async fn run(global: &Global, cmd: KnowledgeCommand) -> anyhow::Result<ExitCode> {
    let settings = global.settings()?;
    let kb = open_knowledge(settings).await?;
    match cmd {
        KnowledgeCommand::Import { dir, actor } => import(&kb, &dir, &actor).await,
        KnowledgeCommand::Export { dir } => {
            let n = files::export(&kb, &dir).await?;
            println!("{n} published article(s) written to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        KnowledgeCommand::Search(args) => search(&kb, &args).await,
        KnowledgeCommand::Golden => Ok(golden(&kb).await),
        KnowledgeCommand::Calibrate(args) => calibrate(&kb, &args).await,
    }
}

/// Opens the knowledge base for a one-off command (no seeding: the operator decides).
pub(super) async fn open_knowledge(settings: Settings) -> anyhow::Result<Arc<Knowledge>> {
    let db = crate::startup::open_database(&settings).await?;
    let mut ks = settings.knowledge.clone();
    ks.seed_when_empty = false;
    // The node's embedding model (BM25 only without it, as the node would).
    let (es, models) = (
        settings.embedding.clone(),
        settings.speech.models_dir.clone(),
    );
    let built =
        tokio::task::spawn_blocking(move || crate::embedding::setup::build(&es, &models)).await?;
    for note in &built.notes {
        tracing::warn!("{note}");
    }
    let kb = Knowledge::open(db, ks, &settings.data.knowledge_dir, built.embedder).await?;
    kb.embedded().await;
    Ok(kb)
}

/// `knowledge import`: what changed, or every problem of the folder and exit 1.
async fn import(kb: &Knowledge, dir: &Path, actor: &str) -> anyhow::Result<ExitCode> {
    match files::import(kb, dir, actor).await {
        Ok(r) => {
            println!(
                "{}: {} article(s) with a new published version, {} unchanged, {} document(s) replaced",
                dir.display(),
                r.created,
                r.unchanged,
                r.documents
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(files::ImportError::Files(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("nothing imported: {} problem(s)", errors.len());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// `knowledge search`: the ranked hits, one a line, or the whole result as JSON.
async fn search(kb: &Knowledge, args: &SearchArgs) -> anyhow::Result<ExitCode> {
    let audience = Audience::parse(&args.audience)
        .ok_or_else(|| anyhow::anyhow!("--audience is customer or staff"))?;
    let found = kb
        .search(&Query1 {
            text: &args.query,
            audience,
            branch: args.branch.as_deref(),
            day: crate::domain::clock::now_local().date_naive(),
            limit: args.limit,
            explain: false,
        })
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else if found.hits.is_empty() {
        println!(
            "no published article matches ({} word(s) searched)",
            found.words.len()
        );
    } else {
        for (i, h) in found.hits.iter().enumerate() {
            let words: Vec<&str> = h.matched.iter().map(|m| m.as_word.as_str()).collect();
            println!(
                "{:>2}. {}  [{} v{}]  bm25 {:.2}  dense {}  fused {:.4}  matched {}",
                i + 1,
                h.title,
                h.id,
                h.version,
                h.bm25,
                h.dense.map_or("-".to_string(), |d| format!("{d:.3}")),
                h.fused,
                words.join("、")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `knowledge golden`: each failing question, the pass count, then what a kiosk does with
/// the customer questions; exit 1 if any fails.
async fn golden(kb: &Knowledge) -> ExitCode {
    let results = kb.run_golden().await;
    let failed: Vec<_> = results.iter().filter(|r| !r.pass).collect();
    for f in &failed {
        println!(
            "FAIL 「{}」 expects {} but finds {}",
            f.question,
            f.expect,
            f.got.as_deref().unwrap_or("nothing")
        );
    }
    println!(
        "golden questions: {} of {} pass",
        results.len() - failed.len(),
        results.len()
    );
    print_kiosk_answers(kb).await;
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What a kiosk (all-branch articles) does with the customer questions.
async fn print_kiosk_answers(kb: &Knowledge) {
    let (mut right, mut wrong, mut clarify, mut unknown) = (0, 0, 0, 0);
    for g in kb
        .golden()
        .iter()
        .filter(|g| g.audience.as_deref() != Some("staff"))
    {
        match kb.answer(&g.question, "*").await {
            Answer::Found { hit, .. } if hit.id == g.expect => right += 1,
            Answer::Found { .. } => wrong += 1,
            Answer::Clarify(..) => clarify += 1,
            Answer::Unknown => unknown += 1,
        }
    }
    println!(
        "at a kiosk, the customer questions: {right} answered right, {wrong} answered wrong, \
         {clarify} clarifying question(s), {unknown} \"don't know\""
    );
}

/// `knowledge calibrate`: the precision–coverage table of the labelled questions, or every
/// problem of the file and exit 1.
async fn calibrate(kb: &Knowledge, args: &CalibrateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let items = match calibrate::parse(&args.file, &text) {
        Ok(items) => items,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let samples = kb.samples(&items, &args.branch).await;
    let policy = kb.policy();
    let rows = calibrate::table(&samples, &policy);
    let status = kb.embedding_status();
    if args.json {
        let current = calibrate::evaluate(&samples, &policy);
        // Each question with its best hits and their scores, to study the thresholds.
        let each: Vec<serde_json::Value> = samples
            .iter()
            .map(|s| {
                serde_json::json!({
                    "text": s.labelled.text,
                    "articles": s.labelled.articles,
                    "hits": s.hits.iter().take(3).map(|h| serde_json::json!({
                        "id": h.id, "bm25": h.bm25, "dense": h.dense,
                        "fused": h.fused, "coverage": h.coverage,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "questions": samples.len(),
            "embedding": status,
            "current": current,
            "rows": rows,
            "samples": each,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} labelled question(s), model {}; settings now: min_score {}, min_dense {}",
            samples.len(),
            status.model.as_deref().unwrap_or("none (BM25 only)"),
            policy.min_score,
            policy.min_dense
        );
        print!("{}", calibrate::render(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
