//! A small GGUF writer for tests and fixtures: it writes valid files, and with the `raw` methods
//! also deliberately invalid ones.

use super::{Array, DEFAULT_ALIGNMENT, GgmlType, MAGIC, Value};

#[derive(Debug, Clone)]
struct WTensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    data: Vec<u8>,
    offset: Option<u64>,
}

/// Builds a GGUF file in memory.
///
/// Tensor data is laid out in order, each tensor aligned to the layout alignment (32, or what
/// [`GgufWriter::alignment`] set). The `*_raw` methods write whatever they are given, for
/// building hostile files.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    kv: Vec<(String, u32, Vec<u8>)>,
    tensors: Vec<WTensor>,
    counts: Option<(u64, u64)>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.elem_type_id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each!(v),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| put_str(out, s)),
        Array::Array(v) => v.iter().for_each(|a| put_array(out, a)),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
    }
}

pub(crate) fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(&mut out, s),
        Value::Array(a) => put_array(&mut out, a),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
    out
}

impl GgufWriter {
    /// An empty version-3 file with the default alignment.
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            alignment: u64::from(DEFAULT_ALIGNMENT),
            kv: Vec::new(),
            tensors: Vec::new(),
            counts: None,
        }
    }

    /// Sets the version number written in the header.
    pub fn version(mut self, v: u32) -> Self {
        self.version = v;
        self
    }

    /// Lays tensor data out at `a` bytes and records it as `general.alignment` (u32).
    pub fn alignment(mut self, a: u32) -> Self {
        self.alignment = u64::from(a.max(1));
        self.kv("general.alignment", Value::U32(a))
    }

    /// Adds a key/value.
    pub fn kv(mut self, key: &str, v: Value) -> Self {
        self.kv.push((key.to_string(), v.type_id(), encode(&v)));
        self
    }

    /// Adds a key with any type id and any payload bytes.
    pub fn kv_raw(mut self, key: &str, type_id: u32, payload: Vec<u8>) -> Self {
        self.kv.push((key.to_string(), type_id, payload));
        self
    }

    /// Adds a tensor whose data is `data` (not checked against the dims).
    pub fn tensor(mut self, name: &str, dims: &[u64], t: GgmlType, data: Vec<u8>) -> Self {
        self.tensors.push(WTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            type_id: t.id(),
            data,
            offset: None,
        });
        self
    }

    /// Adds a tensor of the right size for its dims and type, filled with a byte pattern. (For
    /// dims that are invalid for the type the size is rounded down; the reader rejects such a
    /// tensor anyway.)
    pub fn tensor_filled(self, name: &str, dims: &[u64], t: GgmlType) -> Self {
        let rows: u64 = dims.iter().skip(1).fold(1, |a, &d| a.saturating_mul(d));
        let row_bytes = dims
            .first()
            .map_or(0, |d0| d0 / t.block_size() * t.type_size());
        let size = row_bytes.saturating_mul(rows).min(1 << 30);
        let data = (0..size).map(|i| (i % 251) as u8).collect();
        self.tensor(name, dims, t, data)
    }

    /// Adds a tensor info with any type id and an explicit data offset; `data` is placed at the
    /// next aligned position as usual, but the info records `offset`.
    pub fn tensor_raw(
        mut self,
        name: &str,
        dims: &[u64],
        type_id: u32,
        offset: u64,
        data: Vec<u8>,
    ) -> Self {
        self.tensors.push(WTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            type_id,
            data,
            offset: Some(offset),
        });
        self
    }

    /// Writes `n_tensors` and `n_kv` into the header instead of the real counts.
    pub fn counts_raw(mut self, n_tensors: u64, n_kv: u64) -> Self {
        self.counts = Some((n_tensors, n_kv));
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        let (nt, nkv) = self
            .counts
            .unwrap_or((self.tensors.len() as u64, self.kv.len() as u64));
        out.extend_from_slice(&nt.to_le_bytes());
        out.extend_from_slice(&nkv.to_le_bytes());
        for (k, type_id, payload) in &self.kv {
            put_str(&mut out, k);
            out.extend_from_slice(&type_id.to_le_bytes());
            out.extend_from_slice(payload);
        }
        let mut next = 0u64;
        let mut offsets = Vec::new();
        for t in &self.tensors {
            offsets.push(next);
            next = (next + t.data.len() as u64).next_multiple_of(self.alignment);
        }
        for (t, &at) in self.tensors.iter().zip(&offsets) {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            out.extend_from_slice(&t.offset.unwrap_or(at).to_le_bytes());
        }
        let pad = |out: &mut Vec<u8>, a: u64| {
            while !(out.len() as u64).is_multiple_of(a) {
                out.push(0);
            }
        };
        if !self.tensors.is_empty() {
            pad(&mut out, self.alignment);
        }
        let data_start = out.len() as u64;
        for (t, &at) in self.tensors.iter().zip(&offsets) {
            out.resize((data_start + at) as usize, 0);
            out.extend_from_slice(&t.data);
        }
        out
    }
}
