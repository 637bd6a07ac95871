//! gemma3 (spec §5.1): Ollama's converter writes local/global rope bases under its own keys,
//! may leave out the epsilon and rope base, pads the vocabulary arrays past the embedding rows,
//! and embeds the vision tower and projector in the same blob.

use crate::compat::{CompatError, Handler, View, s};
use crate::gguf::Value;

pub(crate) const HANDLER: Handler = Handler {
    name: "gemma3",
    detect,
    apply,
};

/// The chat template injected when the blob has none. Written for ollamars from Gemma 3's turn
/// format: `<start_of_turn>role\n…<end_of_turn>\n`, `assistant` shown as `model`. Unlike
/// Ollama's injected template, a leading system message is folded into the first user turn
/// (as Gemma 3's own template does) instead of being an error.
const TEMPLATE: &str = "{{ bos_token }}\
{%- set sys = '' -%}\
{%- if messages and messages[0]['role'] == 'system' -%}\
{%- set sys = messages[0]['content'] | trim + '\n\n' -%}\
{%- set messages = messages[1:] -%}\
{%- endif -%}\
{%- for m in messages -%}\
{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}\
{{ raise_exception('roles must alternate user, assistant, user, ...') }}\
{%- endif -%}\
{%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}\
{{ '<start_of_turn>' + role + '\n' + (sys if loop.first else '') + m['content'] | trim + '<end_of_turn>\n' }}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

fn detect(v: &View) -> bool {
    v.arch == "gemma3"
        && (v.has("gemma3.mm.tokens_per_image")
            || v.has_prefix("v.")
            || v.has_prefix("mm.")
            || v.has("gemma3.rope.global.freq_base")
            || v.has("gemma3.rope.local.freq_base")
            || v.has("tokenizer.ggml.add_padding_token")
            || v.has("tokenizer.ggml.add_unknown_token")
            || !v.has("gemma3.attention.layer_norm_rms_epsilon"))
}

fn apply(v: &mut View) -> Result<(), CompatError> {
    v.copy("gemma3.rope.global.freq_base", "gemma3.rope.freq_base");
    v.copy("gemma3.rope.local.freq_base", "gemma3.rope.freq_base_swa");
    v.inject("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6));
    v.inject("gemma3.rope.freq_base", Value::F32(1_000_000.0));
    v.inject("gemma3.rope.freq_base_swa", Value::F32(10_000.0));
    v.inject("tokenizer.chat_template", s(TEMPLATE));
    if v.u64("gemma3.context_length").is_some_and(|n| n >= 131_072) {
        v.inject("gemma3.rope.scaling.type", s("linear"));
        v.inject("gemma3.rope.scaling.factor", Value::F32(8.0));
    }
    // Deliberately unlike Ollama: Gemma 3's tokenizer adds no dummy prefix, and llama.cpp's
    // converter says so; without the key upstream's SentencePiece path adds a leading space
    // and every prompt tokenizes differently from the model's training.
    v.inject("tokenizer.ggml.add_space_prefix", Value::Bool(false));
    let rows = v
        .tensor("token_embd.weight")
        .map(|t| t.ne(1))
        .ok_or_else(|| View::mismatch("token_embd.weight", "missing"))?;
    let rows =
        usize::try_from(rows).map_err(|_| View::mismatch("token_embd.weight", "too many rows"))?;
    for k in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
    ] {
        v.truncate_array(k, rows);
    }
    v.hide_prefix("v.");
    v.hide_prefix("mm.");
    Ok(())
}
