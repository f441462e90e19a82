//! Speech synthesis (TTS) backends.

use secrecy::SecretString;
use serde::Deserialize;

/// `[speech.tts]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct TtsSettings {
    /// `espeak`, `openai` or `off`.
    pub backend: String,
    /// The default voice profile (file stem in voices/).
    pub voice: String,
    pub espeak_binary: String,
    pub openai_base_url: String,
    pub openai_api_key: SecretString,
    pub openai_model: String,
    pub max_chars: usize,
}
