//! The runner's engine: one model, one context, `parallel` slots served by continuous batching.
//!
//! Each step builds one batch holding the next token of every generating slot plus a chunk of
//! the prompts being prefilled (up to `num_batch` tokens in all), decodes it once, then samples
//! for every slot that asked for logits. New requests join between steps; a cancelled request
//! leaves between steps, so a prefill stops within one batch.
//!
//! Each slot remembers the tokens its KV cache holds. A new request goes to the free slot whose
//! cache shares the longest prefix with its prompt, and only the rest is evaluated (the prompt
//! cache): the second turn of a chat re-uses the first.

use super::proto::{
    Completion, DoneReason, Embedded, EngineError, FromRunner, LoadOptions, Metrics, RunnerInfo,
};
use super::sampling::{Deferred, sampler_params, token_logprob};
use llama::{
    Batch, Context, ContextParams, DecodeError, FlashAttention, KvCacheType, Model, Pooling,
    Sampler, SamplerParams, StopMatcher, StopScan, Token, Utf8Decoder,
};
use std::collections::VecDeque;
use std::time::Instant;

/// Where the engine sends its messages (the runner's stdout, or a channel in tests).
pub trait Sink {
    /// Sends one message. An error means the server is gone; the engine stops.
    fn send(&mut self, msg: FromRunner) -> std::io::Result<()>;
}

/// A loaded model ready to serve.
pub struct Engine {
    model: Model,
    /// The projector of a vision model.
    #[cfg(feature = "mtmd")]
    media: Option<std::sync::Arc<super::media::Media>>,
    ctx: Context,
    embed_ctx: Option<Context>,
    opts: LoadOptions,
    info: RunnerInfo,
    slots: Vec<Slot>,
    /// Completions waiting for a slot, with their ids.
    queue: VecDeque<(u64, Completion)>,
    /// Ids cancelled before their completion reached the engine (it was still being
    /// prepared on the prompt thread); such a completion is dropped when it arrives.
    cancelled: VecDeque<u64>,
    batch: Batch,
}

struct Slot {
    seq: i32,
    /// Tokens whose KV is cached for this sequence, at positions `0..cached.len()`.
    cached: Vec<Token>,
    active: Option<Active>,
}

struct Active {
    id: u64,
    prompt: Vec<Token>,
    /// The media chunks of the prompt (sentinel entries in `prompt`).
    media: super::media::MediaPrompt,
    /// Next prompt token to feed.
    fed: usize,
    n_ctx: usize,
    num_keep: usize,
    num_predict: Option<u32>,
    shift: bool,
    return_tokens: bool,
    sampler: Sampler,
    /// Report log-probabilities with this many alternatives.
    logprobs: Option<u32>,
    /// A grammar that applies only once the output contains a tag (see [`Deferred`]).
    deferred: Option<Deferred>,
    generated: Vec<Token>,
    /// A sampled token not yet decoded.
    next: Option<Token>,
    /// Batch index of this slot's logits in the current step.
    out: Option<i32>,
    decoder: Utf8Decoder,
    stops: StopMatcher,
    started: Instant,
    first_token: Option<Instant>,
    evaluated: u64,
}

/// Loading the model or creating its context failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    /// The model file.
    #[error(transparent)]
    Load(#[from] llama::LoadError),
    /// The context.
    #[error(transparent)]
    Context(#[from] llama::ContextError),
    /// The projector.
    #[error("{0}")]
    Projector(String),
}

fn kv_type(t: crate::config::KvCacheType) -> KvCacheType {
    match t {
        crate::config::KvCacheType::F16 => KvCacheType::F16,
        crate::config::KvCacheType::Q8_0 => KvCacheType::Q8_0,
        crate::config::KvCacheType::Q4_0 => KvCacheType::Q4_0,
    }
}

fn meta_u64(model: &Model, key: &str) -> Option<u64> {
    model.meta(key)?.trim().parse().ok()
}

impl Engine {
    /// Loads `path` with `opts`.
    ///
    /// # Errors
    /// [`LoadFailure`] when llama.cpp cannot load the model or create the context.
    pub fn load(path: &str, opts: LoadOptions) -> Result<Engine, LoadFailure> {
        if opts.num_gpu != 0
            && let Some(why) = llama::missing_gpu()
        {
            tracing::warn!("{why}: running {path} on the CPU");
        }
        let mut mp = llama::ModelParams::default();
        if opts.num_gpu >= 0 {
            mp.n_gpu_layers = opts.num_gpu;
        }
        mp.main_gpu = opts.main_gpu;
        if let Some(m) = opts.use_mmap {
            mp.use_mmap = m;
        }
        mp.kv_overrides = opts
            .kv_overrides
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    crate::compat::KvOverride::Int(i) => llama::KvValue::Int(*i),
                    crate::compat::KvOverride::Float(f) => llama::KvValue::Float(*f),
                    crate::compat::KvOverride::Bool(b) => llama::KvValue::Bool(*b),
                    crate::compat::KvOverride::Str(s) => llama::KvValue::Str(s.clone()),
                };
                (k.clone(), v)
            })
            .collect();
        let model = Model::load(path, mp)?;
        let train = model.n_ctx_train().max(1);
        let parallel = if opts.embedding {
            1
        } else {
            opts.parallel.clamp(1, llama::max_sequences() as u32)
        };
        let num_ctx = opts.num_ctx.clamp(4, train);
        // Every slot's next token must fit in one batch.
        let num_batch = opts.num_batch.clamp(1, num_ctx).max(parallel);
        let mut cp = ContextParams {
            n_ctx: num_ctx * parallel,
            n_batch: num_batch,
            n_ubatch: num_batch,
            n_seq_max: parallel,
            flash_attention: match opts.flash_attention {
                None => FlashAttention::Auto,
                Some(true) => FlashAttention::Enabled,
                Some(false) => FlashAttention::Disabled,
            },
            type_k: kv_type(opts.kv_cache_type),
            type_v: kv_type(opts.kv_cache_type),
            // Full-size caches on sliding-window layers, so cached prefixes can be reused.
            swa_full: true,
            ..ContextParams::default()
        };
        if opts.num_thread > 0 {
            cp.n_threads = opts.num_thread;
            cp.n_threads_batch = opts.num_thread;
        }
        if opts.embedding {
            // A whole input in one ubatch: pooling needs every token of a sequence at once.
            cp.n_batch = num_ctx;
            cp.n_ubatch = num_ctx;
            cp.embeddings = true;
        }
        let ctx = Context::new(&model, cp)?;
        #[cfg(feature = "mtmd")]
        let media = match &opts.projector {
            Some(p) => Some(std::sync::Arc::new(
                super::media::Media::load(&model, p, opts.num_thread, opts.flash_attention)
                    .map_err(LoadFailure::Projector)?,
            )),
            None => None,
        };
        #[cfg(not(feature = "mtmd"))]
        if opts.projector.is_some() {
            tracing::warn!(
                "this build has no multimodal support (feature mtmd): images will be ignored"
            );
        }
        let arch = model.architecture().unwrap_or_default();
        let n_layer = u64::from(model.n_layer());
        let n_embd = model.n_embd() as u64;
        let heads = meta_u64(&model, &format!("{arch}.attention.head_count")).unwrap_or(1);
        let heads_kv =
            meta_u64(&model, &format!("{arch}.attention.head_count_kv")).unwrap_or(heads);
        let elem = match opts.kv_cache_type {
            crate::config::KvCacheType::Q8_0 => 1,
            crate::config::KvCacheType::Q4_0 => 1,
            crate::config::KvCacheType::F16 => 2,
        };
        let kv =
            u64::from(num_ctx * parallel) * n_layer * n_embd * heads_kv / heads.max(1) * 2 * elem;
        let model_size = model.size();
        let total = model_size + kv;
        let gpu = opts.num_gpu != 0
            && llama::devices().iter().any(|d| {
                matches!(
                    d.kind,
                    llama::DeviceKind::Gpu | llama::DeviceKind::IntegratedGpu
                )
            });
        // llama.cpp's count: the repeating layers plus the output layer, the first `num_gpu`
        // of them on the GPU (all with a negative `num_gpu`).
        let layers = n_layer + 1;
        let offloaded = u64::try_from(opts.num_gpu).map_or(layers, |n| n.min(layers));
        let info = RunnerInfo {
            num_ctx,
            n_ctx_train: train,
            parallel,
            model_size,
            total_size: total,
            vram_size: if gpu { total * offloaded / layers } else { 0 },
            n_embd: n_embd as u32,
            n_vocab: model.vocab().n_tokens(),
            embedding: opts.embedding,
        };
        let slots = (0..parallel as i32)
            .map(|seq| Slot {
                seq,
                cached: Vec::new(),
                active: None,
            })
            .collect();
        Ok(Engine {
            batch: Batch::new(num_batch as usize),
            model,
            #[cfg(feature = "mtmd")]
            media,
            ctx,
            embed_ctx: None,
            opts,
            info,
            slots,
            queue: VecDeque::new(),
            cancelled: VecDeque::new(),
        })
    }

    /// What the server is told once loading is done.
    pub fn info(&self) -> &RunnerInfo {
        &self.info
    }

    /// Whether any request is running or waiting.
    pub fn busy(&self) -> bool {
        !self.queue.is_empty() || self.slots.iter().any(|s| s.active.is_some())
    }

    /// Queues a completion; it starts at the next step with a free slot.
    pub fn submit(&mut self, id: u64, c: Completion) {
        if let Some(i) = self.cancelled.iter().position(|&x| x == id) {
            self.cancelled.remove(i);
            return;
        }
        self.queue.push_back((id, c));
    }

    /// Drops a request (queued or running) without a reply: its client has gone.
    pub fn cancel(&mut self, id: u64) {
        let before = self.queue.len();
        self.queue.retain(|(queued, _)| *queued != id);
        let running = self
            .slots
            .iter()
            .any(|s| s.active.as_ref().is_some_and(|a| a.id == id));
        if before == self.queue.len() && !running {
            // Not here yet (or already finished): remember a few, so a late arrival is dropped.
            if self.cancelled.len() == 256 {
                self.cancelled.pop_front();
            }
            self.cancelled.push_back(id);
        }
        for s in &mut self.slots {
            if s.active.as_ref().is_some_and(|a| a.id == id) {
                s.active = None;
            }
        }
    }

    /// The model (shared with the runner's prompt preparer).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The projector of a vision model (shared with the runner's prompt preparer).
    #[cfg(feature = "mtmd")]
    pub fn media(&self) -> Option<&std::sync::Arc<super::media::Media>> {
        self.media.as_ref()
    }

    /// Embeds each input (one pooled vector each).
    ///
    /// # Errors
    /// `(kind, message)`: a bad request for over-long input with `truncate: false`.
    pub fn embed(
        &mut self,
        inputs: &[String],
        truncate: bool,
        normalize: bool,
    ) -> Result<Embedded, EngineError> {
        let n_ctx = self.info.num_ctx as usize;
        let mut toks = Vec::with_capacity(inputs.len());
        for text in inputs {
            let mut t = self
                .model
                .vocab()
                .tokenize(text, true, false)
                .map_err(|e| EngineError::bad(e.to_string()))?;
            if t.len() > n_ctx {
                if !truncate {
                    return Err(EngineError::bad(
                        "the input length exceeds the context length",
                    ));
                }
                t.truncate(n_ctx);
            }
            if t.is_empty() {
                t.extend(self.model.vocab().bos());
            }
            toks.push(t);
        }
        let ctx = if self.info.embedding {
            &mut self.ctx
        } else {
            if self.embed_ctx.is_none() {
                let cp = ContextParams {
                    n_ctx: self.info.num_ctx,
                    n_batch: self.info.num_ctx,
                    n_ubatch: self.info.num_ctx,
                    embeddings: true,
                    pooling: Pooling::Mean,
                    n_threads: self.ctx.params().n_threads,
                    n_threads_batch: self.ctx.params().n_threads_batch,
                    ..ContextParams::default()
                };
                let c = Context::new(&self.model, cp)
                    .map_err(|e| EngineError::internal(e.to_string()))?;
                self.embed_ctx = Some(c);
            }
            self.embed_ctx.as_mut().expect("just created")
        };
        let mut out = Vec::with_capacity(toks.len());
        let mut count = 0u64;
        for t in &toks {
            if t.is_empty() {
                return Err(EngineError::bad("empty input"));
            }
            let v = if normalize {
                ctx.embed(t)
            } else {
                ctx.embed_raw(t)
            }
            .map_err(|e| EngineError::internal(e.to_string()))?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(EngineError::internal(
                    "the embedding contains NaN or Inf values",
                ));
            }
            count += t.len() as u64;
            out.push(v);
        }
        Ok(Embedded {
            vectors: out,
            prompt_eval_count: count,
        })
    }

    /// Starts queued requests on free slots (best prefix match first).
    fn admit(&mut self, sink: &mut dyn Sink) -> std::io::Result<()> {
        while let Some(free) = self.slots.iter().position(|s| s.active.is_none()) {
            let Some((id, c)) = self.queue.pop_front() else {
                break;
            };
            let _ = free;
            if let Err(error) = self.start(id, c) {
                sink.send(FromRunner::Error { id, error })?;
            }
        }
        Ok(())
    }

    fn start(&mut self, id: u64, c: Completion) -> Result<(), EngineError> {
        let started = c.received.unwrap_or_else(Instant::now);
        let bad = |m: String| EngineError::bad(m);
        if self.info.embedding {
            return Err(bad(
                "this model is an embedding model and cannot generate".into()
            ));
        }
        let vocab = self.model.vocab();
        let (mut prompt, media) = match c.prompt {
            super::proto::PromptInput::Tokens { tokens } => {
                (tokens, super::media::MediaPrompt::default())
            }
            super::proto::PromptInput::Media(m) => (m.tokens.clone(), m),
            super::proto::PromptInput::Prepare(_) => {
                return Err(EngineError::internal("the prompt was not prepared"));
            }
        };
        if let Some(e) = prompt
            .iter()
            .enumerate()
            .filter(|&(i, _)| media.span_at(i).is_none())
            .find_map(|(_, &t)| vocab.check(t).err())
        {
            return Err(bad(format!("invalid prompt: {e}")));
        }
        if media.span_at(prompt.len().saturating_sub(1)).is_some() {
            return Err(bad("the prompt must not end with an image".into()));
        }
        if prompt.is_empty() {
            prompt.extend(self.model.vocab().bos());
        }
        if prompt.is_empty() {
            return Err(bad("the prompt is empty".into()));
        }
        let n_ctx = (c.num_ctx as usize).clamp(4, self.info.num_ctx as usize);
        let num_keep = usize::try_from(c.sampling.num_keep)
            .unwrap_or(0)
            .max(usize::from(self.model.vocab().adds_bos()))
            .min(n_ctx / 2);
        if !media.spans.is_empty() && media.kv_len() >= n_ctx {
            return Err(bad(format!(
                "the input length ({} tokens with its images) exceeds the context length ({n_ctx})",
                media.kv_len()
            )));
        }
        if prompt.len() >= n_ctx {
            if !c.truncate {
                return Err(bad("the input length exceeds the context length".into()));
            }
            // Keep the first num_keep tokens and the newest tail, leaving a quarter of the
            // context for the answer.
            let target = n_ctx - n_ctx / 4;
            let tail = target.saturating_sub(num_keep);
            let cut_from = prompt.len() - tail;
            tracing::warn!(
                prompt = prompt.len(),
                kept = target,
                "truncating input prompt"
            );
            let mut p = prompt[..num_keep].to_vec();
            p.extend_from_slice(&prompt[cut_from..]);
            prompt = p;
        }
        let params = sampler_params(&c.sampling, n_ctx);
        let sampler = Sampler::new(&self.model, &params).map_err(|e| bad(e.to_string()))?;
        let (sampler, deferred) = match c.sampling.grammar_after.as_deref() {
            Some(after) if !after.is_empty() && params.grammar.is_some() => {
                let free = SamplerParams {
                    grammar: None,
                    ..params.clone()
                };
                let free = Sampler::new(&self.model, &free).map_err(|e| bad(e.to_string()))?;
                let d = Deferred {
                    after: after.to_string(),
                    constrained: sampler,
                    seen: String::new(),
                };
                (free, Some(d))
            }
            _ => (sampler, None),
        };
        // The free slot whose cache shares the longest prefix with this prompt.
        let (slot_i, lcp) = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.active.is_none())
            .map(|(i, s)| (i, common_prefix(&s.cached, &prompt)))
            // Never into the middle of an image: its tokens are decoded together.
            .map(|(i, l)| (i, media.span_at(l).map_or(l, |s| s.start.min(l))))
            .max_by_key(|&(i, l)| (l, std::cmp::Reverse(i)))
            .ok_or_else(|| EngineError::internal("no free slot"))?;
        let slot = &mut self.slots[slot_i];
        // Re-evaluate at least the last prompt token: its logits give the first answer token.
        let mut keep = lcp.min(prompt.len() - 1);
        if !self.ctx.memory_seq_rm(slot.seq, keep as i32, -1) {
            self.ctx.memory_seq_rm(slot.seq, 0, -1);
            keep = 0;
        }
        slot.cached.truncate(keep);
        let stops = StopMatcher::new(c.sampling.stop.iter().cloned());
        slot.active = Some(Active {
            id,
            fed: keep,
            prompt,
            media,
            n_ctx,
            num_keep,
            num_predict: c.sampling.num_predict,
            shift: c.shift,
            return_tokens: c.return_tokens,
            sampler,
            logprobs: c.logprobs.map(|n| n.min(20)),
            deferred,
            generated: Vec::new(),
            next: None,
            out: None,
            decoder: Utf8Decoder::new(),
            stops,
            started,
            first_token: None,
            evaluated: 0,
        });
        Ok(())
    }

    /// Runs one step: admits queued requests, decodes one batch, samples. Returns whether
    /// anything ran.
    ///
    /// # Errors
    /// Only when the sink fails (the server is gone).
    pub fn step(&mut self, sink: &mut dyn Sink) -> std::io::Result<bool> {
        self.admit(sink)?;
        self.batch.clear();
        let cap = self.batch.capacity();
        // Context shifts (or `length` ends) for slots that are full.
        for i in 0..self.slots.len() {
            let full = {
                let s = &self.slots[i];
                match &s.active {
                    Some(a) if a.next.is_some() => s.cached.len() + 1 > a.n_ctx,
                    _ => false,
                }
            };
            if full && !self.shift_slot(i) {
                self.finish(i, DoneReason::Length, sink)?;
            }
        }
        // Generating slots first: one token each.
        for s in &mut self.slots {
            let Some(a) = s.active.as_mut() else { continue };
            a.out = None;
            if let Some(t) = a.next.take() {
                let pos = s.cached.len() as i32;
                a.out = Some(self.batch.len() as i32);
                // Capacity is at least the slot count, so this cannot fail.
                let _ = self.batch.add(t, pos, &[s.seq], true);
                s.cached.push(t);
            }
        }
        // Then prompt chunks, as far as the batch allows.
        for s in &mut self.slots {
            let Some(a) = s.active.as_mut() else { continue };
            while a.fed < a.prompt.len() && self.batch.len() < cap {
                if a.media.span_starting(a.fed).is_some() {
                    // Decoded on its own after this batch.
                    break;
                }
                let t = a.prompt[a.fed];
                let last = a.fed + 1 == a.prompt.len();
                let pos = s.cached.len() as i32;
                if last {
                    a.out = Some(self.batch.len() as i32);
                }
                let _ = self.batch.add(t, pos, &[s.seq], last);
                s.cached.push(t);
                a.fed += 1;
                a.evaluated += 1;
            }
        }
        let media_due = self.slots.iter().any(|s| {
            s.active
                .as_ref()
                .is_some_and(|a| a.media.span_starting(a.fed).is_some())
        });
        if self.batch.is_empty() && !media_due {
            return Ok(false);
        }
        if !self.batch.is_empty() {
            if let Err(e) = self.ctx.decode(&self.batch) {
                self.fail_batch(&e, sink)?;
                return Ok(true);
            }
            for i in 0..self.slots.len() {
                self.after_decode(i, sink)?;
            }
        }
        // Media whose preceding text is in the cache now: each in decodes of its own (after
        // the sampling above, which needed this step's logits).
        if media_due {
            for i in 0..self.slots.len() {
                self.feed_media(i, sink)?;
            }
        }
        Ok(true)
    }

    /// Encodes and decodes the media chunk slot `i`'s prompt has reached, if any.
    fn feed_media(&mut self, i: usize, sink: &mut dyn Sink) -> std::io::Result<()> {
        let s = &mut self.slots[i];
        let Some(a) = s.active.as_mut() else {
            return Ok(());
        };
        let Some(span) = a.media.span_starting(a.fed).cloned() else {
            return Ok(());
        };
        let result = self.decode_span(i, &span);
        let s = &mut self.slots[i];
        let Some(a) = s.active.as_mut() else {
            return Ok(());
        };
        match result {
            Ok(()) => {
                let sentinel = a.prompt[span.start];
                s.cached.extend(std::iter::repeat_n(sentinel, span.len));
                a.fed += span.len;
                a.evaluated += span.n_tokens as u64;
                Ok(())
            }
            Err(error) => {
                let id = a.id;
                s.active = None;
                self.ctx.memory_seq_rm(s.seq, 0, -1);
                s.cached.clear();
                sink.send(FromRunner::Error { id, error })
            }
        }
    }

    #[cfg(feature = "mtmd")]
    fn decode_span(&mut self, i: usize, span: &super::media::Span) -> Result<(), EngineError> {
        let Some(m) = self.media.as_ref() else {
            return Err(EngineError::internal("an image prompt without a projector"));
        };
        let p = m.projector();
        let embd = p
            .encode(&span.chunk)
            .map_err(|e| EngineError::internal(e.to_string()))?;
        let s = &self.slots[i];
        let n_past = s.cached.len() as i32;
        p.decode(&mut self.ctx, &span.chunk, &embd, n_past, s.seq)
            .map(|_| ())
            .map_err(|e| EngineError::internal(e.to_string()))
    }

    #[cfg(not(feature = "mtmd"))]
    fn decode_span(&mut self, _: usize, _: &super::media::Span) -> Result<(), EngineError> {
        Err(EngineError::internal(
            "this build has no multimodal support",
        ))
    }

    /// A failed decode ends every request in the batch; their caches are dropped.
    fn fail_batch(&mut self, e: &DecodeError, sink: &mut dyn Sink) -> std::io::Result<()> {
        tracing::error!("decode failed: {e}");
        for s in &mut self.slots {
            if let Some(a) = s.active.take() {
                self.ctx.memory_seq_rm(s.seq, 0, -1);
                s.cached.clear();
                sink.send(FromRunner::Error {
                    id: a.id,
                    error: EngineError::internal(format!("llama runner decode failed: {e}")),
                })?;
            }
        }
        if matches!(e, DecodeError::Fatal(_)) {
            self.ctx.memory_clear();
        }
        Ok(())
    }

    fn after_decode(&mut self, i: usize, sink: &mut dyn Sink) -> std::io::Result<()> {
        let vocab = self.model.vocab();
        let s = &mut self.slots[i];
        let Some(a) = s.active.as_mut() else {
            return Ok(());
        };
        let Some(idx) = a.out.take() else {
            return Ok(());
        };
        let sampled = match a.deferred.as_ref() {
            None => a.sampler.sample(&self.ctx, idx),
            Some(d) => a.sampler.sample_where(&self.ctx, idx, 16, |t| {
                let bytes = vocab.token_bytes(t, false).unwrap_or_default();
                d.accepts(&String::from_utf8_lossy(&bytes))
            }),
        };
        if let Some(d) = a.deferred.as_mut()
            && let Ok(t) = sampled
        {
            let bytes = vocab.token_bytes(t, false).unwrap_or_default();
            if d.push(&String::from_utf8_lossy(&bytes)) {
                let d = a.deferred.take().expect("deferred grammar");
                a.sampler = d.constrained;
            }
        }
        let token = match sampled {
            Ok(t) => t,
            Err(e) => {
                let id = a.id;
                s.active = None;
                return sink.send(FromRunner::Error {
                    id,
                    error: EngineError::internal(format!("sampling failed: {e}")),
                });
            }
        };
        if a.first_token.is_none() {
            a.first_token = Some(Instant::now());
        }
        if vocab.is_eog(token) {
            return self.finish(i, DoneReason::Stop, sink);
        }
        let logprobs = match (a.logprobs, self.ctx.logits(idx)) {
            (Some(n), Some(row)) => vec![token_logprob(row, token, n as usize, |t| {
                vocab.token_bytes(t, false).unwrap_or_default()
            })],
            _ => Vec::new(),
        };
        a.generated.push(token);
        let bytes = vocab.token_bytes(token, false).unwrap_or_default();
        let text = a.decoder.push(&bytes);
        let (emit, stopped) = match a.stops.push(&text) {
            StopScan::Continue(t) => (t, false),
            StopScan::Stopped(t) => (t, true),
        };
        let id = a.id;
        if !emit.is_empty() || !logprobs.is_empty() {
            sink.send(FromRunner::Piece {
                id,
                text: emit,
                logprobs,
            })?;
        }
        if stopped {
            if let Some(a) = self.slots[i].active.as_mut() {
                a.stops = StopMatcher::default();
                a.decoder = Utf8Decoder::new();
            }
            return self.finish(i, DoneReason::Stop, sink);
        }
        let a = self.slots[i].active.as_mut().expect("still active");
        if a.num_predict
            .is_some_and(|n| a.generated.len() >= n as usize)
        {
            return self.finish(i, DoneReason::Length, sink);
        }
        a.next = Some(token);
        Ok(())
    }

    /// Drops half of the tokens after `num_keep` from a full slot. False when it cannot shift.
    fn shift_slot(&mut self, i: usize) -> bool {
        let can = self.ctx.memory_can_shift();
        let s = &mut self.slots[i];
        let Some(a) = s.active.as_ref() else {
            return false;
        };
        if !a.shift || !can {
            return false;
        }
        let n_past = s.cached.len();
        let keep = a.num_keep.min(n_past);
        let discard = (n_past - keep) / 2;
        if discard == 0 {
            return false;
        }
        let (k, d, n) = (keep as i32, discard as i32, n_past as i32);
        if !self.ctx.memory_seq_rm(s.seq, k, k + d)
            || !self.ctx.memory_seq_shift(s.seq, k + d, n, -d)
        {
            return false;
        }
        s.cached.drain(keep..keep + discard);
        tracing::debug!(seq = s.seq, discard, "context shift");
        true
    }

    fn finish(&mut self, i: usize, reason: DoneReason, sink: &mut dyn Sink) -> std::io::Result<()> {
        let Some(mut a) = self.slots[i].active.take() else {
            return Ok(());
        };
        let mut rest = a.decoder.finish();
        rest = match a.stops.push(&rest) {
            StopScan::Continue(t) => t + &a.stops.finish(),
            StopScan::Stopped(t) => t,
        };
        if !rest.is_empty() {
            sink.send(FromRunner::Piece {
                id: a.id,
                text: rest,
                logprobs: Vec::new(),
            })?;
        }
        let now = Instant::now();
        let first = a.first_token.unwrap_or(now);
        let metrics = Metrics {
            prompt_eval_count: a.evaluated,
            prompt_tokens: a.prompt.len() as u64,
            prompt_eval_duration: first.duration_since(a.started).as_nanos() as u64,
            eval_count: a.generated.len() as u64,
            eval_duration: now.duration_since(first).as_nanos() as u64,
        };
        let tokens = a.return_tokens.then(|| {
            // Media positions are not tokens: the context carries the text only.
            let mut t: Vec<Token> = a.prompt.iter().copied().filter(|&t| t >= 0).collect();
            t.extend_from_slice(&a.generated);
            t
        });
        sink.send(FromRunner::Done {
            id: a.id,
            reason,
            metrics,
            tokens,
        })
    }

    /// The load options this engine was created with.
    pub fn load_options(&self) -> &LoadOptions {
        &self.opts
    }
}

fn common_prefix(a: &[Token], b: &[Token]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
    }
}
