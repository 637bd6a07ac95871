//! `/api/generate`, `/api/chat`, `/api/embed`, `/api/embeddings` and `/api/ps` (spec §1.4–1.11).

use super::keepalive::KeepAlive;
use super::model::{ModelInfo, ModelInfoError};
use super::options::Options;
use super::prompt::{self, Renderer, Think};
use super::sched::{Lease, SchedError};
use super::thinking::ThinkingSplitter;
use super::tools::{self, ToolParser};
use super::{ApiError, ServerState, join_error, ndjson_line, parse_body, parse_name};
use crate::models::rfc3339;
use crate::runner::proto::{
    Completion, DoneReason, ErrorKind, FromRunner, Logprob, Metrics, ToRunner,
};
use crate::template::{Message, Template, Tool, ToolCall};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// The `/api/generate` request (also built from OpenAI completion requests).
#[derive(Debug, Default, Deserialize)]
pub(super) struct GenerateRequest {
    #[serde(default)]
    pub(super) model: String,
    #[serde(default)]
    pub(super) prompt: String,
    #[serde(default)]
    pub(super) suffix: String,
    #[serde(default)]
    pub(super) system: Option<String>,
    #[serde(default)]
    pub(super) template: Option<String>,
    #[serde(default)]
    pub(super) context: Option<Vec<i64>>,
    #[serde(default)]
    pub(super) raw: bool,
    #[serde(default)]
    pub(super) options: Option<Map<String, Value>>,
    #[serde(default)]
    pub(super) keep_alive: Value,
    #[serde(default)]
    pub(super) stream: Option<bool>,
    #[serde(default)]
    pub(super) think: Value,
    #[serde(default)]
    pub(super) truncate: Option<bool>,
    #[serde(default)]
    pub(super) shift: Option<bool>,
    #[serde(default)]
    pub(super) logprobs: Option<bool>,
    #[serde(default)]
    pub(super) top_logprobs: Option<i64>,
    #[serde(default)]
    pub(super) images: Option<Vec<String>>,
    #[serde(default)]
    pub(super) format: Value,
    #[serde(default, rename = "_debug_render_only")]
    pub(super) debug_render_only: bool,
}

/// The `/api/chat` request (also built from OpenAI requests).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ChatRequest {
    #[serde(default)]
    pub(super) model: String,
    #[serde(default)]
    pub(super) messages: Vec<Message>,
    #[serde(default)]
    pub(super) tools: Vec<Tool>,
    #[serde(default)]
    pub(super) format: Value,
    #[serde(default)]
    pub(super) options: Option<Map<String, Value>>,
    #[serde(default)]
    pub(super) keep_alive: Value,
    #[serde(default)]
    pub(super) stream: Option<bool>,
    #[serde(default)]
    pub(super) think: Value,
    #[serde(default)]
    pub(super) truncate: Option<bool>,
    #[serde(default)]
    pub(super) shift: Option<bool>,
    #[serde(default)]
    pub(super) logprobs: Option<bool>,
    #[serde(default)]
    pub(super) top_logprobs: Option<i64>,
    #[serde(default, rename = "_debug_render_only")]
    pub(super) debug_render_only: bool,
    /// Beyond Ollama (#11171): `auto`, `none`, `required`, or a tool name.
    #[serde(default)]
    pub(super) tool_choice: Value,
}

/// Looks the model up; 404 with `not_found` text.
async fn model_info(
    st: &ServerState,
    raw: &str,
    not_found: impl FnOnce(&str) -> String,
) -> Result<Arc<ModelInfo>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "model is required"));
    }
    let name = parse_name(raw)?;
    let st2 = st.clone();
    let raw2 = raw.to_string();
    let r = tokio::task::spawn_blocking(move || st2.models.get(st2.store(), &name, &raw2))
        .await
        .map_err(join_error)?;
    match r {
        Ok(i) => Ok(i),
        Err(ModelInfoError::NotFound) => Err(ApiError::new(StatusCode::NOT_FOUND, not_found(raw))),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

fn think_of(v: &Value, info: &ModelInfo) -> Result<Think, ApiError> {
    let t = match v {
        Value::Null => Think {
            on: info.has("thinking"),
            level: String::new(),
            set: false,
        },
        Value::Bool(b) => Think {
            on: *b,
            level: if *b { "medium".into() } else { String::new() },
            set: true,
        },
        Value::String(s) if ["low", "medium", "high", "max"].contains(&s.as_str()) => Think {
            on: true,
            level: s.clone(),
            set: true,
        },
        other => {
            return Err(ApiError::bad(format!(
                "invalid think value: {other} (use true, false, \"low\", \"medium\", \"high\" or \"max\")"
            )));
        }
    };
    if t.set && t.on && !info.has("thinking") {
        return Err(ApiError::bad(format!(
            "\"{}\" does not support thinking",
            info.model.name
        )));
    }
    Ok(t)
}

/// `format`: `"json"` or a JSON Schema, as a GBNF grammar for the sampler (400 for a bad one).
fn grammar_for(format: &Value) -> Result<Option<String>, ApiError> {
    crate::grammar::from_format(format).map_err(|e| ApiError::bad(e.to_string()))
}

fn keep_alive_of(v: &Value) -> Result<Option<KeepAlive>, ApiError> {
    KeepAlive::from_json(v).map_err(ApiError::bad)
}

fn check_logprobs(n: Option<i64>) -> Result<(), ApiError> {
    match n {
        Some(n) if !(0..=20).contains(&n) => {
            Err(ApiError::bad("top_logprobs must be between 0 and 20"))
        }
        _ => Ok(()),
    }
}

pub(super) fn runner_error(kind: ErrorKind, message: String) -> ApiError {
    match kind {
        ErrorKind::BadRequest => ApiError::bad(message),
        ErrorKind::Internal => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message),
    }
}

impl From<SchedError> for ApiError {
    fn from(e: SchedError) -> ApiError {
        let status = match e {
            SchedError::QueueFull => StatusCode::SERVICE_UNAVAILABLE,
            SchedError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            SchedError::Spawn(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn now() -> String {
    rfc3339(SystemTime::now())
}

fn options_for(
    st: &ServerState,
    info: &ModelInfo,
    req: Option<&Map<String, Value>>,
) -> Result<Options, ApiError> {
    let mut o = Options::merged(st.sched.config().context_length, &info.params, req)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    o.load.embedding = !info.has("completion") && info.has("embedding");
    o.load = st.sched.load_options(o.load);
    Ok(o)
}

/// Load (empty prompt) or unload (empty prompt with keep_alive 0).
async fn load_or_unload(
    st: &ServerState,
    info: &ModelInfo,
    opts: &Options,
    keep_alive: Option<KeepAlive>,
) -> Result<&'static str, ApiError> {
    if keep_alive.is_some_and(KeepAlive::is_zero) {
        st.sched.expire(&info.model.path).await;
        return Ok("unload");
    }
    let lease = st
        .sched
        .acquire(&info.model, &opts.load, keep_alive)
        .await?;
    drop(lease);
    Ok("load")
}

/// What a completion produces, in order.
pub(super) enum Event {
    Text(String, Vec<Logprob>),
    Done {
        reason: DoneReason,
        metrics: Metrics,
        tokens: Option<Vec<i32>>,
    },
    Error(ErrorKind, String),
}

/// A running completion: its events, and a guard that cancels it in the runner (and frees
/// the slot) when dropped before the end, e.g. when the client disconnects.
pub(super) struct Running {
    rx: mpsc::UnboundedReceiver<FromRunner>,
    id: u64,
    lease: Option<Lease>,
    finished: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(l) = &self.lease
            && !self.finished
        {
            l.runner.proc.cancel(self.id);
        }
    }
}

impl Running {
    pub(super) async fn next(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        let ev = match self.rx.recv().await {
            Some(FromRunner::Piece { text, logprobs, .. }) => Event::Text(text, logprobs),
            Some(FromRunner::Done {
                reason,
                metrics,
                tokens,
                ..
            }) => Event::Done {
                reason,
                metrics,
                tokens,
            },
            Some(FromRunner::Error { kind, message, .. }) => Event::Error(kind, message),
            Some(other) => Event::Error(
                ErrorKind::Internal,
                format!("unexpected runner reply {other:?}"),
            ),
            None => Event::Error(
                ErrorKind::Internal,
                super::runner_client::RUNNER_DIED.into(),
            ),
        };
        if !matches!(ev, Event::Text(..)) {
            self.finished = true;
            // Free the slot now, before the last line is written.
            self.lease = None;
        }
        Some(ev)
    }
}

/// How to shape response lines.
pub(super) struct Shape {
    model: String,
    chat: bool,
    raw: bool,
    started: Instant,
    load_duration: Duration,
    /// Splits thinking from content; `keep` is false for `think:false` (dropped, not leaked).
    thinking: Option<(ThinkingSplitter, bool)>,
    /// Parses tool calls out of the content (chat with `tools`).
    tools: Option<ToolParser>,
    /// Log-probabilities not yet sent (their text is held back by a parser).
    pending: Vec<Logprob>,
}

/// Output of the parsers for a piece of text.
#[derive(Debug, Default)]
pub(super) struct Out {
    pub(super) thinking: String,
    pub(super) content: String,
    pub(super) calls: Vec<ToolCall>,
    pub(super) logprobs: Vec<Logprob>,
}

impl Out {
    pub(super) fn is_empty(&self) -> bool {
        self.thinking.is_empty()
            && self.content.is_empty()
            && self.calls.is_empty()
            && self.logprobs.is_empty()
    }

    pub(super) fn append(&mut self, o: Out) {
        self.thinking.push_str(&o.thinking);
        self.content.push_str(&o.content);
        self.calls.extend(o.calls);
        self.logprobs.extend(o.logprobs);
    }
}

impl Shape {
    fn chunk(&self, o: &Out) -> Value {
        let mut v = self.chunk_text(o);
        if !o.logprobs.is_empty() {
            v["logprobs"] = json!(o.logprobs);
        }
        v
    }

    fn chunk_text(&self, o: &Out) -> Value {
        if self.chat {
            let mut m = json!({"role": "assistant", "content": o.content});
            if !o.thinking.is_empty() {
                m["thinking"] = o.thinking.clone().into();
            }
            if !o.calls.is_empty() {
                m["tool_calls"] = json!(o.calls);
            }
            json!({"model": self.model, "created_at": now(), "message": m, "done": false})
        } else {
            let mut v = json!({"model": self.model, "created_at": now(), "response": o.content});
            if !o.thinking.is_empty() {
                v["thinking"] = o.thinking.clone().into();
            }
            v["done"] = false.into();
            v
        }
    }

    fn last(&self, reason: &str, m: &Metrics, tokens: Option<Vec<i32>>, o: &Out) -> Value {
        let mut v = self.chunk(o);
        let obj = v.as_object_mut().expect("object");
        obj.insert("done".into(), true.into());
        obj.insert("done_reason".into(), reason.into());
        if let Some(t) = tokens.filter(|_| !self.chat && !self.raw) {
            obj.insert("context".into(), json!(t));
        }
        let total = self.started.elapsed().as_nanos() as u64;
        for (k, n) in [
            ("total_duration", total),
            ("load_duration", self.load_duration.as_nanos() as u64),
            ("prompt_eval_count", m.prompt_eval_count),
            ("prompt_eval_duration", m.prompt_eval_duration),
            ("eval_count", m.eval_count),
            ("eval_duration", m.eval_duration),
        ] {
            if n != 0 {
                obj.insert(k.into(), n.into());
            }
        }
        v
    }

    /// What a piece of output contributes: thinking, content and completed tool calls.
    /// Log-probabilities ride with the next output that has text (a parser may hold the
    /// text of their tokens back), or with the end.
    pub(super) fn split(&mut self, text: &str, logprobs: Vec<Logprob>) -> Out {
        self.pending.extend(logprobs);
        let (thinking, content) = match &mut self.thinking {
            None => (String::new(), text.to_string()),
            Some((s, keep)) => {
                let (t, c) = s.push(text);
                (if *keep { t } else { String::new() }, c)
            }
        };
        let mut o = self.parse_tools(thinking, &content);
        if !o.is_empty() {
            o.logprobs = std::mem::take(&mut self.pending);
        }
        o
    }

    /// What the parsers held back, at the end.
    pub(super) fn flush(&mut self) -> Out {
        let (thinking, content) = match &mut self.thinking {
            None => (String::new(), String::new()),
            Some((s, keep)) => {
                let (t, c) = s.finish();
                (if *keep { t } else { String::new() }, c)
            }
        };
        let mut out = self.parse_tools(thinking, &content);
        if let Some(p) = &mut self.tools {
            let (c, calls) = p.finish();
            out.content.push_str(&c);
            out.calls.extend(calls);
        }
        out.logprobs.extend(std::mem::take(&mut self.pending));
        out
    }

    fn parse_tools(&mut self, thinking: String, content: &str) -> Out {
        match &mut self.tools {
            None => Out {
                thinking,
                content: content.to_string(),
                calls: Vec::new(),
                logprobs: Vec::new(),
            },
            Some(p) => {
                let (content, calls) = p.push(content);
                Out {
                    thinking,
                    content,
                    calls,
                    logprobs: Vec::new(),
                }
            }
        }
    }

    /// The NDJSON bytes for one event (nothing for a piece that is all held back).
    fn line(&mut self, ev: Event) -> Bytes {
        match ev {
            Event::Text(t, lp) => {
                let o = self.split(&t, lp);
                if o.is_empty() {
                    return Bytes::new();
                }
                ndjson_line(&self.chunk(&o))
            }
            Event::Done {
                reason,
                metrics,
                tokens,
            } => {
                let o = self.flush();
                let mut out = Vec::new();
                if !o.is_empty() {
                    out.extend_from_slice(&ndjson_line(&self.chunk(&o)));
                }
                let last = self.last(reason.as_str(), &metrics, tokens, &Out::default());
                out.extend_from_slice(&ndjson_line(&last));
                Bytes::from(out)
            }
            Event::Error(_, e) => ndjson_line(&json!({ "error": e })),
        }
    }
}

/// The thinking splitter for a response: the template's tags (or `<think>` for a thinking
/// model rendered natively), when the request thinks or explicitly does not.
fn splitter(
    tmpl: Option<&Template>,
    info: &ModelInfo,
    think: &Think,
    prompt: &str,
) -> Option<(ThinkingSplitter, bool)> {
    if !think.on && !think.set {
        return None;
    }
    let (open, close) = match tmpl {
        Some(t) => t.thinking_tags()?,
        None if info.has("thinking") => ("<think>".to_string(), "</think>".to_string()),
        None => return None,
    };
    let inside = prompt.trim_end().ends_with(open.as_str());
    Some((ThinkingSplitter::new(&open, &close, inside), think.on))
}

async fn respond(mut run: Running, mut shape: Shape, stream: bool) -> Result<Response, ApiError> {
    if !stream {
        let mut all = Out::default();
        loop {
            match run.next().await {
                Some(Event::Text(t, lp)) => {
                    let o = shape.split(&t, lp);
                    all.append(o);
                }
                Some(Event::Done {
                    reason,
                    metrics,
                    tokens,
                }) => {
                    let o = shape.flush();
                    all.append(o);
                    let v = shape.last(reason.as_str(), &metrics, tokens, &all);
                    return Ok(Json(v).into_response());
                }
                Some(Event::Error(k, e)) => return Err(runner_error(k, e)),
                None => {
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "generation ended early",
                    ));
                }
            }
        }
    }
    // The first event decides the status: an error before any output is a real HTTP error.
    let first = match run.next().await {
        Some(Event::Error(k, e)) => return Err(runner_error(k, e)),
        Some(ev) => ev,
        None => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "generation ended early",
            ));
        }
    };
    let first_line = shape.line(first);
    let rest = futures::stream::unfold((run, shape), move |(mut run, mut shape)| async move {
        let ev = run.next().await?;
        let l = shape.line(ev);
        Some((l, (run, shape)))
    });
    let body = futures::stream::once(async move { first_line })
        .chain(rest)
        .filter(|b| futures::future::ready(!b.is_empty()))
        .map(Ok::<Bytes, std::convert::Infallible>);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

fn start(lease: Lease, c: Completion) -> Result<Running, ApiError> {
    let (id, rx) = lease
        .runner
        .proc
        .request(|id| ToRunner::Completion(Completion { id, ..c }))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Running {
        rx,
        id,
        lease: Some(lease),
        finished: false,
    })
}

fn completion(
    opts: &Options,
    prompt: String,
    truncate: bool,
    shift: bool,
    return_tokens: bool,
) -> Completion {
    Completion {
        id: 0,
        prompt,
        num_ctx: opts.load.num_ctx,
        sampling: opts.sampling.clone(),
        truncate,
        shift,
        return_tokens,
        logprobs: None,
    }
}

/// `logprobs` (on/off) and `top_logprobs` (checked to be 0..=20) as the runner's setting.
fn logprobs_of(on: Option<bool>, top: Option<i64>) -> Option<u32> {
    on.unwrap_or(false)
        .then(|| top.unwrap_or(0).clamp(0, 20) as u32)
}

/// `POST /api/generate`.
pub(super) async fn generate(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: GenerateRequest = parse_body(&body)?;
    let stream = req.stream.unwrap_or(true);
    let model = req.model.clone();
    match start_generate(&st, req, started).await? {
        Start::Ready(reason) => Ok(Json(json!({"model": model, "created_at": now(),
            "response": "", "done": true, "done_reason": reason}))
        .into_response()),
        Start::Rendered(prompt) => Ok(Json(json!({"model": model, "created_at": now(),
            "response": "", "done": true,
            "_debug_info": {"rendered_template": prompt, "image_count": 0}}))
        .into_response()),
        Start::Running(run, shape) => respond(run, *shape, stream).await,
    }
}

/// Everything of a generate request up to a running generation (shared by `/api/generate` and
/// `/v1/completions`).
pub(super) async fn start_generate(
    st: &ServerState,
    req: GenerateRequest,
    started: Instant,
) -> Result<Start, ApiError> {
    let st = st.clone();
    if req.raw && (req.template.is_some() || req.system.is_some() || req.context.is_some()) {
        return Err(ApiError::bad(
            "raw mode does not support template, system, or context",
        ));
    }
    check_logprobs(req.top_logprobs)?;
    let info = model_info(&st, &req.model, |m| format!("model '{m}' not found")).await?;
    if !info.has("completion") {
        return Err(ApiError::bad(format!(
            "\"{}\" does not support generate",
            req.model
        )));
    }
    if !req.suffix.is_empty() && !info.has("insert") && req.template.is_none() {
        return Err(ApiError::bad(format!(
            "{} does not support insert",
            info.model.display
        )));
    }
    let think = think_of(&req.think, &info)?;
    let keep_alive = keep_alive_of(&req.keep_alive)?;
    let mut opts = options_for(&st, &info, req.options.as_ref())?;
    opts.sampling.grammar = grammar_for(&req.format)?;
    if let Some(ctx) = &req.context
        && ctx.iter().any(|&t| t < 0 || t > i64::from(i32::MAX))
    {
        return Err(ApiError::bad("invalid context: token ids out of range"));
    }
    if req.prompt.is_empty()
        && req.suffix.is_empty()
        && req.context.as_ref().is_none_or(Vec::is_empty)
    {
        let reason = load_or_unload(&st, &info, &opts, keep_alive).await?;
        return Ok(Start::Ready(reason));
    }
    if req.images.as_ref().is_some_and(|i| !i.is_empty()) {
        tracing::warn!(
            "images ignored: {} has no vision support here",
            info.model.display
        );
    }
    let lease = st
        .sched
        .acquire(&info.model, &opts.load, keep_alive)
        .await?;
    let load_duration = started.elapsed();
    let runner = &lease.runner.proc;
    let (prompt, thinking) = if req.raw {
        (req.prompt.clone(), None)
    } else {
        let tmpl = match &req.template {
            Some(t) => Some(
                Template::parse(t).map_err(|e| ApiError::bad(format!("template error: {e}")))?,
            ),
            None => info.template.clone(),
        };
        let mut prefix = String::new();
        if let Some(ctx) = &req.context {
            let tokens: Vec<i32> = ctx.iter().map(|&t| t as i32).collect();
            match runner.call(|id| ToRunner::Detokenize { id, tokens }).await {
                Ok(FromRunner::Text { text, .. }) => prefix = text,
                Ok(_) => {}
                Err((k, m)) => return Err(runner_error(k, m)),
            }
        }
        let mut msgs = Vec::new();
        match req
            .system
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(info.system.as_deref())
        {
            Some(s) if !s.is_empty() => msgs.push(Message {
                role: "system".into(),
                content: s.into(),
                ..Message::default()
            }),
            _ => {}
        }
        if req.context.is_none() {
            msgs.extend(info.messages.iter().cloned());
        }
        msgs.push(Message {
            role: "user".into(),
            content: req.prompt.clone(),
            ..Message::default()
        });
        let rendered = match &tmpl {
            Some(t) => {
                let v = crate::template::Values {
                    messages: msgs,
                    prompt: if req.suffix.is_empty() {
                        String::new()
                    } else {
                        req.prompt.clone()
                    },
                    suffix: req.suffix.clone(),
                    think: think.on,
                    think_level: think.level.clone(),
                    is_think_set: think.set,
                    force_legacy: req.context.is_some(),
                    ..crate::template::Values::default()
                };
                t.render(&v).map_err(|e| ApiError::bad(e.to_string()))?
            }
            None => prompt::render(&Renderer::Native, runner, &msgs, &[], &think)
                .await
                .map_err(|(k, m)| runner_error(k, m))?,
        };
        let split = splitter(tmpl.as_ref(), &info, &think, &rendered);
        (prefix + &rendered, split)
    };
    if req.debug_render_only {
        return Ok(Start::Rendered(prompt));
    }
    let mut c = completion(
        &opts,
        prompt,
        req.truncate.unwrap_or(true),
        req.shift.unwrap_or(true),
        !req.raw,
    );
    c.logprobs = logprobs_of(req.logprobs, req.top_logprobs);
    let run = start(lease, c)?;
    let shape = Shape {
        model: req.model.clone(),
        chat: false,
        raw: req.raw,
        started,
        load_duration,
        thinking,
        tools: None,
        pending: Vec::new(),
    };
    Ok(Start::Running(run, Box::new(shape)))
}

/// `POST /api/chat`.
pub(super) async fn chat(State(st): State<ServerState>, body: Bytes) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: ChatRequest = parse_body(&body)?;
    let stream = req.stream.unwrap_or(true);
    let model = req.model.clone();
    match start_chat(&st, req, started).await? {
        Start::Ready(reason) => Ok(Json(json!({"model": model, "created_at": now(),
            "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": reason}))
        .into_response()),
        Start::Rendered(prompt) => Ok(Json(json!({"model": model, "created_at": now(),
            "message": {"role": "assistant", "content": ""}, "done": true,
            "_debug_info": {"rendered_template": prompt, "image_count": 0}}))
        .into_response()),
        Start::Running(run, shape) => respond(run, *shape, stream).await,
    }
}

/// How a generate or chat request starts.
pub(super) enum Start {
    /// Empty messages: the model was loaded (`load`) or unloaded (`unload`).
    Ready(&'static str),
    /// `_debug_render_only`: the prompt.
    Rendered(String),
    /// Generation is running.
    Running(Running, Box<Shape>),
}

/// Everything of a chat request up to a running generation (shared by `/api/chat` and
/// `/v1/chat/completions`).
pub(super) async fn start_chat(
    st: &ServerState,
    mut req: ChatRequest,
    started: Instant,
) -> Result<Start, ApiError> {
    let st = st.clone();
    check_logprobs(req.top_logprobs)?;
    let info = model_info(&st, &req.model, |m| format!("model '{m}' not found")).await?;
    if !info.has("completion") {
        return Err(ApiError::bad(format!(
            "\"{}\" does not support chat",
            req.model
        )));
    }
    if !req.tools.is_empty() && !info.has("tools") {
        return Err(ApiError::bad(format!(
            "{} does not support tools",
            info.model.display
        )));
    }
    let think = think_of(&req.think, &info)?;
    let keep_alive = keep_alive_of(&req.keep_alive)?;
    let mut opts = options_for(&st, &info, req.options.as_ref())?;
    opts.sampling.grammar = grammar_for(&req.format)?;
    let choice = tools::ToolChoice::from_json(&req.tool_choice).map_err(ApiError::bad)?;
    if choice == tools::ToolChoice::None {
        req.tools.clear();
    }
    if req.messages.is_empty() {
        let reason = load_or_unload(&st, &info, &opts, keep_alive).await?;
        return Ok(Start::Ready(reason));
    }
    for m in &mut req.messages {
        m.role = m.role.to_lowercase();
    }
    // Ollama: Modelfile MESSAGEs, then the request's; the Modelfile SYSTEM goes first unless
    // the request's own first message is a system message.
    let request_has_system = req.messages.first().is_some_and(|m| m.role == "system");
    let mut msgs: Vec<Message> = info.messages.clone();
    msgs.append(&mut req.messages);
    if let Some(sys) = info.system.as_deref().filter(|s| !s.is_empty())
        && !request_has_system
    {
        msgs.insert(
            0,
            Message {
                role: "system".into(),
                content: sys.into(),
                ..Message::default()
            },
        );
    }
    let lease = st
        .sched
        .acquire(&info.model, &opts.load, keep_alive)
        .await?;
    let load_duration = started.elapsed();
    let renderer = match &info.template {
        Some(t) => Renderer::Go(t.clone()),
        None => Renderer::Native,
    };
    let truncate = req.truncate.unwrap_or(true);
    let n_ctx = (opts.load.num_ctx.min(lease.runner.proc.info().num_ctx)) as usize;
    let prompt = prompt::chat_prompt(
        &renderer,
        &lease.runner.proc,
        &msgs,
        &req.tools,
        &think,
        n_ctx,
        truncate,
    )
    .await
    .map_err(|(k, m)| runner_error(k, m))?;
    if req.debug_render_only {
        return Ok(Start::Rendered(prompt));
    }
    let go = match &renderer {
        Renderer::Go(t) => Some(t),
        Renderer::Native => None,
    };
    let thinking = splitter(go, &info, &think, &prompt);
    // Thinking first, then the format or forced tool call: when the prompt leaves the model
    // inside a thinking block, the grammar applies only after it closes.
    let grammar_after = match &thinking {
        Some((s, true)) if s.in_thinking() => Some(s.close_tag().to_string()),
        _ => None,
    };
    let tag = match go {
        Some(t) => t.tool_call_tag_or_default(),
        None => tools::native_tag(&info.native_template).to_string(),
    };
    if let Some(g) = tools::choice_grammar(&req.tools, &choice, &tag).map_err(ApiError::bad)? {
        opts.sampling.grammar = Some(g);
    }
    let tools = (!req.tools.is_empty()).then(|| {
        let names = req.tools.iter().map(|t| t.function.name.clone()).collect();
        ToolParser::new(&tag, names)
    });
    if opts.sampling.grammar.is_some() {
        opts.sampling.grammar_after = grammar_after;
    }
    let mut c = completion(&opts, prompt, truncate, req.shift.unwrap_or(true), false);
    c.logprobs = logprobs_of(req.logprobs, req.top_logprobs);
    let run = start(lease, c)?;
    let shape = Shape {
        model: req.model.clone(),
        chat: true,
        raw: false,
        started,
        load_duration,
        thinking,
        tools,
        pending: Vec::new(),
    };
    Ok(Start::Running(run, Box::new(shape)))
}

#[derive(Debug, Deserialize)]
struct EmbedRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: Value,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    dimensions: Option<i64>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(default)]
    keep_alive: Value,
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(default)]
    keep_alive: Value,
}

fn embed_not_found(m: &str) -> String {
    format!("model \"{m}\" not found, try pulling it first")
}

async fn run_embed(
    st: &ServerState,
    info: &ModelInfo,
    opts: &Options,
    keep_alive: Option<KeepAlive>,
    inputs: Vec<String>,
    truncate: bool,
    normalize: bool,
) -> Result<(Vec<Vec<f32>>, u64, Duration), ApiError> {
    let started = Instant::now();
    let lease = st
        .sched
        .acquire(&info.model, &opts.load, keep_alive)
        .await?;
    let load = started.elapsed();
    if inputs.is_empty() {
        return Ok((Vec::new(), 0, load));
    }
    match lease
        .runner
        .proc
        .call(|id| ToRunner::Embed {
            id,
            inputs,
            truncate,
            normalize,
        })
        .await
    {
        Ok(FromRunner::Embeddings {
            vectors,
            prompt_eval_count,
            ..
        }) => Ok((vectors, prompt_eval_count, load)),
        Ok(other) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected runner reply {other:?}"),
        )),
        Err((k, m)) => Err(runner_error(k, m)),
    }
}

/// `POST /api/embed`.
pub(super) async fn embed(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: EmbedRequest = parse_body(&body)?;
    let inputs: Vec<String> = match &req.input {
        Value::Null => Vec::new(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad("invalid input type"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::bad("invalid input type")),
    };
    if let Some(d) = req.dimensions
        && d < 1
    {
        return Err(ApiError::bad("dimensions must be a positive number"));
    }
    let info = model_info(&st, &req.model, embed_not_found).await?;
    let keep_alive = keep_alive_of(&req.keep_alive)?;
    let opts = options_for(&st, &info, req.options.as_ref())?;
    let (mut vectors, count, load) = run_embed(
        &st,
        &info,
        &opts,
        keep_alive,
        inputs,
        req.truncate.unwrap_or(true),
        true,
    )
    .await?;
    cut_dimensions(&mut vectors, req.dimensions);
    let mut out = json!({"model": req.model, "embeddings": vectors,
        "total_duration": started.elapsed().as_nanos() as u64,
        "load_duration": load.as_nanos() as u64});
    if count > 0 {
        out["prompt_eval_count"] = count.into();
    }
    Ok(Json(out).into_response())
}

/// `dimensions`: each vector cut to its first `d` values and normalised again.
fn cut_dimensions(vectors: &mut [Vec<f32>], d: Option<i64>) {
    let Some(d) = d.and_then(|d| usize::try_from(d).ok()) else {
        return;
    };
    for v in vectors {
        if d < v.len() {
            v.truncate(d);
            *v = llama::normalize_l2(v);
        }
    }
}

/// The model of an embedding request, with the embed endpoints' 404 text.
pub(super) async fn model_info_for_embed(
    st: &ServerState,
    model: &str,
) -> Result<Arc<ModelInfo>, ApiError> {
    model_info(st, model, embed_not_found).await
}

/// Normalised embeddings of `inputs` (cut to `dimensions`) and the tokens evaluated. `extra`
/// holds Ollama's fields given beside an OpenAI request: options such as `num_ctx`,
/// `keep_alive`, `truncate`.
pub(super) async fn embed_vectors(
    st: &ServerState,
    info: &ModelInfo,
    extra: &Map<String, Value>,
    inputs: Vec<String>,
    dimensions: Option<i64>,
) -> Result<(Vec<Vec<f32>>, u64), ApiError> {
    let keep_alive = keep_alive_of(extra.get("keep_alive").unwrap_or(&Value::Null))?;
    let options: Map<String, Value> = match extra.get("options") {
        Some(Value::Object(o)) => o.clone(),
        _ => extra.clone(),
    };
    let opts = options_for(st, info, Some(&options))?;
    let truncate = extra
        .get("truncate")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let (mut vectors, count, _) =
        run_embed(st, info, &opts, keep_alive, inputs, truncate, true).await?;
    cut_dimensions(&mut vectors, dimensions);
    Ok((vectors, count))
}

/// `POST /api/embeddings` (legacy: one prompt, not normalised).
pub(super) async fn embeddings(
    State(st): State<ServerState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: EmbeddingsRequest = parse_body(&body)?;
    let info = model_info(&st, &req.model, embed_not_found).await?;
    let keep_alive = keep_alive_of(&req.keep_alive)?;
    let opts = options_for(&st, &info, req.options.as_ref())?;
    let inputs = if req.prompt.is_empty() {
        Vec::new()
    } else {
        vec![req.prompt]
    };
    let (vectors, _, _) = run_embed(&st, &info, &opts, keep_alive, inputs, true, false).await?;
    let v: Vec<f64> = vectors
        .into_iter()
        .next()
        .unwrap_or_default()
        .into_iter()
        .map(f64::from)
        .collect();
    Ok(Json(json!({ "embedding": v })).into_response())
}

/// `GET /api/ps`.
pub(super) async fn ps(State(st): State<ServerState>) -> Json<Value> {
    let models: Vec<Value> = st
        .sched
        .ps()
        .into_iter()
        .map(|e| {
            // "Forever" is shown as a date far in the future, as Ollama does.
            let expires = e
                .expires_at
                .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(292 * 365 * 86400));
            json!({
                "name": e.model.display,
                "model": e.model.display,
                "size": e.size,
                "digest": e.model.digest,
                "details": e.model.details,
                "expires_at": rfc3339(expires),
                "size_vram": e.size_vram,
                "context_length": e.context_length,
            })
        })
        .collect();
    Json(json!({ "models": models }))
}
