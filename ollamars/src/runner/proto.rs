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
    /// The server's id for the request (unique per runner).
    pub id: u64,
    /// The rendered prompt; tokenized with special tokens parsed.
    pub prompt: String,
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
}

/// A token's log-probability under the model's raw distribution (Ollama's `logprobs` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logprob {
    /// The token's text (invalid UTF-8 replaced).
    pub token: String,
    /// Natural log of its probability.
    pub logprob: f32,
    /// The token's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
    /// The most likely tokens at this position, most likely first (when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<Vec<Logprob>>,
}

/// A request from the server to the runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToRunner {
    /// Generate text.
    Completion(Completion),
    /// Embed each input (one vector per input).
    Embed {
        /// Request id.
        id: u64,
        /// The texts.
        inputs: Vec<String>,
        /// Cut inputs longer than the context instead of failing.
        truncate: bool,
        /// L2-normalise (the `/api/embed` form) or return raw (`/api/embeddings`).
        normalize: bool,
    },
    /// Tokenize text (special tokens parsed, BOS added as the model wants).
    Tokenize {
        /// Request id.
        id: u64,
        /// The texts; one token list each.
        texts: Vec<String>,
    },
    /// Detokenize tokens.
    Detokenize {
        /// Request id.
        id: u64,
        /// The tokens.
        tokens: Vec<i32>,
    },
    /// Render messages with the model's own (GGUF Jinja, or llama.cpp built-in) chat template.
    Render {
        /// Request id.
        id: u64,
        /// Messages as JSON objects (`role`, `content`, ...).
        messages: Vec<serde_json::Map<String, serde_json::Value>>,
        /// Tool definitions, if any.
        tools: Option<serde_json::Value>,
    },
    /// Stop a request (the client went away); frees its slot.
    Cancel {
        /// Request id.
        id: u64,
    },
    /// Finish and exit.
    Shutdown,
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
    /// Embeddings, one per input.
    Embeddings {
        /// Request id.
        id: u64,
        /// The vectors.
        vectors: Vec<Vec<f32>>,
        /// Tokens evaluated.
        prompt_eval_count: u64,
    },
    /// Token lists, one per text.
    Tokens {
        /// Request id.
        id: u64,
        /// The tokens.
        tokens: Vec<Vec<i32>>,
    },
    /// Detokenized text.
    Text {
        /// Request id.
        id: u64,
        /// The text.
        text: String,
    },
    /// A request failed.
    Error {
        /// Request id.
        id: u64,
        /// Whose fault.
        kind: ErrorKind,
        /// The message.
        message: String,
    },
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
