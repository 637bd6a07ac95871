//! ggml tensor types (block sizes and bytes per block) and llama.cpp file-type names.

/// A ggml tensor element type as stored in a GGUF tensor info.
///
/// Only types whose storage layout is known are accepted; the ids that ggml removed
/// (4, 5, 31–33, 36–38) and unknown ids are rejected by [`GgmlType::from_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
#[non_exhaustive]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// 4-bit, blocks of 32 with one scale.
    Q4_0,
    /// 4-bit, blocks of 32 with scale and minimum.
    Q4_1,
    /// 5-bit, blocks of 32.
    Q5_0,
    /// 5-bit, blocks of 32 with minimum.
    Q5_1,
    /// 8-bit, blocks of 32.
    Q8_0,
    /// 8-bit, blocks of 32 with sum.
    Q8_1,
    /// 2-bit k-quant.
    Q2_K,
    /// 3-bit k-quant.
    Q3_K,
    /// 4-bit k-quant.
    Q4_K,
    /// 5-bit k-quant.
    Q5_K,
    /// 6-bit k-quant.
    Q6_K,
    /// 8-bit k-quant.
    Q8_K,
    /// i-quant 2.06 bpw.
    IQ2_XXS,
    /// i-quant 2.31 bpw.
    IQ2_XS,
    /// i-quant 3.06 bpw.
    IQ3_XXS,
    /// i-quant 1.56 bpw.
    IQ1_S,
    /// 4-bit non-linear, blocks of 32.
    IQ4_NL,
    /// i-quant 3.44 bpw.
    IQ3_S,
    /// i-quant 2.5 bpw.
    IQ2_S,
    /// 4-bit non-linear, super-blocks of 256.
    IQ4_XS,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
    /// i-quant 1.75 bpw.
    IQ1_M,
    /// bfloat16.
    BF16,
    /// Ternary, 1.69 bpw.
    TQ1_0,
    /// Ternary, 2.06 bpw.
    TQ2_0,
    /// Microscaling FP4, blocks of 32.
    MXFP4,
}

/// (type, id, name, elements per block, bytes per block)
const TABLE: &[(GgmlType, u32, &str, u64, u64)] = &[
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 2 + 16),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 2 + 2 + 16),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 2 + 4 + 16),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 2 + 2 + 4 + 16),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 2 + 32),
    (GgmlType::Q8_1, 9, "Q8_1", 32, 2 + 2 + 32),
    (GgmlType::Q2_K, 10, "Q2_K", 256, 16 + 64 + 2 + 2),
    (GgmlType::Q3_K, 11, "Q3_K", 256, 32 + 64 + 12 + 2),
    (GgmlType::Q4_K, 12, "Q4_K", 256, 2 + 2 + 12 + 128),
    (GgmlType::Q5_K, 13, "Q5_K", 256, 2 + 2 + 12 + 32 + 128),
    (GgmlType::Q6_K, 14, "Q6_K", 256, 128 + 64 + 16 + 2),
    (GgmlType::Q8_K, 15, "Q8_K", 256, 4 + 256 + 32),
    (GgmlType::IQ2_XXS, 16, "IQ2_XXS", 256, 2 + 64),
    (GgmlType::IQ2_XS, 17, "IQ2_XS", 256, 2 + 64 + 8),
    (GgmlType::IQ3_XXS, 18, "IQ3_XXS", 256, 2 + 96),
    (GgmlType::IQ1_S, 19, "IQ1_S", 256, 2 + 32 + 16),
    (GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 2 + 16),
    (GgmlType::IQ3_S, 21, "IQ3_S", 256, 2 + 64 + 8 + 32 + 4),
    (GgmlType::IQ2_S, 22, "IQ2_S", 256, 2 + 64 + 8 + 8),
    (GgmlType::IQ4_XS, 23, "IQ4_XS", 256, 2 + 2 + 4 + 128),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (GgmlType::IQ1_M, 29, "IQ1_M", 256, 32 + 16 + 8),
    (GgmlType::BF16, 30, "BF16", 1, 2),
    (GgmlType::TQ1_0, 34, "TQ1_0", 256, 48 + 4 + 2),
    (GgmlType::TQ2_0, 35, "TQ2_0", 256, 64 + 2),
    (GgmlType::MXFP4, 39, "MXFP4", 32, 1 + 16),
];

impl GgmlType {
    fn row(self) -> &'static (GgmlType, u32, &'static str, u64, u64) {
        // Every variant has exactly one row (checked by a unit test).
        TABLE.iter().find(|r| r.0 == self).unwrap_or(&TABLE[0])
    }

    /// The type for a GGUF type id, or `None` for unknown and removed ids.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|r| r.1 == id).map(|r| r.0)
    }

    /// The GGUF type id.
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// The name as ggml and Ollama print it (`Q4_K`, `F16`, …).
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// Elements per block.
    pub fn block_size(self) -> u64 {
        self.row().3
    }

    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        self.row().4
    }

    /// Every known type.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|r| r.0)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of a llama.cpp `general.file_type` value as Ollama prints it as
/// `quantization_level` (`Q4_K_M`, `F16`, …); `None` for unknown values.
pub fn file_type_name(file_type: u32) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        4 => "Q4_1_F16",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        let all: Vec<_> = GgmlType::all().collect();
        for (i, t) in all.iter().enumerate() {
            assert_eq!(GgmlType::from_id(t.id()), Some(*t));
            assert!(t.block_size() == 1 || t.block_size() % 32 == 0);
            assert!(t.type_size() > 0);
            // No two rows share a type or an id.
            for u in &all[i + 1..] {
                assert_ne!(t, u);
                assert_ne!(t.id(), u.id());
            }
            assert_eq!(TABLE.iter().filter(|r| r.0 == *t).count(), 1);
        }
        // Bits per weight of a few well-known types.
        let bpw = |t: GgmlType| t.type_size() as f64 * 8.0 / t.block_size() as f64;
        assert_eq!(bpw(GgmlType::Q4_0), 4.5);
        assert_eq!(bpw(GgmlType::Q8_0), 8.5);
        assert_eq!(bpw(GgmlType::Q4_K), 4.5);
        assert_eq!(bpw(GgmlType::Q6_K), 6.5625);
        assert_eq!(bpw(GgmlType::IQ2_XXS), 2.0625);
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 40, 1000, u32::MAX] {
            assert_eq!(GgmlType::from_id(removed), None, "id {removed}");
        }
    }

    #[test]
    fn file_type_names() {
        assert_eq!(file_type_name(3), Some("Q4_1"));
        assert_eq!(file_type_name(15), Some("Q4_K_M"));
        assert_eq!(file_type_name(32), Some("BF16"));
        assert_eq!(file_type_name(5), None);
        assert_eq!(file_type_name(9999), None);
    }
}
