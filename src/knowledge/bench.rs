//! `concierge bench knowledge`: the knowledge base at scale. Generates N articles from the
//! vocabulary of the seed articles (published through the ordinary store path), then
//! measures a full rebuild from the database (what a node does at start), search latency,
//! and how long a publish takes to be searchable on this node and on a second node that
//! follows the same database. With an embedder ([`run_with`]), it also times a start-up
//! that loads every article's passage vectors and hybrid search; to spare minutes of
//! embedding, the generated articles get random unit vectors stored directly in the
//! database (said in the output), so those two figures are about loading and searching,
//! not about the model.

use crate::store::scratch::{Medium, Scratch};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::index::{Audience, Query1};
use super::model::{ArticleDraft, State};
use super::passages::passages;
use super::vectors::VectorStore;
use super::Knowledge;
use crate::access::Role;
use crate::config::Settings;
use crate::embedding::Embedder;
use crate::store::Db;

/// The flags of `concierge bench knowledge`.
#[derive(Debug, Clone, clap::Args)]
pub struct KnowledgeBenchArgs {
    /// Generated articles (on top of the seed articles).
    #[arg(long, default_value_t = 10_000)]
    pub articles: usize,
    /// Searches to time.
    #[arg(long, default_value_t = 2_000)]
    pub queries: usize,
    /// Database to fill (default: a new SQLite file in a temporary folder, removed after).
    #[arg(long, value_name = "URL")]
    pub bench_database_url: Option<String>,
}

/// `n` words drawn from the vocabulary.
fn pick<'a>(rng: &mut StdRng, vocab: &'a [String], n: usize) -> Vec<&'a str> {
    (0..n)
        .map(|_| vocab.choose(rng).map(String::as_str).unwrap_or("银行"))
        .collect()
}

/// A random customer (or, one in ten, staff) article of vocabulary words; one in twenty is
/// for a single branch.
fn generated(rng: &mut StdRng, vocab: &[String]) -> ArticleDraft {
    let n = rng.gen_range(3..6);
    let title = pick(rng, vocab, n).concat();
    let questions = (0..3)
        .map(|_| {
            let n = rng.gen_range(3..7);
            format!("{}吗", pick(rng, vocab, n).concat())
        })
        .collect();
    let tags = pick(rng, vocab, 3).into_iter().map(String::from).collect();
    let paragraphs: Vec<String> = (0..5)
        .map(|_| {
            let n = rng.gen_range(20..40);
            format!("{}。", pick(rng, vocab, n).join(""))
        })
        .collect();
    let staff = rng.gen_bool(0.1);
    let branch = rng.gen_bool(0.05);
    ArticleDraft {
        title,
        body: paragraphs.join("\n\n"),
        summary: None,
        questions,
        tags,
        audience: if staff { "staff" } else { "customer" }.into(),
        branches: if branch {
            vec![format!("B{:03}", rng.gen_range(1..20))]
        } else {
            Vec::new()
        },
        effective_from: None,
        effective_to: None,
    }
}

/// The `p` percentile of sorted durations, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs the benchmark on `--bench-database-url`, or on a new SQLite file in a temporary
/// folder (in memory where /dev/shm exists) that is removed afterwards.
pub async fn run(settings: Settings, args: KnowledgeBenchArgs) -> anyhow::Result<ExitCode> {
    let (es, models) = (
        settings.embedding.clone(),
        settings.speech.models_dir.clone(),
    );
    let built =
        tokio::task::spawn_blocking(move || crate::embedding::setup::build(&es, &models)).await?;
    for note in &built.notes {
        tracing::warn!("{note}");
    }
    run_with(settings, args, built.embedder).await
}

/// [`run`] with the given sentence-embedding model (hybrid figures too) or none.
pub async fn run_with(
    settings: Settings,
    args: KnowledgeBenchArgs,
    embedder: Option<Arc<dyn Embedder>>,
) -> anyhow::Result<ExitCode> {
    let db = Scratch::new(args.bench_database_url.as_deref(), "kb", Medium::Memory)?;
    bench(&settings, &args, &db.url, embedder).await
}

/// The whole run against the database at `url`: generate, rebuild, search, publish.
async fn bench(
    settings: &Settings,
    args: &KnowledgeBenchArgs,
    url: &str,
    embedder: Option<Arc<dyn Embedder>>,
) -> anyhow::Result<ExitCode> {
    let db = Db::connect(&SecretString::from(url.to_string()), 8).await?;
    db.migrate().await?;
    let mut ks = settings.knowledge.clone();
    ks.seed_when_empty = true;
    let seed_dir = &settings.data.knowledge_dir;
    let kb = Knowledge::open(db.clone(), ks.clone(), seed_dir, None).await?;
    let vocab = vocabulary(&kb);
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let drafts = generate(&kb, &vocab, &mut rng, args.articles).await?;
    println!(
        "generated {} articles from a vocabulary of {} words in {:.1} s (database {})",
        args.articles,
        vocab.len(),
        started.elapsed().as_secs_f64(),
        if url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        }
    );

    // A node starting: everything read from the database and indexed.
    let t = Instant::now();
    let node = Knowledge::open(db.clone(), ks.clone(), seed_dir, None).await?;
    let rebuild = t.elapsed();
    println!(
        "full rebuild from the database: {:.2} s for {} searchable articles",
        rebuild.as_secs_f64(),
        node.index().len()
    );

    let day = crate::domain::clock::now_local().date_naive();
    let queries = draw_queries(&node, &drafts, &mut rng, args.queries);
    time_searches(&node, &queries, day, "search").await?;
    if let Some(embedder) = embedder {
        let hybrid = start_with_vectors(&db, &node, &ks, seed_dir, embedder, &mut rng).await?;
        time_searches(
            &hybrid,
            &queries,
            day,
            "hybrid search (query vectors cached)",
        )
        .await?;
    } else {
        println!("hybrid search: no embedder configured; BM25 only");
    }

    // Publish → searchable, here and on a second node following the database.
    let follower = Knowledge::open(db.clone(), ks.clone(), seed_dir, None).await?;
    time_publishing(&node, &follower, day, ks.follow_ms).await?;
    Ok(ExitCode::SUCCESS)
}

/// The vocabulary of generated articles: every word (two characters or more) of the seed
/// articles, sorted, once each.
fn vocabulary(kb: &Knowledge) -> Vec<String> {
    let mut vocab: Vec<String> = kb
        .index()
        .live_docs()
        .iter()
        .flat_map(|d| {
            kb.index()
                .analyzer()
                .query_terms(&format!("{} {}", d.draft.title, d.draft.body))
        })
        .filter(|w| w.chars().count() >= 2)
        .collect();
    vocab.sort();
    vocab.dedup();
    vocab
}

/// Saves and publishes `count` generated articles `gen-00000`… through the store; returns
/// each id with its draft.
async fn generate(
    kb: &Knowledge,
    vocab: &[String],
    rng: &mut StdRng,
    count: usize,
) -> anyhow::Result<Vec<(String, ArticleDraft)>> {
    let mut drafts = Vec::new();
    for i in 0..count {
        let id = format!("gen-{i:05}");
        let d = generated(rng, vocab);
        // An article already there (a reused database) is kept as it is.
        if let Ok(s) = kb.store.save("bench", &id, None, &d).await {
            kb.store
                .transition(
                    "bench",
                    &id,
                    s.version,
                    State::Draft,
                    State::Published,
                    "generated",
                    None,
                    None,
                )
                .await?;
        }
        drafts.push((id, d));
    }
    Ok(drafts)
}

/// `count` questions to search: golden questions and questions of generated articles, in
/// turn.
fn draw_queries(
    node: &Knowledge,
    drafts: &[(String, ArticleDraft)],
    rng: &mut StdRng,
    count: usize,
) -> Vec<String> {
    let golden: Vec<String> = node.golden().iter().map(|g| g.question.clone()).collect();
    let mut queries: Vec<String> = Vec::with_capacity(count);
    for i in 0..count {
        if i % 2 == 0 && !golden.is_empty() {
            queries.push(golden[i / 2 % golden.len()].clone());
        } else {
            let (_, d) = &drafts[rng.gen_range(0..drafts.len())];
            let q = &d.questions[rng.gen_range(0..d.questions.len())];
            queries.push(q.clone());
        }
    }
    queries
}

/// Stores random unit vectors (the embedder's model id and dimension) for every live
/// article, then times a node's start-up: index build plus loading every vector.
async fn start_with_vectors(
    db: &Db,
    node: &Knowledge,
    ks: &crate::config::KnowledgeSettings,
    seed_dir: &std::path::Path,
    embedder: Arc<dyn Embedder>,
    rng: &mut StdRng,
) -> anyhow::Result<Arc<Knowledge>> {
    let store = VectorStore::new(db.clone());
    let (model, dim) = (embedder.model_id().to_string(), embedder.dim());
    let t = Instant::now();
    let mut stored = 0;
    for doc in node.index().live_docs() {
        let ps = passages(&doc.draft);
        let vs: Vec<Vec<f32>> = ps
            .iter()
            .map(|_| {
                let mut v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
                crate::embedding::normalize(&mut v);
                v
            })
            .collect();
        store.save(&doc.id, doc.version, &model, &ps, &vs).await?;
        stored += ps.len();
    }
    println!(
        "vectors: {stored} passages of RANDOM unit vectors ({dim} dims, model id {model}) stored \
         directly in {:.1} s, not embedded: the next two figures time loading and searching",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let hybrid = Knowledge::open(db.clone(), ks.clone(), seed_dir, Some(embedder)).await?;
    hybrid.embedded().await;
    let status = hybrid.embedding_status();
    println!(
        "start-up with vectors: {:.2} s for {} articles, {} passages loaded, {} embedded",
        t.elapsed().as_secs_f64(),
        hybrid.index().len(),
        status.loaded,
        status.embedded
    );
    Ok(hybrid)
}

/// Times each search as a kiosk of branch B001 makes it; prints the latency percentiles.
async fn time_searches(
    node: &Knowledge,
    queries: &[String],
    day: NaiveDate,
    what: &str,
) -> anyhow::Result<()> {
    // The embedder caches texts: a first pass warms it.
    let _ = node.query_vectors(queries).await;
    let mut took = Vec::with_capacity(queries.len());
    let mut hits = 0usize;
    for q in queries {
        let t = Instant::now();
        let found = node
            .search(&Query1 {
                text: q,
                audience: Audience::Customer,
                branch: Some("B001"),
                day,
                limit: 5,
                explain: false,
            })
            .await?;
        took.push(t.elapsed());
        hits += usize::from(!found.hits.is_empty());
    }
    took.sort();
    println!(
        "{what} ({} queries, limit 5, customer audience, branch filter): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} with hits",
        took.len(),
        percentile(&took, 0.50),
        percentile(&took, 0.95),
        percentile(&took, 0.99),
        percentile(&took, 1.0),
        hits
    );
    Ok(())
}

/// Publishes five new articles on `node` and prints how long each took to be searchable
/// there and on `follower`, which follows the database (woken by each commit, and every
/// `follow_ms`).
async fn time_publishing(
    node: &Knowledge,
    follower: &Arc<Knowledge>,
    day: NaiveDate,
    follow_ms: u64,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    follower.follow(stop.clone());
    let mut publish_ms = Vec::new();
    let mut follower_ms = Vec::new();
    for n in 0..5 {
        let (approved, followed) = publish_one(node, follower, day, n).await?;
        publish_ms.push(approved.as_secs_f64() * 1000.0);
        follower_ms.push(followed.as_secs_f64() * 1000.0);
    }
    stop.cancel();
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "approve → searchable on the same node (includes the golden check): {} ms",
        fmt(&publish_ms)
    );
    println!(
        "approve → searchable on a second node (woken by the commit; else every {} ms): {} ms",
        follow_ms,
        fmt(&follower_ms)
    );
    Ok(())
}

/// Writes, submits and approves article number `n` with a word of its own; returns how long
/// the approval took (it is searchable on `node` then) and how long until `follower` finds
/// it too (at most 30 s).
async fn publish_one(
    node: &Knowledge,
    follower: &Knowledge,
    day: NaiveDate,
    n: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let id = format!("bench-new-{}-{n}", uuid::Uuid::new_v4().simple());
    let word = format!("测试专用词{n}号");
    let draft = ArticleDraft {
        title: format!("{word}的说明"),
        body: format!("{word}只在基准测试里出现。"),
        summary: None,
        questions: vec![format!("{word}是什么")],
        tags: Vec::new(),
        audience: "customer".into(),
        branches: Vec::new(),
        effective_from: None,
        effective_to: None,
    };
    let saved = node.save("editor", &id, None, draft).await?;
    node.submit("editor", &id, saved.version, "").await?;
    let t = Instant::now();
    node.approve(
        "reviewer",
        &[Role::ContentReviewer],
        &id,
        saved.version,
        None,
        &Default::default(),
    )
    .await?;
    let approved = t.elapsed();
    let q = Query1 {
        text: &word,
        audience: Audience::Customer,
        branch: None,
        day,
        limit: 1,
        explain: false,
    };
    anyhow::ensure!(
        node.search(&q)
            .await?
            .hits
            .first()
            .is_some_and(|h| h.id == id),
        "not searchable on the publishing node right after the approval"
    );
    loop {
        if follower
            .search(&q)
            .await?
            .hits
            .first()
            .is_some_and(|h| h.id == id)
        {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(30),
            "the follower never saw it"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((approved, t.elapsed()))
}
