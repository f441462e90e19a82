//! Silero VAD: `silero_vad_16k.safetensors` (in the `silero-vad` wheel) → the whisper.cpp
//! VAD ggml file, as `silero_safetensors_to_ggml.py` (and whisper.cpp's own
//! `convert-silero-vad-to-ggml.py`) write it.
//!
//! Safetensors: `u64 header_len`, a JSON header `{name: {dtype, shape, data_offsets}}`,
//! then the data. Output: `i32 magic`, `i32 len` + model type `silero-16k`, 3 × i32
//! version, `n_window 512, n_context 64`, the four encoder conv layers `(in, out, kernel)`,
//! LSTM `(input, hidden)`, final conv `(in, out)`, then tensors as in the Whisper file
//! (conv and STFT weights f16, biases and LSTM f32).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use crate::quant::f16_bits;
use crate::{atomic, ConvertError, Cursor, Result, GGML_MAGIC};

/// An f32 tensor of a safetensors file: its shape and little-endian bytes.
#[derive(Debug, Clone)]
pub struct StTensor<'a> {
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

/// Reads the f32 tensors of a safetensors file (other dtypes are refused).
pub fn read_safetensors(buf: &[u8]) -> Result<HashMap<String, StTensor<'_>>> {
    let mut c = Cursor::new(buf);
    let n = c.u64("safetensors header length")?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let header = c.take(n, "safetensors header")?;
    let base = c.pos();
    let bad = |m: String| ConvertError::Malformed {
        offset: 8,
        message: format!("safetensors header: {m}"),
    };
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(e.to_string()))?;
    let mut out = HashMap::new();
    for (name, info) in &json {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info.get("dtype").and_then(|d| d.as_str()).unwrap_or("");
        if dtype != "F32" {
            return Err(bad(format!("`{name}` is {dtype:?}, only F32 is handled")));
        }
        let nums = |key: &str| -> Result<Vec<usize>> {
            info.get(key)
                .and_then(|v| v.as_array())
                .ok_or_else(|| bad(format!("`{name}` has no {key}")))?
                .iter()
                .map(|x| {
                    x.as_u64()
                        .map(|x| x as usize)
                        .ok_or_else(|| bad(format!("`{name}`: bad {key}")))
                })
                .collect()
        };
        let shape = nums("shape")?;
        let offs = nums("data_offsets")?;
        let [s, e] = offs[..] else {
            return Err(bad(format!("`{name}`: data_offsets needs two numbers")));
        };
        let elements = shape
            .iter()
            .try_fold(4usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        if s > e || e - s != elements {
            return Err(bad(format!(
                "`{name}`: offsets {s}..{e} do not hold shape {shape:?}"
            )));
        }
        if e > buf.len() - base {
            return Err(ConvertError::Truncated {
                what: format!("data of `{name}`"),
                offset: (base + s) as u64,
                needed: (e - s) as u64,
                available: (buf.len() - base).saturating_sub(s) as u64,
            });
        }
        out.insert(
            name.clone(),
            StTensor {
                shape,
                data: &buf[base + s..base + e],
            },
        );
    }
    Ok(out)
}

fn put(w: &mut impl Write, v: &[i32]) -> std::io::Result<()> {
    for x in v {
        w.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

fn tensor(
    w: &mut impl Write,
    name: &str,
    shape: &[usize],
    data: &[u8],
    f16: bool,
) -> std::io::Result<()> {
    let nb = name.as_bytes();
    put(w, &[shape.len() as i32, nb.len() as i32, i32::from(f16)])?;
    for &d in shape.iter().rev() {
        put(w, &[d as i32])?;
    }
    w.write_all(nb)?;
    if f16 {
        let bytes: Vec<u8> = data
            .chunks_exact(4)
            .flat_map(|b| f16_bits(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes())
            .collect();
        w.write_all(&bytes)
    } else {
        w.write_all(data)
    }
}

/// Writes the VAD ggml file of the safetensors bytes `st`; `version` is `MAJOR.MINOR.PATCH`.
pub fn write_silero<W: Write>(st: &[u8], version: &str, w: &mut W) -> Result<usize> {
    let t = read_safetensors(st)?;
    let ver: Vec<i32> = version
        .split('.')
        .map(|p| p.parse::<i32>())
        .collect::<Result<_, _>>()
        .ok()
        .filter(|v: &Vec<i32>| v.len() == 3)
        .ok_or_else(|| {
            ConvertError::Ggml(format!("version `{version}` is not MAJOR.MINOR.PATCH"))
        })?;
    let get = |name: &str| {
        t.get(name)
            .ok_or_else(|| ConvertError::MissingTensor(name.to_string()))
    };
    let io = |e| ConvertError::Io {
        path: "<output>".into(),
        error: e,
    };
    let mut body = || -> std::io::Result<()> {
        put(w, &[GGML_MAGIC as i32])?;
        let mt = b"silero-16k";
        put(w, &[mt.len() as i32])?;
        w.write_all(mt)?;
        put(w, &ver)?;
        put(w, &[512, 64])?; // n_window, n_context
        put(w, &[4])?; // encoder layers: (in, out, kernel)
        for (cin, cout) in [(129, 128), (128, 64), (64, 64), (64, 128)] {
            put(w, &[cin, cout, 3])?;
        }
        put(w, &[128, 128])?; // lstm input, hidden
        put(w, &[128, 1])?; // final conv in, out
        Ok(())
    };
    body().map_err(io)?;
    let mut n = 0;
    let mut emit = |dst: &str, src: &str, f16: bool, flatten: bool| -> Result<()> {
        let s = get(src)?;
        let flat = [s.shape.iter().product()];
        let shape: &[usize] = if flatten { &flat } else { &s.shape };
        tensor(w, dst, shape, s.data, f16).map_err(io)?;
        n += 1;
        Ok(())
    };
    for i in 0..4 {
        emit(
            &format!("_model.encoder.{i}.reparam_conv.weight"),
            &format!("conv{}.weight", i + 1),
            true,
            false,
        )?;
        emit(
            &format!("_model.encoder.{i}.reparam_conv.bias"),
            &format!("conv{}.bias", i + 1),
            false,
            false,
        )?;
    }
    for k in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
        emit(
            &format!("_model.decoder.rnn.{k}"),
            &format!("lstm_cell.{k}"),
            false,
            false,
        )?;
    }
    emit(
        "_model.decoder.decoder.2.weight",
        "final_conv.weight",
        true,
        true,
    )?;
    emit(
        "_model.decoder.decoder.2.bias",
        "final_conv.bias",
        false,
        false,
    )?;
    emit(
        "_model.stft.forward_basis_buffer",
        "stft_conv.weight",
        true,
        false,
    )?;
    Ok(n)
}

/// Converts the safetensors bytes `st` into the VAD ggml file `out` (atomically);
/// returns the number of tensors.
pub fn convert_silero(st: &[u8], version: &str, out: &Path) -> Result<usize> {
    atomic::write_atomically(out, |w| write_silero(st, version, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::read_tensors;

    fn safetensors(tensors: &[(&str, Vec<usize>)], dtype: &str) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, shape) in tensors {
            let n: usize = shape.iter().product();
            let start = data.len();
            for i in 0..n {
                data.extend_from_slice(&(i as f32 / 3.0).to_le_bytes());
            }
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
            );
        }
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
        let h = serde_json::to_vec(&header).unwrap();
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(&data);
        out
    }

    fn tiny() -> Vec<(&'static str, Vec<usize>)> {
        vec![
            ("stft_conv.weight", vec![4, 1, 8]),
            ("conv1.weight", vec![2, 3, 3]),
            ("conv1.bias", vec![2]),
            ("conv2.weight", vec![2, 2, 3]),
            ("conv2.bias", vec![2]),
            ("conv3.weight", vec![2, 2, 3]),
            ("conv3.bias", vec![2]),
            ("conv4.weight", vec![2, 2, 3]),
            ("conv4.bias", vec![2]),
            ("lstm_cell.weight_ih", vec![8, 2]),
            ("lstm_cell.weight_hh", vec![8, 2]),
            ("lstm_cell.bias_ih", vec![8]),
            ("lstm_cell.bias_hh", vec![8]),
            ("final_conv.weight", vec![1, 2, 1]),
            ("final_conv.bias", vec![1]),
        ]
    }

    #[test]
    fn the_vad_file_has_the_reference_header_and_tensors() {
        let mut out = Vec::new();
        assert_eq!(
            write_silero(&safetensors(&tiny(), "F32"), "6.2.3", &mut out).unwrap(),
            15
        );
        let ints = |from: usize, n: usize| -> Vec<i32> {
            (0..n)
                .map(|k| {
                    i32::from_le_bytes(out[from + 4 * k..from + 4 * k + 4].try_into().unwrap())
                })
                .collect()
        };
        assert_eq!(ints(0, 2), [0x67676d6c, 10]);
        assert_eq!(&out[8..18], b"silero-16k");
        assert_eq!(
            ints(18, 22),
            [
                6, 2, 3, 512, 64, 4, 129, 128, 3, 128, 64, 3, 64, 64, 3, 64, 128, 3, 128, 128, 128,
                1
            ]
        );
        let ts = read_tensors(&out, 18 + 22 * 4);
        let t: Vec<(&str, &[i32], i32)> = ts
            .iter()
            .map(|t| (t.name.as_str(), &t.ne[..], t.ttype))
            .collect();
        assert_eq!(
            t[0],
            ("_model.encoder.0.reparam_conv.weight", &[3, 3, 2][..], 1)
        );
        assert_eq!(t[1], ("_model.encoder.0.reparam_conv.bias", &[2][..], 0));
        assert_eq!(t[8], ("_model.decoder.rnn.weight_ih", &[2, 8][..], 0));
        assert_eq!(t[12], ("_model.decoder.decoder.2.weight", &[2][..], 1));
        assert_eq!(
            t[14],
            ("_model.stft.forward_basis_buffer", &[8, 1, 4][..], 1)
        );
        // f16 rounding of 1/3.
        assert_eq!(
            ts[0].data[2..4],
            half::f16::from_f32(1.0 / 3.0).to_le_bytes()
        );
    }

    #[test]
    fn other_dtypes_missing_tensors_and_bad_offsets_are_refused() {
        let e = write_silero(&safetensors(&tiny(), "F16"), "6.2.3", &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("only F32 is handled"), "{e}");
        let mut t = tiny();
        t.pop();
        let e = write_silero(&safetensors(&t, "F32"), "6.2.3", &mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), "the model has no tensor `final_conv.bias`");
        let st = safetensors(&tiny(), "F32");
        let e = read_safetensors(&st[..st.len() - 4]).unwrap_err();
        assert!(e.to_string().starts_with("truncated file: data of"), "{e}");
        let e = read_safetensors(&[255; 8]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("truncated file: safetensors header"),
            "{e}"
        );
    }
}
