//! Where a derived tensor's bytes come from: a verbatim range of the source file, or a small
//! expression over such ranges (widening, dequantization, concatenation, reordering).
//!
//! Verbatim ranges are streamed; every other expression is computed one tensor at a time, so
//! memory stays bounded by the largest rewritten tensor (in practice a vision tensor), never by
//! the file.

use super::CompatError;
use crate::gguf::GgmlType;
use std::io::{Read, Seek, SeekFrom};

/// The bytes of one output tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `len` bytes at `offset` from the start of the source's data section.
    Src {
        /// Offset within the data section.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
    /// `len` zero bytes.
    Zeros {
        /// Length in bytes.
        len: u64,
    },
    /// Literal bytes (fixtures, small synthesized tensors).
    Bytes(Vec<u8>),
    /// The parts one after another.
    Concat(Vec<Data>),
    /// Each part cut into `n` equal slices; the output is slice 0 of every part, then slice 1
    /// of every part, and so on (experts fused per expert).
    Interleave {
        /// The parts, each a multiple of `n` bytes long.
        parts: Vec<Data>,
        /// The number of slices.
        n: u64,
    },
    /// The source, of element type `from`, dequantized to little-endian F32.
    ToF32 {
        /// The source's element type (F32, F16, BF16 or Q8_0).
        from: GgmlType,
        /// The source bytes.
        data: Box<Data>,
    },
    /// F32 bytes with `add` added to every element.
    AddF32 {
        /// F32 bytes.
        data: Box<Data>,
        /// The constant.
        add: f32,
    },
    /// The source cut into planes of `plane` bytes; output plane `k` is input plane
    /// `order[k]` (row permutations, patch-embedding splits).
    Planes {
        /// The source bytes, a whole number of planes.
        data: Box<Data>,
        /// Plane size in bytes.
        plane: u64,
        /// Input plane for each output plane.
        order: Vec<u64>,
    },
    /// An F32 grid of `side_in`² positions, `width` floats each (position-major), resampled
    /// bilinearly (align-corners) to `side_out`² positions.
    Resample {
        /// F32 bytes, `side_in² · width` floats.
        data: Box<Data>,
        /// Floats per position.
        width: u64,
        /// Input grid side.
        side_in: u64,
        /// Output grid side.
        side_out: u64,
    },
}

fn elements_of(t: GgmlType, bytes: u64) -> u64 {
    bytes / t.type_size() * t.block_size()
}

impl Data {
    /// A verbatim range.
    pub fn src(offset: u64, len: u64) -> Data {
        Data::Src { offset, len }
    }

    /// The number of bytes this produces.
    pub fn len(&self) -> u64 {
        match self {
            Data::Src { len, .. } | Data::Zeros { len } => *len,
            Data::Bytes(b) => b.len() as u64,
            Data::Concat(parts) | Data::Interleave { parts, .. } => {
                parts.iter().map(Data::len).sum()
            }
            Data::ToF32 { from, data } => elements_of(*from, data.len()) * 4,
            Data::AddF32 { data, .. } => data.len(),
            Data::Planes { plane, order, .. } => plane * order.len() as u64,
            Data::Resample {
                width, side_out, ..
            } => side_out * side_out * width * 4,
        }
    }

    /// Whether this produces no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a verbatim copy (streamed, never held in memory).
    pub fn is_verbatim(&self) -> bool {
        matches!(self, Data::Src { .. })
    }

    /// Checks the expression's own consistency (slices that divide, plane indices in range,
    /// types that can be dequantized). `what` names the tensor in the error.
    pub fn check(&self, what: &str) -> Result<(), CompatError> {
        let bad = |reason: String| {
            Err(CompatError::Layout {
                tensor: what.to_string(),
                reason,
            })
        };
        match self {
            Data::Src { .. } | Data::Zeros { .. } | Data::Bytes(_) => Ok(()),
            Data::Concat(parts) => parts.iter().try_for_each(|p| p.check(what)),
            Data::Interleave { parts, n } => {
                if *n == 0 || parts.iter().any(|p| p.len() % n != 0) {
                    return bad(format!("parts do not split into {n} equal slices"));
                }
                parts.iter().try_for_each(|p| p.check(what))
            }
            Data::ToF32 { from, data } => {
                if !matches!(
                    from,
                    GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0
                ) {
                    return bad(format!("cannot convert {} to F32", from.name()));
                }
                if data.len() % from.type_size() != 0 {
                    return bad(format!(
                        "size is not a whole number of {} blocks",
                        from.name()
                    ));
                }
                data.check(what)
            }
            Data::AddF32 { data, .. } => {
                if data.len() % 4 != 0 {
                    return bad("size is not a whole number of F32 values".into());
                }
                data.check(what)
            }
            Data::Planes { data, plane, order } => {
                if *plane == 0 || data.len() % plane != 0 {
                    return bad(format!("size is not a whole number of {plane}-byte planes"));
                }
                let n = data.len() / plane;
                if order.iter().any(|&i| i >= n) {
                    return bad("plane index out of range".into());
                }
                data.check(what)
            }
            Data::Resample {
                data,
                width,
                side_in,
                side_out,
            } => {
                if *side_in == 0 || *side_out == 0 || data.len() != side_in * side_in * width * 4 {
                    return bad("position grid does not match its size".into());
                }
                data.check(what)
            }
        }
    }

    /// Computes the bytes (reading the source as needed). `data_start` is the absolute offset
    /// of the source's data section.
    pub fn materialize<R: Read + Seek>(
        &self,
        src: &mut R,
        data_start: u64,
    ) -> std::io::Result<Vec<u8>> {
        Ok(match self {
            Data::Src { offset, len } => {
                src.seek(SeekFrom::Start(data_start + offset))?;
                let mut v = vec![0u8; usize::try_from(*len).map_err(std::io::Error::other)?];
                src.read_exact(&mut v)?;
                v
            }
            Data::Zeros { len } => vec![0u8; usize::try_from(*len).map_err(std::io::Error::other)?],
            Data::Bytes(b) => b.clone(),
            Data::Concat(parts) => {
                let mut out = Vec::with_capacity(self.len() as usize);
                for p in parts {
                    out.extend(p.materialize(src, data_start)?);
                }
                out
            }
            Data::Interleave { parts, n } => {
                let bufs = parts
                    .iter()
                    .map(|p| p.materialize(src, data_start))
                    .collect::<std::io::Result<Vec<_>>>()?;
                let mut out = Vec::with_capacity(self.len() as usize);
                for e in 0..*n as usize {
                    for b in &bufs {
                        let s = b.len() / *n as usize;
                        out.extend_from_slice(&b[e * s..(e + 1) * s]);
                    }
                }
                out
            }
            Data::ToF32 { from, data } => {
                let raw = data.materialize(src, data_start)?;
                f32_bytes(&to_f32(*from, &raw))
            }
            Data::AddF32 { data, add } => {
                let raw = data.materialize(src, data_start)?;
                let v: Vec<f32> = to_f32(GgmlType::F32, &raw)
                    .iter()
                    .map(|x| x + add)
                    .collect();
                f32_bytes(&v)
            }
            Data::Planes { data, plane, order } => {
                let raw = data.materialize(src, data_start)?;
                let p = *plane as usize;
                let mut out = Vec::with_capacity(order.len() * p);
                for &i in order {
                    out.extend_from_slice(&raw[i as usize * p..(i as usize + 1) * p]);
                }
                out
            }
            Data::Resample {
                data,
                width,
                side_in,
                side_out,
            } => {
                let raw = data.materialize(src, data_start)?;
                let v = to_f32(GgmlType::F32, &raw);
                f32_bytes(&resample(
                    &v,
                    *width as usize,
                    *side_in as usize,
                    *side_out as usize,
                ))
            }
        })
    }
}

/// Dequantizes `raw` (of type `t`: F32, F16, BF16 or Q8_0; checked by [`Data::check`]) to F32.
pub fn to_f32(t: GgmlType, raw: &[u8]) -> Vec<f32> {
    match t {
        GgmlType::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        GgmlType::BF16 => raw
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        GgmlType::Q8_0 => {
            let mut out = Vec::with_capacity(raw.len() / 34 * 32);
            for b in raw.chunks_exact(34) {
                let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                out.extend(b[2..].iter().map(|&q| f32::from(q as i8) * d));
            }
            out
        }
        _ => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// Little-endian bytes of `v`.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Bilinear, align-corners resampling of a `side_in`×`side_in` grid of `width`-float vectors.
fn resample(v: &[f32], width: usize, side_in: usize, side_out: usize) -> Vec<f32> {
    let mut out = vec![0f32; side_out * side_out * width];
    let scale = if side_out > 1 {
        (side_in - 1) as f64 / (side_out - 1) as f64
    } else {
        0.0
    };
    for oy in 0..side_out {
        let sy = oy as f64 * scale;
        let y0 = (sy.floor() as usize).min(side_in - 1);
        let y1 = (y0 + 1).min(side_in - 1);
        let fy = sy - y0 as f64;
        for ox in 0..side_out {
            let sx = ox as f64 * scale;
            let x0 = (sx.floor() as usize).min(side_in - 1);
            let x1 = (x0 + 1).min(side_in - 1);
            let fx = sx - x0 as f64;
            let at = |y: usize, x: usize, k: usize| f64::from(v[(y * side_in + x) * width + k]);
            for k in 0..width {
                let top = at(y0, x0, k) * (1.0 - fx) + at(y0, x1, k) * fx;
                let bottom = at(y1, x0, k) * (1.0 - fx) + at(y1, x1, k) * fx;
                out[(oy * side_out + ox) * width + k] = (top * (1.0 - fy) + bottom * fy) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn expressions_produce_their_declared_length() {
        let src: Vec<u8> = (0..64u8).collect();
        let mut c = Cursor::new(src);
        let d = Data::Interleave {
            parts: vec![Data::src(0, 8), Data::src(8, 8)],
            n: 2,
        };
        let b = d.materialize(&mut c, 0).unwrap();
        assert_eq!(b, [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15]);
        assert_eq!(d.len(), 16);
        let p = Data::Planes {
            data: Box::new(Data::src(0, 12)),
            plane: 4,
            order: vec![2, 0],
        };
        assert_eq!(
            p.materialize(&mut c, 0).unwrap(),
            [8, 9, 10, 11, 0, 1, 2, 3]
        );
        assert!(
            Data::Planes {
                data: Box::new(Data::src(0, 12)),
                plane: 4,
                order: vec![3],
            }
            .check("t")
            .is_err()
        );
    }

    #[test]
    fn widening_and_q8_dequantization() {
        let h: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        assert_eq!(to_f32(GgmlType::F16, &h), [1.5, -2.0]);
        let mut q = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        q.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let v = to_f32(GgmlType::Q8_0, &q);
        assert_eq!(v[0], -8.0);
        assert_eq!(v[31], 7.5);
    }

    #[test]
    fn resampling_keeps_corners_and_interpolates() {
        // 2×2 grid, width 1: corners 0,1,2,3 → 3×3.
        let v = resample(&[0.0, 1.0, 2.0, 3.0], 1, 2, 3);
        assert_eq!(v, [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]);
    }
}
