//! Reading legacy whisper.cpp ggml files back: a cheap header check (magic, plausible
//! hparams) and a full walk of the tensor table to the end of the file, for model files
//! that users bring (the official `ggml-*.bin`) and for start-up checks.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::whisper::Hparams;
use crate::{ConvertError, Result, GGML_MAGIC};

/// What a full walk of a whisper ggml file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperFileInfo {
    pub hparams: Hparams,
    pub tokens: usize,
    pub tensors: usize,
    pub bytes: u64,
}

/// `(values per block, bytes per block)` of the ggml tensor types whisper.cpp files use.
fn type_size(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (1, 4),     // f32
        1 => (1, 2),     // f16
        2 => (32, 18),   // q4_0
        3 => (32, 20),   // q4_1
        6 => (32, 22),   // q5_0
        7 => (32, 24),   // q5_1
        8 => (32, 34),   // q8_0
        9 => (32, 36),   // q8_1
        10 => (256, 84), // q2_K
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        30 => (1, 2), // bf16
        _ => return None,
    })
}

/// Hparams a Whisper model could have (any size from tiny to large-v3).
pub fn check_hparams(hp: &Hparams) -> Result<()> {
    let bad = |m: String| {
        Err(ConvertError::Ggml(format!(
            "implausible Whisper hparams: {m}"
        )))
    };
    let a = hp.to_array();
    let names = [
        "n_vocab",
        "n_audio_ctx",
        "n_audio_state",
        "n_audio_head",
        "n_audio_layer",
        "n_text_ctx",
        "n_text_state",
        "n_text_head",
        "n_text_layer",
    ];
    for (v, n) in a.iter().zip(names) {
        if !(1..=1_000_000).contains(v) {
            return bad(format!("{n} = {v}"));
        }
    }
    if !(1000..=1_000_000).contains(&hp.n_vocab) {
        return bad(format!("n_vocab = {}", hp.n_vocab));
    }
    if hp.n_audio_state % hp.n_audio_head != 0 || hp.n_text_state % hp.n_text_head != 0 {
        return bad("state size not a multiple of the head count".into());
    }
    if hp.n_audio_layer > 256 || hp.n_text_layer > 256 {
        return bad("more than 256 layers".into());
    }
    if hp.n_mels != 80 && hp.n_mels != 128 {
        return bad(format!("n_mels = {} (80 or 128 expected)", hp.n_mels));
    }
    if !(0..=40).contains(&(hp.ftype % 1000)) || hp.ftype < 0 {
        return bad(format!("ftype = {}", hp.ftype));
    }
    Ok(())
}

fn read_i32s<const N: usize>(r: &mut impl Read) -> std::io::Result<[i32; N]> {
    let mut b = [0u8; 4];
    let mut out = [0i32; N];
    for v in &mut out {
        r.read_exact(&mut b)?;
        *v = i32::from_le_bytes(b);
    }
    Ok(out)
}

/// Reads the magic number (the first 4 bytes) of a file.
pub fn read_magic(path: &Path) -> Result<u32> {
    let mut f = File::open(path).map_err(ConvertError::io(path))?;
    let [m] = read_i32s::<1>(&mut f).map_err(ConvertError::io(path))?;
    Ok(m as u32)
}

/// Checks the magic and the hparams of a whisper ggml file: cheap (52 bytes read).
pub fn read_whisper_header(path: &Path) -> Result<Hparams> {
    let mut f = BufReader::new(File::open(path).map_err(ConvertError::io(path))?);
    let short = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ConvertError::Ggml("shorter than a ggml header".into())
        } else {
            ConvertError::io(path)(e)
        }
    };
    let [magic] = read_i32s::<1>(&mut f).map_err(short)?;
    if magic as u32 != GGML_MAGIC {
        return Err(ConvertError::BadMagic(magic as u32));
    }
    let h = read_i32s::<11>(&mut f).map_err(short)?;
    let hp = Hparams::from_array(h);
    check_hparams(&hp)?;
    Ok(hp)
}

/// Walks a whisper ggml file: header, mel filters, tokens, and every tensor header, each
/// length checked against the bytes left, up to exactly the end of the file.
pub fn inspect_whisper(path: &Path) -> Result<WhisperFileInfo> {
    let hparams = read_whisper_header(path)?;
    let file = File::open(path).map_err(ConvertError::io(path))?;
    let len = file.metadata().map_err(ConvertError::io(path))?.len();
    let mut r = BufReader::new(file);
    let mut pos: u64 = 0;
    let truncated = |what: &str, at: u64, needed: u64| ConvertError::Truncated {
        what: what.to_string(),
        offset: at,
        needed,
        available: len.saturating_sub(at),
    };
    // Skips `n` bytes after checking they exist.
    macro_rules! skip {
        ($n:expr, $what:expr) => {{
            let n: u64 = $n;
            if n > len - pos {
                return Err(truncated($what, pos, n));
            }
            r.seek_relative(n as i64).map_err(ConvertError::io(path))?;
            pos += n;
        }};
    }
    macro_rules! ints {
        ($n:literal, $what:expr) => {{
            if 4 * $n > len - pos {
                return Err(truncated($what, pos, 4 * $n));
            }
            pos += 4 * $n;
            read_i32s::<$n>(&mut r).map_err(ConvertError::io(path))?
        }};
    }
    skip!(48, "header");
    let [n_mel, n_fft] = ints!(2, "mel filter shape");
    if n_mel < 0 || n_fft < 0 {
        return Err(ConvertError::Ggml(format!(
            "mel filter shape {n_mel}×{n_fft}"
        )));
    }
    skip!(n_mel as u64 * n_fft as u64 * 4, "mel filters");
    let [n_tokens] = ints!(1, "token count");
    if n_tokens < 0 {
        return Err(ConvertError::Ggml(format!("token count {n_tokens}")));
    }
    for _ in 0..n_tokens {
        let [l] = ints!(1, "token length");
        if l < 0 {
            return Err(ConvertError::Ggml(format!(
                "token length {l} at {}",
                pos - 4
            )));
        }
        skip!(l as u64, "token");
    }
    let mut tensors = 0;
    while pos < len {
        let at = pos;
        let [n_dims, name_len, ttype] = ints!(3, "tensor header");
        if !(1..=4).contains(&n_dims) || !(1..=1024).contains(&name_len) {
            return Err(ConvertError::Ggml(format!(
                "tensor header at byte {at}: {n_dims} dimensions, name of {name_len} bytes"
            )));
        }
        let mut ne = [1u64; 4];
        for d in ne.iter_mut().take(n_dims as usize) {
            let [v] = ints!(1, "tensor shape");
            if v < 1 {
                return Err(ConvertError::Ggml(format!(
                    "tensor at byte {at}: dimension {v}"
                )));
            }
            *d = v as u64;
        }
        skip!(name_len as u64, "tensor name");
        let (blck, size) = type_size(ttype).ok_or_else(|| {
            ConvertError::Ggml(format!("tensor at byte {at}: unknown type {ttype}"))
        })?;
        if !ne[0].is_multiple_of(blck) {
            return Err(ConvertError::Ggml(format!(
                "tensor at byte {at}: rows of {} do not fill blocks of {blck}",
                ne[0]
            )));
        }
        let bytes = (ne[0] / blck)
            .checked_mul(size)
            .and_then(|b| b.checked_mul(ne[1] * ne[2]))
            .and_then(|b| b.checked_mul(ne[3]))
            .unwrap_or(u64::MAX);
        skip!(bytes, "tensor data");
        tensors += 1;
    }
    if tensors == 0 {
        return Err(ConvertError::Ggml("no tensors".into()));
    }
    Ok(WhisperFileInfo {
        hparams,
        tokens: n_tokens as usize,
        tensors,
        bytes: len,
    })
}
