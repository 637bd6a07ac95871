//! Models, their vocabularies and LoRA adapters.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{LoadError, TokenizeError};
use crate::ffi::{self, ModelHandle, RawKv, RawModelParams, SpecialToken};

/// A token id.
pub type Token = i32;

/// How layers are split across several GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitMode {
    /// Everything on `main_gpu`.
    None,
    /// Whole layers per GPU (llama.cpp's default).
    #[default]
    Layer,
    /// Rows of each layer across GPUs.
    Row,
}

/// A metadata override applied at load time (`--override-kv` in llama.cpp's tools).
#[derive(Debug, Clone, PartialEq)]
pub enum KvValue {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string of at most 127 bytes.
    Str(String),
}

/// Options for [`Model::load`].
pub struct ModelParams {
    /// Layers to offload to GPUs; negative means all. Default 0 without a GPU backend, all with one.
    pub n_gpu_layers: i32,
    /// How to split across GPUs.
    pub split_mode: SplitMode,
    /// The GPU used with [`SplitMode::None`].
    pub main_gpu: i32,
    /// Memory-map the file where it helps (default true: llama.cpp decides, as its tools do);
    /// false reads the weights into memory.
    pub use_mmap: bool,
    /// Lock the weights in RAM (default false).
    pub use_mlock: bool,
    /// Load only the vocabulary, no weights (for tokenizing).
    pub vocab_only: bool,
    /// Validate tensor data while loading (slower).
    pub check_tensors: bool,
    /// Metadata overrides.
    pub kv_overrides: Vec<(String, KvValue)>,
    /// Called with the load progress in 0..=1; return `false` to cancel the load.
    pub progress: Option<Box<dyn FnMut(f32) -> bool + Send>>,
}

impl Default for ModelParams {
    fn default() -> Self {
        let gpu = ["cuda", "metal", "vulkan"]
            .iter()
            .any(|b| llama_sys::build_info::has_backend(b));
        ModelParams {
            n_gpu_layers: if gpu { -1 } else { 0 },
            split_mode: SplitMode::Layer,
            main_gpu: 0,
            use_mmap: true,
            use_mlock: false,
            vocab_only: false,
            check_tensors: false,
            kv_overrides: Vec::new(),
            progress: None,
        }
    }
}

impl fmt::Debug for ModelParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelParams")
            .field("n_gpu_layers", &self.n_gpu_layers)
            .field("split_mode", &self.split_mode)
            .field("main_gpu", &self.main_gpu)
            .field("use_mmap", &self.use_mmap)
            .field("use_mlock", &self.use_mlock)
            .field("vocab_only", &self.vocab_only)
            .field("check_tensors", &self.check_tensors)
            .field("kv_overrides", &self.kv_overrides)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// A loaded model. Cheap to clone (an `Arc`), `Send + Sync`: share one model between threads,
/// each with its own [`Context`](crate::Context).
#[derive(Clone)]
pub struct Model {
    pub(crate) inner: Arc<ModelHandle>,
    path: Arc<PathBuf>,
    _backend: Arc<Backend>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("description", &self.description())
            .finish()
    }
}

/// One tensor of llama.cpp's layout for an architecture ([`tensor_layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorLayout {
    /// The tensor's name.
    pub name: String,
    /// Its ggml type id (F32 = 0 unless the metadata named another type for it).
    pub type_id: u32,
    /// Its dims, innermost first, trailing 1s dropped (as GGUF stores them).
    pub dims: Vec<u64>,
}

/// The tensors of the model llama.cpp builds from `metadata` alone (a GGUF with keys and no
/// tensors: architecture, hyper-parameters, vocabulary), in creation order: upstream's own
/// layout for that architecture and those hyper-parameters, optional tensors included.
/// Generators of random-weight test models of any architecture start from it. The model is
/// built on the CPU with zeroed weights and freed before this returns.
///
/// # Errors
/// [`LoadError::BadPath`] for a path llama.cpp cannot take, [`LoadError::Rejected`] when
/// llama.cpp refuses the metadata (its log says why).
pub fn tensor_layout(metadata: impl AsRef<Path>) -> Result<Vec<TensorLayout>, LoadError> {
    let metadata = metadata.as_ref();
    if metadata.to_str().is_none_or(|s| s.contains('\0')) {
        return Err(LoadError::BadPath(metadata.to_path_buf()));
    }
    let _backend = Backend::init();
    ffi::tensor_layout(metadata)
        .map(|v| {
            v.into_iter()
                .map(|(name, type_id, dims)| TensorLayout {
                    name,
                    type_id,
                    dims,
                })
                .collect()
        })
        .ok_or_else(|| LoadError::Rejected {
            path: metadata.to_path_buf(),
        })
}

impl Model {
    /// Loads a GGUF model.
    ///
    /// # Errors
    /// [`LoadError`]: a missing file, a file that is not GGUF, a truncated or corrupt GGUF,
    /// a cancelled load, or a bad override. Never panics or aborts on bad files.
    pub fn load(path: impl AsRef<Path>, params: ModelParams) -> Result<Model, LoadError> {
        let path = path.as_ref().to_path_buf();
        let mut file = std::fs::File::open(&path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        let mut magic = [0u8; 4];
        if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(LoadError::NotGguf { path });
        }
        drop(file);
        if path.to_str().is_none_or(|s| s.contains('\0')) {
            return Err(LoadError::BadPath(path));
        }
        let mut kv = Vec::with_capacity(params.kv_overrides.len());
        for (k, v) in &params.kv_overrides {
            let raw = match v {
                KvValue::Int(i) => RawKv::Int(*i),
                KvValue::Float(x) => RawKv::Float(*x),
                KvValue::Bool(b) => RawKv::Bool(*b),
                KvValue::Str(s) => RawKv::Str(s),
            };
            kv.push(ffi::kv_override(k, raw).ok_or_else(|| LoadError::BadOverride(k.clone()))?);
        }
        let load_mode = match (params.use_mmap, params.use_mlock) {
            (true, true) => llama_sys::LLAMA_LOAD_MODE_MMAP_MLOCK,
            (true, false) => llama_sys::LLAMA_LOAD_MODE_AUTO,
            (false, true) => llama_sys::LLAMA_LOAD_MODE_MLOCK,
            (false, false) => llama_sys::LLAMA_LOAD_MODE_NONE,
        };
        let raw = RawModelParams {
            n_gpu_layers: params.n_gpu_layers,
            split_mode: match params.split_mode {
                SplitMode::None => llama_sys::LLAMA_SPLIT_MODE_NONE,
                SplitMode::Layer => llama_sys::LLAMA_SPLIT_MODE_LAYER,
                SplitMode::Row => llama_sys::LLAMA_SPLIT_MODE_ROW,
            },
            main_gpu: params.main_gpu,
            load_mode,
            vocab_only: params.vocab_only,
            check_tensors: params.check_tensors,
            kv_overrides: kv,
        };
        let backend = Arc::new(Backend::init());
        let mut progress = params.progress;
        let handle = ModelHandle::load(
            &path,
            &raw,
            progress
                .as_deref_mut()
                .map(|f| f as &mut dyn FnMut(f32) -> bool),
        )
        .map_err(|e| match e {
            ffi::LoadFailure::Aborted => LoadError::Cancelled { path: path.clone() },
            ffi::LoadFailure::Failed => LoadError::Rejected { path: path.clone() },
        })?;
        Ok(Model {
            inner: Arc::new(handle),
            path: Arc::new(path),
            _backend: backend,
        })
    }

    /// The file this model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The vocabulary (tokenizer) of this model.
    pub fn vocab(&self) -> Vocab {
        Vocab {
            model: Arc::clone(&self.inner),
        }
    }

    /// A metadata value as text, e.g. `general.architecture`.
    pub fn meta(&self, key: &str) -> Option<String> {
        self.inner.meta(key)
    }

    /// Every metadata key and value (as text; arrays are summarised by llama.cpp).
    pub fn meta_all(&self) -> Vec<(String, String)> {
        self.inner.meta_all()
    }

    /// `general.architecture`, e.g. `llama`, `gemma3`.
    pub fn architecture(&self) -> Option<String> {
        self.meta("general.architecture")
    }

    /// The context length the model was trained with.
    pub fn n_ctx_train(&self) -> u32 {
        self.inner.n_ctx_train().max(0) as u32
    }

    /// The embedding width.
    pub fn n_embd(&self) -> usize {
        self.inner.n_embd().max(0) as usize
    }

    /// The number of layers.
    pub fn n_layer(&self) -> u32 {
        self.inner.n_layer().max(0) as u32
    }

    /// The number of parameters.
    pub fn n_params(&self) -> u64 {
        self.inner.n_params()
    }

    /// The size of the weights in bytes.
    pub fn size(&self) -> u64 {
        self.inner.size()
    }

    /// llama.cpp's one-line description, e.g. `llama ?B Q4_1`.
    pub fn description(&self) -> String {
        self.inner.description()
    }

    /// The GGUF's Jinja chat template (`tokenizer.chat_template`), or a named variant
    /// (`tokenizer.chat_template.<name>`, e.g. `tool_use`).
    pub fn chat_template(&self, name: Option<&str>) -> Option<String> {
        self.inner.chat_template(name)
    }

    /// Whether the model has an encoder (T5-style).
    pub fn has_encoder(&self) -> bool {
        self.inner.has_encoder()
    }

    /// Whether the model has a decoder (can generate).
    pub fn has_decoder(&self) -> bool {
        self.inner.has_decoder()
    }

    /// Loads a LoRA adapter for this model.
    ///
    /// # Errors
    /// [`LoadError::Adapter`] when the file is not a LoRA GGUF for this model.
    pub fn load_lora(&self, path: impl AsRef<Path>) -> Result<LoraAdapter, LoadError> {
        let path = path.as_ref();
        ffi::LoraHandle::load(Arc::clone(&self.inner), path)
            .map(|h| LoraAdapter { inner: Arc::new(h) })
            .ok_or_else(|| LoadError::Adapter {
                path: path.to_path_buf(),
            })
    }

    /// Approximate KV cache bytes per token of context (f16 K and V on every layer).
    pub(crate) fn kv_bytes_per_token(&self) -> u64 {
        let (n_embd, n_head, n_head_kv) = (
            self.inner.n_embd() as u64,
            self.inner.n_head().max(1) as u64,
            self.inner.n_head_kv() as u64,
        );
        let head_dim = n_embd / n_head;
        2 * self.n_layer() as u64 * n_head_kv * head_dim * 2
    }
}

/// A LoRA adapter. It holds its model, so it can never outlive it: using an adapter after its
/// model is gone is impossible by construction.
#[derive(Clone)]
pub struct LoraAdapter {
    pub(crate) inner: Arc<ffi::LoraHandle>,
}

impl fmt::Debug for LoraAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoraAdapter")
    }
}

/// Token attributes (bit flags of `llama_token_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenAttr(pub u32);

impl TokenAttr {
    /// A control token (`<|im_start|>`...).
    pub fn is_control(self) -> bool {
        self.0 & llama_sys::LLAMA_TOKEN_ATTR_CONTROL != 0
    }
    /// A user-defined token.
    pub fn is_user_defined(self) -> bool {
        self.0 & llama_sys::LLAMA_TOKEN_ATTR_USER_DEFINED != 0
    }
    /// A byte token (`<0x0A>`).
    pub fn is_byte(self) -> bool {
        self.0 & llama_sys::LLAMA_TOKEN_ATTR_BYTE != 0
    }
    /// The unknown token.
    pub fn is_unknown(self) -> bool {
        self.0 & llama_sys::LLAMA_TOKEN_ATTR_UNKNOWN != 0
    }
}

/// A model's vocabulary: tokenizer and special tokens. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Vocab {
    model: Arc<ModelHandle>,
}

impl fmt::Debug for Vocab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vocab")
            .field("n_tokens", &self.n_tokens())
            .finish()
    }
}

impl Vocab {
    /// Number of tokens.
    pub fn n_tokens(&self) -> i32 {
        self.model.n_vocab()
    }

    /// Whether this vocabulary is a SentencePiece (`SPM`) one (else BPE, WPM, ...).
    pub fn is_spm(&self) -> bool {
        self.model.vocab_type() == llama_sys::LLAMA_VOCAB_TYPE_SPM
    }

    /// Checks that `token` is a valid id.
    ///
    /// # Errors
    /// [`TokenizeError::OutOfRange`].
    pub fn check(&self, token: Token) -> Result<Token, TokenizeError> {
        let n_vocab = self.n_tokens();
        if (0..n_vocab).contains(&token) {
            Ok(token)
        } else {
            Err(TokenizeError::OutOfRange { token, n_vocab })
        }
    }

    /// Tokenizes `text`. `add_special` adds BOS/EOS as the model wants; `parse_special` turns
    /// special-token text such as `<|im_start|>` into those tokens.
    ///
    /// # Errors
    /// [`TokenizeError::TooLong`] above 2 GiB; [`TokenizeError::Failed`] if llama.cpp fails.
    pub fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<Token>, TokenizeError> {
        if text.len() > i32::MAX as usize / 2 {
            return Err(TokenizeError::TooLong(text.len()));
        }
        self.model
            .tokenize(text, add_special, parse_special)
            .ok_or(TokenizeError::Failed)
    }

    /// The exact bytes of one token. With `special`, control tokens render as their text.
    ///
    /// # Errors
    /// [`TokenizeError::OutOfRange`].
    pub fn token_bytes(&self, token: Token, special: bool) -> Result<Vec<u8>, TokenizeError> {
        self.check(token)?;
        Ok(self.model.token_piece(token, special))
    }

    /// Detokenizes `tokens` to bytes (which may end inside a multi-byte character).
    ///
    /// # Errors
    /// [`TokenizeError::OutOfRange`] for an invalid id.
    pub fn detokenize_bytes(
        &self,
        tokens: &[Token],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<Vec<u8>, TokenizeError> {
        for &t in tokens {
            self.check(t)?;
        }
        self.model
            .detokenize(tokens, remove_special, unparse_special)
            .ok_or(TokenizeError::Failed)
    }

    /// Detokenizes `tokens` to text (invalid UTF-8 becomes U+FFFD).
    ///
    /// # Errors
    /// [`TokenizeError::OutOfRange`] for an invalid id.
    pub fn detokenize(
        &self,
        tokens: &[Token],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<String, TokenizeError> {
        self.detokenize_bytes(tokens, remove_special, unparse_special)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Whether `token` ends generation (EOS, EOT, ...). False for invalid ids.
    pub fn is_eog(&self, token: Token) -> bool {
        self.check(token).is_ok() && self.model.is_eog(token)
    }

    /// Attributes of `token`.
    ///
    /// # Errors
    /// [`TokenizeError::OutOfRange`].
    pub fn attr(&self, token: Token) -> Result<TokenAttr, TokenizeError> {
        self.check(token)?;
        Ok(TokenAttr(self.model.token_attr(token)))
    }

    fn special(&self, which: SpecialToken) -> Option<Token> {
        let t = self.model.special_token(which);
        (t >= 0).then_some(t)
    }

    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<Token> {
        self.special(SpecialToken::Bos)
    }
    /// End-of-sequence token.
    pub fn eos(&self) -> Option<Token> {
        self.special(SpecialToken::Eos)
    }
    /// End-of-turn token.
    pub fn eot(&self) -> Option<Token> {
        self.special(SpecialToken::Eot)
    }
    /// Separator token.
    pub fn sep(&self) -> Option<Token> {
        self.special(SpecialToken::Sep)
    }
    /// Newline token.
    pub fn nl(&self) -> Option<Token> {
        self.special(SpecialToken::Nl)
    }
    /// Padding token.
    pub fn pad(&self) -> Option<Token> {
        self.special(SpecialToken::Pad)
    }
    /// Fill-in-the-middle prefix token.
    pub fn fim_prefix(&self) -> Option<Token> {
        self.special(SpecialToken::FimPre)
    }
    /// Fill-in-the-middle suffix token.
    pub fn fim_suffix(&self) -> Option<Token> {
        self.special(SpecialToken::FimSuf)
    }
    /// Fill-in-the-middle middle token.
    pub fn fim_middle(&self) -> Option<Token> {
        self.special(SpecialToken::FimMid)
    }
    /// Whether tokenizing with `add_special` adds BOS.
    pub fn adds_bos(&self) -> bool {
        self.model.add_bos()
    }
    /// Whether tokenizing with `add_special` adds EOS.
    pub fn adds_eos(&self) -> bool {
        self.model.add_eos()
    }
}
