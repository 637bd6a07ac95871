//! Multimodal input through llama.cpp's `mtmd` library (feature `mtmd`): a [`Projector`]
//! (the mmproj GGUF of a vision or audio model) loaded for a [`Model`], [`Bitmap`]s made from
//! RGB pixels or PCM samples, prompts split into [`Chunk`]s (text tokens and media), media
//! chunks encoded to [`Embeddings`] and decoded into a [`Context`] sequence.
//!
//! The flow for one prompt:
//!
//! 1. [`Bitmap::from_rgb`] for each image (decode the file yourself: mtmd never parses image
//!    bytes here), optionally [`Bitmap::with_id`] a content hash so that chunks of the same
//!    image compare equal;
//! 2. [`Projector::tokenize`] the prompt text, in which [`Projector::marker`] stands for each
//!    bitmap in order;
//! 3. decode each text chunk's [`Chunk::tokens`] with [`Context::decode`] like any prompt, and
//!    for each media chunk [`Projector::encode`] then [`Projector::decode`]; or all of it with
//!    [`Projector::eval`].
//!
//! Media decodes run in their own `llama_decode` calls (some models attend bidirectionally
//! inside an image), so a server batches text of other sequences in separate steps.
//!
//! Every mtmd object is owned and freed in `Drop`; bad input is an [`MtmdError`], never an
//! abort. A [`Projector`] is `Send + Sync`: calls are serialized on an internal lock.

use crate::context::{Batch, Context, FlashAttention};
use crate::error::DecodeError;
use crate::ffi;
use crate::model::{Model, Token};
use std::ffi::CString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a multimodal call failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MtmdError {
    /// The projector file could not be loaded for this model.
    #[error(
        "cannot load the projector {path} for this model (see the llama_cpp log): it is \
         missing, not an mmproj GGUF, or made for another text model"
    )]
    Load {
        /// The file.
        path: PathBuf,
    },
    /// A bitmap's size and data disagree, or it is empty.
    #[error("invalid bitmap: {0}")]
    Bitmap(String),
    /// The prompt text holds another number of media markers than there are bitmaps.
    #[error("the prompt has {markers} media markers but {media} images or audio clips were given")]
    MarkerCount {
        /// Markers in the text.
        markers: usize,
        /// Bitmaps given.
        media: usize,
    },
    /// The text holds a NUL byte.
    #[error("the prompt contains a NUL byte")]
    Nul,
    /// The projector cannot take this kind of media (audio on a vision-only projector).
    #[error("this projector does not support {0} input")]
    Unsupported(&'static str),
    /// mtmd could not preprocess or tokenize the input (status code).
    #[error("the multimodal tokenizer failed (status {0}; see the llama_cpp log)")]
    Tokenize(i32),
    /// The media encoder failed (status code).
    #[error("encoding the image or audio failed (status {0}; see the llama_cpp log)")]
    Encode(i32),
    /// A chunk or embedding was used where it does not fit (text chunk to the encoder,
    /// embeddings of another size, a context of another model).
    #[error("{0}")]
    Misuse(&'static str),
    /// Decoding the media embeddings into the context failed.
    #[error("decoding the image or audio embeddings failed (status {0})")]
    Decode(i32),
    /// Decoding a text chunk failed.
    #[error(transparent)]
    DecodeText(#[from] DecodeError),
}

/// How to load a [`Projector`].
#[derive(Debug, Clone)]
pub struct ProjectorParams {
    /// Run the encoder on the GPU when the build has one (default true).
    pub use_gpu: bool,
    /// Encoder threads (default: the machine's available parallelism).
    pub n_threads: u32,
    /// Flash attention in the encoder.
    pub flash_attention: FlashAttention,
    /// Run one warm-up encode at load (default false: the first image pays the cost).
    pub warmup: bool,
    /// Let mtmd print encode timings to the log.
    pub print_timings: bool,
    /// Bounds on the tokens per image for models with dynamic resolution (0: the file's own).
    pub image_min_tokens: u32,
    /// See `image_min_tokens`.
    pub image_max_tokens: u32,
}

impl Default for ProjectorParams {
    fn default() -> Self {
        ProjectorParams {
            use_gpu: true,
            n_threads: std::thread::available_parallelism().map_or(4, |n| n.get() as u32),
            flash_attention: FlashAttention::Auto,
            warmup: false,
            print_timings: false,
            image_min_tokens: 0,
            image_max_tokens: 0,
        }
    }
}

/// A multimodal projector (mmproj) loaded for one text model.
pub struct Projector {
    handle: Mutex<ffi::MtmdHandle>,
    model: Model,
    path: PathBuf,
    vision: bool,
    audio: bool,
    sample_rate: Option<u32>,
    mrope: bool,
    marker: String,
    n_embd: usize,
}

impl fmt::Debug for Projector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Projector")
            .field("path", &self.path)
            .field("vision", &self.vision)
            .field("audio", &self.audio)
            .field("mrope", &self.mrope)
            .finish_non_exhaustive()
    }
}

impl Projector {
    /// Loads the projector GGUF at `path` for `model`.
    ///
    /// # Errors
    /// [`MtmdError::Load`] when the file is missing, is not a projector, or does not fit the
    /// model (its embedding width differs).
    pub fn load(
        model: &Model,
        path: impl AsRef<Path>,
        params: &ProjectorParams,
    ) -> Result<Projector, MtmdError> {
        let path = path.as_ref().to_path_buf();
        let raw = ffi::RawMtmdParams {
            use_gpu: params.use_gpu,
            n_threads: params.n_threads.clamp(1, 512) as i32,
            flash_attn: match params.flash_attention {
                FlashAttention::Auto => llama_sys::LLAMA_FLASH_ATTN_TYPE_AUTO,
                FlashAttention::Disabled => llama_sys::LLAMA_FLASH_ATTN_TYPE_DISABLED,
                FlashAttention::Enabled => llama_sys::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            },
            warmup: params.warmup,
            print_timings: params.print_timings,
            image_min_tokens: params.image_min_tokens.min(i32::MAX as u32) as i32,
            image_max_tokens: params.image_max_tokens.min(i32::MAX as u32) as i32,
        };
        if !path.is_file() {
            return Err(MtmdError::Load { path });
        }
        let handle = ffi::MtmdHandle::init(&path, Arc::clone(&model.inner), &raw)
            .ok_or_else(|| MtmdError::Load { path: path.clone() })?;
        let rate = handle.audio_sample_rate();
        Ok(Projector {
            vision: handle.supports_vision(),
            audio: handle.supports_audio(),
            sample_rate: (rate > 0).then_some(rate as u32),
            mrope: handle.uses_mrope(),
            marker: handle.marker(),
            n_embd: handle.n_embd_inp(),
            handle: Mutex::new(handle),
            model: model.clone(),
            path,
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text model it was loaded for.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Whether it encodes images.
    pub fn supports_vision(&self) -> bool {
        self.vision
    }

    /// Whether it encodes audio.
    pub fn supports_audio(&self) -> bool {
        self.audio
    }

    /// The sample rate audio must have (Hz), with audio support.
    pub fn audio_sample_rate(&self) -> Option<u32> {
        self.sample_rate
    }

    /// Whether the model uses M-RoPE positions (a media chunk then covers fewer positions
    /// than tokens: see [`Chunk::n_pos`]).
    pub fn uses_mrope(&self) -> bool {
        self.mrope
    }

    /// The marker that stands for one bitmap in the text given to [`Projector::tokenize`].
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// The width of one media embedding (the text model's input embedding width).
    pub fn n_embd(&self) -> usize {
        self.n_embd
    }

    fn lock(&self) -> MutexGuard<'_, ffi::MtmdHandle> {
        // A panic while holding the lock cannot leave mtmd half-updated (every call is one FFI
        // call), so a poisoned lock is still usable.
        self.handle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Splits `text` into chunks: text runs become token chunks (special tokens parsed; BOS
    /// first when `add_special` and the model wants one), each [`Projector::marker`] becomes
    /// the chunk(s) of the next bitmap of `media`, with the model's own image delimiters.
    ///
    /// # Errors
    /// [`MtmdError::MarkerCount`] when markers and bitmaps differ in number,
    /// [`MtmdError::Unsupported`] for media the projector cannot take, [`MtmdError::Nul`], or
    /// [`MtmdError::Tokenize`] when mtmd fails.
    pub fn tokenize(
        &self,
        text: &str,
        media: &[&Bitmap],
        add_special: bool,
    ) -> Result<Vec<Chunk>, MtmdError> {
        let markers = if self.marker.is_empty() {
            0
        } else {
            text.matches(self.marker.as_str()).count()
        };
        if markers != media.len() {
            return Err(MtmdError::MarkerCount {
                markers,
                media: media.len(),
            });
        }
        for b in media {
            if b.is_audio() && !self.audio {
                return Err(MtmdError::Unsupported("audio"));
            }
            if !b.is_audio() && !self.vision {
                return Err(MtmdError::Unsupported("image"));
            }
        }
        let c_text = CString::new(text).map_err(|_| MtmdError::Nul)?;
        let handles: Vec<&ffi::BitmapHandle> = media.iter().map(|b| &b.handle).collect();
        let chunks = self
            .lock()
            .tokenize(&c_text, &handles, add_special, true)
            .map_err(|s| match s.0 {
                1 => MtmdError::MarkerCount {
                    markers,
                    media: media.len(),
                },
                rc => MtmdError::Tokenize(rc),
            })?;
        Ok(chunks.into_iter().map(Chunk::new).collect())
    }

    /// Runs the encoder on a media chunk.
    ///
    /// # Errors
    /// [`MtmdError::Misuse`] for a text chunk, [`MtmdError::Encode`] when the encoder fails.
    pub fn encode(&self, chunk: &Chunk) -> Result<Embeddings, MtmdError> {
        if chunk.kind == ChunkKind::Text {
            return Err(MtmdError::Misuse("a text chunk has nothing to encode"));
        }
        let data = self
            .lock()
            .encode(&chunk.handle)
            .map_err(|s| MtmdError::Encode(s.0))?;
        Ok(Embeddings {
            data,
            n_tokens: chunk.n_tokens,
            n_embd: self.n_embd,
            id: chunk.id.clone(),
        })
    }

    /// Decodes a media chunk's embeddings into sequence `seq` of `ctx` from position `n_past`
    /// (in batches of at most the context's `n_batch`); returns the position after the chunk.
    /// The context's logits of earlier decodes are gone afterwards.
    ///
    /// # Errors
    /// [`MtmdError::Misuse`] when the embeddings are not this chunk's or `ctx` belongs to
    /// another model, [`MtmdError::Decode`] when llama.cpp fails (e.g. no KV space).
    pub fn decode(
        &self,
        ctx: &mut Context,
        chunk: &Chunk,
        embd: &Embeddings,
        n_past: i32,
        seq: i32,
    ) -> Result<i32, MtmdError> {
        if chunk.kind == ChunkKind::Text {
            return Err(MtmdError::Misuse(
                "a text chunk is decoded with Context::decode",
            ));
        }
        if embd.n_tokens != chunk.n_tokens || embd.n_embd != self.n_embd || embd.id != chunk.id {
            return Err(MtmdError::Misuse(
                "these embeddings belong to another chunk",
            ));
        }
        if n_past < 0 || seq < 0 || seq >= ctx.n_seq_max() as i32 {
            return Err(MtmdError::Misuse(
                "position or sequence out of range for this context",
            ));
        }
        let n_batch = ctx.n_batch().min(i32::MAX as u32) as i32;
        // mtmd reads the embeddings through a mutable pointer; it gets its own copy.
        let mut data = embd.data.clone();
        let rc = {
            let mut h = self.lock();
            let out = h.decode(
                ctx.handle_mut(),
                &chunk.handle,
                &mut data,
                n_past,
                seq,
                n_batch,
            );
            ctx.forget_outputs();
            out
        };
        rc.map_err(|s| {
            if s.0 == -1 {
                MtmdError::Misuse("the context was not made from the projector's model")
            } else {
                MtmdError::Decode(s.0)
            }
        })
    }

    /// Evaluates `chunks` into sequence `seq` of `ctx` from position `n_past`: text in batches
    /// of the context's `n_batch` (logits for the very last token when `logits_last`), media
    /// encoded then decoded. Returns the position after the last chunk.
    ///
    /// # Errors
    /// Any error of [`Projector::encode`], [`Projector::decode`] or [`Context::decode`].
    pub fn eval(
        &self,
        ctx: &mut Context,
        chunks: &[Chunk],
        mut n_past: i32,
        seq: i32,
        logits_last: bool,
    ) -> Result<i32, MtmdError> {
        let n_batch = ctx.n_batch().max(1) as usize;
        for (i, chunk) in chunks.iter().enumerate() {
            let last_chunk = i + 1 == chunks.len();
            if chunk.kind == ChunkKind::Text {
                let tokens = chunk.tokens();
                for (j, part) in tokens.chunks(n_batch).enumerate() {
                    let mut batch = Batch::new(part.len());
                    for (k, &t) in part.iter().enumerate() {
                        let last = last_chunk && logits_last && j * n_batch + k + 1 == tokens.len();
                        // The batch was sized for `part`.
                        let _ = batch.add(t, n_past + k as i32, &[seq], last);
                    }
                    ctx.decode(&batch)?;
                    n_past += part.len() as i32;
                }
            } else {
                let embd = self.encode(chunk)?;
                n_past = self.decode(ctx, chunk, &embd, n_past, seq)?;
            }
        }
        Ok(n_past)
    }
}

/// An image (RGB pixels) or an audio clip (PCM samples), ready for [`Projector::tokenize`].
pub struct Bitmap {
    handle: ffi::BitmapHandle,
    id: Option<String>,
}

impl fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bitmap")
            .field("width", &self.width())
            .field("height", &self.height())
            .field("audio", &self.is_audio())
            .field("id", &self.id)
            .finish()
    }
}

impl Bitmap {
    /// An image of `width × height` pixels, `rgb` holding 3 bytes per pixel, row by row.
    ///
    /// # Errors
    /// [`MtmdError::Bitmap`] when a side is 0 or `rgb` has another length.
    pub fn from_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Bitmap, MtmdError> {
        let want = (width as u64) * (height as u64) * 3;
        if width == 0 || height == 0 || rgb.len() as u64 != want {
            return Err(MtmdError::Bitmap(format!(
                "{width}x{height} RGB needs {want} bytes, got {}",
                rgb.len()
            )));
        }
        let handle = ffi::BitmapHandle::from_rgb(width, height, rgb)
            .ok_or_else(|| MtmdError::Bitmap("mtmd could not allocate the bitmap".into()))?;
        Ok(Bitmap { handle, id: None })
    }

    /// An audio clip: mono PCM samples in -1..1 at the projector's
    /// [`Projector::audio_sample_rate`].
    ///
    /// # Errors
    /// [`MtmdError::Bitmap`] for an empty clip or non-finite samples.
    pub fn from_audio(samples: &[f32]) -> Result<Bitmap, MtmdError> {
        if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
            return Err(MtmdError::Bitmap(
                "an audio clip needs at least one finite sample".into(),
            ));
        }
        let handle = ffi::BitmapHandle::from_audio(samples)
            .ok_or_else(|| MtmdError::Bitmap("mtmd could not allocate the clip".into()))?;
        Ok(Bitmap { handle, id: None })
    }

    /// Sets the id its chunks carry (use a content hash: equal ids mean equal media, which is
    /// what prompt caches compare). NUL bytes are dropped.
    #[must_use]
    pub fn with_id(mut self, id: &str) -> Bitmap {
        let clean: String = id.chars().filter(|&c| c != '\0').collect();
        if let Ok(c) = CString::new(clean.as_str()) {
            self.handle.set_id(&c);
            self.id = Some(clean);
        }
        self
    }

    /// The id set by [`Bitmap::with_id`].
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Width in pixels (samples for audio).
    pub fn width(&self) -> u32 {
        self.handle.nx()
    }

    /// Height in pixels (1 for audio).
    pub fn height(&self) -> u32 {
        self.handle.ny()
    }

    /// Whether this is an audio clip.
    pub fn is_audio(&self) -> bool {
        self.handle.is_audio()
    }
}

/// What a [`Chunk`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkKind {
    /// Text tokens.
    Text,
    /// An image (or one tile of it).
    Image,
    /// An audio clip (or one window of it).
    Audio,
}

/// One piece of a tokenized multimodal prompt: text tokens or one media item. Owned (a copy
/// of mtmd's chunk), immutable, `Send + Sync`.
pub struct Chunk {
    handle: ffi::ChunkHandle,
    kind: ChunkKind,
    n_tokens: usize,
    n_pos: i32,
    id: Option<String>,
    tokens: Vec<Token>,
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("kind", &self.kind)
            .field("n_tokens", &self.n_tokens)
            .field("n_pos", &self.n_pos)
            .field("id", &self.id)
            .finish()
    }
}

impl Chunk {
    fn new(handle: ffi::ChunkHandle) -> Chunk {
        let kind = match handle.kind() {
            llama_sys::MTMD_INPUT_CHUNK_TYPE_TEXT => ChunkKind::Text,
            llama_sys::MTMD_INPUT_CHUNK_TYPE_AUDIO => ChunkKind::Audio,
            _ => ChunkKind::Image,
        };
        let tokens = if kind == ChunkKind::Text {
            handle.text_tokens()
        } else {
            Vec::new()
        };
        Chunk {
            kind,
            n_tokens: handle.n_tokens(),
            n_pos: handle.n_pos(),
            id: handle.id(),
            tokens,
            handle,
        }
    }

    /// Text or media.
    pub fn kind(&self) -> ChunkKind {
        self.kind
    }

    /// The text tokens (empty for media).
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Tokens it occupies in the KV cache (media: the encoder's output rows).
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// Positions it advances (equal to [`Chunk::n_tokens`] except with M-RoPE media).
    pub fn n_pos(&self) -> i32 {
        self.n_pos
    }

    /// The id of the bitmap it was made from ([`Bitmap::with_id`]).
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// The encoder's output for one media chunk: `n_tokens` rows of `n_embd` floats.
#[derive(Clone, PartialEq)]
pub struct Embeddings {
    data: Vec<f32>,
    n_tokens: usize,
    n_embd: usize,
    id: Option<String>,
}

impl fmt::Debug for Embeddings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embeddings")
            .field("n_tokens", &self.n_tokens)
            .field("n_embd", &self.n_embd)
            .field("id", &self.id)
            .finish()
    }
}

impl Embeddings {
    /// Rows.
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// Floats per row.
    pub fn n_embd(&self) -> usize {
        self.n_embd
    }

    /// All rows, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
}
