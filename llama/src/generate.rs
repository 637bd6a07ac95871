//! Streaming generation: an `Iterator` of text pieces, with stop strings, max tokens,
//! cancellation, a finish reason and timings.

use std::time::{Duration, Instant};

use crate::context::{Batch, CancelHandle, Context};
use crate::error::{DecodeError, GenerateError};
use crate::model::Token;
use crate::sampler::Sampler;
use crate::text::{StopMatcher, StopScan, Utf8Decoder};

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens`, or the context is full.
    Length,
    /// Cancelled through a [`CancelHandle`].
    Cancelled,
}

/// Counts and durations of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Prompt tokens evaluated.
    pub prompt_tokens: usize,
    /// Time spent evaluating the prompt.
    pub prompt_eval: Duration,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time spent generating (sampling and decoding).
    pub eval: Duration,
}

/// Options for [`Context::generate`].
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// Most tokens to generate; `None` runs until a stop or the context is full.
    pub max_tokens: Option<usize>,
    /// Stop strings, matched on the decoded text (not included in the output).
    pub stop: Vec<String>,
    /// The sequence to generate on (default 0).
    pub seq: i32,
}

/// A running generation: iterate it for text pieces. Each piece is valid UTF-8 (a character
/// split across tokens is held back) and never contains the start of a stop string that
/// might still complete.
///
/// The prompt is appended to what sequence `seq` already holds in the KV cache, so a caller
/// that keeps a shared prefix only passes the new tokens.
pub struct Generation<'a> {
    ctx: &'a mut Context,
    sampler: &'a mut Sampler,
    opts: GenerateOptions,
    cancel: CancelHandle,
    decoder: Utf8Decoder,
    stops: StopMatcher,
    tokens: Vec<Token>,
    /// Position of the next token in the sequence.
    pos: i32,
    /// Batch entry (of the last decode) holding the logits to sample from next.
    out_row: i32,
    finish: Option<FinishReason>,
    flushed: bool,
    failed: bool,
    timings: Timings,
}

impl std::fmt::Debug for Generation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("tokens", &self.tokens.len())
            .field("finish", &self.finish)
            .finish()
    }
}

impl Context {
    /// Evaluates `prompt` on sequence `opts.seq` (after what it already holds), then returns
    /// a [`Generation`] that samples with `sampler`.
    ///
    /// # Errors
    /// [`GenerateError::EmptyPrompt`], [`GenerateError::PromptTooLong`], or a decode error. A
    /// cancel during the prompt is not an error: the generation then ends at once with
    /// [`FinishReason::Cancelled`].
    pub fn generate<'a>(
        &'a mut self,
        sampler: &'a mut Sampler,
        prompt: &[Token],
        opts: GenerateOptions,
    ) -> Result<Generation<'a>, GenerateError> {
        if prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt);
        }
        let vocab = self.model().vocab();
        for &t in prompt {
            vocab.check(t)?;
        }
        let seq = opts.seq;
        if !(0..self.n_seq_max() as i32).contains(&seq) {
            return Err(DecodeError::InvalidBatch(format!(
                "sequence {seq} is not below n_seq_max {}",
                self.n_seq_max()
            ))
            .into());
        }
        let start = self.memory_seq_pos_max(seq) + 1;
        let per_seq = if self.params().kv_unified {
            self.n_ctx()
        } else {
            self.n_ctx() / self.n_seq_max()
        };
        if start as usize + prompt.len() > per_seq as usize {
            return Err(GenerateError::PromptTooLong {
                prompt: start as usize + prompt.len(),
                n_ctx: per_seq,
            });
        }
        let cancel = self.cancel_handle();
        let t0 = Instant::now();
        let n_batch = self.n_batch() as usize;
        let mut finish = None;
        let mut pos = start;
        for (i, chunk) in prompt.chunks(n_batch).enumerate() {
            let last = (i + 1) * n_batch >= prompt.len();
            let mut batch = Batch::new(chunk.len());
            for (j, &t) in chunk.iter().enumerate() {
                batch
                    .add(t, pos + j as i32, &[seq], last && j + 1 == chunk.len())
                    .map_err(|e| DecodeError::InvalidBatch(e.to_string()))?;
            }
            match self.decode(&batch) {
                Ok(()) => pos += chunk.len() as i32,
                Err(DecodeError::Aborted) => {
                    // Drop the part of the prompt already evaluated too: the caller sees the
                    // sequence as it was.
                    self.memory_seq_rm(seq, start, -1);
                    finish = Some(FinishReason::Cancelled);
                    pos = start;
                    break;
                }
                Err(e) => {
                    self.memory_seq_rm(seq, start, -1);
                    return Err(e.into());
                }
            }
        }
        let timings = Timings {
            prompt_tokens: prompt.len(),
            prompt_eval: t0.elapsed(),
            ..Timings::default()
        };
        let stops = StopMatcher::new(opts.stop.iter().cloned());
        Ok(Generation {
            ctx: self,
            sampler,
            opts,
            cancel,
            decoder: Utf8Decoder::new(),
            stops,
            tokens: Vec::new(),
            pos,
            out_row: -1,
            finish,
            flushed: false,
            failed: false,
            timings,
        })
    }
}

impl Generation<'_> {
    /// Why the generation ended, once it has.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Counts and durations so far.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// The tokens generated so far (including a final end-of-generation token, which is not
    /// decoded into the cache).
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The position the next token would take in the sequence.
    pub fn position(&self) -> i32 {
        self.pos
    }

    /// A handle that cancels this generation from another thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Runs to the end and returns the whole text.
    ///
    /// # Errors
    /// The first error of the iteration.
    pub fn collect_text(&mut self) -> Result<String, GenerateError> {
        let mut s = String::new();
        for piece in self.by_ref() {
            s.push_str(&piece?);
        }
        Ok(s)
    }

    fn end(&mut self, reason: FinishReason) {
        if self.finish.is_none() {
            self.finish = Some(reason);
        }
    }

    /// One sampling step. Returns text to emit (possibly empty).
    fn step(&mut self) -> Result<String, GenerateError> {
        let t0 = Instant::now();
        let token = self.sampler.sample(self.ctx, self.out_row)?;
        self.tokens.push(token);
        let vocab = self.ctx.model().vocab();
        if vocab.is_eog(token) {
            self.timings.eval += t0.elapsed();
            self.end(FinishReason::Stop);
            return Ok(String::new());
        }
        self.timings.generated_tokens += 1;
        let bytes = vocab.token_bytes(token, false)?;
        let text = self.decoder.push(&bytes);
        let emit = match self.stops.push(&text) {
            StopScan::Continue(t) => t,
            StopScan::Stopped(t) => {
                self.timings.eval += t0.elapsed();
                self.end(FinishReason::Stop);
                self.decoder = Utf8Decoder::new();
                return Ok(t);
            }
        };
        let at_max = self
            .opts
            .max_tokens
            .is_some_and(|m| self.timings.generated_tokens >= m);
        let per_seq = if self.ctx.params().kv_unified {
            self.ctx.n_ctx()
        } else {
            self.ctx.n_ctx() / self.ctx.n_seq_max()
        };
        if at_max || self.pos + 1 >= per_seq as i32 {
            // The last token is not decoded: nothing would sample from its logits.
            self.timings.eval += t0.elapsed();
            self.end(FinishReason::Length);
            return Ok(emit);
        }
        let batch = Batch::from_tokens(&[token], self.pos, self.opts.seq)
            .map_err(|e| DecodeError::InvalidBatch(e.to_string()))?;
        match self.ctx.decode(&batch) {
            Ok(()) => {
                self.pos += 1;
                self.out_row = -1;
            }
            Err(DecodeError::Aborted) => self.end(FinishReason::Cancelled),
            Err(e) => return Err(e.into()),
        }
        self.timings.eval += t0.elapsed();
        Ok(emit)
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<String, GenerateError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if self.finish.is_some() {
                if self.flushed {
                    return None;
                }
                self.flushed = true;
                // Text held back for a possible stop string (or an incomplete character) is
                // real output once the stream ends without that stop.
                let mut rest = self.decoder.finish();
                rest = match self.stops.push(&rest) {
                    StopScan::Continue(t) => t + &self.stops.finish(),
                    StopScan::Stopped(t) => t,
                };
                if self.finish == Some(FinishReason::Cancelled) {
                    self.cancel.reset();
                }
                return (!rest.is_empty()).then_some(Ok(rest));
            }
            if self.cancel.is_cancelled() {
                self.end(FinishReason::Cancelled);
                continue;
            }
            match self.step() {
                Ok(text) if text.is_empty() => continue,
                Ok(text) => return Some(Ok(text)),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
