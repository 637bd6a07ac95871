//! Safe, idiomatic Rust over [llama.cpp](https://github.com/ggml-org/llama.cpp).
//!
//! ```no_run
//! use llama::{Context, ContextParams, GenerateOptions, Model, ModelParams, Sampler, SamplerParams};
//!
//! let model = Model::load("SmolLM2-135M-Instruct.Q4_1.gguf", ModelParams::default())?;
//! let mut ctx = Context::new(&model, ContextParams::default())?;
//! let mut sampler = Sampler::new(&model, &SamplerParams::greedy())?;
//! let prompt = model.vocab().tokenize("The capital of France is", true, false)?;
//! let opts = GenerateOptions { max_tokens: Some(16), ..Default::default() };
//! for piece in ctx.generate(&mut sampler, &prompt, opts)? {
//!     print!("{}", piece?);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//! - [`Model`] is an `Arc` (`Send + Sync`): share it; each thread makes its own [`Context`]
//!   (`Send`, not `Sync`), which holds its model, so there are no lifetime parameters.
//! - [`LoraAdapter`]s hold their model too: one can never outlive it.
//! - Every fallible call returns a typed error (one enum per area, see [`error`]); bad input
//!   (missing or corrupt files, out-of-range tokens, full batches, bad grammars, contexts that
//!   do not fit) is an `Err`, never a crash.
//! - Generation is an `Iterator` of UTF-8 text pieces (a `futures::Stream` with feature
//!   `async`) with stop strings, max tokens, a [`FinishReason`] and [`Timings`].
//! - A [`CancelHandle`] stops a prefill or decode from any thread within one ubatch.
//! - llama.cpp's logs go to `tracing` (target `llama_cpp`).
//! - All `unsafe` code is in one private module; only non-deprecated llama.cpp functions are
//!   bound (`llama-sys` block-lists the deprecated ones).
#![deny(unsafe_code)]

pub mod backend;
mod chat;
mod context;
pub mod error;
mod ffi;
mod generate;
mod model;
#[cfg(feature = "mtmd")]
pub mod mtmd;
mod quantize;
mod sampler;
#[cfg(feature = "async")]
mod stream;
mod text;

pub use backend::{Backend, Device, DeviceKind, devices, load_backends, missing_gpu, system_info};
pub use chat::{ChatMessage, ChatRequest, ChatTemplate};
pub use context::{
    Batch, BatchFull, CancelHandle, Context, ContextParams, FlashAttention, KvCacheType, Pooling,
};
pub use error::{
    BackendError, ContextError, DecodeError, GenerateError, LoadError, QuantizeError, SamplerError,
    TemplateError, TokenizeError,
};
pub use generate::{FinishReason, GenerateOptions, Generation, Timings};
pub use model::{
    KvValue, LoraAdapter, Model, ModelParams, SplitMode, TensorLayout, Token, TokenAttr, Vocab,
    tensor_layout,
};
pub use quantize::{QuantType, quantize};
pub use sampler::{Grammar, Sampler, SamplerParams};
#[cfg(feature = "async")]
pub use stream::GenerationStream;
pub use text::{StopMatcher, StopScan, Utf8Decoder};

/// How the llama.cpp engine under this crate was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// The pinned upstream tree, e.g. `llama-cpp-sys-2 0.1.161`, or `local <path>`.
    pub llama_cpp: &'static str,
    /// Backends compiled in, comma-separated (`cpu,vulkan`).
    pub backends: &'static str,
    /// CPU flavour: `native`, `portable` or `all-variants`.
    pub cpu: &'static str,
}

/// Returns how the llama.cpp engine was built.
pub fn build_info() -> BuildInfo {
    BuildInfo {
        llama_cpp: llama_sys::build_info::LLAMA_CPP_PIN,
        backends: llama_sys::build_info::BACKENDS,
        cpu: llama_sys::build_info::CPU,
    }
}

/// The most sequences one context can hold.
pub fn max_sequences() -> usize {
    ffi::max_parallel_sequences()
}

/// Returns `v` scaled to unit L2 norm (a zero vector stays zero).
pub fn normalize_l2(v: &[f32]) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        v.to_vec()
    } else {
        v.iter().map(|x| (f64::from(*x) / norm) as f32).collect()
    }
}

/// Cosine similarity of two vectors of equal length (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na * nb)) as f32
    }
}
