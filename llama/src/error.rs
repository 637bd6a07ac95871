//! Error types, one per area. Every fallible call returns one of these; nothing panics across
//! the FFI boundary.

use std::path::PathBuf;

/// Loading a model failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file does not exist or cannot be opened.
    #[error("cannot open model file {path}: {source}")]
    Io {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a GGUF file (wrong magic bytes).
    #[error("{path} is not a GGUF model file (it does not start with \"GGUF\")")]
    NotGguf {
        /// The path given.
        path: PathBuf,
    },
    /// The path cannot be passed to llama.cpp (not UTF-8, or contains a NUL byte).
    #[error("model path {0} is not valid UTF-8 or contains a NUL byte")]
    BadPath(PathBuf),
    /// A key/value override has a key or string value too long for llama.cpp (127 bytes).
    #[error(
        "metadata override `{0}` is too long or contains a NUL byte (keys and strings: at most 127 bytes)"
    )]
    BadOverride(String),
    /// The progress callback returned `false`.
    #[error("loading {path} was cancelled by the progress callback")]
    Cancelled {
        /// The path given.
        path: PathBuf,
    },
    /// llama.cpp refused the file: truncated, corrupt, unsupported architecture, or out of
    /// memory. Its log (routed to `tracing`, target `llama_cpp`) says which.
    #[error(
        "llama.cpp could not load {path} (truncated, corrupt, unsupported architecture or out of memory; see the llama_cpp log)"
    )]
    Rejected {
        /// The path given.
        path: PathBuf,
    },
    /// A LoRA adapter could not be loaded.
    #[error(
        "llama.cpp could not load LoRA adapter {path} (not a LoRA GGUF, or made for another model)"
    )]
    Adapter {
        /// The adapter path.
        path: PathBuf,
    },
}

/// Creating a context failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// A parameter is out of range.
    #[error("invalid context parameter: {0}")]
    InvalidParam(String),
    /// The KV cache for this `n_ctx` would not fit in the memory available.
    #[error(
        "n_ctx {n_ctx} needs about {needed} MiB of KV cache, more than the {available} MiB available; use a smaller n_ctx"
    )]
    TooLarge {
        /// Requested context length.
        n_ctx: u32,
        /// Estimated KV cache size, MiB.
        needed: u64,
        /// Memory available on the device, MiB.
        available: u64,
    },
    /// llama.cpp could not create the context (allocation failed).
    #[error(
        "llama.cpp could not create a context with n_ctx {n_ctx} (out of memory?; see the llama_cpp log)"
    )]
    Rejected {
        /// Requested context length.
        n_ctx: u32,
    },
    /// Setting LoRA adapters failed.
    #[error("llama.cpp rejected the LoRA adapters (an adapter from another model?)")]
    Adapters,
    /// A saved state could not be restored.
    #[error("llama.cpp rejected the saved state (made by another model or context size?)")]
    State,
}

/// Decoding a batch failed. The outcomes follow `llama_decode`'s documentation.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// No KV cache slot for the batch (code 1): use a smaller batch or a larger context.
    #[error("no KV cache slot for the batch: reduce the batch or increase n_ctx")]
    NoKvSlot,
    /// Cancelled through a [`CancelHandle`](crate::CancelHandle) (code 2). The context's memory
    /// is restored to what it was before the call.
    #[error("decode cancelled")]
    Aborted,
    /// The batch was rejected (code -1, or a check on the Rust side).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// llama.cpp failed (code < -1): discard the context.
    #[error("llama.cpp decode failed with code {0}; the context must be discarded")]
    Fatal(i32),
}

/// Tokenizing or detokenizing failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenizeError {
    /// A token id is outside the vocabulary.
    #[error("token id {token} is out of range (vocabulary has {n_vocab} tokens)")]
    OutOfRange {
        /// The offending id.
        token: i32,
        /// Vocabulary size.
        n_vocab: i32,
    },
    /// The text is too long for llama.cpp's 32-bit lengths.
    #[error("text of {0} bytes is too long to tokenize")]
    TooLong(usize),
    /// llama.cpp failed to tokenize or detokenize.
    #[error("llama.cpp failed to tokenize or detokenize")]
    Failed,
}

/// Building or running a sampler failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum SamplerError {
    /// The GBNF grammar does not parse (llama.cpp's log says where).
    #[error("invalid grammar: {0}")]
    InvalidGrammar(String),
    /// A parameter is out of range.
    #[error("invalid sampler parameter: {0}")]
    InvalidParam(String),
    /// No token is allowed (e.g. the grammar rules out every token).
    #[error("no token can be sampled (the grammar or filters rule out every candidate)")]
    NoCandidates,
    /// The batch entry asked for has no logits.
    #[error("no logits for batch entry {0} of the last decode")]
    NoLogits(i32),
}

/// Rendering a chat template failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template does not parse.
    #[error("chat template does not parse: {0}")]
    Syntax(String),
    /// The template raised an error, or rendering failed.
    #[error("chat template failed: {0}")]
    Render(String),
    /// Rendering ran past its limits (time or output size).
    #[error("chat template exceeded its limits: {0}")]
    Limit(String),
    /// No template known by that name.
    #[error("unknown built-in chat template `{0}`")]
    UnknownBuiltin(String),
}

/// Generation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// Decoding failed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Sampling failed.
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// Tokenizing failed.
    #[error(transparent)]
    Tokenize(#[from] TokenizeError),
    /// The prompt does not fit in the context.
    #[error("the prompt has {prompt} tokens but the context holds {n_ctx}")]
    PromptTooLong {
        /// Prompt tokens.
        prompt: usize,
        /// Context size.
        n_ctx: u32,
    },
    /// The prompt is empty.
    #[error("the prompt is empty")]
    EmptyPrompt,
}

/// Quantizing a model failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuantizeError {
    /// A path cannot be passed to llama.cpp.
    #[error("path {0} is not valid UTF-8 or contains a NUL byte")]
    BadPath(PathBuf),
    /// llama.cpp failed (unsupported input type, I/O error; see the llama_cpp log).
    #[error("llama.cpp could not quantize {input} (status {status}; see the llama_cpp log)")]
    Failed {
        /// Input path.
        input: PathBuf,
        /// llama.cpp's status code.
        status: u32,
    },
}

/// Loading ggml backend modules failed (builds with `dynamic-backends`; see
/// [`load_modules`](crate::backend::load_modules)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// This build links its backends statically: there are no modules to load.
    #[error("this build has no backend modules (it was built without feature dynamic-backends)")]
    NotDynamic,
    /// Modules were loaded (or a load failed) already in this process.
    #[error("the backend modules of this process were loaded already")]
    AlreadyLoaded,
    /// The module folder cannot be read.
    #[error("cannot read the backend module folder {dir}: {message}")]
    Io {
        /// The folder.
        dir: PathBuf,
        /// The OS error.
        message: String,
    },
    /// No CPU backend module can be loaded from the folder.
    #[error("no CPU backend can be loaded from {dir}: {detail}")]
    NoCpuModule {
        /// The folder.
        dir: PathBuf,
        /// Why: what this CPU lacks, or why each CPU module was skipped.
        detail: String,
    },
    /// The CPU variant asked for has no module in the folder.
    #[error("CPU variant {variant} is not in {dir} (there: {})", list_or_none(.available))]
    VariantAbsent {
        /// The variant asked for.
        variant: String,
        /// The folder.
        dir: PathBuf,
        /// The variants that are there.
        available: Vec<String>,
    },
    /// The CPU variant asked for cannot be used here.
    #[error("CPU variant {variant} cannot be used: {reason}")]
    VariantUnusable {
        /// The variant asked for.
        variant: String,
        /// Why.
        reason: crate::backend::SkipReason,
    },
    /// One module file cannot be used.
    #[error("backend module {path}: {reason}")]
    Module {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: crate::backend::SkipReason,
    },
    /// The path cannot be passed to ggml (not UTF-8, or contains a NUL byte).
    #[error("backend module path {0} is not valid UTF-8 or contains a NUL byte")]
    BadPath(PathBuf),
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
