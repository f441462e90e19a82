//! `concierge bench embed`: the latency of the local sentence embedder on single
//! utterances (p50/p95/p99, tokens/s), one batch of them, its load time and the memory it
//! added, for the release build on the target machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Settings;
use crate::embedding::local::LocalEmbedder;
use crate::embedding::Kind;

/// Utterances of the lobby, 10 to 20 tokens with the prefix, when no `--file` is given.
const UTTERANCES: [&str; 12] = [
    "我的U盾坏了怎么办",
    "ATM吞卡了怎么办",
    "转账5万要多久到账",
    "我想办一张借记卡",
    "信用卡额度怎么提高",
    "帮我查一下余额",
    "我要挂失银行卡",
    "今天几点下班",
    "理财产品有哪些推荐",
    "我想预约明天上午办业务",
    "手机银行登录不上去了",
    "外币兑换需要带什么证件",
];

/// The flags of `concierge bench embed`.
#[derive(clap::Args, Clone)]
pub struct EmbedBenchArgs {
    /// Timed single-utterance calls.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Utterances to embed, one a line (default: a dozen lobby questions).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The model file (default: `[embedding] model` in `[speech] models_dir`).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
}

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the benchmark (blocking: it runs on a blocking thread).
pub async fn bench(settings: Settings, args: EmbedBenchArgs) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(move || run(&settings, &args)).await?
}

fn run(settings: &Settings, args: &EmbedBenchArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .model
        .clone()
        .unwrap_or_else(|| settings.embedding.model_path(&settings.speech.models_dir));
    let texts: Vec<String> = match &args.file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| f.display().to_string())?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        None => UTTERANCES.iter().map(|s| s.to_string()).collect(),
    };
    anyhow::ensure!(!texts.is_empty(), "no utterances to embed");
    let before = rss_bytes();
    let started = Instant::now();
    let e = LocalEmbedder::load(&path, settings.embedding.threads)?;
    let load = started.elapsed();
    let added = rss_bytes().saturating_sub(before);
    println!(
        "model {} loaded in {:.2} s, +{} MB resident, {} thread(s)",
        e.model().model_id(),
        load.as_secs_f64(),
        added / 1_000_000,
        settings.embedding.threads
    );
    for t in texts.iter().take(5) {
        e.embed_blocking(std::slice::from_ref(t), Kind::Query)?;
    }
    let mut times = Vec::with_capacity(args.runs);
    let mut tokens = 0usize;
    for i in 0..args.runs.max(1) {
        let text = &texts[i % texts.len()];
        tokens += e.model().token_count(text, Kind::Query);
        let t = Instant::now();
        e.embed_blocking(std::slice::from_ref(text), Kind::Query)?;
        times.push(t.elapsed());
    }
    let total: Duration = times.iter().sum();
    times.sort();
    println!(
        "single utterance ({} runs, {:.1} tokens each): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.0} tokens/s",
        times.len(),
        tokens as f64 / times.len() as f64,
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.95)),
        ms(percentile(&times, 0.99)),
        ms(times[times.len() - 1]),
        tokens as f64 / total.as_secs_f64()
    );
    let batch: Vec<String> = texts
        .iter()
        .take(crate::embedding::MAX_TEXTS)
        .cloned()
        .collect();
    let t = Instant::now();
    e.embed_blocking(&batch, Kind::Passage)?;
    let b = t.elapsed();
    println!(
        "one batch of {} passages: {:.1} ms ({:.2} ms a text)",
        batch.len(),
        ms(b),
        ms(b) / batch.len() as f64
    );
    Ok(ExitCode::SUCCESS)
}
