//! CTranslate2 `model.bin` reader (binary versions 4 to 6).
//!
//! Layout (ctranslate2/specs/model_spec.py, `_serialize`), little-endian:
//! `u32 binary_version, str spec_name, u32 spec_revision, u32 n_variables,
//! n_variables × { str name, u8 rank, u32 dims[rank], u8 dtype, u32 nbytes, bytes },
//! u32 n_aliases, n_aliases × { str alias, str target }`, where `str` is a u16 length
//! that counts a trailing NUL, then the UTF-8 bytes and the NUL.
//!
//! The whole file is held in memory once; variables are byte ranges into it (no copies),
//! and every length is checked against the bytes left before it is used.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{ConvertError, Cursor, Result};

/// Element types of CTranslate2 variables (the u8 dtype id is the discriminant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32 = 0,
    I8 = 1,
    I16 = 2,
    I32 = 3,
    F16 = 4,
    Bf16 = 5,
}

impl DType {
    /// The dtype of a CTranslate2 dtype id.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::I8 => 1,
        }
    }

    /// Element `i` of little-endian `bytes` as f32 (what numpy's `astype(float32)` gives).
    #[inline]
    pub fn get_f32(self, bytes: &[u8], i: usize) -> f32 {
        let s = self.size();
        let b = &bytes[i * s..i * s + s];
        match self {
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            DType::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            DType::I8 => b[0] as i8 as f32,
            DType::F16 => half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
            DType::Bf16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
        }
    }
}

/// One variable: its shape, dtype and where its bytes are in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// Byte offset of the data in the file.
    pub offset: usize,
    /// Byte length of the data (= elements × dtype size).
    pub len: usize,
}

impl Variable {
    /// Number of elements.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed `model.bin`.
#[derive(Debug)]
pub struct Model {
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    buf: Vec<u8>,
    /// Variables and aliases by name (an alias is a copy of its target's entry).
    vars: BTreeMap<String, Variable>,
}

impl Model {
    /// Reads `model.bin`.
    pub fn read(path: &Path) -> Result<Self> {
        Self::read_parts(&[path])
    }

    /// Reads a `model.bin` split in parts (concatenated in the order given).
    pub fn read_parts<P: AsRef<Path>>(parts: &[P]) -> Result<Self> {
        let mut total = 0u64;
        for p in parts {
            let p = p.as_ref();
            total += std::fs::metadata(p).map_err(ConvertError::io(p))?.len();
        }
        let mut buf = Vec::with_capacity(total as usize);
        for p in parts {
            let p = p.as_ref();
            let mut f = std::fs::File::open(p).map_err(ConvertError::io(p))?;
            std::io::Read::read_to_end(&mut f, &mut buf).map_err(ConvertError::io(p))?;
        }
        Self::parse(buf)
    }

    /// Parses the bytes of a `model.bin`.
    pub fn parse(buf: Vec<u8>) -> Result<Self> {
        let (version, spec, revision, vars) = parse_index(&buf)?;
        Ok(Model {
            version,
            spec,
            revision,
            buf,
            vars,
        })
    }

    /// The variable (or alias) `name`.
    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.vars.get(name)
    }

    /// The variable `name`, or [`ConvertError::MissingTensor`].
    pub fn var(&self, name: &str) -> Result<&Variable> {
        self.get(name)
            .ok_or_else(|| ConvertError::MissingTensor(name.to_string()))
    }

    /// The bytes of a variable of this model.
    pub fn data(&self, v: &Variable) -> &[u8] {
        &self.buf[v.offset..v.offset + v.len]
    }

    /// `len` bytes of the file from `offset` (a range taken from a [`Variable`]).
    pub(crate) fn data_range(&self, offset: usize, len: usize) -> &[u8] {
        &self.buf[offset..offset + len]
    }

    /// Every variable and alias name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// A one-element variable as an integer (like Python's `int(arr)`), if present.
    pub fn scalar_int(&self, name: &str) -> Result<Option<i64>> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if v.elements() != 1 {
            return Err(ConvertError::BadTensor {
                name: name.to_string(),
                message: format!("expected one value, found shape {:?}", v.shape),
            });
        }
        let b = self.data(v);
        Ok(Some(match v.dtype {
            DType::I8 => b[0] as i8 as i64,
            DType::I16 => i16::from_le_bytes([b[0], b[1]]) as i64,
            DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            d => d.get_f32(b, 0) as i64,
        }))
    }
}

type Index = (u32, String, u32, BTreeMap<String, Variable>);

fn read_str(c: &mut Cursor<'_>, what: &str) -> Result<String> {
    let at = c.pos();
    let n = c.u16(what)? as usize;
    if n == 0 {
        return Err(c.malformed(at, format!("{what}: zero string length")));
    }
    let bytes = c.take(n, what)?;
    std::str::from_utf8(&bytes[..n - 1])
        .map(str::to_string)
        .map_err(|_| c.malformed(at + 2, format!("{what}: not UTF-8")))
}

fn parse_index(buf: &[u8]) -> Result<Index> {
    let mut c = Cursor::new(buf);
    let version = c.u32("binary version")?;
    if !(4..=6).contains(&version) {
        return Err(ConvertError::UnsupportedVersion(version));
    }
    let spec = read_str(&mut c, "spec name")?;
    let revision = c.u32("spec revision")?;
    let n_vars = c.u32("variable count")? as usize;
    let mut vars = BTreeMap::new();
    for _ in 0..n_vars {
        let name = read_str(&mut c, "variable name")?;
        let rank = c.u8(&format!("rank of `{name}`"))? as usize;
        let dims = c.take(rank * 4, &format!("shape of `{name}`"))?;
        let shape: Vec<usize> = dims
            .chunks_exact(4)
            .map(|d| u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize)
            .collect();
        let at = c.pos();
        let id = c.u8(&format!("dtype of `{name}`"))?;
        let dtype = DType::from_id(id)
            .ok_or_else(|| c.malformed(at, format!("`{name}`: unknown dtype id {id}")))?;
        let at = c.pos();
        let nbytes = c.u32(&format!("size of `{name}`"))? as usize;
        let expect = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        if expect != Some(nbytes) {
            return Err(c.malformed(
                at,
                format!(
                    "`{name}`: {nbytes} bytes do not hold shape {shape:?} of {}-byte elements",
                    dtype.size()
                ),
            ));
        }
        let offset = c.pos();
        c.take(nbytes, &format!("data of `{name}`"))?;
        vars.insert(
            name,
            Variable {
                shape,
                dtype,
                offset,
                len: nbytes,
            },
        );
    }
    // Version 3 and later carry aliases.
    let n_aliases = c.u32("alias count")? as usize;
    for _ in 0..n_aliases {
        let at = c.pos();
        let alias = read_str(&mut c, "alias name")?;
        let target = read_str(&mut c, "alias target")?;
        let v = vars
            .get(&target)
            .cloned()
            .ok_or_else(|| c.malformed(at, format!("alias `{alias}` names unknown `{target}`")))?;
        vars.insert(alias, v);
    }
    Ok((version, spec, revision, vars))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{tiny_whisper, Ct2Writer};

    #[test]
    fn variables_aliases_and_dtypes_are_read() {
        let m = Model::parse(tiny_whisper().bytes()).unwrap();
        assert_eq!(
            (m.version, m.spec.as_str(), m.revision),
            (6, "WhisperSpec", 3)
        );
        let e = m.var("decoder/embeddings/weight").unwrap();
        assert_eq!(e, m.var("decoder/projection/weight").unwrap());
        assert_eq!(e.shape, [10, 64]);
        assert_eq!(m.scalar_int("encoder/num_heads").unwrap(), Some(2));
        assert_eq!(m.scalar_int("decoder/num_heads").unwrap(), None);
        let g = m
            .var("encoder/layer_0/self_attention/layer_norm/gamma")
            .unwrap();
        assert_eq!(g.dtype, DType::Bf16);
        assert_eq!(g.len, 128);
    }

    #[test]
    fn bf16_widens_to_f32_exactly() {
        let mut w = Ct2Writer::new();
        w.var("x", &[3], DType::Bf16, &[1.5, -2.0, 3.140625]);
        let m = Model::parse(w.bytes()).unwrap();
        let v = m.var("x").unwrap();
        let got: Vec<f32> = (0..3).map(|i| v.dtype.get_f32(m.data(v), i)).collect();
        assert_eq!(got, [1.5, -2.0, 3.140625]);
    }

    #[test]
    fn a_truncated_file_is_refused_with_the_offset() {
        let bytes = tiny_whisper().bytes();
        // Cut inside the data of the first variable.
        let m = Model::parse(bytes.clone()).unwrap();
        let first = m
            .var("encoder/position_encodings/encodings")
            .unwrap()
            .clone();
        let cut = bytes[..first.offset + 10].to_vec();
        match Model::parse(cut).unwrap_err() {
            ConvertError::Truncated {
                offset,
                needed,
                available,
                what,
            } => {
                assert_eq!(offset, first.offset as u64);
                assert_eq!(needed, first.len as u64);
                assert_eq!(available, 10);
                assert!(what.contains("encoder/position_encodings"), "{what}");
            }
            e => panic!("{e}"),
        }
        // Cut before the alias table ends.
        let e = Model::parse(bytes[..bytes.len() - 3].to_vec()).unwrap_err();
        assert!(
            e.to_string().contains("truncated file: alias target"),
            "{e}"
        );
        // A size field that lies: bytes that do not hold the shape.
        let mut w = Ct2Writer::new();
        w.var("x", &[4], DType::F32, &[0.0; 3]);
        let e = Model::parse(w.bytes()).unwrap_err();
        assert!(e.to_string().contains("do not hold shape [4]"), "{e}");
    }

    #[test]
    fn unknown_versions_and_dtypes_are_refused() {
        for v in [3, 7] {
            let mut w = tiny_whisper();
            w.version = v;
            assert!(matches!(
                Model::parse(w.bytes()).unwrap_err(),
                ConvertError::UnsupportedVersion(x) if x == v
            ));
        }
        let mut bytes = Ct2Writer::new().var("x", &[1], DType::F32, &[1.0]).bytes();
        // version(4) + spec(2+12) + revision(4) + count(4) + name(2+2) + rank(1) + dim(4)
        let dtype_at = 4 + 14 + 4 + 4 + 4 + 1 + 4;
        bytes[dtype_at] = 9;
        let e = Model::parse(bytes).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("malformed file at byte offset {dtype_at}: `x`: unknown dtype id 9")
        );
    }
}
