//! Tiny GGUF models for tests (here and in the end-to-end tests of the `ollamars` binary).
//! Not part of the supported API.

use super::{GgmlType, GgufWriter, Value};

const N_EMBD: u64 = 256;
const N_VOCAB: u64 = 32;

/// Half-precision bits of a small float (normal range, mantissa truncated).
fn f16_bits(x: f32) -> u16 {
    if x == 0.0 {
        return 0;
    }
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let mant = ((b >> 13) & 0x3ff) as u16;
    sign | ((exp.clamp(1, 30) as u16) << 10) | mant
}

fn weights(n: u64, t: GgmlType, seed: u64) -> Vec<u8> {
    let val = |i: u64| (((i * 7919 + seed * 104729) % 257) as f32 - 128.0) / 512.0;
    match t {
        GgmlType::F32 => (0..n).flat_map(|i| val(i).to_le_bytes()).collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|i| f16_bits(val(i)).to_le_bytes())
            .collect(),
        other => panic!("no weights for {other:?}"),
    }
}

/// A tiny but complete one-layer llama model with tensors of type `t`, which llama.cpp can
/// quantize.
pub fn tiny_llama(t: GgmlType, file_type: u32, chat_template: Option<&str>) -> Vec<u8> {
    let s = |x: &str| Value::String(x.into());
    let mut w = GgufWriter::new()
        .kv("general.architecture", s("llama"))
        .kv("general.name", s("tiny"))
        .kv("general.file_type", Value::U32(file_type))
        .kv("llama.context_length", Value::U32(128))
        .kv("llama.embedding_length", Value::U32(N_EMBD as u32))
        .kv("llama.block_count", Value::U32(1))
        .kv("llama.feed_forward_length", Value::U32(N_EMBD as u32))
        .kv("llama.attention.head_count", Value::U32(4))
        .kv("llama.attention.head_count_kv", Value::U32(4))
        .kv("llama.rope.dimension_count", Value::U32(64))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("llama.vocab_size", Value::U32(N_VOCAB as u32));
    if let Some(ct) = chat_template {
        w = w.kv("tokenizer.chat_template", s(ct));
    }
    let mut seed = 0;
    let mut mat = |w: GgufWriter, name: &str, dims: &[u64]| {
        seed += 1;
        let n = dims.iter().product();
        w.tensor(name, dims, t, weights(n, t, seed))
    };
    let norm = |w: GgufWriter, name: &str| {
        w.tensor(
            name,
            &[N_EMBD],
            GgmlType::F32,
            weights(N_EMBD, GgmlType::F32, 99),
        )
    };
    w = mat(w, "token_embd.weight", &[N_EMBD, N_VOCAB]);
    w = norm(w, "output_norm.weight");
    w = mat(w, "output.weight", &[N_EMBD, N_VOCAB]);
    w = norm(w, "blk.0.attn_norm.weight");
    for n in [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ] {
        w = mat(w, &format!("blk.0.{n}.weight"), &[N_EMBD, N_EMBD]);
    }
    w = norm(w, "blk.0.ffn_norm.weight");
    w.to_bytes()
}
