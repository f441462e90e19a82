//! Speech recognition (ASR) behind one port, [`Recognizer`], with two backends:
//! [`WhisperAsr`] (whisper.cpp through whisper-rs, a local ggml model, the embedded default)
//! and [`OpenAiAsr`] (an OpenAI-compatible transcription API through async-openai, e.g. a
//! FunASR/SenseVoice or Whisper server).
//!
//! Whisper runs on dedicated worker threads fed by a bounded channel, never on the async
//! executor. Short utterances are made fast by shrinking the encoder window (`audio_ctx`)
//! to the audio plus a margin instead of whisper's fixed 30 s (see [`audio_ctx_for`]).

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use tokio::sync::oneshot;

use super::vad::SAMPLE_RATE;
pub use super::BoxFuture;
use crate::config::{AsrBackend, SpeechSettings};

/// The longest audio one request may carry (whisper's window).
pub const MAX_AUDIO_SECS: usize = 30;

/// Text recognised from one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub text: String,
    /// Whisper's probability that there was no speech at all (0 when unknown).
    pub no_speech_prob: f32,
    /// Time spent recognising (queueing excluded).
    pub processing: Duration,
}

/// Why an utterance could not be recognised.
#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    /// Every worker is busy and the queue is full; the caller should say so and retry later.
    #[error("speech recognition is busy")]
    Busy,
    /// Nothing to recognise (empty audio) or more than [`MAX_AUDIO_SECS`].
    #[error("invalid audio: {0}")]
    InvalidAudio(String),
    /// The model could not be loaded or the engine failed.
    #[error("speech recognition failed: {0}")]
    Engine(String),
    /// The transcription service failed or timed out.
    #[error("transcription service: {0}")]
    Service(String),
}

/// Recognises 16 kHz mono audio.
pub trait Recognizer: Send + Sync {
    /// The `[speech] asr_backend` value of this recogniser (`whisper`, `openai`).
    fn name(&self) -> &'static str;
    /// Recognises one utterance (samples in [-1, 1] at 16 kHz).
    fn transcribe(&self, audio: Vec<f32>) -> BoxFuture<'_, Result<Transcript, AsrError>>;
}

/// Decoding settings of the whisper backend.
#[derive(Debug, Clone)]
pub struct WhisperOptions {
    pub model: PathBuf,
    pub threads: u32,
    pub workers: u32,
    pub beam_size: u32,
    pub initial_prompt: String,
    /// Shrink the encoder window to the audio (fast); `false` uses whisper's 30 s.
    pub fit_audio_ctx: bool,
}

impl WhisperOptions {
    pub fn from_settings(s: &SpeechSettings) -> WhisperOptions {
        WhisperOptions {
            model: super::models::resolve(&s.models_dir, &s.whisper_model),
            threads: s.threads.clamp(1, 64),
            workers: s.workers.clamp(1, 16),
            beam_size: s.beam_size.min(8),
            initial_prompt: s.initial_prompt.clone(),
            fit_audio_ctx: s.fit_audio_ctx,
        }
    }
}

/// The encoder window for `samples` of audio: whisper's encoder sees 50 frames a second
/// (1500 for 30 s). The audio plus one second of margin, rounded up to a multiple of 64,
/// at least 256 (5 s): with less context whisper's decoder starts to drop or repeat the
/// last characters of short clips (measured on the fixtures, docs/benchmarks.md).
pub fn audio_ctx_for(samples: usize) -> i32 {
    let secs = samples as f64 / SAMPLE_RATE as f64;
    let frames = ((secs + 1.0) * 50.0).ceil() as i32;
    let rounded = (frames + 63) / 64 * 64;
    rounded.clamp(256, 1500)
}

struct Job {
    audio: Vec<f32>,
    reply: oneshot::Sender<Result<Transcript, AsrError>>,
}

/// whisper.cpp on worker threads; one `WhisperState` per worker, one shared model.
pub struct WhisperAsr {
    jobs: SyncSender<Job>,
}

impl WhisperAsr {
    /// Loads the model and starts the workers. Blocking (loading takes a fraction of a second).
    pub fn load(options: WhisperOptions) -> Result<WhisperAsr, AsrError> {
        whisper_rs::install_logging_hooks();
        let path = &options.model;
        if !path.is_file() {
            return Err(AsrError::Engine(format!(
                "{}: no such file",
                path.display()
            )));
        }
        let mut params = whisper_rs::WhisperContextParameters::default();
        params.use_gpu(cfg!(feature = "cuda"));
        let ctx = whisper_rs::WhisperContext::new_with_params(path, params).map_err(|e| {
            AsrError::Engine(format!("{}: not a whisper model ({e})", path.display()))
        })?;
        let ctx = Arc::new(ctx);
        let (tx, rx) = sync_channel::<Job>(16);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..options.workers {
            let state = ctx
                .create_state()
                .map_err(|e| AsrError::Engine(format!("whisper state: {e}")))?;
            let rx = rx.clone();
            let options = options.clone();
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("whisper-{i}"))
                .spawn(move || worker(ctx, state, rx, options))
                .map_err(|e| AsrError::Engine(format!("worker thread: {e}")))?;
        }
        Ok(WhisperAsr { jobs: tx })
    }
}

fn worker(
    _ctx: Arc<whisper_rs::WhisperContext>,
    mut state: whisper_rs::WhisperState,
    rx: Arc<Mutex<Receiver<Job>>>,
    options: WhisperOptions,
) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(job) = job else {
            return; // the recogniser was dropped
        };
        let started = Instant::now();
        let result = run_whisper(&mut state, &job.audio, &options).map(|(text, nsp)| Transcript {
            text,
            no_speech_prob: nsp,
            processing: started.elapsed(),
        });
        let _ = job.reply.send(result);
    }
}

fn run_whisper(
    state: &mut whisper_rs::WhisperState,
    audio: &[f32],
    o: &WhisperOptions,
) -> Result<(String, f32), AsrError> {
    use whisper_rs::{FullParams, SamplingStrategy};
    let strategy = if o.beam_size > 1 {
        SamplingStrategy::BeamSearch {
            beam_size: o.beam_size as i32,
            patience: -1.0,
        }
    } else {
        SamplingStrategy::Greedy { best_of: 1 }
    };
    let mut p = FullParams::new(strategy);
    p.set_language(Some("zh"));
    p.set_n_threads(o.threads as i32);
    p.set_initial_prompt(&o.initial_prompt);
    p.set_no_context(true);
    p.set_no_timestamps(true);
    p.set_single_segment(true);
    p.set_print_special(false);
    p.set_print_progress(false);
    p.set_print_realtime(false);
    p.set_print_timestamps(false);
    p.set_suppress_blank(true);
    p.set_temperature(0.0);
    p.set_temperature_inc(0.0);
    // Pad very short clips to one second: whisper needs some audio to settle.
    let padded: Vec<f32>;
    let samples: &[f32] = if audio.len() < SAMPLE_RATE {
        let mut v = audio.to_vec();
        v.resize(SAMPLE_RATE, 0.0);
        padded = v;
        &padded
    } else {
        audio
    };
    if o.fit_audio_ctx {
        p.set_audio_ctx(audio_ctx_for(samples.len()));
    }
    state
        .full(p, samples)
        .map_err(|e| AsrError::Engine(format!("whisper: {e}")))?;
    let mut text = String::new();
    let mut no_speech: f32 = 0.0;
    for seg in state.as_iter() {
        text.push_str(
            &seg.to_str_lossy()
                .map_err(|e| AsrError::Engine(e.to_string()))?,
        );
        no_speech = no_speech.max(seg.no_speech_probability());
    }
    Ok((text.trim().to_string(), no_speech))
}

fn check_audio(audio: &[f32]) -> Result<(), AsrError> {
    if audio.is_empty() {
        return Err(AsrError::InvalidAudio("no samples".into()));
    }
    if audio.len() > MAX_AUDIO_SECS * SAMPLE_RATE {
        return Err(AsrError::InvalidAudio(format!(
            "{:.1} s is longer than {MAX_AUDIO_SECS} s",
            audio.len() as f64 / SAMPLE_RATE as f64
        )));
    }
    Ok(())
}

impl Recognizer for WhisperAsr {
    fn name(&self) -> &'static str {
        AsrBackend::Whisper.as_str()
    }

    fn transcribe(&self, audio: Vec<f32>) -> BoxFuture<'_, Result<Transcript, AsrError>> {
        Box::pin(async move {
            check_audio(&audio)?;
            let (reply, rx) = oneshot::channel();
            match self.jobs.try_send(Job { audio, reply }) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => return Err(AsrError::Busy),
                Err(TrySendError::Disconnected(_)) => {
                    return Err(AsrError::Engine("workers stopped".into()))
                }
            }
            rx.await
                .map_err(|_| AsrError::Engine("a worker failed".into()))?
        })
    }
}

/// An OpenAI-compatible `POST {base}/audio/transcriptions` (multipart WAV upload).
pub struct OpenAiAsr {
    client: async_openai::Client<async_openai::config::OpenAIConfig>,
    model: String,
    prompt: String,
    timeout: Duration,
}

impl OpenAiAsr {
    pub fn new(s: &SpeechSettings) -> OpenAiAsr {
        install_tls_provider();
        let config = async_openai::config::OpenAIConfig::new()
            .with_api_base(s.openai_base_url.trim_end_matches('/'))
            .with_api_key(s.openai_api_key.expose_secret());
        OpenAiAsr {
            client: async_openai::Client::with_config(config),
            model: s.openai_model.clone(),
            prompt: s.initial_prompt.clone(),
            timeout: Duration::from_secs(15),
        }
    }
}

/// Makes ring the process's TLS crypto provider (async-openai's HTTP client asks for the
/// process default). Idempotent.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// 16 kHz mono PCM16 WAV bytes of `samples`.
pub fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(SAMPLE_RATE as u32).to_le_bytes());
    out.extend_from_slice(&(SAMPLE_RATE as u32 * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    out
}

#[derive(serde::Deserialize)]
struct TextOnly {
    text: String,
}

impl Recognizer for OpenAiAsr {
    fn name(&self) -> &'static str {
        AsrBackend::OpenAi.as_str()
    }

    fn transcribe(&self, audio: Vec<f32>) -> BoxFuture<'_, Result<Transcript, AsrError>> {
        Box::pin(async move {
            check_audio(&audio)?;
            let started = Instant::now();
            let request = async_openai::types::audio::CreateTranscriptionRequest {
                file: async_openai::types::audio::AudioInput::from_vec_u8(
                    "utterance.wav".into(),
                    wav_bytes(&audio),
                ),
                model: self.model.clone(),
                language: Some("zh".into()),
                prompt: Some(self.prompt.clone()),
                temperature: Some(0.0),
                ..Default::default()
            };
            let audio_api = self.client.audio();
            let transcriptions = audio_api.transcription();
            // Only `text` is read: FunASR, SenseVoice and whisper.cpp servers send no usage.
            let call = transcriptions.create_byot::<_, TextOnly>(request);
            let response = tokio::time::timeout(self.timeout, call)
                .await
                .map_err(|_| AsrError::Service("timed out".into()))?
                .map_err(|e| AsrError::Service(e.to_string()))?;
            Ok(Transcript {
                text: crate::text::cut_utterance(response.text.trim()),
                no_speech_prob: 0.0,
                processing: started.elapsed(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_window_fits_the_audio_with_a_margin() {
        assert_eq!(audio_ctx_for(0), 256);
        assert_eq!(audio_ctx_for(3 * SAMPLE_RATE), 256); // 4 s → 200 → at least 256
        assert_eq!(audio_ctx_for(5 * SAMPLE_RATE), 320); // 6 s → 300 → 320
        assert_eq!(audio_ctx_for(40 * SAMPLE_RATE), 1500);
    }

    #[test]
    fn wav_bytes_have_a_valid_header() {
        let w = wav_bytes(&[0.0, 0.5, -0.5, 1.5]);
        assert_eq!(&w[..4], b"RIFF");
        assert_eq!(w.len(), 44 + 8);
        assert_eq!(u32::from_le_bytes(w[40..44].try_into().unwrap()), 8);
        assert_eq!(i16::from_le_bytes([w[50], w[51]]), 32767);
    }

    #[test]
    fn audio_is_checked_before_queueing() {
        assert!(matches!(check_audio(&[]), Err(AsrError::InvalidAudio(_))));
        let long = vec![0.0; (MAX_AUDIO_SECS + 1) * SAMPLE_RATE];
        assert!(matches!(check_audio(&long), Err(AsrError::InvalidAudio(_))));
    }
}
