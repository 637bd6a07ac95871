//! The typed Ollama API: a serde type for every request and response body of `/api/*` (spec
//! §1), shared by the server, the client, the CLI and the tests; the OpenAI shapes are in
//! [`openai`].
//!
//! Requests deserialize leniently where Ollama does (absent fields take defaults, `null` reads as
//! absent) and strictly where a value has a type: `keep_alive` is a [`KeepAlive`], `think` a
//! [`ThinkValue`]. Rules that span fields or need bounds (`raw` with `template`, `context`
//! ids, `top_logprobs`, embedding inputs) are checked once by [`validate`] into a bounded value
//! before any handler logic runs. Nothing here knows HTTP: the server maps the typed errors to
//! statuses in `server/error.rs`.

mod keep_alive;
pub mod openai;
pub mod validate;

pub use crate::create::{CreateMessage, CreateRequest};
pub use crate::progress::Progress;
pub use crate::template::{Message, Tool, ToolCall, ToolCallFunction, ToolFunction};
pub use keep_alive::KeepAlive;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `think`: on or off, or a level for models that take one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkValue {
    /// `true` or `false`.
    Bool(bool),
    /// `"low"`, `"medium"`, `"high"` or `"max"`.
    Level(ThinkLevel),
}

/// How hard a thinking model thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThinkLevel {
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `max`.
    Max,
}

impl ThinkLevel {
    /// The level's name, as templates see it (`.ThinkLevel`).
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkLevel::Low => "low",
            ThinkLevel::Medium => "medium",
            ThinkLevel::High => "high",
            ThinkLevel::Max => "max",
        }
    }
}

impl Serialize for ThinkValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ThinkValue::Bool(b) => s.serialize_bool(*b),
            ThinkValue::Level(l) => s.serialize_str(l.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for ThinkValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ThinkValue, D::Error> {
        let v = Value::deserialize(d)?;
        match &v {
            Value::Bool(b) => return Ok(ThinkValue::Bool(*b)),
            Value::String(s) => {
                if let Ok(l) = ThinkLevel::deserialize(Value::String(s.clone())) {
                    return Ok(ThinkValue::Level(l));
                }
            }
            _ => {}
        }
        Err(de::Error::custom(format!(
            "invalid think value: {v} (use true, false, \"low\", \"medium\", \"high\" or \"max\")"
        )))
    }
}

/// The settings `/api/generate` and `/api/chat` share (flattened into both).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunParams {
    /// The model, as the client wrote it.
    #[serde(default)]
    pub model: String,
    /// `"json"` or a JSON Schema the output must follow.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub format: Value,
    /// Model options (`temperature`, `num_ctx`, …) over the Modelfile's PARAMETERs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Map<String, Value>>,
    /// How long the model stays loaded after this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
    /// Stream NDJSON lines (the default) or answer with one object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Thinking on/off or its level (`None`: the model's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<ThinkValue>,
    /// Cut an over-long prompt instead of failing (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// Shift the context when generation fills it (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<bool>,
    /// Report each token's log-probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// With `logprobs`, this many alternatives per token (0..=20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<i64>,
    /// Render the prompt and return it instead of generating (Ollama's debug field).
    #[serde(
        default,
        rename = "_debug_render_only",
        skip_serializing_if = "is_false"
    )]
    pub debug_render_only: bool,
}

/// `POST /api/generate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The shared settings.
    #[serde(flatten)]
    pub run: RunParams,
    /// The prompt.
    #[serde(default)]
    pub prompt: String,
    /// Text after the insertion point (fill-in-middle).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suffix: String,
    /// Replaces the Modelfile's SYSTEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Replaces the Modelfile's TEMPLATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The `context` of an earlier response (legacy conversation memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<i64>>,
    /// Send the prompt as it is, without a template.
    #[serde(default, skip_serializing_if = "is_false")]
    pub raw: bool,
    /// Base64 images (accepted; vision is not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
}

/// `POST /api/chat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The shared settings.
    #[serde(flatten)]
    pub run: RunParams,
    /// The conversation.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Beyond Ollama (#11171): `"auto"`, `"none"`, `"required"`, or a tool to call.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub tool_choice: Value,
}

/// Timings and counts of a finished generation; durations in nanoseconds. Zero fields are
/// left out, as Ollama leaves them out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// From the request's arrival to its end.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total_duration: u64,
    /// Loading the model (or waiting for it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub load_duration: u64,
    /// Prompt tokens evaluated.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prompt_eval_count: u64,
    /// Time spent on them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prompt_eval_duration: u64,
    /// Tokens generated.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eval_count: u64,
    /// Time spent generating.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eval_duration: u64,
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

/// `_debug_info` of a `_debug_render_only` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugInfo {
    /// The prompt as the model would have seen it.
    pub rendered_template: String,
    /// Images in the request.
    pub image_count: usize,
}

/// One line (or the whole answer) of `/api/generate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateResponse {
    /// The model, as the request named it.
    pub model: String,
    /// When the line was made (RFC 3339).
    pub created_at: String,
    /// Generated text.
    #[serde(default)]
    pub response: String,
    /// Reasoning split from the text (thinking models).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// Whether this is the last line.
    pub done: bool,
    /// Why generation ended (`stop`, `length`, `load`, `unload`), on the last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Prompt and response tokens, for the next request's `context` (last line, not raw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<i32>>,
    /// Timings, on the last line.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Log-probabilities of this line's tokens, when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<Logprob>,
    /// The rendered prompt, for `_debug_render_only`.
    #[serde(
        default,
        rename = "_debug_info",
        skip_serializing_if = "Option::is_none"
    )]
    pub debug_info: Option<DebugInfo>,
}

/// One line (or the whole answer) of `/api/chat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model, as the request named it.
    pub model: String,
    /// When the line was made (RFC 3339).
    pub created_at: String,
    /// The assistant's message (or this line's part of it).
    pub message: Message,
    /// Whether this is the last line.
    pub done: bool,
    /// Why generation ended, on the last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Timings, on the last line.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Log-probabilities of this line's tokens, when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<Logprob>,
    /// The rendered prompt, for `_debug_render_only`.
    #[serde(
        default,
        rename = "_debug_info",
        skip_serializing_if = "Option::is_none"
    )]
    pub debug_info: Option<DebugInfo>,
}

/// `POST /api/embed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    /// The model.
    #[serde(default)]
    pub model: String,
    /// A string or a list of strings (checked by [`validate`]).
    #[serde(default)]
    pub input: Value,
    /// Cut inputs longer than the context instead of failing (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// Cut each vector to this many values (then normalise again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<i64>,
    /// Model options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Map<String, Value>>,
    /// How long the model stays loaded after this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
}

/// `POST /api/embed`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    /// The model, as the request named it.
    pub model: String,
    /// One L2-normalised vector per input.
    pub embeddings: Vec<Vec<f32>>,
    /// From the request's arrival to its end (ns).
    #[serde(default)]
    pub total_duration: u64,
    /// Loading the model (ns).
    #[serde(default)]
    pub load_duration: u64,
    /// Tokens evaluated.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prompt_eval_count: u64,
}

/// `POST /api/embeddings` (legacy).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    /// The model.
    #[serde(default)]
    pub model: String,
    /// The one text.
    #[serde(default)]
    pub prompt: String,
    /// Model options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Map<String, Value>>,
    /// How long the model stays loaded after this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
}

/// `POST /api/embeddings`'s answer: one raw (not normalised) vector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// The vector.
    pub embedding: Vec<f64>,
}

/// A request that names one model: `/api/show`, `/api/delete` (`model`, or the legacy
/// `name`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The legacy spelling of `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `/api/show`: include large metadata arrays.
    #[serde(default, skip_serializing_if = "is_false")]
    pub verbose: bool,
}

impl ModelRequest {
    /// A request for `model`.
    pub fn new(model: impl Into<String>) -> ModelRequest {
        ModelRequest {
            model: Some(model.into()),
            ..ModelRequest::default()
        }
    }

    /// The name as the client wrote it (`model`, else `name`).
    pub fn raw_name(&self) -> &str {
        self.model
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.name.as_deref())
            .unwrap_or_default()
    }
}

/// `POST /api/show` as the client sends it: `verbose` always (as Ollama's client does), and
/// from an interactive session its `system` message and `options`, to see the model as the
/// session has changed it.
///
/// The server reads this body as a [`ModelRequest`]: it answers for the stored model and
/// ignores `system` and `options` (whatever their type), as it did before this type existed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShowRequest {
    /// The model.
    #[serde(default)]
    pub model: String,
    /// Include large metadata arrays.
    #[serde(default)]
    pub verbose: bool,
    /// The session's system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The session's options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Map<String, Value>>,
}

impl ShowRequest {
    /// A request for `model`, without large metadata arrays.
    pub fn new(model: impl Into<String>) -> ShowRequest {
        ShowRequest {
            model: model.into(),
            ..ShowRequest::default()
        }
    }
}

/// `POST /api/copy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRequest {
    /// The existing model.
    #[serde(default)]
    pub source: String,
    /// The new name.
    #[serde(default)]
    pub destination: String,
}

/// `POST /api/pull` and `POST /api/push`. `username` and `password` are accepted and ignored,
/// as by Ollama (credentials come from the server's configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The legacy spelling of `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Allow plain http registries.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    /// Stream progress lines (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}

impl TransferRequest {
    /// A request for `model`.
    pub fn new(model: impl Into<String>, insecure: bool) -> TransferRequest {
        TransferRequest {
            model: Some(model.into()),
            insecure,
            ..TransferRequest::default()
        }
    }

    /// `model`, else the legacy `name`.
    pub fn raw_name(&self) -> &str {
        self.model
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(self.name.as_deref())
            .unwrap_or_default()
    }
}

/// `GET /api/version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    /// The server's version.
    pub version: String,
}

/// `details` of a model in `/api/tags`, `/api/show` and `/api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelDetails {
    /// The model it was created from, if any.
    #[serde(default)]
    pub parent_model: String,
    /// `gguf`.
    #[serde(default)]
    pub format: String,
    /// The architecture family.
    #[serde(default)]
    pub family: String,
    /// All families (`null` when unknown).
    #[serde(default)]
    pub families: Option<Vec<String>>,
    /// e.g. `135M`.
    #[serde(default)]
    pub parameter_size: String,
    /// e.g. `Q4_1`.
    #[serde(default)]
    pub quantization_level: String,
    /// `/api/tags` only: the context length recorded at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    /// `/api/tags` only: the embedding length recorded at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_length: Option<u64>,
}

/// One model of `/api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListModel {
    /// `name:tag`.
    pub name: String,
    /// The same.
    pub model: String,
    /// When the manifest was written (RFC 3339).
    pub modified_at: String,
    /// Bytes of all layers.
    pub size: u64,
    /// The manifest's digest (hex).
    pub digest: String,
    /// Format, family, size and quantization.
    pub details: ModelDetails,
    /// Capabilities recorded at creation, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

/// `GET /api/tags`: newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListResponse {
    /// The models.
    pub models: Vec<ListModel>,
}

/// `POST /api/show`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShowResponse {
    /// LICENSE layers, joined by newlines.
    #[serde(default)]
    pub license: String,
    /// The model as a Modelfile.
    #[serde(default)]
    pub modelfile: String,
    /// PARAMETERs, one per line.
    #[serde(default)]
    pub parameters: String,
    /// The Go TEMPLATE, else the GGUF's own chat template.
    #[serde(default)]
    pub template: String,
    /// SYSTEM.
    #[serde(default)]
    pub system: String,
    /// RENDERER, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderer: Option<String>,
    /// PARSER, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<String>,
    /// Format, family, size and quantization.
    #[serde(default)]
    pub details: ModelDetails,
    /// MESSAGEs, when any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Value>,
    /// GGUF metadata (large arrays only with `verbose`).
    #[serde(default)]
    pub model_info: Map<String, Value>,
    /// The first projector layer's GGUF metadata (every key; long arrays `[]` unless verbose),
    /// present when the model has a projector layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projector_info: Option<Map<String, Value>>,
    /// Tensor names, types and shapes.
    #[serde(default)]
    pub tensors: Vec<Value>,
    /// `completion`, `embedding`, `tools`, `insert`, `thinking`, `vision`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// When the manifest was written (RFC 3339).
    #[serde(default)]
    pub modified_at: String,
    /// REQUIRES, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
    /// ollamars: the Ollama-layout translation this model gets (`crate::compat`), when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compat: Option<Map<String, Value>>,
}

/// One loaded model of `/api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PsModel {
    /// `name:tag`.
    pub name: String,
    /// The same.
    pub model: String,
    /// Bytes in use.
    pub size: u64,
    /// The manifest's digest (hex).
    pub digest: String,
    /// Format, family, size and quantization.
    pub details: ModelDetails,
    /// When it unloads (RFC 3339; far in the future for never).
    pub expires_at: String,
    /// Of `size`, bytes on a GPU.
    pub size_vram: u64,
    /// Context length per slot.
    pub context_length: u32,
}

/// `GET /api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PsResponse {
    /// Latest expiry first.
    pub models: Vec<PsModel>,
}

/// Ollama's error body: `{"error": "…"}` (also the last line of a failed stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generate_request_reads_the_shared_fields() {
        let r: GenerateRequest = serde_json::from_value(json!({
            "model": "m", "prompt": "p", "keep_alive": "5m", "think": "high",
            "options": {"temperature": 0}, "stream": false, "_debug_render_only": true
        }))
        .unwrap();
        assert_eq!(r.run.model, "m");
        assert_eq!(r.prompt, "p");
        assert_eq!(
            r.run.keep_alive,
            Some(KeepAlive::For(std::time::Duration::from_secs(300)))
        );
        assert_eq!(r.run.think, Some(ThinkValue::Level(ThinkLevel::High)));
        assert_eq!(r.run.stream, Some(false));
        assert!(r.run.debug_render_only);
        // Round trip through the client's serialization.
        let back: GenerateRequest = serde_json::from_value(json!(r)).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn nulls_read_as_absent_and_bad_values_are_errors() {
        let r: ChatRequest =
            serde_json::from_value(json!({"model": "m", "keep_alive": null, "think": null}))
                .unwrap();
        assert_eq!(r.run.keep_alive, None);
        assert_eq!(r.run.think, None);
        for bad in [
            json!({"think": "loud"}),
            json!({"think": 1}),
            json!({"keep_alive": "-1"}),
            json!({"keep_alive": true}),
            json!({"messages": "hi"}),
        ] {
            assert!(
                serde_json::from_value::<ChatRequest>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let e = serde_json::from_value::<ChatRequest>(json!({"think": "loud"})).unwrap_err();
        assert!(e.to_string().contains("invalid think value"), "{e}");
    }

    #[test]
    fn responses_leave_out_what_ollama_leaves_out() {
        let r = GenerateResponse {
            model: "m".into(),
            created_at: "t".into(),
            response: "hi".into(),
            ..GenerateResponse::default()
        };
        assert_eq!(
            json!(r),
            json!({"model": "m", "created_at": "t", "response": "hi", "done": false})
        );
        let last = ChatResponse {
            model: "m".into(),
            created_at: "t".into(),
            message: Message::new("assistant", ""),
            done: true,
            done_reason: Some("stop".into()),
            metrics: Metrics {
                eval_count: 3,
                ..Metrics::default()
            },
            ..ChatResponse::default()
        };
        assert_eq!(
            json!(last),
            json!({"model": "m", "created_at": "t",
                "message": {"role": "assistant", "content": ""},
                "done": true, "done_reason": "stop", "eval_count": 3})
        );
    }
}
