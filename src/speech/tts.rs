//! Speech synthesis (TTS): turns a reply into 16-bit mono PCM the kiosk plays.
//!
//! [`Tts`] owns the voice profiles in use (the default voice and its `-elder` twin), the
//! reading normalisation ([`crate::speech::reading`]) and one [`TtsBackend`] per engine:
//!
//! - [`EspeakBackend`] runs `espeak-ng` (the embedded default: no network, no model files,
//!   but robotic Mandarin), with the text on stdin, a timeout and an output bound;
//! - [`OpenAiBackend`] posts to an OpenAI-compatible `/audio/speech` endpoint (the
//!   production choice: a CosyVoice/FishSpeech/… server in the branch's data centre).
//!
//! Audio travels as [`Pcm`]; [`Pcm::from_wav_bytes`] reads what both engines send,
//! including espeak-ng's streaming WAV header whose sizes are placeholders.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use super::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{self, TtsSettings};
use crate::content::VoiceProfile;
use crate::speech::reading::for_reading;

/// Why speech could not be synthesised.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// The engine cannot be reached at all: binary missing, server down.
    #[error("speech synthesis is unavailable: {0}")]
    Unavailable(String),
    /// The engine took longer than `timeout_ms`.
    #[error("speech synthesis took longer than {0:?}")]
    Timeout(Duration),
    /// The engine ran and failed (exit status, HTTP status, unknown voice).
    #[error("speech synthesis failed: {0}")]
    Backend(String),
    /// The engine answered with something that is not 16-bit PCM WAV.
    #[error("the synthesised audio is not usable: {0}")]
    BadAudio(String),
    /// The engine sent more audio than `max_audio_bytes`.
    #[error("the synthesised audio exceeds {0} bytes")]
    TooLarge(usize),
    /// Nothing is left to say once the text is normalised (only emoji, links, …).
    #[error("there is nothing to say")]
    EmptyText,
    /// The settings or voice profiles do not fit together.
    #[error("speech synthesis is misconfigured: {0}")]
    Config(String),
}

impl TtsError {
    /// A stable code for logs, metrics and wire errors.
    pub fn code(&self) -> &'static str {
        match self {
            TtsError::Unavailable(_) => "tts_unavailable",
            TtsError::Timeout(_) => "tts_timeout",
            TtsError::Backend(_) => "tts_failed",
            TtsError::BadAudio(_) => "tts_bad_audio",
            TtsError::TooLarge(_) => "tts_too_large",
            TtsError::EmptyText => "tts_empty_text",
            TtsError::Config(_) => "tts_config",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Audio.

/// 16-bit mono PCM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pcm {
    pub sample_rate: u32,
    pub samples: Vec<i16>,
}

/// WAV `fmt ` format tags.
const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

impl Pcm {
    /// How long the audio plays, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / u64::from(self.sample_rate)
    }

    /// Root mean square of the samples (0 for silence), on the i16 scale.
    pub fn rms(&self) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / self.samples.len() as f64).sqrt()
    }

    /// A RIFF WAV file: PCM, 16 bits, one channel.
    pub fn to_wav_bytes(&self) -> Vec<u8> {
        let data_len = u32::try_from(self.samples.len() * 2).unwrap_or(u32::MAX - 36);
        let mut out = Vec::with_capacity(44 + self.samples.len() * 2);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&WAVE_FORMAT_PCM.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&self.sample_rate.to_le_bytes());
        out.extend_from_slice(&(self.sample_rate.saturating_mul(2)).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for s in &self.samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// Reads a RIFF WAV of 16-bit PCM. Several channels are averaged to one. A `data`
    /// size larger than what follows (espeak-ng writing to a pipe puts 0x7FFFF000 or
    /// 0xFFFFFFFF there) means "the rest of the stream". Work is linear in `bytes`.
    pub fn from_wav_bytes(bytes: &[u8]) -> Result<Pcm, TtsError> {
        let bad = |m: &str| TtsError::BadAudio(m.to_string());
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(bad("not a RIFF WAVE file"));
        }
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut format: Option<(u16, u32)> = None; // (channels, sample rate)
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let id = &bytes[at..at + 4];
            let size = u32_at(at + 4) as usize;
            let body = at + 8;
            let available = bytes.len() - body;
            match id {
                b"fmt " => {
                    if size < 16 || size > available {
                        return Err(bad("the fmt chunk is truncated"));
                    }
                    let mut tag = u16_at(body);
                    let channels = u16_at(body + 2);
                    let rate = u32_at(body + 4);
                    let bits = u16_at(body + 14);
                    if tag == WAVE_FORMAT_EXTENSIBLE && size >= 26 {
                        tag = u16_at(body + 24); // the sub-format GUID starts with the tag
                    }
                    if tag != WAVE_FORMAT_PCM {
                        return Err(TtsError::BadAudio(format!(
                            "format tag {tag} is not PCM (ask the engine for 16-bit PCM WAV)"
                        )));
                    }
                    if bits != 16 {
                        return Err(TtsError::BadAudio(format!(
                            "{bits}-bit samples, expected 16-bit"
                        )));
                    }
                    if !(1..=8).contains(&channels) {
                        return Err(TtsError::BadAudio(format!("{channels} channels")));
                    }
                    if !(1000..=384_000).contains(&rate) {
                        return Err(TtsError::BadAudio(format!("sample rate {rate} Hz")));
                    }
                    format = Some((channels, rate));
                }
                b"data" => {
                    let (channels, sample_rate) =
                        format.ok_or_else(|| bad("the data chunk comes before fmt"))?;
                    let data = &bytes[body..body + size.min(available)];
                    let frame = usize::from(channels) * 2;
                    let samples = data
                        .chunks_exact(frame)
                        .map(|f| {
                            let sum: i32 = f
                                .chunks_exact(2)
                                .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                                .sum();
                            (sum / i32::from(channels)) as i16
                        })
                        .collect();
                    return Ok(Pcm {
                        sample_rate,
                        samples,
                    });
                }
                _ => {}
            }
            // Chunks are padded to an even length.
            at = body.saturating_add(size).saturating_add(size & 1);
        }
        Err(bad("no data chunk"))
    }
}

// ---------------------------------------------------------------------------------------
// Backends.

/// One synthesis engine. Object-safe: [`Tts`] holds them as `Arc<dyn TtsBackend>`.
pub trait TtsBackend: Send + Sync + std::fmt::Debug {
    /// The `[speech.tts] backend` this engine is (voice profiles name it by
    /// [`config::TtsBackend::voice_engine`]).
    fn backend(&self) -> config::TtsBackend;

    /// Synthesises `text` (already normalised for reading) with `voice`.
    fn synthesize<'a>(
        &'a self,
        text: &'a str,
        voice: &'a VoiceProfile,
    ) -> BoxFuture<'a, Result<Pcm, TtsError>>;
}

/// espeak-ng as a child process: `espeak-ng -v <voice> -s <rate> -p <pitch> --stdout`,
/// the text on stdin (never an argument: nothing in it can become an option).
#[derive(Debug, Clone)]
pub struct EspeakBackend {
    pub binary: String,
    pub timeout: Duration,
    pub max_bytes: usize,
}

impl EspeakBackend {
    async fn run(&self, text: &str, voice: &VoiceProfile) -> Result<Pcm, TtsError> {
        use std::process::Stdio;
        let mut child = tokio::process::Command::new(&self.binary)
            .args(["-b", "1", "--stdin", "--stdout"])
            .arg("-v")
            .arg(&voice.voice)
            .arg("-s")
            .arg(voice.rate.to_string())
            .arg("-p")
            .arg(voice.pitch.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    TtsError::Unavailable(format!(
                        "`{}` is not installed (Debian: apt-get install espeak-ng)",
                        self.binary
                    ))
                } else {
                    TtsError::Unavailable(format!("cannot start `{}`: {e}", self.binary))
                }
            })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(TtsError::Backend("espeak-ng pipes are missing".into()));
        };
        let max = self.max_bytes;
        let outcome = tokio::time::timeout(self.timeout, async {
            let write = async {
                // A failure here (espeak-ng exiting early) shows in its status and stderr.
                let _ = stdin.write_all(text.as_bytes()).await;
                let _ = stdin.shutdown().await;
                drop(stdin);
            };
            let read = async {
                let mut buf = Vec::new();
                stdout
                    .take(max as u64 + 1)
                    .read_to_end(&mut buf)
                    .await
                    .map(|_| buf)
            };
            let read_err = async {
                let mut buf = Vec::new();
                let _ = stderr.take(4096).read_to_end(&mut buf).await;
                buf
            };
            let ((), out, err) = tokio::join!(write, read, read_err);
            let out = out.map_err(|e| TtsError::Backend(format!("reading espeak-ng: {e}")))?;
            if out.len() > max {
                return Err(TtsError::TooLarge(max));
            }
            let status = child
                .wait()
                .await
                .map_err(|e| TtsError::Backend(format!("waiting for espeak-ng: {e}")))?;
            Ok::<_, TtsError>((status, out, err))
        })
        .await;
        let (status, out, err) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(e);
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(TtsError::Timeout(self.timeout));
            }
        };
        if !status.success() {
            let err = String::from_utf8_lossy(&err);
            return Err(TtsError::Backend(format!(
                "espeak-ng ({status}) with voice `{}`: {}",
                voice.voice,
                err.trim()
            )));
        }
        Pcm::from_wav_bytes(&out)
    }
}

impl TtsBackend for EspeakBackend {
    fn backend(&self) -> config::TtsBackend {
        config::TtsBackend::Espeak
    }

    fn synthesize<'a>(
        &'a self,
        text: &'a str,
        voice: &'a VoiceProfile,
    ) -> BoxFuture<'a, Result<Pcm, TtsError>> {
        Box::pin(self.run(text, voice))
    }
}

/// An OpenAI-compatible speech API: `POST {base_url}/audio/speech` with
/// `{model, input, voice, response_format: "wav"}` (and `speed` when the voice sets it).
#[derive(Debug, Clone)]
pub struct OpenAiBackend {
    pub base_url: String,
    pub api_key: SecretString,
    pub model: String,
    pub timeout: Duration,
    pub max_bytes: usize,
    pub client: reqwest::Client,
}

impl OpenAiBackend {
    async fn run(&self, text: &str, voice: &VoiceProfile) -> Result<Pcm, TtsError> {
        let url = format!("{}/audio/speech", self.base_url.trim_end_matches('/'));
        let mut body = serde_json::json!({
            "model": self.model,
            "input": text,
            "voice": voice.voice,
            "response_format": "wav",
        });
        if let Some(speed) = voice.speed {
            body["speed"] = serde_json::json!(speed);
        }
        let mut request = self.client.post(&url).timeout(self.timeout).json(&body);
        let key = self.api_key.expose_secret();
        if !key.is_empty() {
            request = request.bearer_auth(key);
        }
        let work = async {
            let mut response = request.send().await.map_err(|e| {
                if e.is_timeout() {
                    TtsError::Timeout(self.timeout)
                } else if e.is_connect() {
                    TtsError::Unavailable(format!("cannot reach {url}: {e}"))
                } else {
                    TtsError::Backend(format!("{url}: {e}"))
                }
            })?;
            let status = response.status();
            if response
                .content_length()
                .is_some_and(|n| n > self.max_bytes as u64)
            {
                return Err(TtsError::TooLarge(self.max_bytes));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| {
                if e.is_timeout() {
                    TtsError::Timeout(self.timeout)
                } else {
                    TtsError::Backend(format!("{url}: reading the answer: {e}"))
                }
            })? {
                if bytes.len() + chunk.len() > self.max_bytes {
                    return Err(TtsError::TooLarge(self.max_bytes));
                }
                bytes.extend_from_slice(&chunk);
            }
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                return Err(TtsError::Backend(format!(
                    "{url} answered {status}: {}",
                    text.trim()
                )));
            }
            Pcm::from_wav_bytes(&bytes)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| TtsError::Timeout(self.timeout))?
    }
}

impl TtsBackend for OpenAiBackend {
    fn backend(&self) -> config::TtsBackend {
        config::TtsBackend::OpenAi
    }

    fn synthesize<'a>(
        &'a self,
        text: &'a str,
        voice: &'a VoiceProfile,
    ) -> BoxFuture<'a, Result<Pcm, TtsError>> {
        Box::pin(self.run(text, voice))
    }
}

// ---------------------------------------------------------------------------------------
// The port.

/// Speech synthesis as the rest of Concierge sees it: text in, PCM out.
#[derive(Debug, Clone)]
pub struct Tts {
    voice: VoiceProfile,
    elder: Option<VoiceProfile>,
    backends: BTreeMap<config::TtsBackend, Arc<dyn TtsBackend>>,
    max_chars: usize,
}

/// Builds the TTS port from settings and the loaded voice profiles: `None` when the
/// backend is `off`; an error naming the voices available when the default voice is
/// missing or written for another engine.
pub fn build(
    settings: &TtsSettings,
    voices: &BTreeMap<String, VoiceProfile>,
) -> Result<Option<Tts>, TtsError> {
    let Some(engine) = settings.backend.voice_engine() else {
        return Ok(None);
    };
    if settings.max_chars == 0 {
        return Err(TtsError::Config(
            "[speech.tts] max_chars must be at least 1".into(),
        ));
    }
    let available = || voices.keys().cloned().collect::<Vec<_>>().join(", ");
    let voice = voices.get(&settings.voice).ok_or_else(|| {
        TtsError::Config(format!(
            "[speech.tts] voice `{0}` has no profile voices/{0}.yaml (available: {1})",
            settings.voice,
            available()
        ))
    })?;
    let elder = voices.get(&format!("{}-elder", settings.voice));
    for v in std::iter::once(voice).chain(elder) {
        if config::TtsBackend::for_voice_engine(&v.engine) != Some(settings.backend) {
            return Err(TtsError::Config(format!(
                "voice `{}` (voices/{}.yaml) is for engine {} but [speech.tts] backend is {}; \
                 pick a voice written for {engine} (available: {})",
                v.name,
                v.name,
                v.engine,
                settings.backend,
                available()
            )));
        }
    }
    let timeout = Duration::from_millis(settings.timeout_ms.max(1));
    let mut backends: BTreeMap<config::TtsBackend, Arc<dyn TtsBackend>> = BTreeMap::new();
    backends.insert(
        config::TtsBackend::Espeak,
        Arc::new(EspeakBackend {
            binary: settings.espeak_binary.clone(),
            timeout,
            max_bytes: settings.max_audio_bytes,
        }),
    );
    backends.insert(
        config::TtsBackend::OpenAi,
        Arc::new(OpenAiBackend {
            base_url: settings.openai_base_url.clone(),
            api_key: settings.openai_api_key.clone(),
            model: settings.openai_model.clone(),
            timeout,
            max_bytes: settings.max_audio_bytes,
            client: reqwest::Client::new(),
        }),
    );
    Ok(Some(Tts {
        voice: voice.clone(),
        elder: elder.cloned(),
        backends,
        max_chars: settings.max_chars,
    }))
}

impl Tts {
    /// Replaces the backend of `backend.backend()` (tests use fakes).
    pub fn with_backend(mut self, backend: Arc<dyn TtsBackend>) -> Tts {
        self.backends.insert(backend.backend(), backend);
        self
    }

    /// The voice used for normal or elder-friendly speech.
    pub fn voice(&self, elder: bool) -> &VoiceProfile {
        match (&self.elder, elder) {
            (Some(v), true) => v,
            _ => &self.voice,
        }
    }

    /// What would be read aloud for `text`: normalised, lexicon applied, cut to
    /// `max_chars` at a sentence end.
    pub fn reading(&self, text: &str, elder: bool) -> String {
        // Normalisation can lengthen text (digits become words) but seldom fourfold, and
        // anything past max_chars is cut anyway: bound the work up front.
        let bound = self.max_chars.saturating_mul(4).saturating_add(64);
        let text = match text.char_indices().nth(bound) {
            Some((at, _)) => &text[..at],
            None => text,
        };
        let read = for_reading(text, &self.voice(elder).lexicon);
        truncate_at_sentence(&read, self.max_chars).to_string()
    }

    /// Synthesises `text` with the default voice, or its `-elder` twin when `elder`.
    #[tracing::instrument(name = "tts", skip(self, text), fields(chars = text.chars().count()), err)]
    pub async fn speak(&self, text: &str, elder: bool) -> Result<Pcm, TtsError> {
        let voice = self.voice(elder);
        let read = self.reading(text, elder);
        if read.trim().is_empty() {
            return Err(TtsError::EmptyText);
        }
        let backend =
            config::TtsBackend::for_voice_engine(&voice.engine).and_then(|b| self.backends.get(&b));
        let backend = backend.ok_or_else(|| {
            TtsError::Config(format!(
                "voice `{}` names engine `{}`, which has no backend",
                voice.name, voice.engine
            ))
        })?;
        backend.synthesize(&read, voice).await
    }

    /// Whether speech works: synthesises a short greeting with each voice in use. A
    /// starting server logs the error as a warning (kiosks then show text only).
    pub async fn check(&self) -> Result<(), TtsError> {
        for elder in [false, true] {
            if elder && self.elder.is_none() {
                continue;
            }
            let pcm = self.speak("您好", elder).await?;
            if pcm.samples.is_empty() {
                return Err(TtsError::BadAudio(format!(
                    "voice `{}` produced no audio",
                    self.voice(elder).name
                )));
            }
        }
        Ok(())
    }
}

/// `text` cut to at most `max_chars` characters: after the last sentence end (。！？；) in
/// range, else after the last pause (，、：), else hard.
pub fn truncate_at_sentence(text: &str, max_chars: usize) -> &str {
    let Some((cut, _)) = text.char_indices().nth(max_chars) else {
        return text;
    };
    let head = &text[..cut];
    let end_after = |pred: fn(char) -> bool| {
        head.char_indices()
            .rev()
            .find(|(_, c)| pred(*c))
            .map(|(i, c)| i + c.len_utf8())
    };
    end_after(|c| matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n'))
        .or_else(|| end_after(|c| matches!(c, '，' | '、' | '：' | ',' | ':')))
        .map_or(head, |end| &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, n: usize) -> Pcm {
        Pcm {
            sample_rate: rate,
            samples: (0..n)
                .map(|i| ((i as f64 * 0.1).sin() * 8000.0) as i16)
                .collect(),
        }
    }

    #[test]
    fn wav_bytes_round_trip() {
        let pcm = tone(22050, 22050);
        let back = Pcm::from_wav_bytes(&pcm.to_wav_bytes()).unwrap();
        assert_eq!(back, pcm);
        assert_eq!(back.duration_ms(), 1000);
        assert!(back.rms() > 1000.0);
    }

    #[test]
    fn a_streaming_wav_header_means_the_rest_of_the_stream() {
        let pcm = tone(22050, 1001);
        for size in [0x7FFF_FFFFu32, 0xFFFF_FFFF, 0x7FFF_F000] {
            let mut bytes = pcm.to_wav_bytes();
            bytes[4..8].copy_from_slice(&size.wrapping_add(36).to_le_bytes());
            bytes[40..44].copy_from_slice(&size.to_le_bytes());
            assert_eq!(Pcm::from_wav_bytes(&bytes).unwrap(), pcm, "{size:#x}");
            // A trailing odd byte (a pipe cut mid-sample) is dropped.
            bytes.push(7);
            assert_eq!(Pcm::from_wav_bytes(&bytes).unwrap().samples.len(), 1001);
        }
    }

    #[test]
    fn stereo_is_downmixed_and_extra_chunks_are_skipped() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF\0\0\0\0WAVE");
        bytes.extend_from_slice(b"LIST\x03\0\0\0abc\0"); // odd size, padded
        bytes.extend_from_slice(b"fmt \x10\0\0\0");
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&16000u32.to_le_bytes());
        bytes.extend_from_slice(&64000u32.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data\x08\0\0\0");
        for s in [100i16, 300, -200, -400] {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let pcm = Pcm::from_wav_bytes(&bytes).unwrap();
        assert_eq!(pcm.sample_rate, 16000);
        assert_eq!(pcm.samples, vec![200, -300]);
    }

    #[test]
    fn non_pcm16_and_garbage_are_rejected_clearly() {
        let mut float = tone(16000, 10).to_wav_bytes();
        float[20..22].copy_from_slice(&3u16.to_le_bytes());
        let mut eight_bit = tone(16000, 10).to_wav_bytes();
        eight_bit[34..36].copy_from_slice(&8u16.to_le_bytes());
        let mut no_fmt = b"RIFF\0\0\0\0WAVE".to_vec();
        no_fmt.extend_from_slice(b"data\x02\0\0\0\x01\x02");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (float, "not PCM"),
            (eight_bit, "8-bit"),
            (no_fmt, "before fmt"),
            (b"<html>oops</html>".to_vec(), "not a RIFF"),
            (Vec::new(), "not a RIFF"),
            (
                b"RIFF\0\0\0\0WAVEfmt \xff\xff\xff\xff".to_vec(),
                "truncated",
            ),
            (b"RIFF\0\0\0\0WAVEjunk\xff\xff\xff\x7f".to_vec(), "no data"),
        ];
        for (bytes, want) in cases {
            let err = Pcm::from_wav_bytes(&bytes).unwrap_err();
            assert_eq!(err.code(), "tts_bad_audio");
            assert!(err.to_string().contains(want), "{err} (want {want})");
        }
    }

    #[test]
    fn long_replies_are_cut_at_a_sentence_end() {
        let text = "第一句话。第二句话，还没完！第三句话";
        assert_eq!(truncate_at_sentence(text, 100), text);
        assert_eq!(truncate_at_sentence(text, 12), "第一句话。");
        assert_eq!(
            truncate_at_sentence(text, 14),
            "第一句话。第二句话，还没完！"
        );
        assert_eq!(truncate_at_sentence("一二三，四五六七八", 6), "一二三，");
        assert_eq!(truncate_at_sentence("一二三四五六七八", 3), "一二三");
        assert_eq!(truncate_at_sentence("", 3), "");
    }

    #[derive(Debug, Default)]
    struct Recorder(std::sync::Mutex<Vec<(String, String)>>);

    impl TtsBackend for Recorder {
        fn backend(&self) -> config::TtsBackend {
            config::TtsBackend::Espeak
        }
        fn synthesize<'a>(
            &'a self,
            text: &'a str,
            voice: &'a VoiceProfile,
        ) -> BoxFuture<'a, Result<Pcm, TtsError>> {
            self.0
                .lock()
                .unwrap()
                .push((text.to_string(), voice.name.clone()));
            Box::pin(async { Ok(tone(16000, 160)) })
        }
    }

    fn voice(name: &str, engine: &str, rate: u32) -> VoiceProfile {
        VoiceProfile {
            name: name.into(),
            engine: engine.into(),
            voice: "cmn".into(),
            rate,
            pitch: 50,
            speed: None,
            lexicon: [("行长".to_string(), "航长".to_string())].into(),
        }
    }

    fn settings(backend: &str, voice: &str) -> TtsSettings {
        TtsSettings {
            backend: backend.parse().unwrap(),
            voice: voice.into(),
            espeak_binary: "espeak-ng".into(),
            openai_base_url: "http://127.0.0.1:9/v1".into(),
            openai_api_key: SecretString::from(String::new()),
            openai_model: "tts-1".into(),
            max_chars: 20,
            timeout_ms: 1000,
            max_audio_bytes: 1 << 20,
        }
    }

    fn voices() -> BTreeMap<String, VoiceProfile> {
        [
            voice("xiaoan", "espeak-ng", 165),
            voice("xiaoan-elder", "espeak-ng", 120),
            voice("cloud", "openai", 165),
        ]
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect()
    }

    #[tokio::test]
    async fn speak_normalises_truncates_and_picks_the_elder_voice() {
        let recorder = Arc::new(Recorder::default());
        let tts = build(&settings("espeak", "xiaoan"), &voices())
            .unwrap()
            .unwrap()
            .with_backend(recorder.clone());
        tts.speak("请**行长**确认5000元。", false).await.unwrap();
        tts.speak("还有2位。后面这一句实在太长了，会被截掉的内容。", true)
            .await
            .unwrap();
        assert_eq!(
            recorder.0.lock().unwrap().clone(),
            vec![
                ("请航长确认五千元。".to_string(), "xiaoan".to_string()),
                ("还有两位。".to_string(), "xiaoan-elder".to_string()),
            ]
        );
        let err = tts.speak("😊 https://x.example", false).await.unwrap_err();
        assert_eq!(err.code(), "tts_empty_text");
    }

    #[test]
    fn build_explains_what_is_wrong() {
        assert!(build(&settings("off", "nobody"), &voices())
            .unwrap()
            .is_none());
        let err = build(&settings("espeak", "nobody"), &voices()).unwrap_err();
        assert_eq!(err.code(), "tts_config");
        let message = err.to_string();
        assert!(message.contains("voices/nobody.yaml"), "{message}");
        assert!(message.contains("cloud, xiaoan, xiaoan-elder"), "{message}");
        let err = build(&settings("openai", "xiaoan"), &voices()).unwrap_err();
        assert!(err.to_string().contains("engine espeak-ng"), "{err}");
        let tts = build(&settings("openai", "cloud"), &voices())
            .unwrap()
            .unwrap();
        assert_eq!(
            tts.voice(true).name,
            "cloud",
            "no elder twin: the default voice"
        );
    }

    #[tokio::test]
    async fn a_missing_espeak_binary_is_unavailable() {
        let mut s = settings("espeak", "xiaoan");
        s.espeak_binary = "/nonexistent/espeak-ng".into();
        let tts = build(&s, &voices()).unwrap().unwrap();
        let err = tts.check().await.unwrap_err();
        assert_eq!(err.code(), "tts_unavailable");
        assert!(
            err.to_string().contains("apt-get install espeak-ng"),
            "{err}"
        );
    }
}
