//! A GGUF reader and validator in Rust, independent of llama.cpp.
//!
//! [`Gguf::read`] parses the header, every metadata key/value and every tensor info, and accepts
//! the file only after it has checked everything a loader would trust: counts, string and array
//! lengths (against hard caps and against the bytes that remain), value and tensor types, dims,
//! alignment, overflow-checked tensor byte sizes, that tensors do not overlap, and that every
//! tensor ends within the file. Nothing is allocated from a length read from the file before that
//! length has been checked against the remaining bytes.
//!
//! On top of the parsed file it computes what `/api/show` reports: [`Gguf::model_info`],
//! [`Gguf::details`] and [`Gguf::capabilities`]. [`Gguf::validate_projector`] checks a
//! multimodal projector (mmproj) file against what llama.cpp's clip loader needs.

mod info;
mod projector;
mod reader;
#[doc(hidden)]
pub mod testing;
mod types;
pub(crate) mod writer;

pub use info::{Capability, Details, human_number};
pub use projector::{KNOWN_PROJECTOR_TYPES, Modalities, ProjectorError, ProjectorSummary};
pub use types::{GgmlType, file_type_name};
pub use writer::GgufWriter;

use std::path::Path;

/// The GGUF magic, `GGUF` in file order.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Longest accepted metadata string, in bytes.
pub const MAX_STRING_LEN: u64 = 16 << 20;
/// Longest accepted vocabulary entry (`tokenizer.ggml.tokens` item), in bytes.
pub const MAX_TOKEN_LEN: usize = 64 << 10;
/// Most elements accepted in one metadata array.
pub const MAX_ARRAY_LEN: u64 = 16 << 20;
/// Deepest accepted nesting of arrays inside arrays.
pub const MAX_ARRAY_DEPTH: usize = 4;
/// Most metadata key/values accepted.
pub const MAX_KV_COUNT: u64 = 1 << 20;
/// Most tensors accepted.
pub const MAX_TENSOR_COUNT: u64 = 1 << 20;
/// Largest accepted header (metadata plus tensor infos), in bytes.
pub const MAX_HEADER_BYTES: u64 = 512 << 20;
/// Largest accepted `general.alignment`.
pub const MAX_ALIGNMENT: u32 = 1 << 20;
/// Alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;

/// Why a GGUF was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// Reading failed (including a stream shorter than the length given).
    #[error("reading GGUF: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with `GGUF`.
    #[error("not a GGUF file (bad magic)")]
    BadMagic,
    /// Only versions 2 and 3 are read.
    #[error("unsupported GGUF version {0}")]
    UnsupportedVersion(u32),
    /// A field runs past the end of the file.
    #[error("GGUF truncated: {need} bytes needed at offset {offset}")]
    Truncated {
        /// Where the field starts.
        offset: u64,
        /// How many bytes it needs.
        need: u64,
    },
    /// A count is larger than its cap or than the remaining bytes allow.
    #[error("GGUF {what} count {count} is too large")]
    TooMany {
        /// What was counted (`tensor`, `key/value`, `array element`).
        what: &'static str,
        /// The count read from the file.
        count: u64,
    },
    /// A string is longer than [`MAX_STRING_LEN`].
    #[error("GGUF string of {len} bytes at offset {offset} is too long")]
    StringTooLong {
        /// Where the string starts.
        offset: u64,
        /// Its declared length.
        len: u64,
    },
    /// Arrays nest deeper than [`MAX_ARRAY_DEPTH`].
    #[error("GGUF arrays nested too deeply at offset {offset}")]
    TooDeep {
        /// Where the inner array starts.
        offset: u64,
    },
    /// A metadata value type id is unknown.
    #[error("unknown GGUF value type {type_id} at offset {offset}")]
    UnknownValueType {
        /// Where the type id is.
        offset: u64,
        /// The id.
        type_id: u32,
    },
    /// A bool is neither 0 nor 1.
    #[error("invalid GGUF bool at offset {offset}")]
    InvalidBool {
        /// Where the byte is.
        offset: u64,
    },
    /// A key appears twice.
    #[error("duplicate GGUF key {0:?}")]
    DuplicateKey(String),
    /// A well-known key has the wrong type or an invalid value.
    #[error("invalid GGUF key {key:?}: {reason}")]
    BadKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor info is invalid.
    #[error("invalid GGUF tensor {name:?}: {reason}")]
    BadTensor {
        /// The tensor's name (shortened).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7.
    Bool(bool),
    /// Type 8.
    String(String),
    /// Type 9.
    Array(Array),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

/// A metadata array, stored by element type so memory stays proportional to the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    /// Of type 0.
    U8(Vec<u8>),
    /// Of type 1.
    I8(Vec<i8>),
    /// Of type 2.
    U16(Vec<u16>),
    /// Of type 3.
    I16(Vec<i16>),
    /// Of type 4.
    U32(Vec<u32>),
    /// Of type 5.
    I32(Vec<i32>),
    /// Of type 6.
    F32(Vec<f32>),
    /// Of type 7.
    Bool(Vec<bool>),
    /// Of type 8.
    String(Vec<String>),
    /// Of type 9: arrays of arrays.
    Array(Vec<Array>),
    /// Of type 10.
    U64(Vec<u64>),
    /// Of type 11.
    I64(Vec<i64>),
    /// Of type 12.
    F64(Vec<f64>),
}

impl Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The GGUF type id of the elements.
    pub fn elem_type_id(&self) -> u32 {
        match self {
            Array::U8(_) => 0,
            Array::I8(_) => 1,
            Array::U16(_) => 2,
            Array::I16(_) => 3,
            Array::U32(_) => 4,
            Array::I32(_) => 5,
            Array::F32(_) => 6,
            Array::Bool(_) => 7,
            Array::String(_) => 8,
            Array::Array(_) => 9,
            Array::U64(_) => 10,
            Array::I64(_) => 11,
            Array::F64(_) => 12,
        }
    }
}

impl Value {
    /// The GGUF type id.
    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// One tensor's info, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its dimensions, innermost first (1 to 4 of them, each at least 1).
    pub dims: Vec<u64>,
    /// Its element type.
    pub ggml_type: GgmlType,
    /// Offset of its data from the start of the data section.
    pub offset: u64,
    /// Size of its data in bytes.
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements (the product of the dims; checked not to overflow when read).
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed and validated GGUF file's header.
#[derive(Debug, Clone)]
pub struct Gguf {
    version: u32,
    alignment: u32,
    data_offset: u64,
    file_len: u64,
    kv: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
}

impl Gguf {
    /// Reads and validates a GGUF from `r`, positioned at the start of the file, whose total
    /// length is `file_len` bytes. Only the header is read; tensor data is bounds-checked
    /// against `file_len` but not read.
    pub fn read<R: std::io::Read>(r: R, file_len: u64) -> Result<Gguf, GgufError> {
        reader::read(r, file_len)
    }

    /// Reads and validates a GGUF from a seekable reader, taking the file length from the
    /// stream's end. The reader may be positioned anywhere; the GGUF starts at offset 0.
    pub fn from_seekable<R: std::io::Read + std::io::Seek>(mut r: R) -> Result<Gguf, GgufError> {
        let len = r.seek(std::io::SeekFrom::End(0))?;
        r.rewind()?;
        Gguf::read(r, len)
    }

    /// Opens and validates the GGUF at `path`.
    pub fn open(path: &Path) -> Result<Gguf, GgufError> {
        let f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        Gguf::read(f, len)
    }

    /// Validates a GGUF held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Gguf, GgufError> {
        Gguf::read(bytes, bytes.len() as u64)
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment in bytes.
    pub fn alignment(&self) -> u32 {
        self.alignment
    }

    /// Absolute file offset where tensor data starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The file length the GGUF was validated against.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// All metadata key/values, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.kv
    }

    /// The value of one metadata key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// `general.architecture`, if present.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// Writes a copy of this GGUF with one more key/value (appended after the others) to
    /// `out`: the header is re-encoded and the tensor data copied from `src` (the file this
    /// was read from, positioned anywhere). Returns the bytes written.
    ///
    /// # Errors
    /// An I/O error, or [`GgufError::DuplicateKey`] when the key exists.
    pub fn write_with_key<R, W>(
        &self,
        mut src: R,
        key: &str,
        value: &Value,
        mut out: W,
    ) -> Result<u64, GgufError>
    where
        R: std::io::Read + std::io::Seek,
        W: std::io::Write,
    {
        if self.get(key).is_some() {
            return Err(GgufError::DuplicateKey(key.to_string()));
        }
        let mut head = Vec::new();
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&self.version.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.kv.len() as u64 + 1).to_le_bytes());
        let extra = (key.to_string(), value.clone());
        for (k, v) in self.kv.iter().chain(std::iter::once(&extra)) {
            writer::put_str(&mut head, k);
            head.extend_from_slice(&v.type_id().to_le_bytes());
            head.extend_from_slice(&writer::encode(v));
        }
        for t in &self.tensors {
            writer::put_str(&mut head, &t.name);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            head.extend_from_slice(&t.offset.to_le_bytes());
        }
        if !self.tensors.is_empty() {
            let a = u64::from(self.alignment) as usize;
            head.resize(head.len().next_multiple_of(a), 0);
        }
        out.write_all(&head)?;
        let mut written = head.len() as u64;
        if !self.tensors.is_empty() {
            src.seek(std::io::SeekFrom::Start(self.data_offset))?;
            let want = self.file_len - self.data_offset;
            let copied = std::io::copy(&mut std::io::Read::take(src, want), &mut out)?;
            if copied != want {
                return Err(GgufError::Truncated {
                    offset: self.data_offset + copied,
                    need: want - copied,
                });
            }
            written += copied;
        }
        out.flush()?;
        Ok(written)
    }

    /// The parameter count: the sum of the element counts of all tensors.
    pub fn parameter_count(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |acc, t| acc.saturating_add(t.elements()))
    }
}

#[cfg(test)]
mod tests;
