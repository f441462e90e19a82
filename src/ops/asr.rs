//! Offline speech commands: `concierge transcribe FILE…` (one JSON object per line) and
//! `concierge bench asr` (per clip: audio seconds, processing seconds, real-time factor,
//! character error rate), plus the CER and segmentation they share with the tests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::config::{AsrBackend, Settings, TtsBackend};
use crate::speech::vad::{Segmenter, SegmenterConfig, VadEvent, SAMPLE_RATE};
use crate::speech::wav::read_wav;
use crate::speech::Speech;

/// Recognition settings shared by both commands.
#[derive(Debug, Clone, clap::Args)]
pub struct AsrFlags {
    /// The whisper ggml model (default: `[speech] whisper_model` in `models_dir`).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Threads per inference (default: `[speech] threads`).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Beam width (0 or 1: greedy; default: `[speech] beam_size`).
    #[arg(long)]
    pub beam: Option<u32>,
    /// Use whisper's full 30 s encoder window instead of fitting it to the audio (slow).
    #[arg(long)]
    pub full_window: bool,
    /// Skip the domain correction.
    #[arg(long)]
    pub no_correct: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TranscribeArgs {
    /// 16 kHz mono PCM16 WAV files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub asr: AsrFlags,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AsrBenchArgs {
    /// 16 kHz mono PCM16 WAV files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Expected texts, JSON lines `{"file": NAME, "text": TEXT}` (default:
    /// `transcripts.jsonl` beside the first file).
    #[arg(long, value_name = "FILE")]
    pub transcripts: Option<PathBuf>,
    /// Runs per clip (the best is reported after one warm-up run).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    #[command(flatten)]
    pub asr: AsrFlags,
}

/// Character error rate: edit distance over Han characters, letters and digits (punctuation
/// and spaces ignored), divided by the reference length.
pub fn cer(reference: &str, hypothesis: &str) -> f64 {
    let keep = |s: &str| -> Vec<char> { s.chars().filter(|c| c.is_alphanumeric()).collect() };
    let (r, h) = (keep(reference), keep(hypothesis));
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rc) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hc) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rc != hc);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len() as f64
}

/// CER after the normalisation the NLU applies to both texts (full-width → half-width,
/// Traditional → Simplified, Chinese numerals → digits), so 十点 and 10点 are the same
/// answer, as they are to the rest of Concierge.
pub fn nlu_cer(reference: &str, hypothesis: &str) -> f64 {
    let n = |s: &str| crate::text::normalize::normalize(s).text;
    cer(&n(reference), &n(hypothesis))
}

/// Loads speech as `serve` would, with the command's overrides.
async fn load(settings: &Settings, flags: &AsrFlags) -> anyhow::Result<Arc<Speech>> {
    let mut s = settings.speech.clone();
    if s.asr_backend == AsrBackend::Off {
        s.asr_backend = AsrBackend::Whisper;
    }
    if let Some(m) = &flags.model {
        s.whisper_model = std::path::absolute(m)?;
    }
    if let Some(t) = flags.threads {
        s.threads = t;
    }
    if let Some(b) = flags.beam {
        s.beam_size = b;
    }
    s.correction = !flags.no_correct;
    s.fit_audio_ctx = !flags.full_window;
    s.tts.backend = TtsBackend::Off;
    let content = crate::validate::load_content(settings)?;
    let speech = tokio::task::spawn_blocking(move || {
        let texts = crate::speech::knowledge_texts(&content);
        Speech::load(&s, &content, &texts)
    })
    .await?;
    if speech.asr.is_none() {
        bail!(
            "speech recognition is not available: {}",
            speech.notes.join("; ")
        );
    }
    Ok(Arc::new(speech))
}

/// The utterances of a recording, as the live pipeline would cut them.
pub fn utterances(samples: &[f32], settings: &crate::config::SpeechSettings) -> Vec<Vec<f32>> {
    let config = SegmenterConfig {
        end_silence_ms: settings.end_silence_ms,
        hold_ms: settings.end_silence_ms,
        ..SegmenterConfig::default()
    };
    let mut seg = Segmenter::energy(config);
    let mut out = Vec::new();
    for chunk in samples.chunks(1600) {
        for e in seg.push(chunk) {
            if let VadEvent::End(u) = e {
                out.push(u.samples);
            }
        }
    }
    if let Some(u) = seg.end_now() {
        out.push(u.samples);
    }
    out
}

/// What one file gave.
struct Result1 {
    text: String,
    raw_text: String,
    audio_s: f64,
    processing_s: f64,
}

async fn run_file(speech: &Speech, path: &Path) -> anyhow::Result<Result1> {
    let samples = read_wav(path)?;
    let audio_s = samples.len() as f64 / SAMPLE_RATE as f64;
    let mut text = String::new();
    let mut raw_text = String::new();
    let mut processing_s = 0.0;
    for u in utterances(&samples, &speech.settings) {
        let started = Instant::now();
        let Some(u) = speech.confirm(u).await else {
            continue;
        };
        let heard = speech.hear(u).await?;
        processing_s += started.elapsed().as_secs_f64();
        text.push_str(&heard.text);
        raw_text.push_str(&heard.raw_text);
    }
    Ok(Result1 {
        text,
        raw_text,
        audio_s,
        processing_s,
    })
}

/// `concierge transcribe FILE…`
pub async fn transcribe(settings: &Settings, args: &TranscribeArgs) -> anyhow::Result<ExitCode> {
    let speech = load(settings, &args.asr).await?;
    let mut failed = false;
    for file in &args.files {
        match run_file(&speech, file).await {
            Ok(r) => println!(
                "{}",
                serde_json::json!({
                    "file": file.display().to_string(),
                    "text": r.text,
                    "raw_text": r.raw_text,
                    "audio_s": round3(r.audio_s),
                    "processing_s": round3(r.processing_s),
                })
            ),
            Err(e) => {
                failed = true;
                println!(
                    "{}",
                    serde_json::json!({"file": file.display().to_string(), "error": format!("{e:#}")})
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Expected texts by file name.
pub fn load_transcripts(path: &Path) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut out = std::collections::BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        #[derive(serde::Deserialize)]
        struct Row {
            file: String,
            text: String,
        }
        let row: Row = serde_json::from_str(line).with_context(|| {
            format!("{}:{}: not a {{file, text}} object", path.display(), i + 1)
        })?;
        out.insert(row.file, row.text);
    }
    Ok(out)
}

/// `concierge bench asr FILE…`
pub async fn bench(settings: &Settings, args: &AsrBenchArgs) -> anyhow::Result<ExitCode> {
    let speech = load(settings, &args.asr).await?;
    let transcripts_path = match &args.transcripts {
        Some(p) => p.clone(),
        None => args.files[0]
            .parent()
            .unwrap_or(Path::new("."))
            .join("transcripts.jsonl"),
    };
    let expected = load_transcripts(&transcripts_path)?;
    println!(
        "{:<16} {:>8} {:>13} {:>7} {:>8} {:>6}  text",
        "clip", "audio_s", "processing_s", "rtf", "raw_cer", "cer"
    );
    let (mut sum_cer, mut sum_raw, mut n, mut worst) = (0.0, 0.0, 0usize, 0.0f64);
    for file in &args.files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let Some(reference) = expected.get(&name) else {
            bail!("{name}: no expected text in {}", transcripts_path.display());
        };
        let mut best: Option<Result1> = None;
        for _ in 0..=args.runs.max(1) {
            let r = run_file(&speech, file).await?;
            if best
                .as_ref()
                .is_none_or(|b| r.processing_s < b.processing_s)
            {
                best = Some(r);
            }
        }
        let r = best.expect("at least one run");
        let (c, raw) = (nlu_cer(reference, &r.text), nlu_cer(reference, &r.raw_text));
        println!(
            "{:<16} {:>8.2} {:>13.3} {:>7.3} {:>7.1}% {:>5.1}%  {}",
            name,
            r.audio_s,
            r.processing_s,
            r.processing_s / r.audio_s,
            raw * 100.0,
            c * 100.0,
            r.text
        );
        sum_cer += c;
        sum_raw += raw;
        worst = worst.max(r.processing_s);
        n += 1;
    }
    println!(
        "mean CER {:.1}% (raw {:.1}%), slowest clip {:.3} s, {} clips, model {}, threads {}, beam {}, window {}",
        sum_cer / n as f64 * 100.0,
        sum_raw / n as f64 * 100.0,
        worst,
        n,
        args.asr
            .model
            .clone()
            .unwrap_or_else(|| settings.speech.whisper_model.clone())
            .display(),
        args.asr.threads.unwrap_or(settings.speech.threads),
        args.asr.beam.unwrap_or(settings.speech.beam_size),
        if args.asr.full_window { "30 s" } else { "fitted" },
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cer_counts_edits_over_the_reference_ignoring_punctuation() {
        assert_eq!(cer("我要取号。", "我要取号"), 0.0);
        assert_eq!(cer("我要取号", "我要去号"), 0.25);
        assert_eq!(cer("挂失", ""), 1.0);
        assert_eq!(cer("", ""), 0.0);
        assert!((cer("你好", "你好啊啊") - 1.0).abs() < 1e-9);
    }
}
