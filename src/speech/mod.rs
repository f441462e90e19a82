//! Speech: what the kiosk hears and says. Model files (`models`), voice activity (`vad`),
//! recognition (`asr`), domain correction (`correct`), reading normalisation (`reading`)
//! and synthesis (`tts`, with the voice profiles of `voices/` loaded by `content`), tied
//! together per connection by `pipeline`. [`Speech`] is what a node loaded: every part is
//! optional, and a node without its model files runs text-only and says why.

pub mod asr;
pub mod correct;
pub mod models;
pub mod pipeline;
pub mod reading;
pub mod tts;
pub mod vad;
pub mod wav;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A boxed, sendable future: what the speech ports' methods return (object-safe traits).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

use crate::config::{AsrBackend, SpeechSettings};
use crate::content::Content;
use asr::{AsrError, Recognizer};
use correct::{Change, Corrector};

/// The speech parts a node has.
pub struct Speech {
    pub settings: SpeechSettings,
    pub asr: Option<Arc<dyn Recognizer>>,
    pub silero: Option<Arc<vad::Silero>>,
    pub corrector: Option<Arc<Corrector>>,
    pub tts: Option<Arc<tts::Tts>>,
    /// Why a part is off, one line each, for the log and `/readyz`-style reports.
    pub notes: Vec<String>,
    /// Where each utterance's real-time factor is recorded (the app's metrics; none in
    /// offline tools).
    pub asr_rtf: Option<prometheus::Histogram>,
}

/// One utterance, recognised and corrected.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// After domain correction.
    pub text: String,
    /// As the recogniser returned it.
    pub raw_text: String,
    pub changes: Vec<Change>,
    /// Recognition time (queueing excluded).
    pub processing: Duration,
    /// Whisper's no-speech probability (0 when unknown).
    pub no_speech_prob: f32,
    /// The utterance's trace span: its recognitions are children, and the turn it becomes
    /// continues it.
    pub span: UtteranceSpan,
}

/// The trace span of an utterance ([`crate::telemetry::trace`]). Hearings compare by what
/// was heard: the span is left out of equality.
#[derive(Debug, Clone)]
pub struct UtteranceSpan(pub tracing::Span);

impl Default for UtteranceSpan {
    fn default() -> Self {
        UtteranceSpan(tracing::Span::none())
    }
}

impl PartialEq for UtteranceSpan {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Heard {
    /// What noise or silence gives.
    pub fn nothing() -> Heard {
        Heard {
            text: String::new(),
            raw_text: String::new(),
            changes: Vec::new(),
            processing: Duration::ZERO,
            no_speech_prob: 1.0,
            span: UtteranceSpan::default(),
        }
    }
}

impl Speech {
    /// No speech at all (text-only node).
    pub fn off(settings: &SpeechSettings) -> Speech {
        Speech {
            settings: settings.clone(),
            asr: None,
            silero: None,
            corrector: None,
            tts: None,
            notes: Vec::new(),
            asr_rtf: None,
        }
    }

    /// Loads what the settings ask for. Never fails: a missing or broken model turns that
    /// part off with a note saying what to run. Blocking (loads model files).
    pub fn load(
        settings: &SpeechSettings,
        content: &Content,
        knowledge_texts: &[String],
    ) -> Speech {
        let mut speech = Speech::off(settings);
        match settings.asr_backend {
            AsrBackend::Off => speech
                .notes
                .push("speech recognition is off ([speech] asr_backend = \"off\")".into()),
            AsrBackend::OpenAi => speech.asr = Some(Arc::new(asr::OpenAiAsr::new(settings))),
            AsrBackend::Whisper => speech.load_whisper(settings),
        }
        if speech.asr.is_some() && settings.correction {
            speech.corrector = Some(Arc::new(Corrector::from_content(content, knowledge_texts)));
        }
        match tts::build(&settings.tts, &content.voices) {
            Ok(t) => speech.tts = t.map(Arc::new),
            Err(e) => speech.notes.push(format!("speech synthesis is off: {e}")),
        }
        speech
    }

    /// Loads whisper and Silero from the models folder; what is missing or broken becomes a
    /// note (the node then runs text-only, or with energy detection only).
    fn load_whisper(&mut self, settings: &SpeechSettings) {
        let status = models::status(
            &settings.models_dir,
            &settings.whisper_model,
            &settings.vad_model,
        );
        if status.whisper.ok() {
            match asr::WhisperAsr::load(asr::WhisperOptions::from_settings(settings)) {
                Ok(a) => self.asr = Some(Arc::new(a)),
                Err(e) => self.notes.push(format!(
                    "speech recognition is off: {e}; run `concierge models fetch`"
                )),
            }
        } else {
            self.notes.push(format!(
                "speech recognition is off: {} is {}; {}",
                status.whisper.path.display(),
                describe(&status.whisper.state),
                status.whisper.hint.clone().unwrap_or_default()
            ));
        }
        if status.vad.ok() {
            match vad::Silero::load(&status.vad.path) {
                Ok(s) => self.silero = Some(Arc::new(s)),
                Err(e) => self
                    .notes
                    .push(format!("Silero VAD is off ({e}); energy detection only")),
            }
        } else if self.asr.is_some() {
            self.notes.push(format!(
                "Silero VAD is off: {} is {}; energy detection only",
                status.vad.path.display(),
                describe(&status.vad.state)
            ));
        }
    }

    /// Recognises one utterance and corrects it onto the domain lexicon.
    /// Traced as `asr` (the audio's length and the recognition time).
    #[tracing::instrument(name = "asr", skip_all, fields(audio_ms = samples.len() as u64 * 1000 / vad::SAMPLE_RATE as u64))]
    pub async fn hear(&self, samples: Vec<f32>) -> Result<Heard, AsrError> {
        let Some(asr) = &self.asr else {
            return Err(AsrError::Engine("speech recognition is off".into()));
        };
        let started = Instant::now();
        let audio_secs = samples.len() as f64 / vad::SAMPLE_RATE as f64;
        let t = asr.transcribe(samples).await?;
        if let Some(h) = self.asr_rtf.as_ref().filter(|_| audio_secs > 0.0) {
            h.observe(t.processing.as_secs_f64() / audio_secs);
        }
        let raw = hallucination_filter(&t.text, t.no_speech_prob);
        let (text, changes) = match &self.corrector {
            Some(c) if !raw.is_empty() => {
                let c = c.correct(&raw);
                (c.text, c.changes)
            }
            _ => (raw.clone(), Vec::new()),
        };
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "utterance recognised"
        );
        Ok(Heard {
            text,
            raw_text: raw,
            changes,
            processing: t.processing,
            no_speech_prob: t.no_speech_prob,
            span: UtteranceSpan::default(),
        })
    }

    /// Confirms (and trims) an utterance with Silero when it is loaded; `None` when it holds
    /// no speech. Runs on a blocking thread.
    pub async fn confirm(&self, samples: Vec<f32>) -> Option<Vec<f32>> {
        let Some(silero) = self.silero.clone() else {
            return Some(samples);
        };
        tokio::task::spawn_blocking(move || match silero.judge(&samples) {
            Ok(v) if v.speech_ms < 96 => None,
            Ok(v) => {
                let (a, b) = v.span.unwrap_or((0, samples.len()));
                Some(samples[a..b].to_vec())
            }
            Err(e) => {
                tracing::warn!(error = %e, "Silero failed; keeping the utterance");
                Some(samples)
            }
        })
        .await
        .unwrap_or(None)
    }
}

/// Titles and questions of the seed articles: domain words for the corrector.
pub fn knowledge_texts(content: &Content) -> Vec<String> {
    content
        .articles
        .iter()
        .flat_map(|a| std::iter::once(a.front.title.clone()).chain(a.front.questions.clone()))
        .collect()
}

fn describe(state: &models::FileState) -> String {
    match state {
        models::FileState::Present => "present".into(),
        models::FileState::Missing => "missing".into(),
        models::FileState::Corrupt(c) => format!("unusable ({c})"),
    }
}

/// What whisper says over silence or noise ("谢谢观看", "请不吝点赞订阅"…): dropped when the
/// model itself thinks there was no speech, or when it is one of the known stock phrases
/// from its training subtitles.
pub fn hallucination_filter(text: &str, no_speech_prob: f32) -> String {
    // Whole stock phrases only: a customer may well say 订阅 (短信订阅) or 谢谢.
    const STOCK: &[&str] = &[
        "谢谢观看",
        "谢谢收看",
        "谢谢大家收看",
        "请不吝点赞",
        "点赞订阅",
        "订阅转发",
        "字幕由",
        "字幕组",
        "明镜与点点栏目",
        "以下是普通话的句子",
        "大堂机器人说的话",
        "常说：办卡",
    ];
    let t = text.trim();
    if t.is_empty() || no_speech_prob > 0.8 {
        return String::new();
    }
    if STOCK.iter().any(|s| t.contains(s)) {
        return String::new();
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_subtitle_phrases_and_confident_silence_are_dropped() {
        assert_eq!(hallucination_filter("谢谢观看！", 0.1), "");
        assert_eq!(hallucination_filter("我要挂失", 0.95), "");
        assert_eq!(hallucination_filter(" 我要挂失 ", 0.2), "我要挂失");
        // Words of those phrases are still a customer's words.
        assert_eq!(
            hallucination_filter("我要开通短信订阅", 0.1),
            "我要开通短信订阅"
        );
        assert_eq!(hallucination_filter("谢谢大家", 0.1), "谢谢大家");
    }
}
