//! llama (spec §5.6): Llama 3 blobs whose pre-tokenizer is unset or whose end-of-sequence id
//! is the base model's 128001 (they load, then tokenize or stop wrongly). And one repair of
//! ollamars's own: SmolLM's vocabulary written with pre-tokenizer `default`.

use crate::compat::{CompatError, Handler, View, s};
use crate::gguf::{Array, Value};

use super::unset_pre;

pub(crate) const LLAMA3: Handler = Handler {
    name: "llama3",
    detect: detect_llama3,
    apply: apply_llama3,
};

pub(crate) const SMOLLM: Handler = Handler {
    name: "smollm-pretokenizer",
    detect: detect_smollm,
    apply: apply_smollm,
};

const EOT: u64 = 128_009;
const BASE_EOS: u64 = 128_001;

fn eos_is(v: &View, key: &str, want: u64) -> bool {
    v.u64(key) == Some(want)
}

fn detect_llama3(v: &View) -> bool {
    if v.arch != "llama" || v.token(EOT as usize) != Some("<|eot_id|>") {
        return false;
    }
    let template = v.str("tokenizer.chat_template").unwrap_or("");
    let marked = v.token(128_006) == Some("<|start_header_id|>")
        || template.contains("<|start_header_id|>")
        || template.contains("<|eot_id|>");
    marked && (unset_pre(v) || eos_is(v, "tokenizer.ggml.eos_token_id", BASE_EOS))
}

fn apply_llama3(v: &mut View) -> Result<(), CompatError> {
    if unset_pre(v) {
        v.set("tokenizer.ggml.pre", s("llama-bpe"));
    }
    for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
        let id = v.u64(key);
        if id.is_none() || id == Some(BASE_EOS) {
            v.set(key, Value::U32(EOT as u32));
        }
    }
    v.set(
        "tokenizer.ggml.eos_token_ids",
        Value::Array(Array::I32(vec![EOT as i32])),
    );
    Ok(())
}

/// SmolLM (1 and 2) share one BPE vocabulary of 49152 entries that starts with these three
/// control tokens; llama.cpp's converter names its pre-tokenizer `smollm` (every digit split
/// on its own, as the model was trained). Ollama's converter finds no split regex in its
/// tokenizer JSON and writes `default`, which keeps digit runs together: a deliberate
/// difference from Ollama, which leaves `default`.
fn detect_smollm(v: &View) -> bool {
    v.arch == "llama"
        && unset_pre(v)
        && matches!(v.array("tokenizer.ggml.tokens"), Some(a) if a.len() == 49_152)
        && v.token(0) == Some("<|endoftext|>")
        && v.token(1) == Some("<|im_start|>")
        && v.token(2) == Some("<|im_end|>")
}

fn apply_smollm(v: &mut View) -> Result<(), CompatError> {
    v.set("tokenizer.ggml.pre", s("smollm"));
    Ok(())
}
