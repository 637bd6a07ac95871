//! Sampling: a typed sampler-chain builder over llama.cpp's samplers, with GBNF grammars.

use std::ffi::CString;

use crate::context::Context;
use crate::error::SamplerError;
use crate::ffi::{SamplerHandle, Stage};
use crate::model::{Model, Token};

/// Most bytes of GBNF grammar accepted, and deepest nesting of groups: llama.cpp's grammar
/// parser recurses per group, so unbounded input could exhaust the stack.
const MAX_GRAMMAR_BYTES: usize = 1 << 20;
const MAX_GRAMMAR_DEPTH: usize = 256;

/// A GBNF grammar that constrains sampling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    /// The GBNF text.
    pub gbnf: String,
    /// The start rule (usually `root`).
    pub root: String,
    /// Lazy grammars apply only once the output matches one of these regex patterns
    /// (from the start of the output; the grammar sees the text from the first match group).
    ///
    /// **Caution:** when the token that completes a trigger carries text the grammar refuses,
    /// llama.cpp throws a C++ exception, which aborts the process (it cannot cross into Rust).
    /// Make the grammar accept anything the group can capture, or hold the grammar back
    /// yourself and keep the trigger clean with [`Sampler::sample_where`].
    pub lazy_patterns: Vec<String>,
    /// Lazy grammars also apply once one of these tokens is sampled.
    pub lazy_tokens: Vec<Token>,
}

impl Grammar {
    /// A grammar that applies from the first token, starting at rule `root`.
    pub fn new(gbnf: impl Into<String>) -> Grammar {
        Grammar {
            gbnf: gbnf.into(),
            root: "root".into(),
            lazy_patterns: Vec::new(),
            lazy_tokens: Vec::new(),
        }
    }

    fn is_lazy(&self) -> bool {
        !self.lazy_patterns.is_empty() || !self.lazy_tokens.is_empty()
    }

    fn check(&self) -> Result<(), SamplerError> {
        let bad = |m: String| Err(SamplerError::InvalidGrammar(m));
        if self.gbnf.len() > MAX_GRAMMAR_BYTES {
            return bad(format!(
                "grammar of {} bytes exceeds {MAX_GRAMMAR_BYTES}",
                self.gbnf.len()
            ));
        }
        if self.gbnf.contains('\0')
            || self.root.contains('\0')
            || self.lazy_patterns.iter().any(|p| p.contains('\0'))
        {
            return bad("grammar contains a NUL byte".into());
        }
        let (mut depth, mut max) = (0usize, 0usize);
        let mut chars = self.gbnf.chars();
        let mut in_str: Option<char> = None;
        while let Some(c) = chars.next() {
            match (in_str, c) {
                (Some(_), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => in_str = None,
                (Some(_), _) => {}
                (None, '"') => in_str = Some('"'),
                (None, '[') => in_str = Some(']'),
                (None, '(') => {
                    depth += 1;
                    max = max.max(depth);
                }
                (None, ')') => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if max > MAX_GRAMMAR_DEPTH {
            return bad(format!(
                "groups nest {max} deep, more than {MAX_GRAMMAR_DEPTH}"
            ));
        }
        Ok(())
    }
}

/// A typed sampler chain, built in the order of Ollama's (and llama.cpp's common) sampling:
/// grammar, penalties, top-k, typical-p, top-p, min-p, temperature, then the final choice
/// (greedy, mirostat or a seeded random draw).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerParams {
    /// Temperature; 0 means greedy. Default 0.8.
    pub temperature: f32,
    /// Top-k; 0 disables. Default 40.
    pub top_k: i32,
    /// Top-p; 1.0 disables. Default 0.9.
    pub top_p: f32,
    /// Min-p; 0 disables. Default 0.
    pub min_p: f32,
    /// Typical-p; 1.0 disables. Default 1.0.
    pub typical_p: f32,
    /// Repeat penalty; 1.0 disables. Default 1.1.
    pub repeat_penalty: f32,
    /// Presence penalty; 0 disables.
    pub presence_penalty: f32,
    /// Frequency penalty; 0 disables.
    pub frequency_penalty: f32,
    /// How many recent tokens the penalties look at; -1 means the context size. Default 64.
    pub repeat_last_n: i32,
    /// Mirostat: 0 off, 1 or 2.
    pub mirostat: u8,
    /// Mirostat target entropy. Default 5.0.
    pub mirostat_tau: f32,
    /// Mirostat learning rate. Default 0.1.
    pub mirostat_eta: f32,
    /// Random seed; `None` picks one.
    pub seed: Option<u32>,
    /// Biases added to logits before anything else.
    pub logit_bias: Vec<(Token, f32)>,
    /// A grammar constraining the output.
    pub grammar: Option<Grammar>,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            typical_p: 1.0,
            repeat_penalty: 1.1,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repeat_last_n: 64,
            mirostat: 0,
            mirostat_tau: 5.0,
            mirostat_eta: 0.1,
            seed: None,
            logit_bias: Vec::new(),
            grammar: None,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding: always the most likely token, no penalties.
    pub fn greedy() -> SamplerParams {
        SamplerParams {
            temperature: 0.0,
            repeat_penalty: 1.0,
            ..SamplerParams::default()
        }
    }

    /// Sets the temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = t;
        self
    }
    /// Sets top-k.
    pub fn top_k(mut self, k: i32) -> Self {
        self.top_k = k;
        self
    }
    /// Sets top-p.
    pub fn top_p(mut self, p: f32) -> Self {
        self.top_p = p;
        self
    }
    /// Sets min-p.
    pub fn min_p(mut self, p: f32) -> Self {
        self.min_p = p;
        self
    }
    /// Sets typical-p.
    pub fn typical_p(mut self, p: f32) -> Self {
        self.typical_p = p;
        self
    }
    /// Sets the penalties and their window.
    pub fn penalties(mut self, last_n: i32, repeat: f32, frequency: f32, presence: f32) -> Self {
        self.repeat_last_n = last_n;
        self.repeat_penalty = repeat;
        self.frequency_penalty = frequency;
        self.presence_penalty = presence;
        self
    }
    /// Sets the seed.
    pub fn seed(mut self, seed: u32) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Sets a grammar.
    pub fn grammar(mut self, g: Grammar) -> Self {
        self.grammar = Some(g);
        self
    }

    fn validate(&self) -> Result<(), SamplerError> {
        let bad = |m: &str| Err(SamplerError::InvalidParam(m.to_string()));
        let finite = [
            self.temperature,
            self.top_p,
            self.min_p,
            self.typical_p,
            self.repeat_penalty,
            self.presence_penalty,
            self.frequency_penalty,
            self.mirostat_tau,
            self.mirostat_eta,
        ];
        if finite.iter().any(|v| !v.is_finite()) {
            return bad("sampler values must be finite numbers");
        }
        if self.temperature < 0.0 {
            return bad("temperature must be >= 0");
        }
        if self.top_k < 0 {
            return bad("top_k must be >= 0");
        }
        if !(0.0..=1.0).contains(&self.top_p)
            || !(0.0..=1.0).contains(&self.min_p)
            || !(0.0..=1.0).contains(&self.typical_p)
        {
            return bad("top_p, min_p and typical_p must be in 0..=1");
        }
        if self.repeat_penalty <= 0.0 {
            return bad("repeat_penalty must be > 0");
        }
        if self.repeat_last_n < -1 {
            return bad("repeat_last_n must be >= -1");
        }
        if self.mirostat > 2 {
            return bad("mirostat must be 0, 1 or 2");
        }
        if self.logit_bias.iter().any(|(_, b)| b.is_nan()) {
            return bad("logit biases must not be NaN");
        }
        Ok(())
    }
}

/// A sampler chain built for one model. `Send`; reuse it for a whole generation.
pub struct Sampler {
    handle: SamplerHandle,
    /// The grammar, in a chain of its own. A token is chosen by `handle` alone first and then
    /// checked against the grammar; only when the grammar rules it out is the full candidate
    /// array filtered by the grammar and the choice made again (what llama.cpp's own
    /// `common_sampler` does). Checking one token is far cheaper than matching the whole
    /// vocabulary against the grammar at every step.
    grammar: Option<SamplerHandle>,
    n_vocab: i32,
    has_grammar: bool,
    /// The chain is plain greedy: sample by argmax without building llama.cpp's candidate array
    /// (the same choice as llama.cpp's greedy sampler, at a fraction of the cost per token).
    greedy_only: bool,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").finish_non_exhaustive()
    }
}

impl Sampler {
    /// Builds the chain for `model`.
    ///
    /// # Errors
    /// [`SamplerError::InvalidParam`] for out-of-range values, [`SamplerError::InvalidGrammar`]
    /// for a grammar llama.cpp cannot parse (or one too large or deeply nested).
    pub fn new(model: &Model, params: &SamplerParams) -> Result<Sampler, SamplerError> {
        params.validate()?;
        let vocab = model.vocab();
        let n_vocab = vocab.n_tokens();
        for &(t, _) in &params.logit_bias {
            vocab
                .check(t)
                .map_err(|e| SamplerError::InvalidParam(e.to_string()))?;
        }
        let mut grammar = None;
        if let Some(g) = &params.grammar {
            let mut h = SamplerHandle::chain();
            g.check()?;
            for &t in &g.lazy_tokens {
                vocab
                    .check(t)
                    .map_err(|e| SamplerError::InvalidParam(e.to_string()))?;
            }
            let gbnf = CString::new(g.gbnf.as_str())
                .map_err(|_| SamplerError::InvalidGrammar("NUL byte".into()))?;
            let root = CString::new(g.root.as_str())
                .map_err(|_| SamplerError::InvalidGrammar("NUL byte".into()))?;
            let patterns: Vec<CString> = g
                .lazy_patterns
                .iter()
                .map(|p| CString::new(p.as_str()))
                .collect::<Result<_, _>>()
                .map_err(|_| SamplerError::InvalidGrammar("NUL byte".into()))?;
            let stage = if g.is_lazy() {
                Stage::GrammarLazy {
                    model: &model.inner,
                    grammar: &gbnf,
                    root: &root,
                    patterns: &patterns,
                    tokens: &g.lazy_tokens,
                }
            } else {
                Stage::Grammar {
                    model: &model.inner,
                    grammar: &gbnf,
                    root: &root,
                }
            };
            if !h.add(stage) {
                return Err(SamplerError::InvalidGrammar(
                    "llama.cpp could not parse the grammar (its log, target llama_cpp, says where)"
                        .into(),
                ));
            }
            grammar = Some(h);
        }
        let mut h = SamplerHandle::chain();
        if !params.logit_bias.is_empty() {
            h.add(Stage::LogitBias {
                n_vocab,
                bias: &params.logit_bias,
            });
        }
        if params.repeat_penalty != 1.0
            || params.frequency_penalty != 0.0
            || params.presence_penalty != 0.0
        {
            h.add(Stage::Penalties {
                n_vocab,
                last_n: params.repeat_last_n,
                repeat: params.repeat_penalty,
                freq: params.frequency_penalty,
                present: params.presence_penalty,
            });
        }
        let seed = params.seed.unwrap_or(llama_sys::LLAMA_DEFAULT_SEED);
        if params.temperature <= 0.0 {
            h.add(Stage::Greedy);
        } else if params.mirostat == 1 {
            h.add(Stage::Temp(params.temperature));
            h.add(Stage::Mirostat {
                n_vocab,
                seed,
                tau: params.mirostat_tau,
                eta: params.mirostat_eta,
            });
        } else if params.mirostat == 2 {
            h.add(Stage::Temp(params.temperature));
            h.add(Stage::Mirostat2 {
                seed,
                tau: params.mirostat_tau,
                eta: params.mirostat_eta,
            });
        } else {
            if params.top_k > 0 {
                h.add(Stage::TopK(params.top_k));
            }
            if params.typical_p < 1.0 {
                h.add(Stage::Typical(params.typical_p, 1));
            }
            if params.top_p < 1.0 {
                h.add(Stage::TopP(params.top_p, 1));
            }
            if params.min_p > 0.0 {
                h.add(Stage::MinP(params.min_p, 1));
            }
            h.add(Stage::Temp(params.temperature));
            h.add(Stage::Dist(seed));
        }
        // Plain greedy: sample by argmax without building llama.cpp's candidate array.
        let greedy_only = params.temperature <= 0.0
            && params.logit_bias.is_empty()
            && params.repeat_penalty == 1.0
            && params.frequency_penalty == 0.0
            && params.presence_penalty == 0.0;
        Ok(Sampler {
            handle: h,
            grammar,
            n_vocab,
            has_grammar: params.grammar.is_some(),
            greedy_only,
        })
    }

    /// Samples from the logits of batch entry `idx` of the last decode (-1: the last entry with
    /// logits) and accepts the token (updating the grammar and penalty state).
    ///
    /// # Errors
    /// [`SamplerError::NoLogits`] when entry `idx` has no logits; [`SamplerError::NoCandidates`]
    /// when every token is ruled out. The sampler's state is unchanged on error.
    pub fn sample(&mut self, ctx: &Context, idx: i32) -> Result<Token, SamplerError> {
        let logits = ctx.logits(idx).ok_or(SamplerError::NoLogits(idx))?;
        self.sample_logits(logits)
    }

    /// Samples from a row of logits (length = vocabulary size) and accepts the token.
    ///
    /// # Errors
    /// As [`sample`](Self::sample); also when `logits` has the wrong length.
    pub fn sample_logits(&mut self, logits: &[f32]) -> Result<Token, SamplerError> {
        let token = self.choose(logits)?;
        self.commit(token);
        Ok(token)
    }

    /// Samples from the logits of batch entry `idx` like [`sample`](Self::sample), but only a
    /// token for which `ok` holds: a refused token is ruled out and the choice made again, at
    /// most `tries` times (then [`SamplerError::NoCandidates`]). Only the final token is
    /// accepted. Use it for constraints a grammar cannot express, e.g. "no text after a tag".
    ///
    /// # Errors
    /// As [`sample`](Self::sample).
    pub fn sample_where(
        &mut self,
        ctx: &Context,
        idx: i32,
        tries: usize,
        mut ok: impl FnMut(Token) -> bool,
    ) -> Result<Token, SamplerError> {
        let logits = ctx.logits(idx).ok_or(SamplerError::NoLogits(idx))?;
        let first = self.choose(logits)?;
        if ok(first) {
            self.commit(first);
            return Ok(first);
        }
        let mut banned = logits.to_vec();
        banned[first as usize] = f32::NEG_INFINITY;
        for _ in 1..tries {
            let t = self.choose(&banned)?;
            if ok(t) {
                self.commit(t);
                return Ok(t);
            }
            banned[t as usize] = f32::NEG_INFINITY;
        }
        Err(SamplerError::NoCandidates)
    }

    /// Accepts a token chosen by [`choose`](Self::choose) into the grammar and the chain.
    fn commit(&mut self, token: Token) {
        if let Some(g) = &mut self.grammar {
            g.accept(token);
        }
        if !self.greedy_only {
            self.handle.accept(token);
        }
    }

    /// Chooses a token without accepting it.
    fn choose(&mut self, logits: &[f32]) -> Result<Token, SamplerError> {
        if logits.len() != self.n_vocab as usize {
            return Err(SamplerError::InvalidParam(format!(
                "{} logits for a vocabulary of {}",
                logits.len(),
                self.n_vocab
            )));
        }
        // First choice: the chain alone (or plain argmax), without the grammar.
        let first = if self.greedy_only {
            // llama.cpp's greedy sampler: the first index of the largest logit.
            let mut best: Option<(usize, f32)> = None;
            for (i, &l) in logits.iter().enumerate() {
                if !l.is_nan() && best.is_none_or(|(_, b)| l > b) {
                    best = Some((i, l));
                }
            }
            best.map(|(i, l)| (i as Token, l))
        } else {
            self.handle.select(logits)
        };
        let usable = |t: Token, l: f32| {
            (0..self.n_vocab).contains(&t) && l != f32::NEG_INFINITY && !l.is_nan()
        };
        let token = match (self.grammar.as_mut(), first) {
            (None, Some((t, l))) if usable(t, l) => t,
            (None, _) => return Err(SamplerError::NoCandidates),
            (Some(g), first) => {
                let allowed = first
                    .filter(|&(t, _)| usable(t, logits[t as usize]))
                    .filter(|&(t, _)| g.allows(t, logits[t as usize]));
                match allowed {
                    Some((t, _)) => t,
                    None => {
                        // The grammar ruled the first choice out: filter every candidate by the
                        // grammar, then let the chain choose among what is left.
                        let (t, l) = self
                            .handle
                            .select_after(g, logits)
                            .ok_or(SamplerError::NoCandidates)?;
                        // A token the grammar ruled out keeps a logit of -inf: accepting it
                        // would make llama.cpp's grammar throw across the C boundary (an
                        // abort). Refuse it instead.
                        if !usable(t, l) {
                            return Err(SamplerError::NoCandidates);
                        }
                        t
                    }
                }
            }
        };
        Ok(token)
    }

    /// Records `token` as if it had been sampled (e.g. prompt tokens that feed the penalties).
    ///
    /// # Errors
    /// [`SamplerError::InvalidParam`] for an out-of-range token, or on a chain with a grammar:
    /// a token the grammar does not allow would corrupt its state, so only sampled tokens are
    /// accepted there.
    pub fn accept(&mut self, token: Token) -> Result<(), SamplerError> {
        if !(0..self.n_vocab).contains(&token) {
            return Err(SamplerError::InvalidParam(format!(
                "token {token} is out of range"
            )));
        }
        if self.has_grammar {
            return Err(SamplerError::InvalidParam(
                "cannot accept arbitrary tokens on a chain with a grammar".into(),
            ));
        }
        self.handle.accept(token);
        Ok(())
    }

    /// Resets the chain's state (grammar, penalties, mirostat).
    pub fn reset(&mut self) {
        self.handle.reset();
        if let Some(g) = &mut self.grammar {
            g.reset();
        }
    }
}
