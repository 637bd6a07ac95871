//! Text-side handlers (spec §5, §6), in Ollama's dispatch order. Each detector tests the
//! architecture string as it stands when its turn comes, so a handler that renames the
//! architecture (embeddinggemma, nemotron_h_omni) decides which later ones run.

mod gemma3;
mod llama;

use super::Handler;

/// The text handlers, in dispatch order.
pub(crate) const HANDLERS: &[Handler] = &[gemma3::HANDLER, llama::LLAMA3, llama::SMOLLM];

/// Whether `v` is `""`, absent or `default` (an unset pre-tokenizer).
pub(crate) fn unset_pre(v: &super::View) -> bool {
    matches!(
        v.str("tokenizer.ggml.pre"),
        None | Some("") | Some("default")
    )
}
