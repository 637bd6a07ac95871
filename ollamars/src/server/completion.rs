//! The pipeline `/api/generate`, `/api/chat` and the OpenAI completions share, from a
//! validated request to a running generation, and the shaping of its output.
//!
//! One request's path: the route validates the body ([`crate::api::validate`]); [`open`] looks
//! the model up, checks its capabilities and merges the options; the request
//! [attaches](crate::scheduler::Scheduler::attach) to a runner (loading it if needed) and has the
//! runner [prepare](crate::runner::proto::Prepare) its prompt (render, fit to `num_ctx`,
//! tokenize) without holding a slot; then it takes a [slot](crate::scheduler::Attached::slot)
//! and [starts](Running::start) the completion, whose pieces the [`Shape`] turns into response
//! lines.

use super::ServerState;
use super::error::{ApiError, join_error, parse_name};
use super::model::{ModelInfo, ModelInfoError};
use super::options::Options;
use super::stream::{error_line, ndjson, ndjson_line};
use super::thinking::ThinkingSplitter;
use super::tools::{self, ToolParser};
use crate::api::validate::{RunSettings, ValidChat, ValidGenerate};
use crate::api::{
    self, ChatResponse, DebugInfo, GenerateResponse, KeepAlive, Message, ThinkValue, ToolCall,
};
use crate::models::rfc3339;
use crate::runner::proto::{
    self, Completion, DoneReason, EngineError, Logprob, Prepare, PromptInput, PromptSource,
    Streamed,
};
use crate::scheduler::Lease;
use crate::template::{Template, Values};
use axum::Json;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Think settings of a request as templates see them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Think {
    /// `.Think`.
    pub(crate) on: bool,
    /// `.ThinkLevel`.
    pub(crate) level: String,
    /// `.IsThinkSet`.
    pub(crate) set: bool,
}

/// Looks the model up; 404 with `not_found` text.
pub(crate) async fn model_info(
    st: &ServerState,
    raw: &str,
    not_found: impl FnOnce(&str) -> String,
) -> Result<Arc<ModelInfo>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad("model is required"));
    }
    let name = parse_name(raw)?;
    let st2 = st.clone();
    let raw2 = raw.to_string();
    let r = tokio::task::spawn_blocking(move || st2.models.get(st2.store(), &name, &raw2))
        .await
        .map_err(join_error)?;
    match r {
        Ok(i) => Ok(i),
        Err(ModelInfoError::NotFound) => Err(ApiError::not_found(not_found(raw))),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

fn think_of(v: Option<ThinkValue>, info: &ModelInfo) -> Result<Think, ApiError> {
    let t = match v {
        None => Think {
            on: info.has("thinking"),
            level: String::new(),
            set: false,
        },
        Some(ThinkValue::Bool(b)) => Think {
            on: b,
            level: if b { "medium".into() } else { String::new() },
            set: true,
        },
        Some(ThinkValue::Level(l)) => Think {
            on: true,
            level: l.as_str().into(),
            set: true,
        },
    };
    if t.set && t.on && !info.has("thinking") {
        return Err(ApiError::bad(format!(
            "\"{}\" does not support thinking",
            info.model.name
        )));
    }
    Ok(t)
}

/// Defaults, the model's PARAMETERs and the request's options, with the scheduler's
/// load-time settings.
pub(crate) fn options_for(
    st: &ServerState,
    info: &ModelInfo,
    req: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Options, ApiError> {
    let mut o = Options::merged(st.sched.config().context_length, &info.params, req)
        .map_err(|e| ApiError::bad(e.to_string()))?;
    o.load.embedding = !info.has("completion") && info.has("embedding");
    // The projector is part of what is loaded: another one means another runner.
    o.load.projector = info
        .model
        .projector
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    o.load.kv_overrides = info.model.kv_overrides.clone();
    o.load = st.sched.load_options(o.load);
    Ok(o)
}

/// Which endpoint family a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `/api/generate`, `/v1/completions`.
    Generate,
    /// `/api/chat`, `/v1/chat/completions`.
    Chat,
}

/// A request up to its model: what every generation knows before it touches a runner.
struct Opened {
    info: Arc<ModelInfo>,
    opts: Options,
    think: Think,
}

/// The opening every generation shares: the model (404 with Ollama's text), the `completion`
/// capability, `think`, and the merged options with the `format` grammar.
async fn open(st: &ServerState, run: &RunSettings, kind: Kind) -> Result<Opened, ApiError> {
    let info = model_info(st, &run.model, |m| format!("model '{m}' not found")).await?;
    if !info.has("completion") {
        let what = match kind {
            Kind::Generate => "generate",
            Kind::Chat => "chat",
        };
        return Err(ApiError::bad(format!(
            "\"{}\" does not support {what}",
            run.model
        )));
    }
    let think = think_of(run.think, &info)?;
    let mut opts = options_for(st, &info, run.options.as_ref())?;
    opts.sampling.grammar = run.grammar.clone();
    Ok(Opened { info, opts, think })
}

/// Load (empty prompt) or unload (empty prompt with keep_alive 0).
async fn load_or_unload(
    st: &ServerState,
    o: &Opened,
    keep_alive: Option<KeepAlive>,
) -> Result<&'static str, ApiError> {
    if keep_alive.is_some_and(KeepAlive::is_zero) {
        st.sched.expire(&o.info.model.path).await;
        return Ok("unload");
    }
    drop(
        st.sched
            .attach(&o.info.model, &o.opts.load, keep_alive)
            .await?,
    );
    Ok("load")
}

/// How a generate or chat request starts.
pub(crate) enum Start {
    /// Nothing to generate from: the model was loaded (`load`) or unloaded (`unload`).
    Ready(&'static str),
    /// `_debug_render_only`: the prompt.
    Rendered(String),
    /// Generation is running.
    Running(Running, Box<Shape>),
}

/// How a generation began.
enum Begun {
    /// `_debug_render_only`: the prompt as the runner rendered it.
    Rendered(String),
    /// Running, with the rendered prompt text and the time until the runner and a slot were
    /// ready.
    Running(Running, String, Duration),
}

/// Attaches to a runner (loading it if needed). `_debug_render_only` then has the runner
/// prepare the prompt alone, holding no slot. Otherwise the request takes a slot and sends one
/// completion that carries its prompt source: the runner prepares it on its prompt thread
/// (render, fit to `num_ctx`, tokenize) and queues it, with no round trip in between.
async fn begin(
    st: &ServerState,
    o: &Opened,
    run: &RunSettings,
    started: Instant,
    prepare: Prepare,
    return_tokens: bool,
    grammar_after_thinking: Option<(String, String)>,
) -> Result<Begun, ApiError> {
    let attached = st
        .sched
        .attach(&o.info.model, &o.opts.load, run.keep_alive)
        .await?;
    let num_ctx = o.opts.load.num_ctx.min(attached.proc().info().num_ctx);
    let prepare = Prepare { num_ctx, ..prepare };
    if run.debug_render_only {
        let p = attached.proc().call(prepare).await?;
        return Ok(Begun::Rendered(p.text));
    }
    let lease = attached.slot().await?;
    let load = started.elapsed();
    let job = Completion {
        prompt: PromptInput::Prepare(prepare),
        grammar_after_thinking,
        num_ctx: o.opts.load.num_ctx,
        sampling: o.opts.sampling.clone(),
        truncate: run.truncate,
        shift: run.shift,
        return_tokens,
        logprobs: run.logprobs,
        received: None,
    };
    let (running, text) = Running::start(lease, job).await?;
    Ok(Begun::Running(running, text, load))
}

fn template_values(messages: Vec<Message>, think: &Think) -> Values {
    Values {
        messages,
        think: think.on,
        think_level: think.level.clone(),
        is_think_set: think.set,
        ..Values::default()
    }
}

/// Everything of a generate request up to a running generation (shared by `/api/generate` and
/// `/v1/completions`).
pub(crate) async fn start_generate(
    st: &ServerState,
    req: ValidGenerate,
    started: Instant,
) -> Result<Start, ApiError> {
    let o = open(st, &req.run, Kind::Generate).await?;
    let info = &o.info;
    if !req.suffix.is_empty() && !info.has("insert") && req.template.is_none() {
        return Err(ApiError::bad(format!(
            "{} does not support insert",
            info.model.display
        )));
    }
    if req.is_empty() {
        let reason = load_or_unload(st, &o, req.run.keep_alive).await?;
        return Ok(Start::Ready(reason));
    }
    let images = if req.images.is_empty() || info.has("vision") {
        req.images.clone()
    } else {
        tracing::warn!(
            "images ignored: {} does not support vision",
            info.model.display
        );
        Vec::new()
    };
    let tmpl = req.template.clone().or_else(|| info.template.clone());
    let source = if req.raw {
        PromptSource::Raw {
            text: req.prompt.clone(),
        }
    } else {
        let mut msgs = Vec::new();
        match req.system.as_deref().or(info.system.as_deref()) {
            Some(s) if !s.is_empty() => msgs.push(Message::new("system", s)),
            _ => {}
        }
        if req.context.is_none() {
            msgs.extend(info.messages.iter().cloned());
        }
        msgs.push(Message {
            images: images.clone(),
            ..Message::new("user", req.prompt.clone())
        });
        match &tmpl {
            Some(t) => PromptSource::Go {
                template: t.text().to_string(),
                values: Values {
                    prompt: if req.suffix.is_empty() {
                        String::new()
                    } else {
                        req.prompt.clone()
                    },
                    suffix: req.suffix.clone(),
                    force_legacy: req.context.is_some(),
                    ..template_values(msgs, &o.think)
                },
            },
            None => PromptSource::Native {
                messages: msgs,
                tools: Vec::new(),
            },
        }
    };
    let prepare = Prepare {
        source,
        context: req.context.clone().unwrap_or_default(),
        num_ctx: 0,
        window: false,
        images: if req.raw { images } else { Vec::new() },
    };
    let (run, text, load) = match begin(st, &o, &req.run, started, prepare, !req.raw, None).await? {
        Begun::Rendered(text) => return Ok(Start::Rendered(text)),
        Begun::Running(run, text, load) => (run, text, load),
    };
    let thinking = if req.raw {
        None
    } else {
        splitter(tmpl.as_ref(), info, &o.think, &text)
    };
    let shape = Shape::new(
        Kind::Generate,
        &req.run.model,
        req.raw,
        (started, load),
        thinking,
        None,
    );
    Ok(Start::Running(run, Box::new(shape)))
}

/// Everything of a chat request up to a running generation (shared by `/api/chat` and
/// `/v1/chat/completions`).
pub(crate) async fn start_chat(
    st: &ServerState,
    req: ValidChat,
    started: Instant,
) -> Result<Start, ApiError> {
    let mut o = open(st, &req.run, Kind::Chat).await?;
    let info = o.info.clone();
    if !req.tools.is_empty() && !info.has("tools") {
        return Err(ApiError::bad(format!(
            "{} does not support tools",
            info.model.display
        )));
    }
    if req.messages.is_empty() {
        let reason = load_or_unload(st, &o, req.run.keep_alive).await?;
        return Ok(Start::Ready(reason));
    }
    // Ollama: Modelfile MESSAGEs, then the request's; the Modelfile SYSTEM goes first unless
    // the request's own first message is a system message.
    let request_has_system = req.messages.first().is_some_and(|m| m.role == "system");
    let mut msgs: Vec<Message> = info.messages.clone();
    msgs.extend(req.messages.iter().cloned());
    if !info.has("vision") && msgs.iter().any(|m| !m.images.is_empty()) {
        tracing::warn!(
            "images ignored: {} does not support vision",
            info.model.display
        );
        msgs.iter_mut().for_each(|m| m.images.clear());
    }
    if let Some(sys) = info.system.as_deref().filter(|s| !s.is_empty())
        && !request_has_system
    {
        msgs.insert(0, Message::new("system", sys));
    }
    let source = match &info.template {
        Some(t) => PromptSource::Go {
            template: t.text().to_string(),
            values: Values {
                tools: req.tools.clone(),
                ..template_values(msgs, &o.think)
            },
        },
        None => PromptSource::Native {
            messages: msgs,
            tools: req.tools.clone(),
        },
    };
    let tag = match &info.template {
        Some(t) => t.tool_call_tag_or_default(),
        None => tools::native_tag(&info.native_template).to_string(),
    };
    if let Some(g) =
        tools::choice_grammar(&req.tools, &req.tool_choice, &tag).map_err(ApiError::bad)?
    {
        o.opts.sampling.grammar = Some(g);
    }
    let parser = (!req.tools.is_empty()).then(|| {
        let names = req.tools.iter().map(|t| t.function.name.clone()).collect();
        ToolParser::new(&tag, names)
    });
    // Thinking first, then the format or forced tool call: when the prompt leaves the model
    // inside a thinking block, the grammar applies only after it closes (the runner checks the
    // rendered prompt).
    let grammar_after_thinking = o
        .opts
        .sampling
        .grammar
        .as_ref()
        .and(
            o.think
                .on
                .then(|| thinking_tags(info.template.as_ref(), &info)),
        )
        .flatten();
    let prepare = Prepare {
        source,
        context: Vec::new(),
        num_ctx: 0,
        window: req.run.truncate,
        images: Vec::new(),
    };
    let (run, text, load) = match begin(
        st,
        &o,
        &req.run,
        started,
        prepare,
        false,
        grammar_after_thinking,
    )
    .await?
    {
        Begun::Rendered(text) => return Ok(Start::Rendered(text)),
        Begun::Running(run, text, load) => (run, text, load),
    };
    let thinking = splitter(info.template.as_ref(), &info, &o.think, &text);
    let shape = Shape::new(
        Kind::Chat,
        &req.run.model,
        false,
        (started, load),
        thinking,
        parser,
    );
    Ok(Start::Running(run, Box::new(shape)))
}

/// The thinking tags of a model: its template's, or `<think>` for a thinking model rendered
/// natively.
fn thinking_tags(tmpl: Option<&Template>, info: &ModelInfo) -> Option<(String, String)> {
    match tmpl {
        Some(t) => t.thinking_tags(),
        None if info.has("thinking") => Some(("<think>".to_string(), "</think>".to_string())),
        None => None,
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
    let (open, close) = thinking_tags(tmpl, info)?;
    let inside = prompt.trim_end().ends_with(open.as_str());
    Some((ThinkingSplitter::new(&open, &close, inside), think.on))
}

/// What a completion produces, in order.
pub(crate) enum Event {
    /// Text, and the log-probabilities of its tokens.
    Text(String, Vec<Logprob>),
    /// The end.
    Done {
        /// Why.
        reason: DoneReason,
        /// The runner's counts.
        metrics: proto::Metrics,
        /// Prompt and response tokens, when asked for.
        tokens: Option<Vec<i32>>,
    },
    /// A failure.
    Error(EngineError),
}

/// A running completion: its events, and a guard that cancels it in the runner (and frees
/// the slot) when dropped before the end, e.g. when the client disconnects.
pub(crate) struct Running {
    stream: crate::scheduler::runner::CompletionStream,
    lease: Option<Lease>,
    finished: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(l) = &self.lease
            && !self.finished
        {
            l.proc().cancel(self.stream.id());
        }
    }
}

impl Running {
    /// Sends `job` (whose prompt the runner prepares) to the lease's runner and waits for the
    /// prompt: the rendered text.
    ///
    /// # Errors
    /// The runner's error (a bad template or context is a 400), or a 500 when it is gone.
    pub(crate) async fn start(
        lease: Lease,
        job: Completion,
    ) -> Result<(Running, String), ApiError> {
        let stream = lease.proc().complete(job)?;
        let mut run = Running {
            stream,
            lease: Some(lease),
            finished: false,
        };
        match run.stream.next().await {
            Streamed::Started { text } => Ok((run, text)),
            Streamed::Error(e) => {
                run.finished = true;
                Err(e.into())
            }
            other => {
                run.finished = true;
                Err(ApiError::internal(format!(
                    "unexpected runner reply {other:?}"
                )))
            }
        }
    }

    /// The next event; `None` after the end.
    pub(crate) async fn next(&mut self) -> Option<Event> {
        if self.finished {
            return None;
        }
        let ev = match self.stream.next().await {
            Streamed::Piece { text, logprobs } => Event::Text(text, logprobs),
            Streamed::Done {
                reason,
                metrics,
                tokens,
            } => Event::Done {
                reason,
                metrics,
                tokens,
            },
            Streamed::Error(e) => Event::Error(e),
            Streamed::Started { .. } => Event::Error(EngineError::internal(
                "the runner started a completion twice",
            )),
        };
        if !matches!(ev, Event::Text(..)) {
            self.finished = true;
            // Free the slot now, before the last line is written.
            self.lease = None;
        }
        Some(ev)
    }
}

/// Output of the parsers for a piece of text.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub(crate) thinking: String,
    pub(crate) content: String,
    pub(crate) calls: Vec<ToolCall>,
    pub(crate) logprobs: Vec<Logprob>,
}

impl Out {
    pub(crate) fn is_empty(&self) -> bool {
        self.thinking.is_empty()
            && self.content.is_empty()
            && self.calls.is_empty()
            && self.logprobs.is_empty()
    }

    pub(crate) fn append(&mut self, o: Out) {
        self.thinking.push_str(&o.thinking);
        self.content.push_str(&o.content);
        self.calls.extend(o.calls);
        self.logprobs.extend(o.logprobs);
    }
}

/// One response line of `/api/generate` or `/api/chat`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Line {
    /// `/api/generate`.
    Generate(GenerateResponse),
    /// `/api/chat`.
    Chat(ChatResponse),
}

impl Line {
    /// The answer of a request with nothing to generate: `load` or `unload`.
    pub(crate) fn ready(kind: Kind, model: &str, reason: &str) -> Line {
        Line::empty(kind, model, Some(reason.to_string()), None)
    }

    /// The answer of `_debug_render_only`.
    pub(crate) fn rendered(kind: Kind, model: &str, prompt: String) -> Line {
        // The images placed in the prompt: its distinct `[img-N]` tags.
        let (_, order) = crate::runner::media::tags_to_markers(&prompt, usize::MAX, "");
        let image_count = order
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let debug = DebugInfo {
            rendered_template: prompt,
            image_count,
        };
        Line::empty(kind, model, None, Some(debug))
    }

    fn empty(kind: Kind, model: &str, reason: Option<String>, debug: Option<DebugInfo>) -> Line {
        match kind {
            Kind::Generate => Line::Generate(GenerateResponse {
                model: model.to_string(),
                created_at: now(),
                done: true,
                done_reason: reason,
                debug_info: debug,
                ..GenerateResponse::default()
            }),
            Kind::Chat => Line::Chat(ChatResponse {
                model: model.to_string(),
                created_at: now(),
                message: Message::new("assistant", ""),
                done: true,
                done_reason: reason,
                debug_info: debug,
                ..ChatResponse::default()
            }),
        }
    }
}

fn now() -> String {
    rfc3339(SystemTime::now())
}

/// How to shape response lines.
pub(crate) struct Shape {
    model: String,
    kind: Kind,
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

impl Shape {
    fn new(
        kind: Kind,
        model: &str,
        raw: bool,
        (started, load_duration): (Instant, Duration),
        thinking: Option<(ThinkingSplitter, bool)>,
        tools: Option<ToolParser>,
    ) -> Shape {
        Shape {
            model: model.to_string(),
            kind,
            raw,
            started,
            load_duration,
            thinking,
            tools,
            pending: Vec::new(),
        }
    }

    fn chunk(&self, o: &Out) -> Line {
        match self.kind {
            Kind::Chat => Line::Chat(ChatResponse {
                model: self.model.clone(),
                created_at: now(),
                message: Message {
                    role: "assistant".into(),
                    content: o.content.clone(),
                    thinking: o.thinking.clone(),
                    tool_calls: o.calls.clone(),
                    ..Message::default()
                },
                logprobs: o.logprobs.clone(),
                ..ChatResponse::default()
            }),
            Kind::Generate => Line::Generate(GenerateResponse {
                model: self.model.clone(),
                created_at: now(),
                response: o.content.clone(),
                thinking: o.thinking.clone(),
                logprobs: o.logprobs.clone(),
                ..GenerateResponse::default()
            }),
        }
    }

    fn last(&self, reason: &str, m: &proto::Metrics, tokens: Option<Vec<i32>>, o: &Out) -> Line {
        let metrics = api::Metrics {
            total_duration: self.started.elapsed().as_nanos() as u64,
            load_duration: self.load_duration.as_nanos() as u64,
            prompt_eval_count: m.prompt_eval_count,
            prompt_eval_duration: m.prompt_eval_duration,
            eval_count: m.eval_count,
            eval_duration: m.eval_duration,
        };
        match self.chunk(o) {
            Line::Chat(mut c) => {
                c.done = true;
                c.done_reason = Some(reason.to_string());
                c.metrics = metrics;
                Line::Chat(c)
            }
            Line::Generate(mut g) => {
                g.done = true;
                g.done_reason = Some(reason.to_string());
                g.context = tokens.filter(|_| !self.raw);
                g.metrics = metrics;
                Line::Generate(g)
            }
        }
    }

    /// What a piece of output contributes: thinking, content and completed tool calls.
    /// Log-probabilities ride with the next output that has text (a parser may hold the
    /// text of their tokens back), or with the end.
    pub(crate) fn split(&mut self, text: &str, logprobs: Vec<Logprob>) -> Out {
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
    pub(crate) fn flush(&mut self) -> Out {
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
                ..Out::default()
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
            Event::Error(e) => error_line(e.message),
        }
    }
}

/// The response of a started request: one object, or NDJSON lines.
pub(crate) async fn respond(
    start: Start,
    kind: Kind,
    model: &str,
    stream: bool,
) -> Result<Response, ApiError> {
    let (mut run, mut shape) = match start {
        Start::Ready(reason) => return Ok(Json(Line::ready(kind, model, reason)).into_response()),
        Start::Rendered(prompt) => {
            return Ok(Json(Line::rendered(kind, model, prompt)).into_response());
        }
        Start::Running(run, shape) => (run, *shape),
    };
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
                Some(Event::Error(e)) => return Err(e.into()),
                None => return Err(ApiError::internal("generation ended early")),
            }
        }
    }
    // The first event decides the status: an error before any output is a real HTTP error.
    let first = match run.next().await {
        Some(Event::Error(e)) => return Err(e.into()),
        Some(ev) => ev,
        None => return Err(ApiError::internal("generation ended early")),
    };
    let first_line = shape.line(first);
    let rest = futures::stream::unfold((run, shape), move |(mut run, mut shape)| async move {
        let ev = run.next().await?;
        let l = shape.line(ev);
        Some((l, (run, shape)))
    });
    Ok(ndjson(
        futures::stream::once(async move { first_line }).chain(rest),
    ))
}
