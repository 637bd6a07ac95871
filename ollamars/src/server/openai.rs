//! OpenAI-compatible endpoints (spec §2.1, §2.3–2.4): `POST /v1/chat/completions`, `GET /v1/models`,
//! `GET /v1/models/{id}` (ids may contain `/`) and `POST /v1/embeddings` (float or base64),
//! with OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}`.

use super::generate::{
    ChatRequest, Event, GenerateRequest, Out, Running, Shape, Start, embed_vectors,
    model_info_for_embed, runner_error, start_chat, start_generate,
};
use super::{ApiError, ServerState, join_error, parse_body};
use crate::name::ModelName;
use crate::runner::proto::Logprob;
use crate::template::Message;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// An error in OpenAI's shape.
pub struct OpenAiError(ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> OpenAiError {
        OpenAiError(e)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let kind = if self.0.status.is_server_error() {
            "api_error"
        } else {
            "invalid_request_error"
        };
        let code = (self.0.status == StatusCode::NOT_FOUND).then_some("model_not_found");
        let body = json!({"error": {"message": self.0.message, "type": kind, "param": null, "code": code}});
        (self.0.status, Json(body)).into_response()
    }
}

fn model_object(store_entry: &Value) -> Value {
    let id = store_entry["model"].as_str().unwrap_or_default();
    let created = store_entry["modified_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp());
    let owner = ModelName::parse(id)
        .map(|n| n.namespace().to_string())
        .unwrap_or_else(|_| "library".into());
    json!({"id": id, "object": "model", "created": created, "owned_by": owner})
}

async fn listing(st: &ServerState) -> Result<Vec<Value>, ApiError> {
    let store = st.store.clone();
    let v = tokio::task::spawn_blocking(move || crate::models::list(&store))
        .await
        .map_err(join_error)??;
    Ok(v["models"].as_array().cloned().unwrap_or_default())
}

/// `GET /v1/models`.
pub(super) async fn models(State(st): State<ServerState>) -> Result<Json<Value>, OpenAiError> {
    let data: Vec<Value> = listing(&st).await?.iter().map(model_object).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `GET /v1/models/{id}`: `id` as listed (`smol:latest`), or without the tag.
pub(super) async fn model(
    State(st): State<ServerState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    let want = ModelName::parse(&id).ok();
    listing(&st)
        .await?
        .iter()
        .find(|m| {
            let name = m["model"].as_str().unwrap_or_default();
            name == id
                || want.as_ref().is_some_and(|w| {
                    ModelName::parse(name).is_ok_and(|n| n.display_short() == w.display_short())
                })
        })
        .map(|m| Json(model_object(m)))
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("model \"{id}\" not found")).into()
        })
}

#[derive(Debug, Deserialize)]
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
pub(super) async fn embeddings(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Json<Value>, OpenAiError> {
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
    if req.dimensions.is_some_and(|d| d < 1) {
        return Err(ApiError::bad("dimensions must be a positive number").into());
    }
    let info = model_info_for_embed(&st, &req.model).await?;
    let (vectors, count) = embed_vectors(&st, &info, &req.extra, inputs, req.dimensions).await?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "embedding": embedding, "index": i})
        })
        .collect();
    Ok(Json(
        json!({"object": "list", "data": data, "model": req.model,
        "usage": {"prompt_tokens": count, "total_tokens": count}}),
    ))
}

/// `POST /v1/chat/completions` (spec §2.1): the request becomes an `/api/chat` request, and the
/// output comes back as a `chat.completion`, or as SSE `chat.completion.chunk`s ending with
/// `[DONE]`. Beyond Ollama (#5356): Ollama's options (`num_ctx`, `top_k`, `keep_alive`, ...)
/// are accepted as extra body fields.
pub(super) async fn chat_completions(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let started = std::time::Instant::now();
    let raw: Map<String, Value> = parse_body(&body)?;
    let (req, stream, usage) = chat_request(raw)?;
    let model = req.model.clone();
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
pub(super) async fn completions(
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
        options.insert("top_p".into(), json!(1.0));
    }
    let stream = raw.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let req = GenerateRequest {
        model: raw
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        prompt,
        suffix: raw
            .get("suffix")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        options: Some(options),
        keep_alive: raw.get("keep_alive").cloned().unwrap_or(Value::Null),
        stream: Some(stream),
        // Legacy completions: `logprobs: n` asks for n alternatives (0 for none).
        logprobs: raw.get("logprobs").and_then(Value::as_i64).map(|_| true),
        top_logprobs: raw.get("logprobs").and_then(Value::as_i64),
        ..GenerateRequest::default()
    };
    let model = req.model.clone();
    match start_generate(&st, req, started).await? {
        Start::Running(run, shape) => {
            openai_response(run, *shape, Kind::Text, &model, stream, include_usage(&raw)).await
        }
        Start::Ready(_) | Start::Rendered(_) => Err(ApiError::bad("prompt is required").into()),
    }
}

/// Chat completions or text completions.
#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Text,
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
    fn choice(self, o: &Out, finish: Value, delta: bool) -> Value {
        match self {
            Kind::Text => {
                json!({"index": 0, "text": o.content, "logprobs": legacy_logprobs(&o.logprobs),
                    "finish_reason": finish})
            }
            Kind::Chat => {
                let mut m = json!({"role": "assistant"});
                if !o.content.is_empty() || !delta {
                    m["content"] = o.content.clone().into();
                }
                if !o.thinking.is_empty() {
                    m["reasoning"] = o.thinking.clone().into();
                }
                if !o.calls.is_empty() {
                    m["tool_calls"] = openai_calls(&o.calls);
                }
                let key = if delta { "delta" } else { "message" };
                let lp = if o.logprobs.is_empty() {
                    Value::Null
                } else {
                    let item = |l: &Logprob| {
                        json!({"token": l.token, "logprob": l.logprob,
                            "bytes": l.bytes.clone().unwrap_or_default()})
                    };
                    let content: Vec<Value> = o
                        .logprobs
                        .iter()
                        .map(|l| {
                            let mut v = item(l);
                            v["top_logprobs"] = l.top_logprobs.iter().flatten().map(item).collect();
                            v
                        })
                        .collect();
                    json!({"content": content})
                };
                json!({"index": 0, key: m, "logprobs": lp, "finish_reason": finish})
            }
        }
    }
}

/// The legacy completions shape: `tokens`, `token_logprobs`, `top_logprobs` (token → logprob
/// maps) and `text_offset`; `null` when none were asked for.
fn legacy_logprobs(lps: &[Logprob]) -> Value {
    if lps.is_empty() {
        return Value::Null;
    }
    let mut offset = 0;
    let mut offsets = Vec::new();
    for l in lps {
        offsets.push(offset);
        offset += l.token.len();
    }
    let top: Vec<Value> = lps
        .iter()
        .map(|l| {
            let m: serde_json::Map<String, Value> = l
                .top_logprobs
                .iter()
                .flatten()
                .map(|t| (t.token.clone(), json!(t.logprob)))
                .collect();
            Value::Object(m)
        })
        .collect();
    json!({
        "tokens": lps.iter().map(|l| l.token.as_str()).collect::<Vec<_>>(),
        "token_logprobs": lps.iter().map(|l| l.logprob).collect::<Vec<_>>(),
        "top_logprobs": top,
        "text_offset": offsets,
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
    let head = json!({"id": completion_id(kind.prefix()), "object": kind.object(stream),
        "created": chrono::Utc::now().timestamp(), "model": model, "system_fingerprint": "fp_ollama"});
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
                    let mut v = head;
                    v["choices"] = json!([kind.choice(&all, finish.into(), false)]);
                    v["usage"] = usage_of(&metrics);
                    return Ok(Json(v).into_response());
                }
                Some(Event::Error(k, e)) => return Err(runner_error(k, e).into()),
                None => {
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "generation ended early",
                    )
                    .into());
                }
            }
        }
    }
    let with_choice = |head: &Value, choice: Value| -> Bytes {
        let mut v = head.clone();
        v["choices"] = json!([choice]);
        sse(&v)
    };
    let first = match kind {
        Kind::Chat => with_choice(
            &head,
            json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}),
        ),
        Kind::Text => Bytes::new(),
    };
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
                    out.extend_from_slice(&with_choice(&head, kind.choice(p, Value::Null, true)));
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
                    let last = match kind {
                        Kind::Chat => json!({"index": 0, "delta": {}, "finish_reason": finish}),
                        Kind::Text => kind.choice(&Out::default(), finish.into(), true),
                    };
                    out.extend_from_slice(&with_choice(&head, last));
                    if usage {
                        let mut u = head.clone();
                        u["choices"] = json!([]);
                        u["usage"] = usage_of(&metrics);
                        out.extend_from_slice(&sse(&u));
                    }
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    true
                }
                Some(Event::Error(_, e)) => {
                    out.extend_from_slice(&sse(&json!({"error": {"message": e, "type": "api_error", "param": null, "code": null}})));
                    true
                }
                None => return None,
            };
            Some((Bytes::from(out), (run, shape, head, seen, finished)))
        },
    );
    let body = futures::stream::once(async move { first })
        .chain(rest)
        .filter(|b| futures::future::ready(!b.is_empty()))
        .map(Ok::<Bytes, std::convert::Infallible>);
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

fn sse(v: &Value) -> Bytes {
    let mut b = b"data: ".to_vec();
    b.extend_from_slice(&serde_json::to_vec(v).unwrap_or_default());
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
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

fn usage_of(m: &crate::runner::proto::Metrics) -> Value {
    json!({"prompt_tokens": m.prompt_tokens, "completion_tokens": m.eval_count,
        "total_tokens": m.prompt_tokens + m.eval_count})
}

fn openai_calls(calls: &[crate::template::ToolCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| {
                json!({"id": c.id, "index": c.function.index, "type": "function",
                    "function": {"name": c.function.name,
                        "arguments": serde_json::to_string(&c.function.arguments).unwrap_or_default()}})
            })
            .collect(),
    )
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
        num(raw.get("temperature")).unwrap_or(json!(1.0)),
    );
    options.insert("top_p".into(), num(raw.get("top_p")).unwrap_or(json!(1.0)));
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
fn chat_request(mut raw: Map<String, Value>) -> Result<(ChatRequest, bool, bool), ApiError> {
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
                            let Some((_, data)) = url
                                .strip_prefix("data:")
                                .and_then(|r| r.split_once(";base64,"))
                            else {
                                return Err(bad(
                                    "image URLs are not currently supported, please use base64 encoded data instead",
                                ));
                            };
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
            Some("json_object") => json!("json"),
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
        None => Value::Null,
        Some("none") => json!(false),
        Some("minimal") => json!("low"),
        Some(l @ ("low" | "medium" | "high" | "max")) => json!(l),
        Some("xhigh" | "ultra") => json!("max"),
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
    let top_logprobs = raw.get("top_logprobs").and_then(Value::as_i64);
    let logprobs = raw.get("logprobs").and_then(Value::as_bool);
    let tool_choice = raw.get("tool_choice").cloned().unwrap_or(Value::Null);
    Ok((
        ChatRequest {
            model,
            messages,
            tools,
            format,
            options: Some(options),
            keep_alive: raw.get("keep_alive").cloned().unwrap_or(Value::Null),
            stream: Some(stream),
            think,
            logprobs,
            top_logprobs,
            tool_choice,
            ..ChatRequest::default()
        },
        stream,
        usage,
    ))
}
