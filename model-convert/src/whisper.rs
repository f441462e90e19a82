//! CTranslate2 Whisper → legacy whisper.cpp ggml (the format of `ggml-base.bin`).
//!
//! Layout, little-endian: `i32 magic 0x67676d6c`, 11 × i32 hparams (`n_vocab,
//! n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state,
//! n_text_head, n_text_layer, n_mels, ftype`), mel filters (`i32 n_mel, i32 n_fft, f32
//! data`), tokens (`i32 count`, then `i32 len` + raw bytes each), then tensors
//! `{ i32 n_dims, i32 name_len, i32 ttype, i32 ne[n_dims] (reversed shape), name, data }`
//! with ttype 0 = f32, 1 = f16, 8 = q8_0.
//!
//! Tensor names and the split of CTranslate2's fused attention projections follow
//! `ct2_to_ggml.py` exactly, and so do the type rules: 1-D tensors, conv biases and
//! positional embeddings stay f32; conv weights are never q8_0; q8_0 takes 2-D tensors
//! whose rows are a multiple of 32 long.

use std::io::Write;
use std::path::Path;

use crate::ct2::{DType, Model, Variable};
use crate::quant::{f16_bits, q8_0_block, Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
use crate::{atomic, ConvertError, Result, GGML_MAGIC};

/// How the weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhisperFormat {
    /// Every tensor f32.
    F32,
    /// 2-D and larger weights f16 (the official `ggml-base.bin`).
    F16,
    /// 2-D weights q8_0, conv weights f16.
    Q8_0,
}

impl WhisperFormat {
    /// The `ftype` hparam: for q8_0, `GGML_FTYPE_MOSTLY_Q8_0 (7) + GGML_QNT_VERSION (2) ×
    /// GGML_QNT_VERSION_FACTOR (1000)`.
    pub fn ftype(self) -> i32 {
        match self {
            WhisperFormat::F32 => 0,
            WhisperFormat::F16 => 1,
            WhisperFormat::Q8_0 => 7 + 1000 * 2,
        }
    }
}

/// The 11 hparams of a whisper.cpp model, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl Hparams {
    /// In file order.
    pub fn to_array(self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    /// From file order.
    pub fn from_array(a: [i32; 11]) -> Self {
        Hparams {
            n_vocab: a[0],
            n_audio_ctx: a[1],
            n_audio_state: a[2],
            n_audio_head: a[3],
            n_audio_layer: a[4],
            n_text_ctx: a[5],
            n_text_state: a[6],
            n_text_head: a[7],
            n_text_layer: a[8],
            n_mels: a[9],
            ftype: a[10],
        }
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhisperSummary {
    pub hparams: Hparams,
    /// Byte-level BPE tokens in the table (the special tokens are whisper.cpp's own).
    pub tokens: usize,
    pub tensors: usize,
    /// Size of the file.
    pub bytes: u64,
}

/// ggml tensor types written here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
}

/// One output tensor: a name, a shape, and a contiguous byte range of a model variable.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    offset: usize,
    len: usize,
}

const F32_NAMES: [&str; 4] = [
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];
const CONV_NAMES: [&str; 2] = ["encoder.conv1.weight", "encoder.conv2.weight"];

impl PlannedTensor {
    /// The ggml type this tensor is written as.
    pub fn ttype(&self, format: WhisperFormat) -> TensorType {
        let nd = self.shape.len();
        if format == WhisperFormat::F32 || nd < 2 || F32_NAMES.contains(&self.name.as_str()) {
            TensorType::F32
        } else if format == WhisperFormat::Q8_0
            && !CONV_NAMES.contains(&self.name.as_str())
            && nd == 2
            && self.shape[1].is_multiple_of(Q8_0_BLOCK)
        {
            TensorType::Q8_0
        } else {
            TensorType::F16
        }
    }
}

/// Builds the tensor list with whisper.cpp (openai) names.
struct Planner<'m> {
    model: &'m Model,
    out: Vec<PlannedTensor>,
}

impl Planner<'_> {
    fn add_var(&mut self, dst: String, v: &Variable) {
        self.out.push(PlannedTensor {
            name: dst,
            shape: v.shape.clone(),
            dtype: v.dtype,
            offset: v.offset,
            len: v.len,
        });
    }

    fn add(&mut self, dst: &str, src: &str) -> Result<()> {
        let v = self.model.var(src)?.clone();
        self.add_var(dst.to_string(), &v);
        Ok(())
    }

    fn ln(&mut self, dst: &str, src: &str) -> Result<()> {
        self.add(&format!("{dst}.weight"), &format!("{src}/gamma"))?;
        self.add(&format!("{dst}.bias"), &format!("{src}/beta"))
    }

    fn lin(&mut self, dst: &str, src: &str) -> Result<()> {
        self.add(&format!("{dst}.weight"), &format!("{src}/weight"))?;
        self.add(&format!("{dst}.bias"), &format!("{src}/bias"))
    }

    /// Rows `i·n .. (i+1)·n` of a variable (`n = rows / parts`).
    fn rows(name: &str, v: &Variable, i: usize, parts: usize) -> Result<Variable> {
        let Some(&rows) = v.shape.first() else {
            return Err(ConvertError::BadTensor {
                name: name.to_string(),
                message: "a scalar cannot be split".into(),
            });
        };
        let n = rows / parts;
        let row_bytes = v.len.checked_div(rows).unwrap_or(0);
        let mut shape = v.shape.clone();
        shape[0] = n;
        Ok(Variable {
            shape,
            dtype: v.dtype,
            offset: v.offset + i * n * row_bytes,
            len: n * row_bytes,
        })
    }

    /// The self-attention of block `d` (our name) from layer `s` (CTranslate2's name).
    fn self_attention(&mut self, d: &str, s: &str) -> Result<()> {
        self.split_qkv(
            &format!("{d}.attn"),
            &format!("{s}/self_attention/linear_0"),
            &["query", "key", "value"],
        )?;
        self.lin(
            &format!("{d}.attn.out"),
            &format!("{s}/self_attention/linear_1"),
        )?;
        self.ln(
            &format!("{d}.attn_ln"),
            &format!("{s}/self_attention/layer_norm"),
        )
    }

    /// The feed-forward part of block `d` from layer `s`.
    fn mlp(&mut self, d: &str, s: &str) -> Result<()> {
        self.lin(&format!("{d}.mlp.0"), &format!("{s}/ffn/linear_0"))?;
        self.lin(&format!("{d}.mlp.2"), &format!("{s}/ffn/linear_1"))?;
        self.ln(&format!("{d}.mlp_ln"), &format!("{s}/ffn/layer_norm"))
    }

    fn split_qkv(&mut self, dst: &str, src: &str, parts: &[&str]) -> Result<()> {
        let wname = format!("{src}/weight");
        let bname = format!("{src}/bias");
        let w = self.model.var(&wname)?.clone();
        let b = self.model.var(&bname)?.clone();
        for (i, p) in parts.iter().enumerate() {
            let wi = Self::rows(&wname, &w, i, parts.len())?;
            self.add_var(format!("{dst}.{p}.weight"), &wi);
            let bi = Self::rows(&bname, &b, i, parts.len())?;
            if *p == "key" {
                // Whisper has no key bias; CTranslate2 stores zeros when fusing.
                let data = self.model.data(&bi);
                if (0..bi.elements()).any(|k| bi.dtype.get_f32(data, k) != 0.0) {
                    return Err(ConvertError::BadTensor {
                        name: bname,
                        message: "non-zero key bias".into(),
                    });
                }
            } else {
                self.add_var(format!("{dst}.{p}.bias"), &bi);
            }
        }
        Ok(())
    }
}

fn shape_of<'a>(model: &'a Model, name: &str, rank: usize) -> Result<&'a [usize]> {
    let v = model.var(name)?;
    if v.shape.len() != rank {
        return Err(ConvertError::BadTensor {
            name: name.to_string(),
            message: format!("expected {rank} dimensions, found shape {:?}", v.shape),
        });
    }
    Ok(&v.shape)
}

/// The distinct `layer_N` components of names `{side}/layer_N/…`.
fn count_layers(model: &Model, side: &str) -> usize {
    let mut layers = std::collections::BTreeSet::new();
    for name in model.names() {
        let Some(rest) = name.strip_prefix(side).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        let Some((first, _)) = rest.split_once('/') else {
            continue;
        };
        if first
            .strip_prefix("layer_")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        {
            layers.insert(first);
        }
    }
    layers.len()
}

fn to_i32(name: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| ConvertError::BadTensor {
        name: name.to_string(),
        message: format!("dimension {v} too large"),
    })
}

/// The hparams (with `ftype` 0) and the tensor list of a Whisper model.
pub fn plan(model: &Model) -> Result<(Hparams, Vec<PlannedTensor>)> {
    if model.spec != "WhisperSpec" {
        return Err(ConvertError::NotWhisper(model.spec.clone()));
    }
    let emb = shape_of(model, "decoder/embeddings/weight", 2)?;
    let (n_vocab, n_text_state) = (emb[0], emb[1]);
    let n_text_ctx = shape_of(model, "decoder/position_encodings/encodings", 2)?[0];
    let enc = shape_of(model, "encoder/position_encodings/encodings", 2)?;
    let (n_audio_ctx, n_audio_state) = (enc[0], enc[1]);
    let n_mels = shape_of(model, "encoder/conv1/weight", 3)?[1];
    let n_audio_layer = count_layers(model, "encoder");
    let n_text_layer = count_layers(model, "decoder");
    let n_audio_head = match model.scalar_int("encoder/num_heads")? {
        Some(h) => h as usize,
        None => n_audio_state / 64,
    };
    let n_text_head = match model.scalar_int("decoder/num_heads")? {
        Some(h) => h as usize,
        None => n_text_state / 64,
    };
    let hp = Hparams {
        n_vocab: to_i32("decoder/embeddings/weight", n_vocab)?,
        n_audio_ctx: to_i32("encoder/position_encodings/encodings", n_audio_ctx)?,
        n_audio_state: to_i32("encoder/position_encodings/encodings", n_audio_state)?,
        n_audio_head: to_i32("encoder/num_heads", n_audio_head)?,
        n_audio_layer: n_audio_layer as i32,
        n_text_ctx: to_i32("decoder/position_encodings/encodings", n_text_ctx)?,
        n_text_state: to_i32("decoder/embeddings/weight", n_text_state)?,
        n_text_head: to_i32("decoder/num_heads", n_text_head)?,
        n_text_layer: n_text_layer as i32,
        n_mels: to_i32("encoder/conv1/weight", n_mels)?,
        ftype: 0,
    };

    let mut p = Planner {
        model,
        out: Vec::new(),
    };
    p.add(
        "encoder.positional_embedding",
        "encoder/position_encodings/encodings",
    )?;
    for conv in ["conv1", "conv2"] {
        p.add(
            &format!("encoder.{conv}.weight"),
            &format!("encoder/{conv}/weight"),
        )?;
        // The bias as a column: shape (n, 1).
        let src = format!("encoder/{conv}/bias");
        let mut b = model.var(&src)?.clone();
        b.shape = vec![b.elements(), 1];
        p.add_var(format!("encoder.{conv}.bias"), &b);
    }
    for i in 0..n_audio_layer {
        let (s, d) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        p.self_attention(&d, &s)?;
        p.mlp(&d, &s)?;
    }
    p.ln("encoder.ln_post", "encoder/layer_norm")?;

    p.add(
        "decoder.positional_embedding",
        "decoder/position_encodings/encodings",
    )?;
    p.add(
        "decoder.token_embedding.weight",
        "decoder/embeddings/weight",
    )?;
    for i in 0..n_text_layer {
        let (s, d) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        p.self_attention(&d, &s)?;
        p.lin(
            &format!("{d}.cross_attn.query"),
            &format!("{s}/attention/linear_0"),
        )?;
        p.split_qkv(
            &format!("{d}.cross_attn"),
            &format!("{s}/attention/linear_1"),
            &["key", "value"],
        )?;
        p.lin(
            &format!("{d}.cross_attn.out"),
            &format!("{s}/attention/linear_2"),
        )?;
        p.ln(
            &format!("{d}.cross_attn_ln"),
            &format!("{s}/attention/layer_norm"),
        )?;
        p.mlp(&d, &s)?;
    }
    p.ln("decoder.ln", "decoder/layer_norm")?;
    Ok((hp, p.out))
}

/// The byte-level BPE tokens of `vocabulary.txt` (one token a line, in id order) up to,
/// not including, `<|endoftext|>`: whisper.cpp adds the special tokens itself.
pub fn tokens(vocabulary: &str) -> Result<Vec<Vec<u8>>> {
    // Python's text mode reads \r\n and \r as \n.
    let text = vocabulary.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let eot = lines
        .iter()
        .position(|l| *l == "<|endoftext|>")
        .ok_or_else(|| ConvertError::Vocabulary("no `<|endoftext|>` line".into()))?;
    let table = crate::bpe::unicode_to_bytes();
    lines[..eot]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            crate::bpe::decode_token(t, &table).map_err(|c| {
                ConvertError::Vocabulary(format!(
                    "line {}: character {c:?} is not a byte-level BPE character",
                    i + 1
                ))
            })
        })
        .collect()
}

/// Counts the bytes written through it.
struct Counting<'w, W> {
    inner: &'w mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn put_i32s(w: &mut impl Write, v: &[i32]) -> std::io::Result<()> {
    for x in v {
        w.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

/// Elements converted per chunk while streaming a tensor (a multiple of 32).
const CHUNK: usize = 1 << 14;

fn write_data(
    w: &mut impl Write,
    dtype: DType,
    data: &[u8],
    ttype: TensorType,
) -> std::io::Result<()> {
    let n = data.len() / dtype.size();
    match (ttype, dtype) {
        (TensorType::F32, DType::F32) | (TensorType::F16, DType::F16) => w.write_all(data),
        (TensorType::F32, _) => {
            let mut buf = Vec::with_capacity(CHUNK * 4);
            for start in (0..n).step_by(CHUNK) {
                buf.clear();
                for i in start..n.min(start + CHUNK) {
                    buf.extend_from_slice(&dtype.get_f32(data, i).to_le_bytes());
                }
                w.write_all(&buf)?;
            }
            Ok(())
        }
        (TensorType::F16, _) => {
            let mut buf = Vec::with_capacity(CHUNK * 2);
            for start in (0..n).step_by(CHUNK) {
                buf.clear();
                for i in start..n.min(start + CHUNK) {
                    buf.extend_from_slice(&f16_bits(dtype.get_f32(data, i)).to_le_bytes());
                }
                w.write_all(&buf)?;
            }
            Ok(())
        }
        (TensorType::Q8_0, _) => {
            let mut buf = Vec::with_capacity(CHUNK / Q8_0_BLOCK * Q8_0_BLOCK_BYTES);
            let mut x = [0f32; Q8_0_BLOCK];
            let mut block = [0u8; Q8_0_BLOCK_BYTES];
            for start in (0..n).step_by(CHUNK) {
                buf.clear();
                for b in (start..n.min(start + CHUNK)).step_by(Q8_0_BLOCK) {
                    for (k, v) in x.iter_mut().enumerate() {
                        *v = dtype.get_f32(data, b + k);
                    }
                    q8_0_block(&x, &mut block);
                    buf.extend_from_slice(&block);
                }
                w.write_all(&buf)?;
            }
            Ok(())
        }
    }
}

/// Writes the ggml file of `model` (with the tokens of `vocabulary`) to `w`.
pub fn write_whisper<W: Write>(
    model: &Model,
    vocabulary: &str,
    format: WhisperFormat,
    w: &mut W,
) -> Result<WhisperSummary> {
    let (mut hp, tensors) = plan(model)?;
    hp.ftype = format.ftype();
    if hp.n_mels != 80 {
        return Err(ConvertError::BadTensor {
            name: "encoder/conv1/weight".into(),
            message: format!(
                "{} mel bins: only 80-bin mel filters are computed here",
                hp.n_mels
            ),
        });
    }
    let toks = tokens(vocabulary)?;
    let filters = crate::mel::slaney_filters(16000.0, 400, 80);

    let mut w = Counting { inner: w, n: 0 };
    let io = |e: std::io::Error| ConvertError::Io {
        path: "<output>".into(),
        error: e,
    };
    w.write_all(&GGML_MAGIC.to_le_bytes()).map_err(io)?;
    put_i32s(&mut w, &hp.to_array()).map_err(io)?;
    put_i32s(&mut w, &[80, 201]).map_err(io)?;
    let mut fb = Vec::with_capacity(filters.len() * 4);
    for f in &filters {
        fb.extend_from_slice(&f.to_le_bytes());
    }
    w.write_all(&fb).map_err(io)?;
    put_i32s(&mut w, &[toks.len() as i32]).map_err(io)?;
    for t in &toks {
        put_i32s(&mut w, &[t.len() as i32]).map_err(io)?;
        w.write_all(t).map_err(io)?;
    }
    for t in &tensors {
        let ttype = t.ttype(format);
        let nb = t.name.as_bytes();
        let mut head = vec![t.shape.len() as i32, nb.len() as i32, ttype as i32];
        for &d in t.shape.iter().rev() {
            head.push(to_i32(&t.name, d)?);
        }
        put_i32s(&mut w, &head).map_err(io)?;
        w.write_all(nb).map_err(io)?;
        let data = &model.data_range(t.offset, t.len);
        write_data(&mut w, t.dtype, data, ttype).map_err(io)?;
    }
    w.flush().map_err(io)?;
    Ok(WhisperSummary {
        hparams: hp,
        tokens: toks.len(),
        tensors: tensors.len(),
        bytes: w.n,
    })
}

/// Converts `model` into the ggml file `out`, written atomically.
pub fn convert_whisper(
    model: &Model,
    vocabulary: &str,
    format: WhisperFormat,
    out: &Path,
) -> Result<WhisperSummary> {
    atomic::write_atomically(out, |w| write_whisper(model, vocabulary, format, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{read_tensors, tiny_whisper, values, Ct2Writer};

    const VOCAB: &str = "a\nĠb\nä½ł\n<|endoftext|>\n<|startoftranscript|>\n";

    fn convert(w: &Ct2Writer, format: WhisperFormat) -> (WhisperSummary, Vec<u8>) {
        let m = Model::parse(w.bytes()).unwrap();
        let mut out = Vec::new();
        let s = write_whisper(&m, VOCAB, format, &mut out).unwrap();
        assert_eq!(s.bytes, out.len() as u64);
        (s, out)
    }

    fn i32s(b: &[u8], from: usize, n: usize) -> Vec<i32> {
        (0..n)
            .map(|k| i32::from_le_bytes(b[from + 4 * k..from + 4 * k + 4].try_into().unwrap()))
            .collect()
    }

    /// Byte offset of the first tensor of a converted tiny model.
    const TENSORS_AT: usize = 4 + 44 + 8 + 80 * 201 * 4 + 4 + (4 + 1) + (4 + 2) + (4 + 3);

    #[test]
    fn the_header_hparams_and_tokens_are_whisper_cpp_s() {
        let (s, out) = convert(&tiny_whisper(), WhisperFormat::F16);
        assert_eq!(&out[..4], b"lmgg");
        assert_eq!(
            i32s(&out, 4, 11),
            [10, 4, 64, 2, 1, 3, 64, 1, 1, 80, 1],
            "n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, mels, ftype"
        );
        assert_eq!(i32s(&out, 48, 2), [80, 201]);
        let filters = crate::mel::slaney_filters(16000.0, 400, 80);
        assert_eq!(out[56..60], filters[0].to_le_bytes());
        let t = 56 + 80 * 201 * 4;
        assert_eq!(i32s(&out, t, 2), [3, 1]);
        assert_eq!(&out[t + 8..t + 9], b"a");
        assert_eq!(i32s(&out, t + 9, 1), [2]);
        assert_eq!(&out[t + 13..t + 15], b" b");
        assert_eq!(i32s(&out, t + 15, 1), [3]);
        assert_eq!(&out[t + 19..t + 22], "你".as_bytes());
        assert_eq!(s.tokens, 3);
        assert_eq!(s.tensors, 50);
        assert_eq!(read_tensors(&out, TENSORS_AT).len(), 50);
    }

    #[test]
    fn tensors_are_renamed_split_and_typed_like_the_reference() {
        let (_, out) = convert(&tiny_whisper(), WhisperFormat::F16);
        let ts = read_tensors(&out, TENSORS_AT);
        let get = |n: &str| {
            ts.iter()
                .find(|t| t.name == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        let names: Vec<&str> = ts.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names[..8],
            [
                "encoder.positional_embedding",
                "encoder.conv1.weight",
                "encoder.conv1.bias",
                "encoder.conv2.weight",
                "encoder.conv2.bias",
                "encoder.blocks.0.attn.query.weight",
                "encoder.blocks.0.attn.query.bias",
                "encoder.blocks.0.attn.key.weight",
            ]
        );
        assert!(!names.contains(&"encoder.blocks.0.attn.key.bias"));
        assert!(!names.contains(&"decoder.blocks.0.cross_attn.key.bias"));
        assert_eq!(names.last(), Some(&"decoder.ln.bias"));
        // (name, ne, type) for f16.
        for (n, ne, tt) in [
            ("encoder.positional_embedding", vec![64, 4], 0),
            ("encoder.conv1.weight", vec![3, 80, 64], 1),
            ("encoder.conv1.bias", vec![1, 64], 0),
            ("encoder.blocks.0.attn.query.weight", vec![64, 64], 1),
            ("encoder.blocks.0.attn.query.bias", vec![64], 0),
            ("encoder.blocks.0.mlp.0.weight", vec![64, 128], 1),
            ("decoder.token_embedding.weight", vec![64, 10], 1),
            ("decoder.blocks.0.cross_attn.value.weight", vec![64, 64], 1),
            ("decoder.positional_embedding", vec![64, 3], 0),
        ] {
            let t = get(n);
            assert_eq!((&t.ne, t.ttype), (&ne, tt), "{n}");
        }
        // The split takes row blocks of the fused projection, f16-rounded.
        let fused = values("encoder/layer_0/self_attention/linear_0/weight", 192 * 64);
        let v = &get("encoder.blocks.0.attn.value.weight").data;
        for k in [0, 1, 4095] {
            let want = half::f16::from_f32(fused[128 * 64 + k]).to_le_bytes();
            assert_eq!(v[2 * k..2 * k + 2], want);
        }
        // A bf16 layer norm comes out as f32, widened exactly.
        let g = "encoder/layer_0/self_attention/layer_norm/gamma";
        let want = f32::from_bits(values(g, 1)[0].to_bits() & 0xffff_0000);
        assert_eq!(
            get("encoder.blocks.0.attn_ln.weight").data[..4],
            want.to_le_bytes()
        );
        // f16 source data is copied as is.
        let n = "decoder/layer_0/ffn/linear_0/weight";
        let want = half::f16::from_f32(values(n, 1)[0]).to_le_bytes();
        assert_eq!(get("decoder.blocks.0.mlp.0.weight").data[..2], want);
    }

    #[test]
    fn q8_0_takes_2d_weights_but_never_conv_or_positional() {
        let (s, out) = convert(&tiny_whisper(), WhisperFormat::Q8_0);
        assert_eq!(s.hparams.ftype, 2007);
        let ts = read_tensors(&out, TENSORS_AT);
        let tt = |n: &str| ts.iter().find(|t| t.name == n).unwrap().ttype;
        assert_eq!(tt("encoder.blocks.0.attn.query.weight"), 8);
        assert_eq!(tt("decoder.token_embedding.weight"), 8);
        assert_eq!(tt("encoder.conv1.weight"), 1);
        assert_eq!(tt("encoder.conv2.weight"), 1);
        assert_eq!(tt("encoder.positional_embedding"), 0);
        assert_eq!(tt("encoder.conv1.bias"), 0);
        assert_eq!(tt("decoder.ln.weight"), 0);
        let (_, out) = convert(&tiny_whisper(), WhisperFormat::F32);
        assert!(read_tensors(&out, TENSORS_AT).iter().all(|t| t.ttype == 0));
    }

    #[test]
    fn a_non_zero_key_bias_or_another_model_is_refused() {
        let mut w = tiny_whisper();
        let n = "decoder/layer_0/attention/linear_1/bias";
        w.var(n, &[128], DType::F32, &[0.5; 128]); // replaces: last entry wins
        let m = Model::parse(w.bytes()).unwrap();
        let e = write_whisper(&m, VOCAB, WhisperFormat::F16, &mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), format!("tensor `{n}`: non-zero key bias"));

        let mut w = tiny_whisper();
        w.spec = "TransformerSpec".into();
        let m = Model::parse(w.bytes()).unwrap();
        let e = write_whisper(&m, VOCAB, WhisperFormat::F16, &mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "not a Whisper model: spec `TransformerSpec`");

        let m = Model::parse(tiny_whisper().bytes()).unwrap();
        let e = write_whisper(&m, "a\nb\n", WhisperFormat::F16, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, ConvertError::Vocabulary(_)), "{e}");
    }

    #[test]
    fn the_written_file_reads_back_and_its_truncation_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.bin");
        let m = Model::parse(tiny_whisper().bytes()).unwrap();
        let s = convert_whisper(&m, VOCAB, WhisperFormat::Q8_0, &path).unwrap();
        let info = crate::ggml::inspect_whisper(&path).unwrap_err();
        // n_vocab 10 is below what check_hparams calls a Whisper model.
        assert!(info.to_string().contains("n_vocab = 10"), "{info}");
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, s.bytes);
        bytes[4..8].copy_from_slice(&51865i32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let info = crate::ggml::inspect_whisper(&path).unwrap();
        assert_eq!((info.tensors, info.tokens), (50, 3));
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let e = crate::ggml::inspect_whisper(&path).unwrap_err();
        assert!(
            e.to_string().starts_with("truncated file: tensor data"),
            "{e}"
        );
        bytes[0] = b'x';
        std::fs::write(&path, &bytes).unwrap();
        let e = crate::ggml::inspect_whisper(&path).unwrap_err();
        assert!(matches!(e, ConvertError::BadMagic(_)), "{e}");
    }
}
