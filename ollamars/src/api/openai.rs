//! The OpenAI-compatible shapes (spec §2): chat and text completions (whole and as SSE
//! chunks), models, embeddings and errors.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `chat.completion`, `chat.completion.chunk` or `text_completion`: the fields every
/// completion object has, around its choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion<C> {
    /// `chatcmpl-N` or `cmpl-N`.
    pub id: String,
    /// The object type.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    /// The model, as the request named it.
    pub model: String,
    /// Always `fp_ollama`, as Ollama sends.
    pub system_fingerprint: String,
    /// The choices (one; none in a usage-only chunk).
    pub choices: Vec<C>,
    /// Token counts: in whole answers, and in the last chunk with `include_usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Both.
    pub total_tokens: u64,
}

/// One choice of a chat completion: a whole `message`, or a stream chunk's `delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Always 0.
    pub index: usize,
    /// The whole message (non-streamed answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<ChatMessage>,
    /// This chunk's part of the message (streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<ChatMessage>,
    /// Log-probabilities, when asked for.
    #[serde(default)]
    pub logprobs: Option<ChatLogprobs>,
    /// `stop`, `length` or `tool_calls`, at the end.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// An assistant message or delta.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `assistant` (absent in the closing delta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Thinking, as Ollama names it for OpenAI clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

/// A tool call: `arguments` is a JSON text, as OpenAI sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id.
    pub id: String,
    /// Position among the calls.
    pub index: usize,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What is called.
    pub function: FunctionCall,
}

/// The function of a [`ToolCall`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

/// Chat log-probabilities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatLogprobs {
    /// One per token of the content.
    pub content: Vec<TokenLogprob>,
}

/// A token's log-probability, with the most likely alternatives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text.
    pub token: String,
    /// Natural log of its probability.
    pub logprob: f32,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The alternatives (only on the token itself, not on each alternative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<Vec<TokenLogprob>>,
}

/// One choice of a text completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextChoice {
    /// Always 0.
    pub index: usize,
    /// The text (this chunk's, in a stream).
    pub text: String,
    /// The legacy log-probability shape, when asked for.
    #[serde(default)]
    pub logprobs: Option<LegacyLogprobs>,
    /// `stop` or `length`, at the end.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The legacy completions' log-probabilities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LegacyLogprobs {
    /// The tokens' texts.
    pub tokens: Vec<String>,
    /// Their log-probabilities.
    pub token_logprobs: Vec<f32>,
    /// Per token, alternative text → log-probability.
    pub top_logprobs: Vec<Map<String, Value>>,
    /// Each token's byte offset in the text.
    pub text_offset: Vec<usize>,
}

/// `GET /v1/models/{id}`, and each entry of the list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// `name:tag`.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds of the last change.
    pub created: i64,
    /// The name's namespace (`library` for official models).
    pub owned_by: String,
}

/// `GET /v1/models`, and `POST /v1/embeddings`: `{"object": "list", "data": …}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct List<T> {
    /// Always `list`.
    pub object: String,
    /// The items.
    pub data: Vec<T>,
    /// Embeddings: the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Embeddings: tokens evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingUsage>,
}

impl<T> List<T> {
    /// A list of `data`.
    pub fn of(data: Vec<T>) -> List<T> {
        List {
            object: "list".into(),
            data,
            model: None,
            usage: None,
        }
    }
}

/// Token counts of an embedding request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Tokens evaluated.
    pub prompt_tokens: u64,
    /// The same.
    pub total_tokens: u64,
}

/// One embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    /// The vector, as floats or as base64 of little-endian `f32`s.
    pub embedding: EmbeddingData,
    /// Position of its input.
    pub index: usize,
}

/// An embedding vector in the requested `encoding_format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingData {
    /// `float`.
    Float(Vec<f32>),
    /// `base64`.
    Base64(String),
}

/// OpenAI's error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// The inside of [`ErrorResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub message: String,
    /// `invalid_request_error` or `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always null.
    pub param: Option<String>,
    /// `model_not_found` for unknown models, else null.
    pub code: Option<String>,
}
