//! The framed protocol between the server and a runner, over the runner's stdin and stdout.
//!
//! A frame is the 4-byte magic `ORF1`, a little-endian `u32` payload length, then that many bytes
//! of JSON ([`ToRunner`] or [`FromRunner`]). The magic makes any stray write to the runner's
//! stdout (which should never happen: llama.cpp logs go to stderr) a clean protocol error
//! instead of a misparse.

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// The bytes that open every frame.
pub const MAGIC: [u8; 4] = *b"ORF1";

/// The largest payload accepted (embeddings of a big batch are the largest frames).
pub const MAX_FRAME: usize = 256 << 20;

/// Load-time settings: a change to any of these needs another runner (spec §1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Context length per slot (already capped by the server where it knows the trained length).
    pub num_ctx: u32,
    /// Prompt batch size.
    pub num_batch: u32,
    /// Layers to offload to a GPU; negative means all that fit (automatic).
    pub num_gpu: i32,
    /// Main GPU index.
    pub main_gpu: i32,
    /// Memory-map the weights (`None`: llama.cpp's default).
    pub use_mmap: Option<bool>,
    /// CPU threads; 0 means automatic.
    pub num_thread: u32,
    /// Parallel sequences (slots).
    pub parallel: u32,
    /// Flash attention: `None` automatic.
    pub flash_attention: Option<bool>,
    /// KV cache type (`f16`, `q8_0`, `q4_0`).
    pub kv_cache_type: crate::config::KvCacheType,
    /// Load as an embedding model (pooled output, one slot).
    pub embedding: bool,
    /// The projector (mmproj GGUF) of a vision or audio model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projector: Option<String>,
    /// Metadata overrides of an Ollama-layout blob whose translation is metadata only
    /// (`crate::compat::Plan::overrides`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kv_overrides: Vec<(String, crate::compat::KvOverride)>,
}

/// Sampling and stopping settings of one completion (never cause a reload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingOptions {
    /// Tokens kept at the start on truncation and context shift.
    pub num_keep: i32,
    /// Seed; `None` for random.
    pub seed: Option<u32>,
    /// Most tokens to generate; `None` for no limit.
    pub num_predict: Option<u32>,
    /// Top-k.
    pub top_k: i32,
    /// Top-p.
    pub top_p: f32,
    /// Min-p.
    pub min_p: f32,
    /// Typical-p.
    pub typical_p: f32,
    /// Penalty window; -1 means the context.
    pub repeat_last_n: i32,
    /// Temperature.
    pub temperature: f32,
    /// Repeat penalty.
    pub repeat_penalty: f32,
    /// Presence penalty.
    pub presence_penalty: f32,
    /// Frequency penalty.
    pub frequency_penalty: f32,
    /// Stop strings.
    pub stop: Vec<String>,
    /// A GBNF grammar constraining the output.
    pub grammar: Option<String>,
    /// Apply `grammar` only after the output contains this text (e.g. a thinking block's
    /// `</think>`): the grammar constrains what follows it, leading whitespace skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar_after: Option<String>,
}

/// One completion request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion {
    /// The prompt: tokens, or what to prepare them from.
    pub prompt: PromptInput,
    /// With a prepared prompt: when the rendered text ends with the first tag (a thinking model
    /// left inside its thinking block), `sampling.grammar` applies only after the second
    /// (`SamplingOptions::grammar_after`), so that the model may think first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar_after_thinking: Option<(String, String)>,
    /// Context length for this request (≤ the runner's); smaller values are served without
    /// reloading.
    pub num_ctx: u32,
    /// Sampling and stopping.
    pub sampling: SamplingOptions,
    /// Cut an over-long prompt (keep `num_keep` tokens and the newest tail) instead of failing.
    pub truncate: bool,
    /// Shift the context when generation fills it, instead of stopping with `length`.
    pub shift: bool,
    /// Return the prompt and response tokens at the end (the legacy `context` field).
    pub return_tokens: bool,
    /// Report each generated token's log-probability, with this many alternatives (0..=20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Inside the runner: when the prompt thread took the request, so that
    /// `prompt_eval_duration` covers preparing the prompt as it covered tokenizing it before.
    #[serde(skip)]
    pub received: Option<std::time::Instant>,
}

pub use crate::api::Logprob;

/// A completion's prompt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PromptInput {
    /// Ready tokens (the engine takes only these).
    Tokens {
        /// The tokens.
        tokens: Vec<i32>,
    },
    /// Prepared by the runner first, on its prompt thread, with no round trip to the server:
    /// the stream then opens with [`FromRunner::Started`], carrying the rendered text.
    Prepare(Prepare),
    /// Tokens and media chunks, made by the prompt thread for the engine of the same process
    /// (never sent over the pipe).
    #[serde(skip)]
    Media(super::media::MediaPrompt),
}

/// Where a prompt's text comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PromptSource {
    /// Text used as it is (`raw`).
    Raw {
        /// The text.
        text: String,
    },
    /// A Go template (the model's TEMPLATE or the request's `template`), by its source text.
    Go {
        /// The template's text.
        template: String,
        /// What it renders (`messages` windowed by the runner when [`Prepare::window`] is set).
        values: crate::template::Values,
    },
    /// The model's own chat template (GGUF Jinja, or llama.cpp's built-in one).
    Native {
        /// The conversation.
        messages: Vec<crate::template::Message>,
        /// Tools offered.
        tools: Vec<crate::template::Tool>,
    },
}

/// Render a prompt, fit the history to the context and tokenize it, once. The runner answers
/// on its own thread, beside the decoding, and no slot is taken for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepare {
    /// The text.
    pub source: PromptSource,
    /// Tokens before the text (a generate request's `context`), checked against the vocabulary.
    pub context: Vec<i32>,
    /// The context length the prompt must fit.
    pub num_ctx: u32,
    /// Drop the oldest messages (keeping system messages and the last message) until the
    /// prompt fits `num_ctx` (chat with `truncate`).
    pub window: bool,
    /// Images (base64) of a raw prompt; with a template they travel in the messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// The answer to [`Prepare`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    /// The rendered text (without the context).
    pub text: String,
    /// The context, then the text's tokens (special tokens parsed, BOS as the model wants
    /// when there is no context).
    pub tokens: Vec<i32>,
}

/// Embed each input (one vector per input).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Embed {
    /// The texts.
    pub inputs: Vec<String>,
    /// Cut inputs longer than the context instead of failing.
    pub truncate: bool,
    /// L2-normalise (the `/api/embed` form) or return raw (`/api/embeddings`).
    pub normalize: bool,
}

/// The answer to [`Embed`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Embedded {
    /// One vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens evaluated.
    pub prompt_eval_count: u64,
}

/// Quantize a GGUF file (a runner started with `runner tool` serves these).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quantize {
    /// The source GGUF.
    pub input: std::path::PathBuf,
    /// Where to write the result.
    pub output: std::path::PathBuf,
    /// The llama.cpp type name (`Q4_K_M`, …).
    pub kind: String,
}

/// A request from the server to the runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToRunner {
    /// Generate text: answered by [`FromRunner::Piece`]s, then `Done` or `Error`.
    Completion {
        /// Request id (unique per runner).
        id: u64,
        /// The request (boxed: by far the largest message).
        job: Box<Completion>,
    },
    /// Answered by [`FromRunner::Prepared`] or `Error`.
    Prepare {
        /// Request id.
        id: u64,
        /// The request.
        job: Prepare,
    },
    /// Answered by [`FromRunner::Embeddings`] or `Error`.
    Embed {
        /// Request id.
        id: u64,
        /// The request.
        job: Embed,
    },
    /// Answered by [`FromRunner::Quantized`] or `Error`.
    Quantize {
        /// Request id.
        id: u64,
        /// The request.
        job: Quantize,
    },
    /// Stop a request (the client went away); frees its slot.
    Cancel {
        /// Request id.
        id: u64,
    },
    /// Finish and exit.
    Shutdown,
}

/// A request with exactly one reply: the pairing is in the type, so a caller cannot receive
/// another reply than its own.
pub trait Call: Send + 'static {
    /// What the runner answers.
    type Reply: Send + 'static;
    /// The request as sent, with its id.
    fn into_message(self, id: u64) -> ToRunner;
    /// The reply, or the runner's error, or [`EngineError`] for a reply of another kind.
    ///
    /// # Errors
    /// The runner's error, or an internal error for a reply of the wrong kind.
    fn reply(msg: FromRunner) -> Result<Self::Reply, EngineError>;
}

fn unexpected(msg: &FromRunner) -> EngineError {
    EngineError::internal(format!("unexpected runner reply {msg:?}"))
}

impl Call for Prepare {
    type Reply = Prepared;
    fn into_message(self, id: u64) -> ToRunner {
        ToRunner::Prepare { id, job: self }
    }
    fn reply(msg: FromRunner) -> Result<Prepared, EngineError> {
        match msg {
            FromRunner::Prepared { prepared, .. } => Ok(prepared),
            FromRunner::Error { error, .. } => Err(error),
            other => Err(unexpected(&other)),
        }
    }
}

impl Call for Embed {
    type Reply = Embedded;
    fn into_message(self, id: u64) -> ToRunner {
        ToRunner::Embed { id, job: self }
    }
    fn reply(msg: FromRunner) -> Result<Embedded, EngineError> {
        match msg {
            FromRunner::Embeddings { embedded, .. } => Ok(embedded),
            FromRunner::Error { error, .. } => Err(error),
            other => Err(unexpected(&other)),
        }
    }
}

impl Call for Quantize {
    type Reply = ();
    fn into_message(self, id: u64) -> ToRunner {
        ToRunner::Quantize { id, job: self }
    }
    fn reply(msg: FromRunner) -> Result<(), EngineError> {
        match msg {
            FromRunner::Quantized { .. } => Ok(()),
            FromRunner::Error { error, .. } => Err(error),
            other => Err(unexpected(&other)),
        }
    }
}

/// One message of a running completion.
#[derive(Debug, Clone, PartialEq)]
pub enum Streamed {
    /// The prompt was prepared (its rendered text); pieces follow.
    Started {
        /// The rendered text.
        text: String,
    },
    /// Text (and log-probabilities).
    Piece {
        /// The text.
        text: String,
        /// Log-probabilities of its tokens, when asked for.
        logprobs: Vec<Logprob>,
    },
    /// The end.
    Done {
        /// Why.
        reason: DoneReason,
        /// Counts and durations.
        metrics: Metrics,
        /// Prompt plus response tokens, when asked for.
        tokens: Option<Vec<i32>>,
    },
    /// A failure (the end too).
    Error(EngineError),
}

impl Streamed {
    /// A completion's message, or an internal error for a reply of another kind.
    pub fn from_message(msg: FromRunner) -> Streamed {
        match msg {
            FromRunner::Piece { text, logprobs, .. } => Streamed::Piece { text, logprobs },
            FromRunner::Started { text, .. } => Streamed::Started { text },
            FromRunner::Done {
                reason,
                metrics,
                tokens,
                ..
            } => Streamed::Done {
                reason,
                metrics,
                tokens,
            },
            FromRunner::Error { error, .. } => Streamed::Error(error),
            other => Streamed::Error(unexpected(&other)),
        }
    }
}

/// What the runner reports once the model is loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerInfo {
    /// Context length per slot, as created.
    pub num_ctx: u32,
    /// The model's training context length.
    pub n_ctx_train: u32,
    /// Slots.
    pub parallel: u32,
    /// Bytes of weights.
    pub model_size: u64,
    /// Estimated bytes in use: weights, KV cache and compute buffers.
    pub total_size: u64,
    /// Of which on a GPU.
    pub vram_size: u64,
    /// Embedding width.
    pub n_embd: u32,
    /// Vocabulary size (token ids are `0..n_vocab`).
    pub n_vocab: i32,
    /// Whether this is an embedding model (pooled output, no completion).
    pub embedding: bool,
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneReason {
    /// End of generation token or a stop string.
    Stop,
    /// `num_predict` reached, or the context filled without `shift`.
    Length,
}

impl DoneReason {
    /// Ollama's `done_reason` text.
    pub fn as_str(self) -> &'static str {
        match self {
            DoneReason::Stop => "stop",
            DoneReason::Length => "length",
        }
    }
}

/// Final counts of a completion; durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Prompt tokens evaluated (those not reused from the prompt cache), as llama-server's
    /// `prompt_n` and Ollama's `prompt_eval_count` report them.
    pub prompt_eval_count: u64,
    /// Prompt tokens in all (the evaluated ones plus the reused prefix).
    pub prompt_tokens: u64,
    /// Time from the request reaching the runner to its first token.
    pub prompt_eval_duration: u64,
    /// Generated tokens.
    pub eval_count: u64,
    /// Time from the first to the last generated token.
    pub eval_duration: u64,
}

/// Whether an error is the request's fault (HTTP 400) or the runner's (500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad input, e.g. a prompt longer than the context with `truncate: false`.
    BadRequest,
    /// Anything else.
    Internal,
}

/// A failed request: whose fault, and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    /// The request's (HTTP 400) or the runner's (500).
    pub kind: ErrorKind,
    /// What happened, for the client.
    pub message: String,
}

impl EngineError {
    /// The request's fault.
    pub fn bad(message: impl Into<String>) -> EngineError {
        EngineError {
            kind: ErrorKind::BadRequest,
            message: message.into(),
        }
    }

    /// The runner's fault.
    pub fn internal(message: impl Into<String>) -> EngineError {
        EngineError {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }
}

/// A message from the runner to the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromRunner {
    /// The model is loaded; requests may follow.
    Ready(RunnerInfo),
    /// Loading failed; the runner exits after this.
    LoadFailed {
        /// Why.
        error: String,
    },
    /// Generated text for a request.
    Piece {
        /// Request id.
        id: u64,
        /// The text (may be empty when only tokens were produced).
        text: String,
        /// Log-probabilities of the tokens behind this piece, when asked for.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        logprobs: Vec<Logprob>,
    },
    /// A completion ended.
    Done {
        /// Request id.
        id: u64,
        /// Why.
        reason: DoneReason,
        /// Counts and durations.
        metrics: Metrics,
        /// Prompt plus response tokens, when asked for.
        tokens: Option<Vec<i32>>,
    },
    /// The answer to [`ToRunner::Prepare`].
    Prepared {
        /// Request id.
        id: u64,
        /// The prompt.
        prepared: Prepared,
    },
    /// A completion's prompt was prepared and the completion queued: the first message of its
    /// stream when the prompt came as [`PromptInput::Prepare`].
    Started {
        /// Request id.
        id: u64,
        /// The rendered text (without the context).
        text: String,
    },
    /// The answer to [`ToRunner::Embed`].
    Embeddings {
        /// Request id.
        id: u64,
        /// The vectors.
        embedded: Embedded,
    },
    /// The answer to [`ToRunner::Quantize`].
    Quantized {
        /// Request id.
        id: u64,
    },
    /// A request failed.
    Error {
        /// Request id.
        id: u64,
        /// What happened.
        error: EngineError,
    },
}

impl FromRunner {
    /// The request this message answers, and whether it is the last one for it; `None` for
    /// the messages about the runner itself.
    pub fn route(&self) -> Option<(u64, bool)> {
        match self {
            FromRunner::Piece { id, .. } | FromRunner::Started { id, .. } => Some((*id, false)),
            FromRunner::Done { id, .. }
            | FromRunner::Prepared { id, .. }
            | FromRunner::Embeddings { id, .. }
            | FromRunner::Quantized { id }
            | FromRunner::Error { id, .. } => Some((*id, true)),
            FromRunner::Ready(_) | FromRunner::LoadFailed { .. } => None,
        }
    }
}

/// A malformed frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Reading or writing failed (EOF included).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The bytes are not a frame.
    #[error("runner protocol error: {0}")]
    Protocol(String),
}

/// Encodes one frame.
pub fn encode(msg: &impl Serialize) -> Vec<u8> {
    let json = serde_json::to_vec(msg).unwrap_or_default();
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// Checks a frame header; returns the payload length.
///
/// # Errors
/// [`FrameError::Protocol`] for a wrong magic or an oversized length.
pub fn check_header(h: &[u8; 8]) -> Result<usize, FrameError> {
    if h[..4] != MAGIC {
        return Err(FrameError::Protocol(format!(
            "bad frame magic {:?}",
            String::from_utf8_lossy(&h[..4])
        )));
    }
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Protocol(format!("frame of {len} bytes")));
    }
    Ok(len)
}

/// Decodes a payload.
///
/// # Errors
/// [`FrameError::Protocol`] when it is not the expected JSON.
pub fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(|e| FrameError::Protocol(e.to_string()))
}

/// Reads one frame from a blocking reader.
///
/// # Errors
/// [`FrameError`].
pub fn read_frame<T: serde::de::DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let len = check_header(&h)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    decode(&payload)
}

/// Writes one frame to a blocking writer and flushes it.
///
/// # Errors
/// I/O errors.
pub fn write_frame(w: &mut impl Write, msg: &impl Serialize) -> io::Result<()> {
    w.write_all(&encode(msg))?;
    w.flush()
}

/// Reads one frame from an async reader.
///
/// # Errors
/// [`FrameError`].
pub async fn read_frame_async<T: serde::de::DeserializeOwned>(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<T, FrameError> {
    use tokio::io::AsyncReadExt;
    let mut h = [0u8; 8];
    r.read_exact(&mut h).await?;
    let len = check_header(&h)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    decode(&payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let msg = ToRunner::Cancel { id: 7 };
        let bytes = encode(&msg);
        let back: ToRunner = read_frame(&mut bytes.as_slice()).unwrap();
        assert!(matches!(back, ToRunner::Cancel { id: 7 }));
    }

    #[test]
    fn stray_output_is_a_protocol_error() {
        let mut bytes = b"hello world\n".to_vec();
        bytes.extend(encode(&ToRunner::Shutdown));
        let e = read_frame::<ToRunner>(&mut bytes.as_slice()).unwrap_err();
        assert!(matches!(e, FrameError::Protocol(_)), "{e}");
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&MAGIC);
        h[4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_header(&h).is_err());
    }

    #[test]
    fn truncated_frame_is_an_io_error() {
        let bytes = encode(&ToRunner::Shutdown);
        let e = read_frame::<ToRunner>(&mut &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(matches!(e, FrameError::Io(_)));
    }
}
