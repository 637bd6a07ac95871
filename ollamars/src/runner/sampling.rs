//! Sampling helpers of the engine: Ollama's options as a llama.cpp sampler chain, a grammar
//! held back until a tag (thinking, then a format), and log-probabilities of a sampled token.

use super::proto::{Logprob, SamplingOptions};
use llama::{Grammar, Sampler, SamplerParams, Token};

/// A grammar held back until the output contains `after` (e.g. `</think>`): until then the
/// slot samples without it; from the token after the tag on, `constrained` (the same options
/// with the grammar) takes over. The token that completes the tag may carry nothing but
/// whitespace after it, or the grammar would start from text it never saw.
pub(super) struct Deferred {
    pub(super) after: String,
    pub(super) constrained: Sampler,
    /// The output so far, as text (only its tail matters).
    pub(super) seen: String,
}

impl Deferred {
    /// Whether the output with `piece` appended would be acceptable: either still before the
    /// tag, or the tag followed by whitespace only.
    pub(super) fn accepts(&self, piece: &str) -> bool {
        let text = format!("{}{piece}", self.seen);
        match text.find(self.after.as_str()) {
            None => true,
            Some(at) => text[at + self.after.len()..].trim().is_empty(),
        }
    }

    /// Appends `piece`; true once the tag has appeared.
    pub(super) fn push(&mut self, piece: &str) -> bool {
        self.seen.push_str(piece);
        if self.seen.contains(self.after.as_str()) {
            return true;
        }
        // Keep only a tail long enough to hold a tag split across pieces.
        let keep = self.after.len() * 4 + 64;
        if self.seen.len() > keep * 2 {
            let mut cut = self.seen.len() - keep;
            while !self.seen.is_char_boundary(cut) {
                cut += 1;
            }
            self.seen.drain(..cut);
        }
        false
    }
}

/// Ollama's sampling options as a llama.cpp sampler chain.
pub(super) fn sampler_params(o: &SamplingOptions, n_ctx: usize) -> SamplerParams {
    SamplerParams {
        temperature: o.temperature,
        top_k: o.top_k,
        top_p: o.top_p,
        min_p: o.min_p,
        typical_p: o.typical_p,
        repeat_penalty: o.repeat_penalty,
        presence_penalty: o.presence_penalty,
        frequency_penalty: o.frequency_penalty,
        repeat_last_n: if o.repeat_last_n < 0 {
            n_ctx as i32
        } else {
            o.repeat_last_n
        },
        seed: o.seed,
        grammar: o.grammar.clone().map(Grammar::new),
        ..SamplerParams::default()
    }
}

/// `token`'s log-probability under the softmax of `logits`, with the `top` most likely
/// alternatives (ties to the lower id), as Ollama reports them.
pub(super) fn token_logprob(
    logits: &[f32],
    token: Token,
    top: usize,
    bytes_of: impl Fn(Token) -> Vec<u8>,
) -> Logprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .map(|&l| f64::from(l - max).exp())
        .sum::<f64>();
    let log_z = f64::from(max) + sum.ln();
    let lp = |t: Token| (f64::from(logits[t as usize]) - log_z) as f32;
    let item = |t: Token| {
        let bytes = bytes_of(t);
        Logprob {
            token: String::from_utf8_lossy(&bytes).into_owned(),
            logprob: lp(t),
            bytes: Some(bytes),
            top_logprobs: None,
        }
    };
    let mut best: Vec<(f32, Token)> = Vec::with_capacity(top + 1);
    if top > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if best.len() < top || l > best[best.len() - 1].0 {
                let at = best.partition_point(|&(b, _)| b >= l);
                best.insert(at, (l, i as Token));
                best.truncate(top);
            }
        }
    }
    Logprob {
        top_logprobs: (top > 0).then(|| best.iter().map(|&(_, t)| item(t)).collect()),
        ..item(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_a_log_softmax_with_sorted_alternatives() {
        let logits = [1.0f32, 3.0, 2.0, 3.0, -1.0];
        let lp = token_logprob(&logits, 2, 3, |t| vec![b'a' + t as u8]);
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        assert!(
            (f64::from(lp.logprob) - (2.0 - z.ln())).abs() < 1e-5,
            "{lp:?}"
        );
        assert_eq!(lp.token, "c");
        assert_eq!(lp.bytes.as_deref(), Some(&b"c"[..]));
        let top: Vec<&str> = lp
            .top_logprobs
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| t.token.as_str())
            .collect();
        assert_eq!(top, ["b", "d", "c"]);
        let total: f64 = (0..5)
            .map(|t| f64::from(token_logprob(&logits, t, 0, |_| vec![]).logprob).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(
            token_logprob(&logits, 0, 0, |_| vec![])
                .top_logprobs
                .is_none()
        );
    }
}
