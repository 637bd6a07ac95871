//! Quantizing GGUF models with llama.cpp (used by `ollamars create --quantize`).

use std::path::Path;

use crate::error::QuantizeError;
use crate::ffi;

/// A target quantization type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantType {
    /// 8-bit.
    Q8_0,
    /// 4-bit K-quant, medium.
    Q4KM,
    /// 4-bit K-quant, small.
    Q4KS,
    /// 16-bit float.
    F16,
}

impl QuantType {
    /// Parses Ollama's names: `q4_K_M` (or `q4_K`), `q4_K_S`, `q8_0`, `F16`, in any case.
    pub fn parse(name: &str) -> Option<QuantType> {
        match name.to_ascii_uppercase().as_str() {
            "Q4_K_M" | "Q4_K" => Some(QuantType::Q4KM),
            "Q4_K_S" => Some(QuantType::Q4KS),
            "Q8_0" => Some(QuantType::Q8_0),
            "F16" => Some(QuantType::F16),
            _ => None,
        }
    }

    /// The canonical name (`Q4_K_M`, `Q4_K_S`, `Q8_0`, `F16`), as Ollama reports the
    /// quantization level; [`QuantType::parse`] reads it back.
    pub fn name(self) -> &'static str {
        match self {
            QuantType::Q4KM => "Q4_K_M",
            QuantType::Q4KS => "Q4_K_S",
            QuantType::Q8_0 => "Q8_0",
            QuantType::F16 => "F16",
        }
    }

    fn ftype(self) -> u32 {
        match self {
            QuantType::Q8_0 => llama_sys::LLAMA_FTYPE_MOSTLY_Q8_0,
            QuantType::Q4KM => llama_sys::LLAMA_FTYPE_MOSTLY_Q4_K_M,
            QuantType::Q4KS => llama_sys::LLAMA_FTYPE_MOSTLY_Q4_K_S,
            QuantType::F16 => llama_sys::LLAMA_FTYPE_MOSTLY_F16,
        }
    }
}

/// Quantizes `input` into `output` with `threads` threads (0: all cores).
///
/// # Errors
/// [`QuantizeError`] when a path cannot be passed to llama.cpp or llama.cpp fails.
pub fn quantize(
    input: &Path,
    output: &Path,
    to: QuantType,
    threads: u32,
) -> Result<(), QuantizeError> {
    let _backend = crate::Backend::init();
    let bad = |p: &Path| QuantizeError::BadPath(p.to_path_buf());
    if input.to_str().is_none() {
        return Err(bad(input));
    }
    let status = ffi::quantize(input, output, to.ftype(), threads.min(4096) as i32)
        .ok_or_else(|| bad(output))?;
    if status == 0 {
        Ok(())
    } else {
        Err(QuantizeError::Failed {
            input: input.to_path_buf(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case_and_round_trip() {
        for (text, want) in [
            ("q4_K_M", QuantType::Q4KM),
            ("Q4_K_M", QuantType::Q4KM),
            ("q4_k", QuantType::Q4KM),
            ("q4_K_S", QuantType::Q4KS),
            ("q8_0", QuantType::Q8_0),
            ("f16", QuantType::F16),
            ("F16", QuantType::F16),
        ] {
            assert_eq!(QuantType::parse(text), Some(want), "{text}");
        }
        for t in [
            QuantType::Q4KM,
            QuantType::Q4KS,
            QuantType::Q8_0,
            QuantType::F16,
        ] {
            assert_eq!(QuantType::parse(t.name()), Some(t));
        }
        for bad in ["", "q4", "q4_K_L", "bf16", "q8_0 ", "Q5_K_M"] {
            assert_eq!(QuantType::parse(bad), None, "{bad:?}");
        }
    }
}
