//! The GGUF parser. Every length read from the file is checked against its cap and against the
//! bytes left (within the header budget) before anything is allocated for it.

use super::{
    Array, DEFAULT_ALIGNMENT, GgmlType, Gguf, GgufError, MAGIC, MAX_ALIGNMENT, MAX_ARRAY_DEPTH,
    MAX_ARRAY_LEN, MAX_DIMS, MAX_HEADER_BYTES, MAX_KV_COUNT, MAX_STRING_LEN, MAX_TENSOR_COUNT,
    MAX_TOKEN_LEN, TensorInfo, Value,
};
use std::collections::HashSet;
use std::io::{BufReader, Read};

struct Src<R> {
    r: BufReader<R>,
    pos: u64,
    /// The header may not extend past this offset: `min(file_len, MAX_HEADER_BYTES)`.
    limit: u64,
}

/// Smallest encoding of one value of each type: used to bound counts by the bytes left.
fn min_size(type_id: u32) -> u64 {
    match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => 1,
    }
}

impl<R: Read> Src<R> {
    fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.pos)
    }

    fn need(&self, n: u64) -> Result<(), GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                offset: self.pos,
                need: n,
            });
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        self.need(N as u64)?;
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads `n` bytes; `n` must already be known to fit (checked here again).
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, GgufError> {
        self.need(n)?;
        let len = usize::try_from(n).map_err(|_| GgufError::Truncated {
            offset: self.pos,
            need: n,
        })?;
        let mut v = vec![0u8; len];
        self.r.read_exact(&mut v)?;
        self.pos += n;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let offset = self.pos;
        let len = self.u64()?;
        if len > MAX_STRING_LEN {
            return Err(GgufError::StringTooLong { offset, len });
        }
        let b = self.bytes(len)?;
        Ok(String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()))
    }

    /// Checks `count` elements of at least `elem` bytes each can still fit.
    fn check_count(
        &self,
        what: &'static str,
        count: u64,
        cap: u64,
        elem: u64,
    ) -> Result<(), GgufError> {
        if count > cap {
            return Err(GgufError::TooMany { what, count });
        }
        match count.checked_mul(elem) {
            Some(n) if n <= self.remaining() => Ok(()),
            _ => Err(GgufError::TooMany { what, count }),
        }
    }

    fn value(&mut self, type_id: u32, type_offset: u64, depth: usize) -> Result<Value, GgufError> {
        Ok(match type_id {
            0 => Value::U8(u8::from_le_bytes(self.array()?)),
            1 => Value::I8(i8::from_le_bytes(self.array()?)),
            2 => Value::U16(u16::from_le_bytes(self.array()?)),
            3 => Value::I16(i16::from_le_bytes(self.array()?)),
            4 => Value::U32(u32::from_le_bytes(self.array()?)),
            5 => Value::I32(i32::from_le_bytes(self.array()?)),
            6 => Value::F32(f32::from_le_bytes(self.array()?)),
            7 => Value::Bool(self.bool()?),
            8 => Value::String(self.string()?),
            9 => Value::Array(self.array_value(depth)?),
            10 => Value::U64(u64::from_le_bytes(self.array()?)),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            _ => {
                return Err(GgufError::UnknownValueType {
                    offset: type_offset,
                    type_id,
                });
            }
        })
    }

    fn bool(&mut self) -> Result<bool, GgufError> {
        let offset = self.pos;
        match self.array::<1>()?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(GgufError::InvalidBool { offset }),
        }
    }

    /// Reads an array body (element type, count, elements).
    fn array_value(&mut self, depth: usize) -> Result<Array, GgufError> {
        let offset = self.pos;
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::TooDeep { offset });
        }
        let elem = self.u32()?;
        if elem > 12 {
            return Err(GgufError::UnknownValueType {
                offset,
                type_id: elem,
            });
        }
        let count = self.u64()?;
        self.check_count("array element", count, MAX_ARRAY_LEN, min_size(elem))?;
        // `count` now fits in the remaining header bytes, so it also fits in usize.
        let n = count as usize;

        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                const W: usize = std::mem::size_of::<$t>();
                let raw = self.bytes(count * W as u64)?;
                Array::$variant(
                    raw.chunks_exact(W)
                        .map(|c| {
                            let mut b = [0u8; W];
                            b.copy_from_slice(c);
                            <$t>::from_le_bytes(b)
                        })
                        .collect(),
                )
            }};
        }

        Ok(match elem {
            0 => Array::U8(self.bytes(count)?),
            1 => fixed!(I8, i8),
            2 => fixed!(U16, u16),
            3 => fixed!(I16, i16),
            4 => fixed!(U32, u32),
            5 => fixed!(I32, i32),
            6 => fixed!(F32, f32),
            7 => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bool()?);
                }
                Array::Bool(v)
            }
            8 => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.string()?);
                }
                Array::String(v)
            }
            9 => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array_value(depth + 1)?);
                }
                Array::Array(v)
            }
            10 => fixed!(U64, u64),
            11 => fixed!(I64, i64),
            _ => fixed!(F64, f64),
        })
    }
}

fn short(name: &str) -> String {
    name.chars().take(96).collect()
}

fn bad_tensor(name: &str, reason: impl Into<String>) -> GgufError {
    GgufError::BadTensor {
        name: short(name),
        reason: reason.into(),
    }
}

fn bad_key(key: &str, reason: impl Into<String>) -> GgufError {
    GgufError::BadKey {
        key: key.to_string(),
        reason: reason.into(),
    }
}

pub(super) fn read<R: Read>(r: R, file_len: u64) -> Result<Gguf, GgufError> {
    let mut src = Src {
        r: BufReader::with_capacity(64 << 10, r),
        pos: 0,
        limit: file_len.min(MAX_HEADER_BYTES),
    };
    if src.remaining() < 4 || src.array::<4>()? != MAGIC {
        return Err(GgufError::BadMagic);
    }
    let version = src.u32()?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion(version));
    }
    let n_tensors = src.u64()?;
    let n_kv = src.u64()?;
    // A key/value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at least
    // 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    src.check_count("key/value", n_kv, MAX_KV_COUNT, 13)?;
    src.check_count("tensor", n_tensors, MAX_TENSOR_COUNT, 32)?;

    let mut kv: Vec<(String, Value)> = Vec::with_capacity(n_kv as usize);
    let mut keys = HashSet::with_capacity(n_kv as usize);
    for _ in 0..n_kv {
        let key = src.string()?;
        let type_offset = src.pos;
        let type_id = src.u32()?;
        let value = src.value(type_id, type_offset, 0)?;
        if !keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey(short(&key)));
        }
        kv.push((key, value));
    }

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = src.string()?;
        let n_dims = src.u32()?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(bad_tensor(
                &name,
                format!("{n_dims} dimensions (1 to 4 allowed)"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(src.u64()?);
        }
        let type_id = src.u32()?;
        let offset = src.u64()?;
        let ggml_type = GgmlType::from_id(type_id)
            .ok_or_else(|| bad_tensor(&name, format!("unknown ggml type {type_id}")))?;
        let size = tensor_size(&name, &dims, ggml_type)?;
        if !names.insert(name.clone()) {
            return Err(bad_tensor(&name, "duplicate tensor name"));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
            size,
        });
    }

    let alignment = match kv.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((k, Value::U32(a))) => {
            if *a == 0 || !a.is_power_of_two() || *a > MAX_ALIGNMENT {
                return Err(bad_key(
                    k,
                    format!("alignment {a} is not a power of two up to 1 MiB"),
                ));
            }
            *a
        }
        Some((k, _)) => return Err(bad_key(k, "alignment must be a u32")),
    };
    validate_known_keys(&kv)?;

    let data_offset = src
        .pos
        .checked_next_multiple_of(u64::from(alignment))
        .ok_or_else(|| bad_key("general.alignment", "data offset overflows"))?;
    if !tensors.is_empty() && data_offset > file_len {
        return Err(GgufError::Truncated {
            offset: src.pos,
            need: data_offset - src.pos,
        });
    }

    // Tensors must be aligned, lie within the file and not overlap.
    let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        if !t.offset.is_multiple_of(u64::from(alignment)) {
            return Err(bad_tensor(
                &t.name,
                format!("offset {} is not aligned to {alignment}", t.offset),
            ));
        }
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.size))
            .filter(|&e| e <= file_len)
            .ok_or_else(|| bad_tensor(&t.name, "data extends past the end of the file"))?;
        spans.push((t.offset, end - data_offset, i));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(bad_tensor(
                &tensors[w[1].2].name,
                "data overlaps another tensor",
            ));
        }
    }

    Ok(Gguf {
        version,
        alignment,
        data_offset,
        file_len,
        kv,
        tensors,
    })
}

/// The byte size of a tensor, with every step overflow-checked.
fn tensor_size(name: &str, dims: &[u64], t: GgmlType) -> Result<u64, GgufError> {
    let mut elements: u64 = 1;
    for &d in dims {
        if d == 0 || d > i64::MAX as u64 {
            return Err(bad_tensor(name, format!("invalid dimension {d}")));
        }
        elements = elements
            .checked_mul(d)
            .filter(|&e| e <= i64::MAX as u64)
            .ok_or_else(|| bad_tensor(name, "element count overflows"))?;
    }
    let block = t.block_size();
    if !dims[0].is_multiple_of(block) {
        return Err(bad_tensor(
            name,
            format!(
                "row of {} elements is not a multiple of the {t} block size {block}",
                dims[0]
            ),
        ));
    }
    let rows = elements / dims[0];
    (dims[0] / block)
        .checked_mul(t.type_size())
        .and_then(|row_bytes| row_bytes.checked_mul(rows))
        .filter(|&s| s <= i64::MAX as u64)
        .ok_or_else(|| bad_tensor(name, "byte size overflows"))
}

/// Type and range checks for keys that the rest of the program (and llama.cpp) trusts.
fn validate_known_keys(kv: &[(String, Value)]) -> Result<(), GgufError> {
    let get = |key: &str| kv.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    for key in [
        "general.architecture",
        "general.name",
        "tokenizer.chat_template",
        "tokenizer.ggml.model",
    ] {
        if let Some(v) = get(key)
            && v.as_str().is_none()
        {
            return Err(bad_key(key, "must be a string"));
        }
    }
    if let Some(v) = get("general.file_type")
        && v.as_u64().is_none_or(|n| n > u64::from(u32::MAX))
    {
        return Err(bad_key("general.file_type", "must be an unsigned integer"));
    }

    let n_vocab = match get("tokenizer.ggml.tokens") {
        None => None,
        Some(Value::Array(Array::String(t))) => {
            if let Some(long) = t.iter().position(|tok| tok.len() > MAX_TOKEN_LEN) {
                return Err(bad_key(
                    "tokenizer.ggml.tokens",
                    format!("token {long} is longer than {MAX_TOKEN_LEN} bytes"),
                ));
            }
            Some(t.len())
        }
        Some(_) => {
            return Err(bad_key(
                "tokenizer.ggml.tokens",
                "must be an array of strings",
            ));
        }
    };
    let check_len = |key: &str, ok_type: fn(&Array) -> bool, what: &str| -> Result<(), GgufError> {
        match get(key) {
            None => Ok(()),
            Some(Value::Array(a)) if ok_type(a) => match n_vocab {
                Some(n) if a.len() != n => Err(bad_key(
                    key,
                    format!("has {} entries for {n} tokens", a.len()),
                )),
                None => Err(bad_key(key, "present without tokenizer.ggml.tokens")),
                _ => Ok(()),
            },
            Some(_) => Err(bad_key(key, format!("must be an array of {what}"))),
        }
    };
    check_len(
        "tokenizer.ggml.scores",
        |a| matches!(a, Array::F32(_)),
        "f32",
    )?;
    check_len(
        "tokenizer.ggml.token_type",
        |a| matches!(a, Array::I32(_)),
        "i32",
    )?;
    if let Some(v) = get("tokenizer.ggml.merges")
        && !matches!(v, Value::Array(Array::String(_)))
    {
        return Err(bad_key(
            "tokenizer.ggml.merges",
            "must be an array of strings",
        ));
    }
    for (key, v) in kv {
        if key.starts_with("tokenizer.ggml.") && key.ends_with("_token_id") {
            let id = v
                .as_u64()
                .ok_or_else(|| bad_key(key, "must be an unsigned integer"))?;
            if let Some(n) = n_vocab
                && id >= n as u64
            {
                return Err(bad_key(
                    key,
                    format!("token id {id} is not below the vocabulary size {n}"),
                ));
            }
        }
    }
    Ok(())
}
