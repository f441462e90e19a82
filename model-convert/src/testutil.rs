//! Test helpers: a tiny CTranslate2 `model.bin` writer and a ggml tensor-table reader.

use crate::ct2::DType;

/// Builds a CTranslate2 `model.bin` in memory.
pub struct Ct2Writer {
    pub version: u32,
    pub spec: String,
    vars: Vec<(String, Vec<u32>, DType, Vec<u8>)>,
    aliases: Vec<(String, String)>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Deterministic values in (-1, 1) for a variable, from its name.
pub fn values(name: &str, n: usize) -> Vec<f32> {
    let mut h: u32 = name
        .bytes()
        .fold(2166136261, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    (0..n)
        .map(|_| {
            h ^= h << 13;
            h ^= h >> 17;
            h ^= h << 5;
            (h % 20001) as f32 / 10000.0 - 1.0
        })
        .collect()
}

impl Ct2Writer {
    pub fn new() -> Self {
        Ct2Writer {
            version: 6,
            spec: "WhisperSpec".into(),
            vars: Vec::new(),
            aliases: Vec::new(),
        }
    }

    /// A variable of `dtype` holding `data` (converted from f32).
    pub fn var(&mut self, name: &str, shape: &[u32], dtype: DType, data: &[f32]) -> &mut Self {
        let mut bytes = Vec::new();
        for &x in data {
            match dtype {
                DType::F32 => bytes.extend_from_slice(&x.to_le_bytes()),
                DType::F16 => bytes.extend_from_slice(&half::f16::from_f32(x).to_le_bytes()),
                DType::Bf16 => bytes.extend_from_slice(&((x.to_bits() >> 16) as u16).to_le_bytes()),
                DType::I8 => bytes.push(x as i8 as u8),
                DType::I16 => bytes.extend_from_slice(&(x as i16).to_le_bytes()),
                DType::I32 => bytes.extend_from_slice(&(x as i32).to_le_bytes()),
            }
        }
        self.vars.push((name.into(), shape.to_vec(), dtype, bytes));
        self
    }

    /// A variable with [`values`] of its name.
    pub fn rand(&mut self, name: &str, shape: &[u32]) -> &mut Self {
        let n = shape.iter().product::<u32>() as usize;
        self.var(name, shape, DType::F32, &values(name, n))
    }

    pub fn alias(&mut self, alias: &str, target: &str) -> &mut Self {
        self.aliases.push((alias.into(), target.into()));
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.version.to_le_bytes());
        put_str(&mut out, &self.spec);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
        for (name, shape, dtype, data) in &self.vars {
            put_str(&mut out, name);
            out.push(shape.len() as u8);
            for d in shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.push(*dtype as u8);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
        for (a, t) in &self.aliases {
            put_str(&mut out, a);
            put_str(&mut out, t);
        }
        out
    }
}

/// A one-layer Whisper with made-up dims: state 64 (encoder 2 heads, decoder from
/// state/64), 80 mels, audio ctx 4, text ctx 3, vocab 10, ffn 128. The token embedding is
/// an alias; the encoder's first layer norm gamma is bf16, the decoder's ffn weights f16.
pub fn tiny_whisper() -> Ct2Writer {
    let mut w = Ct2Writer::new();
    let s = 64;
    w.rand("encoder/position_encodings/encodings", &[4, s]);
    w.rand("encoder/conv1/weight", &[s, 80, 3]);
    w.rand("encoder/conv1/bias", &[s]);
    w.rand("encoder/conv2/weight", &[s, s, 3]);
    w.rand("encoder/conv2/bias", &[s]);
    w.var("encoder/num_heads", &[], DType::I32, &[2.0]);
    let qkv_bias = |name: &str, parts: usize| {
        let mut b = values(name, s as usize * parts);
        // The key part of a fused projection is zero.
        let k = if parts == 3 { 1 } else { 0 };
        b[k * s as usize..(k + 1) * s as usize].fill(0.0);
        b
    };
    let l = "encoder/layer_0";
    w.rand(&format!("{l}/self_attention/linear_0/weight"), &[3 * s, s]);
    let n = format!("{l}/self_attention/linear_0/bias");
    w.var(&n, &[3 * s], DType::F32, &qkv_bias(&n, 3));
    w.rand(&format!("{l}/self_attention/linear_1/weight"), &[s, s]);
    w.rand(&format!("{l}/self_attention/linear_1/bias"), &[s]);
    let g = format!("{l}/self_attention/layer_norm/gamma");
    w.var(&g, &[s], DType::Bf16, &values(&g, s as usize));
    w.rand(&format!("{l}/self_attention/layer_norm/beta"), &[s]);
    w.rand(&format!("{l}/ffn/linear_0/weight"), &[128, s]);
    w.rand(&format!("{l}/ffn/linear_0/bias"), &[128]);
    w.rand(&format!("{l}/ffn/linear_1/weight"), &[s, 128]);
    w.rand(&format!("{l}/ffn/linear_1/bias"), &[s]);
    w.rand(&format!("{l}/ffn/layer_norm/gamma"), &[s]);
    w.rand(&format!("{l}/ffn/layer_norm/beta"), &[s]);
    w.rand("encoder/layer_norm/gamma", &[s]);
    w.rand("encoder/layer_norm/beta", &[s]);

    w.rand("decoder/position_encodings/encodings", &[3, s]);
    w.rand("decoder/projection/weight", &[10, s]);
    w.alias("decoder/embeddings/weight", "decoder/projection/weight");
    let l = "decoder/layer_0";
    w.rand(&format!("{l}/self_attention/linear_0/weight"), &[3 * s, s]);
    let n = format!("{l}/self_attention/linear_0/bias");
    w.var(&n, &[3 * s], DType::F32, &qkv_bias(&n, 3));
    w.rand(&format!("{l}/self_attention/linear_1/weight"), &[s, s]);
    w.rand(&format!("{l}/self_attention/linear_1/bias"), &[s]);
    w.rand(&format!("{l}/self_attention/layer_norm/gamma"), &[s]);
    w.rand(&format!("{l}/self_attention/layer_norm/beta"), &[s]);
    w.rand(&format!("{l}/attention/linear_0/weight"), &[s, s]);
    w.rand(&format!("{l}/attention/linear_0/bias"), &[s]);
    w.rand(&format!("{l}/attention/linear_1/weight"), &[2 * s, s]);
    let n = format!("{l}/attention/linear_1/bias");
    w.var(&n, &[2 * s], DType::F32, &qkv_bias(&n, 2));
    w.rand(&format!("{l}/attention/linear_2/weight"), &[s, s]);
    w.rand(&format!("{l}/attention/linear_2/bias"), &[s]);
    w.rand(&format!("{l}/attention/layer_norm/gamma"), &[s]);
    w.rand(&format!("{l}/attention/layer_norm/beta"), &[s]);
    let n = format!("{l}/ffn/linear_0/weight");
    w.var(&n, &[128, s], DType::F16, &values(&n, 128 * s as usize));
    w.rand(&format!("{l}/ffn/linear_0/bias"), &[128]);
    let n = format!("{l}/ffn/linear_1/weight");
    w.var(&n, &[s, 128], DType::F16, &values(&n, 128 * s as usize));
    w.rand(&format!("{l}/ffn/linear_1/bias"), &[s]);
    w.rand(&format!("{l}/ffn/layer_norm/gamma"), &[s]);
    w.rand(&format!("{l}/ffn/layer_norm/beta"), &[s]);
    w.rand("decoder/layer_norm/gamma", &[s]);
    w.rand("decoder/layer_norm/beta", &[s]);
    w
}

/// A tensor of a ggml file: name, ne (ggml order), type, data bytes.
#[derive(Debug)]
pub struct GgmlTensor {
    pub name: String,
    pub ne: Vec<i32>,
    pub ttype: i32,
    pub data: Vec<u8>,
}

/// The tensors of a whisper or VAD ggml file, starting at byte `pos`.
pub fn read_tensors(buf: &[u8], mut pos: usize) -> Vec<GgmlTensor> {
    let i32_at = |p: usize| i32::from_le_bytes(buf[p..p + 4].try_into().unwrap());
    let mut out = Vec::new();
    while pos < buf.len() {
        let (nd, nl, tt) = (i32_at(pos), i32_at(pos + 4) as usize, i32_at(pos + 8));
        pos += 12;
        let ne: Vec<i32> = (0..nd as usize).map(|k| i32_at(pos + 4 * k)).collect();
        pos += 4 * nd as usize;
        let name = String::from_utf8(buf[pos..pos + nl].to_vec()).unwrap();
        pos += nl;
        let n: usize = ne.iter().map(|&d| d as usize).product();
        let size = match tt {
            0 => n * 4,
            1 => n * 2,
            8 => n / 32 * 34,
            t => panic!("type {t}"),
        };
        out.push(GgmlTensor {
            name,
            ne,
            ttype: tt,
            data: buf[pos..pos + size].to_vec(),
        });
        pos += size;
    }
    out
}
