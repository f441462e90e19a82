//! `concierge nlu` and `concierge train`: the understanding offline, trained from `dialogs/`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::Global;
use crate::config::Settings;

/// The flags of `concierge nlu`.
#[derive(clap::Args)]
pub struct NluArgs {
    /// Utterances to understand.
    #[arg(value_name = "TEXT")]
    texts: Vec<String>,
    /// Read utterances from FILE, one per line (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Reference time for dates such as 明天 (RFC 3339; default: now, branch time).
    #[arg(long, value_name = "RFC3339")]
    now: Option<String>,
    /// The whole understanding step, as a kiosk turn with no journey open: classifier,
    /// neighbours (the embedding model), form and the knowledge base of the database.
    /// `source` says which signal decided, `signals` lists each; `offer` is a journey
    /// offered instead of started.
    #[arg(long)]
    json: bool,
    /// With `--json`: the kiosk's branch, for the knowledge base's answers.
    #[arg(long, value_name = "ID", default_value = "*")]
    branch: String,
}

/// The flags of `concierge train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// A labelled set in the examples/ format to evaluate on.
    #[arg(long, value_name = "FILE")]
    eval: Option<PathBuf>,
    /// Print every utterance the model got wrong.
    #[arg(long)]
    misses: bool,
}

/// Loads `dialogs/` and trains the understanding.
fn build_nlu(settings: &Settings) -> anyhow::Result<crate::nlu::Nlu> {
    let content = crate::validate::load_content(settings)?;
    crate::nlu::Nlu::new(&content.dialogs.nlu)
}

/// `concierge nlu`: one JSON parse per line of output, one per utterance.
pub(super) async fn understand(global: &Global, args: NluArgs) -> anyhow::Result<ExitCode> {
    if args.json {
        return understand_fully(global, args).await;
    }
    let settings = global.settings()?;
    let nlu = build_nlu(&settings)?;
    let now = match &args.now {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .with_context(|| format!("--now `{t}` is not an RFC 3339 time"))?,
        None => crate::domain::clock::now_local(),
    };
    let inputs = utterances(args)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for text in &inputs {
        let parse = nlu.parse(text, now);
        serde_json::to_writer(&mut out, &parse)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `concierge nlu --json`: the understanding step's verdict per utterance.
async fn understand_fully(global: &Global, args: NluArgs) -> anyhow::Result<ExitCode> {
    use crate::dialog::{Engine, SessionState, TurnInput};
    let settings = global.settings()?;
    if args.now.is_some() {
        anyhow::bail!("--now is not taken with --json (the step runs at the branch's time)");
    }
    let content = crate::validate::load_content(&settings)?;
    let engine = std::sync::Arc::new(Engine::new(&content.dialogs)?);
    let kb = super::knowledge::open_knowledge(settings.clone()).await?;
    let embedder = kb.embedder();
    let cache = settings.embedding.cache_dir(&settings.speech.models_dir);
    let understanding = crate::understanding::Understanding::build(
        engine,
        kb,
        embedder,
        &content.dialogs,
        cache.as_deref(),
    )
    .await;
    let branch = args.branch.clone();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for text in &utterances(args)? {
        let verdict = understanding
            .decide(
                &SessionState::default(),
                &TurnInput::Text(text.clone()),
                &branch,
            )
            .await;
        let mut v = serde_json::to_value(&verdict.parse)?;
        if let (Some(o), Some(map)) = (&verdict.offer, v.as_object_mut()) {
            map.insert("offer".into(), serde_json::Value::String(o.clone()));
        }
        serde_json::to_writer(&mut out, &v)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The utterances given as arguments, then those of `--file`; an error when there are none.
fn utterances(args: NluArgs) -> anyhow::Result<Vec<String>> {
    let mut inputs = args.texts;
    if let Some(path) = &args.file {
        let content = if path.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        inputs.extend(content.lines().map(str::to_string));
    }
    if inputs.is_empty() {
        anyhow::bail!("give utterances as arguments or with --file FILE");
    }
    Ok(inputs)
}

/// `concierge train`: trains, reports how training went and, with `--eval`, the accuracy.
pub(super) fn train(global: &Global, args: TrainArgs) -> anyhow::Result<ExitCode> {
    let settings = global.settings()?;
    let nlu = build_nlu(&settings)?;
    let r = &nlu.report;
    println!(
        "trained on {} examples in {} ms; final loss {:.4}; temperature {:.2}",
        r.examples, r.millis, r.final_loss, r.temperature
    );
    if let Some(path) = &args.eval {
        let set = crate::nlu::read_labelled(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let e = nlu.evaluate(&set, crate::domain::clock::now_local());
        println!(
            "{}: accuracy {}/{} = {:.1} %; sure (confidence ≥ {}) on {} of which {} right ({:.1} %); ECE {:.3}",
            path.display(),
            e.correct,
            e.total,
            100.0 * e.accuracy,
            nlu.threshold,
            e.sure,
            e.sure_correct,
            100.0 * e.sure_correct as f32 / e.sure.max(1) as f32,
            e.ece
        );
        if args.misses {
            for (text, want, got, p) in &e.misses {
                println!("  {text}\texpected {want}\tgot {got} ({p:.2})");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
