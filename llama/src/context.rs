//! Contexts (KV cache + compute state), batches, KV-cache operations, state and cancellation.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{ContextError, DecodeError};
use crate::ffi::{BatchView, ContextHandle, RawContextParams};
use crate::model::{LoraAdapter, Model, Token};

/// Flash attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlashAttention {
    /// Let llama.cpp decide (default).
    #[default]
    Auto,
    /// Off.
    Disabled,
    /// On.
    Enabled,
}

/// KV cache element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvCacheType {
    /// 16-bit floats (default).
    #[default]
    F16,
    /// 32-bit floats.
    F32,
    /// 8-bit quantized (needs flash attention for V).
    Q8_0,
    /// 4-bit quantized (needs flash attention for V).
    Q4_0,
}

impl KvCacheType {
    fn ggml(self) -> u32 {
        match self {
            KvCacheType::F16 => llama_sys::GGML_TYPE_F16,
            KvCacheType::F32 => llama_sys::GGML_TYPE_F32,
            KvCacheType::Q8_0 => llama_sys::GGML_TYPE_Q8_0,
            KvCacheType::Q4_0 => llama_sys::GGML_TYPE_Q4_0,
        }
    }
}

/// How embeddings of a sequence are pooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// The model's default.
    #[default]
    Unspecified,
    /// No pooling: one embedding per token.
    None,
    /// Mean of the token embeddings.
    Mean,
    /// The CLS token's embedding.
    Cls,
    /// The last token's embedding.
    Last,
    /// A ranking score (rerankers).
    Rank,
}

/// Options for [`Context::new`].
#[derive(Debug, Clone)]
pub struct ContextParams {
    /// Context length in tokens; 0 means the model's training length. Default 4096.
    pub n_ctx: u32,
    /// Most tokens one [`Context::decode`] may take. Default 512.
    pub n_batch: u32,
    /// Physical batch size; decode splits batches into ubatches of this size. Default 512.
    pub n_ubatch: u32,
    /// Most independent sequences. Default 1.
    pub n_seq_max: u32,
    /// Threads for generation; default: the number of CPU cores.
    pub n_threads: u32,
    /// Threads for prompt processing; default: the number of CPU cores.
    pub n_threads_batch: u32,
    /// Flash attention.
    pub flash_attention: FlashAttention,
    /// K cache type.
    pub type_k: KvCacheType,
    /// V cache type.
    pub type_v: KvCacheType,
    /// Compute embeddings instead of only logits.
    pub embeddings: bool,
    /// Pooling of embeddings.
    pub pooling: Pooling,
    /// Keep the KV cache on the GPU (default true).
    pub offload_kqv: bool,
    /// One KV buffer shared by all sequences (default false: one slice each).
    pub kv_unified: bool,
    /// Full-size cache for sliding-window attention layers (needed to reuse prefixes on SWA models).
    pub swa_full: bool,
}

impl Default for ContextParams {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get() as u32);
        ContextParams {
            n_ctx: 4096,
            n_batch: 512,
            n_ubatch: 512,
            n_seq_max: 1,
            n_threads: threads,
            n_threads_batch: threads,
            flash_attention: FlashAttention::Auto,
            type_k: KvCacheType::F16,
            type_v: KvCacheType::F16,
            embeddings: false,
            pooling: Pooling::Unspecified,
            offload_kqv: true,
            kv_unified: false,
            swa_full: false,
        }
    }
}

/// Cancels decoding on a [`Context`] from any thread.
///
/// llama.cpp checks the flag between graph nodes, so a long prefill stops within one ubatch.
/// A cancel is consumed by the decode or generation it stops; one issued while nothing runs
/// stops the next decode.
#[derive(Debug, Clone)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether a cancellation is pending.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// Clears a pending cancellation.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// A batch of tokens for [`Context::decode`], owned and capacity-checked.
#[derive(Debug, Clone)]
pub struct Batch {
    capacity: usize,
    tokens: Vec<Token>,
    pos: Vec<i32>,
    n_seq: Vec<i32>,
    seq_ids: Vec<Vec<i32>>,
    logits: Vec<i8>,
}

/// Adding to a full batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("batch is full ({capacity} tokens)")]
pub struct BatchFull {
    /// The batch's capacity.
    pub capacity: usize,
}

impl Batch {
    /// An empty batch for up to `capacity` tokens.
    pub fn new(capacity: usize) -> Batch {
        Batch {
            capacity,
            tokens: Vec::with_capacity(capacity),
            pos: Vec::with_capacity(capacity),
            n_seq: Vec::with_capacity(capacity),
            seq_ids: Vec::with_capacity(capacity),
            logits: Vec::with_capacity(capacity),
        }
    }

    /// A batch holding `tokens` of sequence `seq` at positions `start..`, with logits for the last.
    ///
    /// # Errors
    /// Never for a fresh batch sized to fit; kept fallible for symmetry with [`Batch::add`].
    pub fn from_tokens(tokens: &[Token], start: i32, seq: i32) -> Result<Batch, BatchFull> {
        let mut b = Batch::new(tokens.len());
        for (i, &t) in tokens.iter().enumerate() {
            b.add(t, start + i as i32, &[seq], i + 1 == tokens.len())?;
        }
        Ok(b)
    }

    /// Adds one token at position `pos` of the sequences `seqs`; `logits` asks for its output row.
    ///
    /// # Errors
    /// [`BatchFull`] when the batch holds `capacity` tokens already.
    pub fn add(
        &mut self,
        token: Token,
        pos: i32,
        seqs: &[i32],
        logits: bool,
    ) -> Result<(), BatchFull> {
        if self.tokens.len() >= self.capacity {
            return Err(BatchFull {
                capacity: self.capacity,
            });
        }
        self.tokens.push(token);
        self.pos.push(pos);
        self.n_seq.push(seqs.len() as i32);
        self.seq_ids.push(seqs.to_vec());
        self.logits.push(i8::from(logits));
        Ok(())
    }

    /// Removes every token.
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.pos.clear();
        self.n_seq.clear();
        self.seq_ids.clear();
        self.logits.clear();
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The capacity given at creation.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Batch entries that asked for logits, in order.
    pub fn outputs(&self) -> impl Iterator<Item = usize> + '_ {
        self.logits
            .iter()
            .enumerate()
            .filter(|(_, l)| **l != 0)
            .map(|(i, _)| i)
    }
}

/// A llama.cpp context: KV cache and compute buffers for one model.
///
/// It owns a handle to its model (no lifetime parameter) and is `Send` but not `Sync`: move it
/// to a worker thread, use it from one thread at a time.
pub struct Context {
    handle: ContextHandle,
    model: Model,
    params: ContextParams,
    /// Batch entries of the last decode that have outputs (logits or embeddings).
    outputs: Vec<usize>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("n_ctx", &self.n_ctx())
            .field("params", &self.params)
            .finish()
    }
}

impl Context {
    /// Creates a context for `model`.
    ///
    /// # Errors
    /// [`ContextError`] for out-of-range parameters, a KV cache that would not fit in the memory
    /// available, or an allocation failure in llama.cpp.
    pub fn new(model: &Model, params: ContextParams) -> Result<Context, ContextError> {
        let bad = |m: &str| Err(ContextError::InvalidParam(m.to_string()));
        if params.n_batch == 0 || params.n_ubatch == 0 {
            return bad("n_batch and n_ubatch must be at least 1");
        }
        if params.n_seq_max == 0 || params.n_seq_max as usize > crate::max_sequences() {
            return bad(&format!("n_seq_max must be 1..={}", crate::max_sequences()));
        }
        if params.n_threads == 0
            || params.n_threads_batch == 0
            || params.n_threads > 4096
            || params.n_threads_batch > 4096
        {
            return bad("thread counts must be 1..=4096");
        }
        if params.n_ctx > i32::MAX as u32 {
            return bad("n_ctx must be below 2^31");
        }
        let n_ctx = if params.n_ctx == 0 {
            model.n_ctx_train()
        } else {
            params.n_ctx
        };
        let needed = model.kv_bytes_per_token().saturating_mul(n_ctx as u64);
        let available = crate::backend::devices()
            .iter()
            .map(|d| d.memory_free as u64)
            .max()
            .unwrap_or(u64::MAX);
        if needed > available {
            return Err(ContextError::TooLarge {
                n_ctx,
                needed: needed >> 20,
                available: available >> 20,
            });
        }
        let raw = RawContextParams {
            n_ctx: params.n_ctx,
            n_batch: params.n_batch,
            n_ubatch: params.n_ubatch.min(params.n_batch),
            n_seq_max: params.n_seq_max,
            n_threads: params.n_threads as i32,
            n_threads_batch: params.n_threads_batch as i32,
            flash_attn: match params.flash_attention {
                FlashAttention::Auto => llama_sys::LLAMA_FLASH_ATTN_TYPE_AUTO,
                FlashAttention::Disabled => llama_sys::LLAMA_FLASH_ATTN_TYPE_DISABLED,
                FlashAttention::Enabled => llama_sys::LLAMA_FLASH_ATTN_TYPE_ENABLED,
            },
            type_k: params.type_k.ggml(),
            type_v: params.type_v.ggml(),
            embeddings: params.embeddings,
            pooling: match params.pooling {
                Pooling::Unspecified => llama_sys::LLAMA_POOLING_TYPE_UNSPECIFIED,
                Pooling::None => llama_sys::LLAMA_POOLING_TYPE_NONE,
                Pooling::Mean => llama_sys::LLAMA_POOLING_TYPE_MEAN,
                Pooling::Cls => llama_sys::LLAMA_POOLING_TYPE_CLS,
                Pooling::Last => llama_sys::LLAMA_POOLING_TYPE_LAST,
                Pooling::Rank => llama_sys::LLAMA_POOLING_TYPE_RANK,
            },
            offload_kqv: params.offload_kqv,
            kv_unified: params.kv_unified,
            swa_full: params.swa_full,
            no_perf: true,
        };
        let handle = ContextHandle::new(
            Arc::clone(&model.inner),
            &raw,
            Arc::new(AtomicBool::new(false)),
        )
        .ok_or(ContextError::Rejected { n_ctx })?;
        Ok(Context {
            handle,
            model: model.clone(),
            params,
            outputs: Vec::new(),
        })
    }

    /// The model this context runs.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The raw handle, for the multimodal module's decodes.
    #[cfg(feature = "mtmd")]
    pub(crate) fn handle_mut(&mut self) -> &mut ContextHandle {
        &mut self.handle
    }

    /// Forgets which rows had outputs: a decode outside [`Context::decode`] replaced them.
    #[cfg(feature = "mtmd")]
    pub(crate) fn forget_outputs(&mut self) {
        self.outputs.clear();
    }

    /// The parameters it was created with.
    pub fn params(&self) -> &ContextParams {
        &self.params
    }

    /// Context length in tokens (all sequences together).
    pub fn n_ctx(&self) -> u32 {
        self.handle.n_ctx()
    }

    /// Most tokens per [`decode`](Self::decode).
    pub fn n_batch(&self) -> u32 {
        self.handle.n_batch()
    }

    /// Physical batch size.
    pub fn n_ubatch(&self) -> u32 {
        self.handle.n_ubatch()
    }

    /// Most sequences.
    pub fn n_seq_max(&self) -> u32 {
        self.handle.n_seq_max()
    }

    /// A handle that cancels decoding from another thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(Arc::clone(self.handle.abort_flag()))
    }

    /// Changes the thread counts.
    pub fn set_threads(&mut self, n_threads: u32, n_threads_batch: u32) {
        self.handle.set_threads(
            n_threads.clamp(1, 4096) as i32,
            n_threads_batch.clamp(1, 4096) as i32,
        );
    }

    /// Turns embedding output on or off.
    pub fn set_embeddings(&mut self, on: bool) {
        self.handle.set_embeddings(on);
    }

    /// Decodes a batch: evaluates its tokens and stores their KV entries.
    ///
    /// On [`DecodeError::Aborted`] and [`DecodeError::Fatal`], llama.cpp keeps the ubatches it
    /// finished; this method removes them again, so the memory is as before the call.
    ///
    /// # Errors
    /// [`DecodeError`] with llama.cpp's documented outcomes; an invalid batch (token or sequence
    /// id out of range, too many tokens) is rejected before llama.cpp sees it.
    pub fn decode(&mut self, batch: &Batch) -> Result<(), DecodeError> {
        let invalid = |m: String| Err(DecodeError::InvalidBatch(m));
        if batch.is_empty() {
            return invalid("the batch is empty".into());
        }
        if batch.len() > self.n_batch() as usize {
            return invalid(format!(
                "{} tokens exceed n_batch {}",
                batch.len(),
                self.n_batch()
            ));
        }
        let n_vocab = self.model.vocab().n_tokens();
        let n_seq_max = self.n_seq_max() as i32;
        for i in 0..batch.len() {
            let t = batch.tokens[i];
            if !(0..n_vocab).contains(&t) {
                return invalid(format!(
                    "token id {t} at {i} is out of range (vocabulary has {n_vocab})"
                ));
            }
            if batch.pos[i] < 0 {
                return invalid(format!("negative position {} at {i}", batch.pos[i]));
            }
            if batch.seq_ids[i].is_empty()
                || batch.seq_ids[i].iter().any(|s| !(0..n_seq_max).contains(s))
            {
                return invalid(format!(
                    "sequence ids {:?} at {i} are not in 0..{n_seq_max}",
                    batch.seq_ids[i]
                ));
            }
        }
        // Where each sequence stood, to undo partial work on abort.
        let mut before: Vec<(i32, i32)> = Vec::new();
        for s in batch.seq_ids.iter().flatten() {
            if !before.iter().any(|(q, _)| q == s) {
                before.push((*s, self.handle.memory_seq_pos_max(*s)));
            }
        }
        let view = BatchView {
            tokens: &batch.tokens,
            pos: &batch.pos,
            n_seq: &batch.n_seq,
            seq_ids: &batch.seq_ids,
            logits: &batch.logits,
        };
        let rc = self.handle.decode(&view);
        self.outputs.clear();
        let abort = Arc::clone(self.handle.abort_flag());
        match rc {
            0 => {
                self.outputs = batch.outputs().collect();
                Ok(())
            }
            1 => Err(DecodeError::NoKvSlot),
            -1 => invalid("llama.cpp rejected the batch (see the llama_cpp log)".into()),
            2 | ..-1 => {
                let aborted = rc == 2;
                if aborted {
                    abort.store(false, Ordering::Relaxed);
                }
                for (s, max) in before {
                    self.handle.memory_seq_rm(s, max + 1, -1);
                }
                Err(if aborted {
                    DecodeError::Aborted
                } else {
                    DecodeError::Fatal(rc)
                })
            }
            other => Err(DecodeError::Fatal(other)),
        }
    }

    /// Maps `i` (a batch entry, or -1 for the last entry with outputs) to a batch entry of the
    /// last decode that asked for outputs.
    fn output_entry(&self, i: i32) -> Option<i32> {
        let entry = if i == -1 {
            *self.outputs.last()?
        } else {
            usize::try_from(i).ok()?
        };
        self.outputs
            .binary_search(&entry)
            .ok()
            .map(|_| entry as i32)
    }

    /// Logits for batch entry `i` of the last decode (it must have asked for logits), or for
    /// the last such entry with `i == -1`. `None` otherwise.
    pub fn logits(&self, i: i32) -> Option<&[f32]> {
        self.handle.logits_ith(self.output_entry(i)?)
    }

    /// Embedding of batch entry `i` (contexts with `embeddings` and no pooling); -1: the last.
    pub fn embeddings_ith(&self, i: i32) -> Option<&[f32]> {
        if !self.params.embeddings {
            return None;
        }
        self.handle.embeddings_ith(self.output_entry(i)?)
    }

    /// Pooled embedding of sequence `seq` after the last decode (contexts with `embeddings`).
    pub fn embeddings_seq(&self, seq: i32) -> Option<&[f32]> {
        if !self.params.embeddings || !(0..self.n_seq_max() as i32).contains(&seq) {
            return None;
        }
        let len = if self.handle.pooling_type() == llama_sys::LLAMA_POOLING_TYPE_RANK {
            1
        } else {
            self.model.n_embd()
        };
        self.handle.embeddings_seq(seq, len)
    }

    /// Embeds `tokens` as one sequence (clearing the memory first) and returns the pooled,
    /// L2-normalised embedding. The context needs `embeddings: true` and a pooling type.
    ///
    /// # Errors
    /// [`DecodeError`] from decoding, or `InvalidBatch` when the context cannot embed.
    pub fn embed(&mut self, tokens: &[Token]) -> Result<Vec<f32>, DecodeError> {
        self.embed_raw(tokens).map(|v| crate::normalize_l2(&v))
    }

    /// As [`embed`](Self::embed), without the L2 normalisation: the pooled vector as the model
    /// computes it (Ollama's legacy `/api/embeddings` returns this).
    ///
    /// # Errors
    /// As [`embed`](Self::embed).
    pub fn embed_raw(&mut self, tokens: &[Token]) -> Result<Vec<f32>, DecodeError> {
        if !self.params.embeddings {
            return Err(DecodeError::InvalidBatch(
                "this context was created without embeddings".into(),
            ));
        }
        if tokens.len() > self.n_batch() as usize || tokens.len() > self.n_ubatch() as usize {
            return Err(DecodeError::InvalidBatch(format!(
                "{} tokens exceed n_batch/n_ubatch",
                tokens.len()
            )));
        }
        self.memory_clear();
        let mut batch = Batch::new(tokens.len());
        for (i, &t) in tokens.iter().enumerate() {
            batch
                .add(t, i as i32, &[0], true)
                .map_err(|e| DecodeError::InvalidBatch(e.to_string()))?;
        }
        self.decode(&batch)?;
        let pooled = self.embeddings_seq(0).map(<[f32]>::to_vec);
        let v = match pooled {
            Some(v) => v,
            None => {
                // No pooling: mean of the token embeddings.
                let mut acc = vec![0f32; self.model.n_embd()];
                for i in 0..tokens.len() as i32 {
                    let row = self.embeddings_ith(i).ok_or_else(|| {
                        DecodeError::InvalidBatch("no embeddings returned".into())
                    })?;
                    acc.iter_mut().zip(row).for_each(|(a, r)| *a += r);
                }
                acc.iter_mut().for_each(|a| *a /= tokens.len() as f32);
                acc
            }
        };
        Ok(v)
    }

    fn check_seq(&self, seq: i32) -> bool {
        (0..self.n_seq_max() as i32).contains(&seq)
    }

    /// Clears the KV cache of every sequence.
    pub fn memory_clear(&mut self) {
        self.handle.memory_clear(true);
    }

    /// Removes positions `p0..p1` of sequence `seq` (`seq` -1: all sequences; `p1` -1: to the
    /// end). Returns false when the memory cannot remove a partial range (recurrent models).
    pub fn memory_seq_rm(&mut self, seq: i32, p0: i32, p1: i32) -> bool {
        if seq != -1 && !self.check_seq(seq) {
            return false;
        }
        self.handle.memory_seq_rm(seq, p0, p1)
    }

    /// Copies positions `p0..p1` of `src` into `dst` (shares the cells). False for bad ids.
    pub fn memory_seq_cp(&mut self, src: i32, dst: i32, p0: i32, p1: i32) -> bool {
        if !self.check_seq(src) || !self.check_seq(dst) {
            return false;
        }
        self.handle.memory_seq_cp(src, dst, p0, p1);
        true
    }

    /// Keeps only sequence `seq`. False for a bad id.
    pub fn memory_seq_keep(&mut self, seq: i32) -> bool {
        if !self.check_seq(seq) {
            return false;
        }
        self.handle.memory_seq_keep(seq);
        true
    }

    /// Shifts positions `p0..p1` of `seq` by `delta` (context shift). False for a bad id or
    /// when the memory cannot shift.
    pub fn memory_seq_shift(&mut self, seq: i32, p0: i32, p1: i32, delta: i32) -> bool {
        if !self.check_seq(seq) || !self.handle.memory_can_shift() {
            return false;
        }
        self.handle.memory_seq_add(seq, p0, p1, delta);
        true
    }

    /// Divides positions `p0..p1` of `seq` by `d` (self-extend). False for bad arguments.
    pub fn memory_seq_div(&mut self, seq: i32, p0: i32, p1: i32, d: i32) -> bool {
        if !self.check_seq(seq) || d < 1 || !self.handle.memory_can_shift() {
            return false;
        }
        self.handle.memory_seq_div(seq, p0, p1, d);
        true
    }

    /// Smallest position of `seq` in the cache, or -1 when empty.
    pub fn memory_seq_pos_min(&self, seq: i32) -> i32 {
        if !self.check_seq(seq) {
            return -1;
        }
        self.handle.memory_seq_pos_min(seq)
    }

    /// Largest position of `seq` in the cache, or -1 when empty.
    pub fn memory_seq_pos_max(&self, seq: i32) -> i32 {
        if !self.check_seq(seq) {
            return -1;
        }
        self.handle.memory_seq_pos_max(seq)
    }

    /// Whether positions can be shifted (for context shift).
    pub fn memory_can_shift(&self) -> bool {
        self.handle.memory_can_shift()
    }

    /// Saves the whole state (KV cache, outputs, RNG) to bytes.
    pub fn state_save(&mut self) -> Vec<u8> {
        self.handle.state_get()
    }

    /// Restores a state saved by [`state_save`](Self::state_save).
    ///
    /// # Errors
    /// [`ContextError::State`] when llama.cpp rejects the data.
    pub fn state_load(&mut self, data: &[u8]) -> Result<(), ContextError> {
        self.outputs.clear();
        if self.handle.state_set(data) {
            Ok(())
        } else {
            Err(ContextError::State)
        }
    }

    /// Saves one sequence's KV cache to bytes.
    pub fn seq_state_save(&mut self, seq: i32) -> Option<Vec<u8>> {
        self.check_seq(seq).then(|| self.handle.seq_state_get(seq))
    }

    /// Restores one sequence's KV cache into `seq`.
    ///
    /// # Errors
    /// [`ContextError::State`] when llama.cpp rejects the data or `seq` is out of range.
    pub fn seq_state_load(&mut self, data: &[u8], seq: i32) -> Result<(), ContextError> {
        if self.check_seq(seq) && self.handle.seq_state_set(data, seq) {
            Ok(())
        } else {
            Err(ContextError::State)
        }
    }

    /// Applies LoRA adapters with scales, replacing any set before (empty: none).
    ///
    /// # Errors
    /// [`ContextError::Adapters`] when an adapter belongs to another model or llama.cpp fails.
    pub fn set_lora(&mut self, adapters: &[(&LoraAdapter, f32)]) -> Result<(), ContextError> {
        if adapters
            .iter()
            .any(|(a, _)| !Arc::ptr_eq(a.inner.model(), self.handle.model()))
        {
            return Err(ContextError::Adapters);
        }
        let list: Vec<_> = adapters
            .iter()
            .map(|(a, s)| (Arc::clone(&a.inner), *s))
            .collect();
        if self.handle.set_adapters(&list) {
            Ok(())
        } else {
            Err(ContextError::Adapters)
        }
    }
}
