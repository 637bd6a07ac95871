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
    /// Parses Ollama's names (`q8_0`, `q4_K_M`, `q4_K_S`, `f16`; case-insensitive).
    pub fn parse(name: &str) -> Option<QuantType> {
        match name.to_ascii_lowercase().as_str() {
            "q8_0" => Some(QuantType::Q8_0),
            "q4_k_m" => Some(QuantType::Q4KM),
            "q4_k_s" => Some(QuantType::Q4KS),
            "f16" => Some(QuantType::F16),
            _ => None,
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
