//! Reading WAV clips from disk for the offline tools, `chat --audio` and the tests: 16 kHz
//! mono PCM16 within a size limit.

use std::path::Path;

use anyhow::{bail, Context};

use super::vad::SAMPLE_RATE;

/// The largest WAV file the commands read (about 25 minutes of 16 kHz PCM16).
pub const MAX_WAV_BYTES: u64 = 48 << 20;

/// Reads a 16 kHz mono PCM16 WAV file as samples in [-1, 1].
pub fn read_wav(path: &Path) -> anyhow::Result<Vec<f32>> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.len() > MAX_WAV_BYTES {
        bail!(
            "{}: {} bytes is more than the {} a clip may have",
            path.display(),
            meta.len(),
            MAX_WAV_BYTES
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let pcm = super::tts::Pcm::from_wav_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if pcm.sample_rate as usize != SAMPLE_RATE {
        bail!(
            "{}: {} Hz; Concierge hears 16 kHz mono PCM16 (convert with `sox IN -r 16000 -c 1 -b 16 OUT.wav`)",
            path.display(),
            pcm.sample_rate
        );
    }
    Ok(pcm.samples.iter().map(|s| *s as f32 / 32768.0).collect())
}
