//! OpenAI-compatible endpoints (spec §2.1–2.4): `POST /v1/chat/completions`,
//! `POST /v1/completions`, `GET /v1/models`, `GET /v1/models/{id}` (ids may contain `/`) and
//! `POST /v1/embeddings` (float or base64), in the [`crate::api::openai`] shapes, with
//! OpenAI-shaped errors ([`OpenAiError`]).

use super::embed::{embed_vectors, model_for_embed};
use crate::api::openai::{
    self as oa, ChatChoice, ChatLogprobs, Completion, Embedding, EmbeddingData, EmbeddingUsage,
    LegacyLogprobs, List, TextChoice, TokenLogprob, Usage,
};
use crate::api::{
    ChatRequest, GenerateRequest, KeepAlive, ListModel, Logprob, Message, RunParams, ThinkLevel,
    ThinkValue,
};
use crate::name::ModelName;
use crate::server::ServerState;
use crate::server::completion::{Event, Out, Running, Shape, Start, start_chat, start_generate};
use crate::server::error::{ApiError, OpenAiError, join_error, parse_body};
use crate::server::stream::{sse, sse_line};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use serde_json::{Map, Value};

fn model_object(m: &ListModel) -> oa::Model {
    let created = chrono::DateTime::parse_from_rfc3339(&m.modified_at).map_or(0, |t| t.timestamp());
    let owned_by = ModelName::parse(&m.model)
        .map(|n| n.namespace().to_string())
        .unwrap_or_else(|_| "library".into());
    oa::Model {
        id: m.model.clone(),
        object: "model".into(),
        created,
        owned_by,
    }
}

async fn listing(st: &ServerState) -> Result<Vec<ListModel>, ApiError> {
    let store = st.store.clone();
    let v = tokio::task::spawn_blocking(move || crate::models::list(&store))
        .await
        .map_err(join_error)??;
    Ok(v.models)
}

/// `GET /v1/models`.
pub(in crate::server) async fn models(
    State(st): State<ServerState>,
) -> Result<Json<List<oa::Model>>, OpenAiError> {
    let data = listing(&st).await?.iter().map(model_object).collect();
    Ok(Json(List::of(data)))
}

/// `GET /v1/models/{id}`: `id` as listed (`smol:latest`), or without the tag.
pub(in crate::server) async fn model(
    State(st): State<ServerState>,
    Path(id): Path<String>,
) -> Result<Json<oa::Model>, OpenAiError> {
    let want = ModelName::parse(&id).ok();
    listing(&st)
        .await?
        .iter()
        .find(|m| {
            m.model == id
                || want.as_ref().is_some_and(|w| {
                    ModelName::parse(&m.model).is_ok_and(|n| n.display_short() == w.display_short())
                })
        })
        .map(|m| Json(model_object(m)))
        .ok_or_else(|| ApiError::not_found(format!("model \"{id}\" not found")).into())
}

#[derive(Debug, serde::Deserialize)]
struct EmbeddingsRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<i64>,
    /// Ollama options as extra body fields (beyond Ollama, #5356), e.g. `num_ctx`.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// `POST /v1/embeddings`.
pub(in crate::server) async fn embeddings(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Json<List<Embedding>>, OpenAiError> {
    let req: EmbeddingsRequest = parse_body(&body)?;
    let inputs: Vec<String> = match &req.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::bad("invalid input type: only strings are supported"))?,
        _ => {
            return Err(
                ApiError::bad("invalid input: a string or a list of strings is required").into(),
            );
        }
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "invalid encoding_format {other:?}: use \"float\" or \"base64\""
            ))
            .into());
        }
    };
    let dimensions = match req.dimensions {
        Some(d) if d < 1 => {
            return Err(ApiError::bad("dimensions must be a positive number").into());
        }
        d => d.and_then(|d| usize::try_from(d).ok()),
    };
    let info = model_for_embed(&st, &req.model).await?;
    let e = embed_vectors(&st, &info, &req.extra, inputs, dimensions).await?;
    let data = e
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                EmbeddingData::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingData::Float(v)
            };
            Embedding {
                object: "embedding".into(),
                embedding,
                index,
            }
        })
        .collect();
    let count = e.prompt_eval_count;
    Ok(Json(List {
        model: Some(req.model),
        usage: Some(EmbeddingUsage {
            prompt_tokens: count,
            total_tokens: count,
        }),
        ..List::of(data)
    }))
}

/// `POST /v1/chat/completions` (spec §2.1): the request becomes an `/api/chat` request, and the
/// output comes back as a `chat.completion`, or as SSE `chat.completion.chunk`s ending with
/// `[DONE]`. Beyond Ollama (#5356): Ollama's options (`num_ctx`, `top_k`, `keep_alive`, ...)
/// are accepted as extra body fields.
pub(in crate::server) async fn chat_completions(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let started = std::time::Instant::now();
    let raw: Map<String, Value> = parse_body(&body)?;
    let (req, usage) = chat_request(raw)?;
    let req = req.validate()?;
    let (model, stream) = (req.run.model.clone(), req.run.stream);
    match start_chat(&st, req, started).await? {
        Start::Running(run, shape) => {
            openai_response(run, *shape, Kind::Chat, &model, stream, usage).await
        }
        Start::Ready(_) | Start::Rendered(_) => {
            Err(ApiError::bad("[] is too short - 'messages'").into())
        }
    }
}

/// `POST /v1/completions` (spec §2.2): a string `prompt` (with `suffix`) through `/api/generate`.
pub(in crate::server) async fn completions(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let started = std::time::Instant::now();
    let raw: Map<String, Value> = parse_body(&body)?;
    let prompt = match raw.get("prompt") {
        Some(Value::String(p)) => p.clone(),
        _ => return Err(ApiError::bad("prompt must be a string").into()),
    };
    let mut options = sampling_options(&raw);
    if options.get("top_p").and_then(Value::as_f64) == Some(0.0) {
        options.insert("top_p".into(), Value::from(1.0));
    }
    let stream = raw.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let req = GenerateRequest {
        run: RunParams {
            model: text_field(&raw, "model"),
            options: Some(options),
            keep_alive: keep_alive_field(&raw)?,
            stream: Some(stream),
            // Legacy completions: `logprobs: n` asks for n alternatives (0 for none).
            logprobs: raw.get("logprobs").and_then(Value::as_i64).map(|_| true),
            top_logprobs: raw.get("logprobs").and_then(Value::as_i64),
            ..RunParams::default()
        },
        prompt,
        suffix: text_field(&raw, "suffix"),
        ..GenerateRequest::default()
    }
    .validate()?;
    let model = req.run.model.clone();
    match start_generate(&st, req, started).await? {
        Start::Running(run, shape) => {
            openai_response(run, *shape, Kind::Text, &model, stream, include_usage(&raw)).await
        }
        Start::Ready(_) | Start::Rendered(_) => Err(ApiError::bad("prompt is required").into()),
    }
}

fn text_field(raw: &Map<String, Value>, key: &str) -> String {
    raw.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn keep_alive_field(raw: &Map<String, Value>) -> Result<Option<KeepAlive>, ApiError> {
    KeepAlive::from_json(raw.get("keep_alive").unwrap_or(&Value::Null)).map_err(ApiError::bad)
}

/// Chat completions or text completions.
#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Text,
}

/// One choice of either kind.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
enum Choice {
    Chat(ChatChoice),
    Text(TextChoice),
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Chat => "chatcmpl",
            Kind::Text => "cmpl",
        }
    }

    fn object(self, stream: bool) -> &'static str {
        match (self, stream) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Text, _) => "text_completion",
        }
    }

    /// One choice: the whole message (`delta` false) or a delta of a stream.
    fn choice(self, o: &Out, finish: Option<&str>, delta: bool) -> Choice {
        let finish_reason = finish.map(str::to_string);
        match self {
            Kind::Text => Choice::Text(TextChoice {
                index: 0,
                text: o.content.clone(),
                logprobs: legacy_logprobs(&o.logprobs),
                finish_reason,
            }),
            Kind::Chat => {
                let m = oa::ChatMessage {
                    role: Some("assistant".into()),
                    content: (!o.content.is_empty() || !delta).then(|| o.content.clone()),
                    reasoning: (!o.thinking.is_empty()).then(|| o.thinking.clone()),
                    tool_calls: openai_calls(&o.calls),
                };
                let item = |l: &Logprob| TokenLogprob {
                    token: l.token.clone(),
                    logprob: l.logprob,
                    bytes: l.bytes.clone().unwrap_or_default(),
                    top_logprobs: None,
                };
                let logprobs = (!o.logprobs.is_empty()).then(|| ChatLogprobs {
                    content: o
                        .logprobs
                        .iter()
                        .map(|l| TokenLogprob {
                            top_logprobs: Some(l.top_logprobs.iter().flatten().map(item).collect()),
                            ..item(l)
                        })
                        .collect(),
                });
                let (message, delta) = if delta {
                    (None, Some(m))
                } else {
                    (Some(m), None)
                };
                Choice::Chat(ChatChoice {
                    index: 0,
                    message,
                    delta,
                    logprobs,
                    finish_reason,
                })
            }
        }
    }

    /// A stream's first chunk (chat: the role) and its closing choice.
    fn opening(self) -> Option<Choice> {
        match self {
            Kind::Chat => Some(Choice::Chat(ChatChoice {
                delta: Some(oa::ChatMessage {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..oa::ChatMessage::default()
                }),
                ..ChatChoice::default()
            })),
            Kind::Text => None,
        }
    }

    fn closing(self, finish: &str) -> Choice {
        match self {
            Kind::Chat => Choice::Chat(ChatChoice {
                delta: Some(oa::ChatMessage::default()),
                finish_reason: Some(finish.to_string()),
                ..ChatChoice::default()
            }),
            Kind::Text => self.choice(&Out::default(), Some(finish), true),
        }
    }
}

/// The legacy completions shape: `tokens`, `token_logprobs`, `top_logprobs` (token → logprob
/// maps) and `text_offset`; `None` (null) when none were asked for.
fn legacy_logprobs(lps: &[Logprob]) -> Option<LegacyLogprobs> {
    if lps.is_empty() {
        return None;
    }
    let mut offset = 0;
    let mut text_offset = Vec::new();
    for l in lps {
        text_offset.push(offset);
        offset += l.token.len();
    }
    Some(LegacyLogprobs {
        tokens: lps.iter().map(|l| l.token.clone()).collect(),
        token_logprobs: lps.iter().map(|l| l.logprob).collect(),
        top_logprobs: lps
            .iter()
            .map(|l| {
                l.top_logprobs
                    .iter()
                    .flatten()
                    .map(|t| (t.token.clone(), Value::from(t.logprob)))
                    .collect()
            })
            .collect(),
        text_offset,
    })
}

async fn openai_response(
    mut run: Running,
    mut shape: Shape,
    kind: Kind,
    model: &str,
    stream: bool,
    usage: bool,
) -> Result<Response, OpenAiError> {
    let head = Completion::<Choice> {
        id: completion_id(kind.prefix()),
        object: kind.object(stream).into(),
        created: chrono::Utc::now().timestamp(),
        model: model.to_string(),
        system_fingerprint: "fp_ollama".into(),
        choices: Vec::new(),
        usage: None,
    };
    if !stream {
        let mut all = Out::default();
        loop {
            match run.next().await {
                Some(Event::Text(t, lp)) => all.append(shape.split(&t, lp)),
                Some(Event::Done {
                    reason, metrics, ..
                }) => {
                    all.append(shape.flush());
                    let finish = finish_reason(reason.as_str(), &all);
                    let v = Completion {
                        choices: vec![kind.choice(&all, Some(finish), false)],
                        usage: Some(usage_of(&metrics)),
                        ..head
                    };
                    return Ok(Json(v).into_response());
                }
                Some(Event::Error(e)) => return Err(e.into()),
                None => return Err(ApiError::internal("generation ended early").into()),
            }
        }
    }
    let with_choice = |head: &Completion<Choice>, choice: Choice| -> Bytes {
        sse_line(&Completion {
            choices: vec![choice],
            ..head.clone()
        })
    };
    let first = kind
        .opening()
        .map_or_else(Bytes::new, |c| with_choice(&head, c));
    let state = (run, shape, head, Out::default(), false);
    let rest = futures::stream::unfold(
        state,
        move |(mut run, mut shape, head, mut seen, done)| async move {
            if done {
                return None;
            }
            let mut out = Vec::new();
            // A piece with both reasoning and content becomes two chunks, as Ollama sends them.
            let push = |o: Out, out: &mut Vec<u8>| {
                let parts = [
                    Out {
                        thinking: o.thinking,
                        ..Out::default()
                    },
                    Out {
                        content: o.content,
                        logprobs: o.logprobs,
                        ..Out::default()
                    },
                    Out {
                        calls: o.calls,
                        ..Out::default()
                    },
                ];
                for p in parts.iter().filter(|p| !p.is_empty()) {
                    out.extend_from_slice(&with_choice(&head, kind.choice(p, None, true)));
                }
            };
            let finished = match run.next().await {
                Some(Event::Text(t, lp)) => {
                    let o = shape.split(&t, lp);
                    seen.calls.extend(o.calls.iter().cloned());
                    push(o, &mut out);
                    false
                }
                Some(Event::Done {
                    reason, metrics, ..
                }) => {
                    let o = shape.flush();
                    seen.calls.extend(o.calls.iter().cloned());
                    push(o, &mut out);
                    let finish = finish_reason(reason.as_str(), &seen);
                    out.extend_from_slice(&with_choice(&head, kind.closing(finish)));
                    if usage {
                        out.extend_from_slice(&sse_line(&Completion {
                            usage: Some(usage_of(&metrics)),
                            ..head.clone()
                        }));
                    }
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    true
                }
                Some(Event::Error(e)) => {
                    out.extend_from_slice(&sse_line(&OpenAiError::stream_body(e.message)));
                    true
                }
                None => return None,
            };
            Some((Bytes::from(out), (run, shape, head, seen, finished)))
        },
    );
    Ok(sse(futures::stream::once(async move { first }).chain(rest)))
}

fn completion_id(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{prefix}-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 999
    )
}

fn finish_reason(reason: &str, out: &Out) -> &'static str {
    if !out.calls.is_empty() {
        "tool_calls"
    } else if reason == "length" {
        "length"
    } else {
        "stop"
    }
}

fn usage_of(m: &crate::runner::proto::Metrics) -> Usage {
    Usage {
        prompt_tokens: m.prompt_tokens,
        completion_tokens: m.eval_count,
        total_tokens: m.prompt_tokens + m.eval_count,
    }
}

fn openai_calls(calls: &[crate::api::ToolCall]) -> Vec<oa::ToolCall> {
    calls
        .iter()
        .map(|c| oa::ToolCall {
            id: c.id.clone(),
            index: c.function.index,
            kind: "function".into(),
            function: oa::FunctionCall {
                name: c.function.name.clone(),
                arguments: serde_json::to_string(&c.function.arguments).unwrap_or_default(),
            },
        })
        .collect()
}

fn include_usage(raw: &Map<String, Value>) -> bool {
    raw.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Ollama options from an OpenAI request: `temperature` and `top_p` (1.0 when omitted, as
/// Ollama sends), `max_tokens`, `seed`, penalties, `stop`, and Ollama's own option names given
/// as extra fields.
fn sampling_options(raw: &Map<String, Value>) -> Map<String, Value> {
    let mut options = Map::new();
    let num = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
    options.insert(
        "temperature".into(),
        num(raw.get("temperature")).unwrap_or(Value::from(1.0)),
    );
    options.insert(
        "top_p".into(),
        num(raw.get("top_p")).unwrap_or(Value::from(1.0)),
    );
    for (from, to) in [
        ("max_tokens", "num_predict"),
        ("max_completion_tokens", "num_predict"),
        ("seed", "seed"),
        ("frequency_penalty", "frequency_penalty"),
        ("presence_penalty", "presence_penalty"),
        ("stop", "stop"),
    ] {
        if let Some(v) = num(raw.get(from)) {
            options.insert(to.into(), v);
        }
    }
    for k in OLLAMA_OPTIONS {
        if let Some(v) = num(raw.get(*k)) {
            options.insert((*k).into(), v);
        }
    }
    options
}

/// Ollama option names accepted as extra body fields.
const OLLAMA_OPTIONS: &[&str] = &[
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "use_mmap",
    "num_thread",
    "num_keep",
    "top_k",
    "min_p",
    "typical_p",
    "repeat_last_n",
    "repeat_penalty",
];

/// An OpenAI chat request as an `/api/chat` request; also whether to stream and to report usage.
/// An OpenAI chat request as an `/api/chat` request; also whether to report usage.
fn chat_request(mut raw: Map<String, Value>) -> Result<(ChatRequest, bool), ApiError> {
    fn bad(m: impl Into<String>) -> ApiError {
        ApiError::bad(m)
    }
    let model = raw
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let msgs = match raw.remove("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(bad("[] is too short - 'messages'"));
        }
        Some(_) => return Err(bad("messages must be a list")),
    };
    let mut messages: Vec<Message> = Vec::new();
    for m in msgs {
        let obj = m
            .as_object()
            .ok_or_else(|| bad("each message must be an object"))?;
        let role = obj
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        let base = Message {
            role: role.clone(),
            thinking: obj
                .get("reasoning")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            tool_call_id: obj
                .get("tool_call_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            tool_name: obj
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            ..Message::default()
        };
        let mut parts: Vec<Message> = Vec::new();
        match obj.get("content") {
            None | Some(Value::Null) => parts.push(base.clone()),
            Some(Value::String(s)) => parts.push(Message {
                content: s.clone(),
                ..base.clone()
            }),
            Some(Value::Array(items)) => {
                for p in items {
                    match p.get("type").and_then(Value::as_str) {
                        Some("text") => parts.push(Message {
                            content: p
                                .get("text")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            ..base.clone()
                        }),
                        Some("image_url") => {
                            let url = match p.get("image_url") {
                                Some(Value::String(u)) => u.as_str(),
                                Some(Value::Object(o)) => {
                                    o.get("url").and_then(Value::as_str).unwrap_or_default()
                                }
                                _ => "",
                            };
                            // Ollama's prefixes and texts; the payload is checked again
                            // with the request's other images.
                            crate::media::parse_data_uri(url, &crate::media::Limits::default())
                                .map_err(|e| bad(e.to_string()))?;
                            let data = url.split_once(";base64,").map_or("", |(_, d)| d);
                            parts.push(Message {
                                images: vec![data.to_string()],
                                ..base.clone()
                            });
                        }
                        _ => return Err(bad("invalid message content part")),
                    }
                }
            }
            Some(_) => return Err(bad("invalid message content")),
        }
        if let Some(Value::Array(calls)) = obj.get("tool_calls") {
            let mut out = Vec::new();
            for (i, c) in calls.iter().enumerate() {
                let f = &c["function"];
                let args = match &f["arguments"] {
                    Value::String(s) => match serde_json::from_str::<Value>(s) {
                        Ok(Value::Object(o)) => o,
                        _ => return Err(bad(format!("invalid tool call arguments: {s}"))),
                    },
                    Value::Object(o) => o.clone(),
                    Value::Null => Map::new(),
                    _ => return Err(bad("invalid tool call arguments")),
                };
                out.push(crate::template::ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_string(),
                    function: crate::template::ToolCallFunction {
                        index: i,
                        name: f["name"].as_str().unwrap_or_default().to_string(),
                        arguments: args,
                    },
                });
            }
            if let Some(last) = parts.last_mut() {
                last.tool_calls = out;
            }
        }
        // A tool result without `name` takes it from the call it answers.
        for p in &mut parts {
            if p.role == "tool" && p.tool_name.is_empty() && !p.tool_call_id.is_empty() {
                p.tool_name = messages
                    .iter()
                    .flat_map(|m| &m.tool_calls)
                    .find(|c| c.id == p.tool_call_id)
                    .map(|c| c.function.name.clone())
                    .unwrap_or_default();
            }
        }
        messages.extend(parts);
    }
    let options = sampling_options(&raw);
    let format = match raw.get("response_format") {
        Some(Value::Object(rf)) => match rf.get("type").and_then(Value::as_str) {
            Some("json_object") => Value::from("json"),
            Some("json_schema") => rf
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .cloned()
                .ok_or_else(|| bad("response_format json_schema needs json_schema.schema"))?,
            Some("text") | None => Value::Null,
            Some(other) => return Err(bad(format!("invalid response_format type {other:?}"))),
        },
        _ => Value::Null,
    };
    let effort = raw
        .get("reasoning_effort")
        .and_then(Value::as_str)
        .or_else(|| {
            raw.get("reasoning")
                .and_then(|r| r.get("effort"))
                .and_then(Value::as_str)
        });
    let think = match effort {
        None => None,
        Some("none") => Some(ThinkValue::Bool(false)),
        Some("minimal" | "low") => Some(ThinkValue::Level(ThinkLevel::Low)),
        Some("medium") => Some(ThinkValue::Level(ThinkLevel::Medium)),
        Some("high") => Some(ThinkValue::Level(ThinkLevel::High)),
        Some("max" | "xhigh" | "ultra") => Some(ThinkValue::Level(ThinkLevel::Max)),
        Some(other) => return Err(bad(format!("invalid reasoning effort {other:?}"))),
    };
    let tools = match raw.remove("tools") {
        Some(t @ Value::Array(_)) => {
            serde_json::from_value(t).map_err(|e| bad(format!("invalid tools: {e}")))?
        }
        _ => Vec::new(),
    };
    let stream = raw.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let usage = include_usage(&raw);
    let keep_alive = keep_alive_field(&raw)?;
    Ok((
        ChatRequest {
            run: RunParams {
                model,
                format,
                options: Some(options),
                keep_alive,
                stream: Some(stream),
                think,
                logprobs: raw.get("logprobs").and_then(Value::as_bool),
                top_logprobs: raw.get("top_logprobs").and_then(Value::as_i64),
                ..RunParams::default()
            },
            messages,
            tools,
            tool_choice: raw.get("tool_choice").cloned().unwrap_or(Value::Null),
        },
        usage,
    ))
}
