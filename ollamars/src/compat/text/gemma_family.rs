//! The Gemma family beyond gemma3, and one BERT tokenizer fix: embeddinggemma (spec §5.2),
//! snowflake-arctic-embed2 (§5.3), gemma3n (§5.4) and gemma4 (§5.5).

use super::{block_range, dim_u32, gate_up_pair, hide_exact, tensor_nd};
use crate::compat::{CompatError, Data, Handler, View, s};
use crate::gguf::{Array, Value};

pub(crate) const EMBEDDINGGEMMA: Handler = Handler {
    name: "embeddinggemma",
    detect: detect_embeddinggemma,
    apply: apply_embeddinggemma,
};

pub(crate) const SNOWFLAKE: Handler = Handler {
    name: "bert-charsmap",
    detect: detect_snowflake,
    apply: apply_snowflake,
};

pub(crate) const GEMMA3N: Handler = Handler {
    name: "gemma3n",
    detect: detect_gemma3n,
    apply: apply_gemma3n,
};

pub(crate) const GEMMA4: Handler = Handler {
    name: "gemma4",
    detect: detect_gemma4,
    apply: apply_gemma4,
};

// --- embeddinggemma -------------------------------------------------------------------------

fn detect_embeddinggemma(v: &View) -> bool {
    v.arch == "gemma3" && v.tensor("dense.0.weight").is_some()
}

fn apply_embeddinggemma(v: &mut View) -> Result<(), CompatError> {
    let d2 = tensor_nd(v, "dense.0.weight", 2)?;
    let d2 = (dim_u32(d2, 0)?, dim_u32(d2, 1)?);
    let d3 = match v.tensor("dense.1.weight") {
        Some(_) => {
            let t = tensor_nd(v, "dense.1.weight", 2)?;
            Some((dim_u32(t, 0)?, dim_u32(t, 1)?))
        }
        None => None,
    };
    v.set_arch("gemma-embedding");
    v.copy_prefix("gemma3.", "gemma-embedding.");
    v.remove("gemma-embedding.attention.causal");
    v.remove("gemma-embedding.attention.sliding_window_pattern");
    v.inject("gemma-embedding.rope.freq_base_swa", Value::F32(10_000.0));
    v.set("gemma-embedding.dense_2_feat_in", Value::U32(d2.0));
    v.set("gemma-embedding.dense_2_feat_out", Value::U32(d2.1));
    if let Some((i, o)) = d3 {
        v.set("gemma-embedding.dense_3_feat_in", Value::U32(i));
        v.set("gemma-embedding.dense_3_feat_out", Value::U32(o));
    }
    v.rename("dense.0.weight", "dense_2.weight");
    v.rename("dense.1.weight", "dense_3.weight");
    v.rename("norm.weight", "output_norm.weight");
    Ok(())
}

// --- snowflake-arctic-embed2 ----------------------------------------------------------------

const CHARSMAP: &str = "tokenizer.ggml.precompiled_charsmap";

fn detect_snowflake(v: &View) -> bool {
    v.arch == "bert"
        && v.str("tokenizer.ggml.model") == Some("t5")
        && matches!(v.array(CHARSMAP), Some(Array::String(_)))
}

fn apply_snowflake(v: &mut View) -> Result<(), CompatError> {
    let Some(Array::String(parts)) = v.array(CHARSMAP) else {
        return Ok(());
    };
    if parts.iter().any(|p| p.len() != 1) {
        return Ok(());
    }
    let text: String = parts.concat();
    if let Some(bytes) = decode_base64(&text).filter(|b| !b.is_empty()) {
        v.set(CHARSMAP, Value::Array(Array::U8(bytes)));
    }
    Ok(())
}

/// Standard-alphabet base64, decoding up to the first `=`; `None` for any other character.
/// Bits left over after the last whole byte are dropped.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(d);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// --- gemma3n --------------------------------------------------------------------------------

fn detect_gemma3n(v: &View) -> bool {
    v.arch == "gemma3n"
        && match (
            v.tensor("token_embd.weight"),
            v.tensor("per_layer_token_embd.weight"),
        ) {
            (Some(a), Some(b)) => a.ne(1) != b.ne(1),
            _ => false,
        }
}

fn apply_gemma3n(v: &mut View) -> Result<(), CompatError> {
    let vocab = tensor_nd(v, "per_layer_token_embd.weight", 2)?.ne(1);
    let embd = tensor_nd(v, "token_embd.weight", 2)?.clone();
    if vocab > embd.ne(1) {
        return Err(View::mismatch(
            "token_embd.weight",
            format!(
                "{} rows, fewer than the {vocab} of per_layer_token_embd.weight",
                embd.ne(1)
            ),
        ));
    }
    let row = embd
        .expected_len()
        .filter(|&n| n == embd.data.len())
        .map(|n| n / embd.ne(1))
        .ok_or_else(|| View::mismatch("token_embd.weight", "size does not match its dims"))?;
    let n = usize::try_from(vocab).map_err(|_| View::mismatch("token_embd.weight", "too big"))?;
    v.set("tokenizer.ggml.model", s("llama"));
    for k in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
    ] {
        v.truncate_array(k, n);
    }
    fix_token_types(v);
    match v.array("tokenizer.ggml.eos_token_ids") {
        None => v.set(
            "tokenizer.ggml.eos_token_ids",
            Value::Array(Array::I32(vec![1, 106])),
        ),
        Some(Array::I32(ids)) if !ids.contains(&106) => {
            let mut ids = ids.clone();
            ids.push(106);
            v.set(
                "tokenizer.ggml.eos_token_ids",
                Value::Array(Array::I32(ids)),
            );
        }
        Some(Array::U32(ids)) if !ids.contains(&106) => {
            let mut ids = ids.clone();
            ids.push(106);
            v.set(
                "tokenizer.ggml.eos_token_ids",
                Value::Array(Array::U32(ids)),
            );
        }
        _ => {}
    }
    let (ne0, ty) = (embd.ne(0), embd.ggml_type);
    let data = match embd.data {
        Data::Src { offset, .. } => Data::src(offset, row * vocab),
        other => Data::Planes {
            data: Box::new(other),
            plane: row,
            order: (0..vocab).collect(),
        },
    };
    v.rewrite(
        "token_embd.weight",
        vec![ne0, vocab],
        ty,
        data,
        &format!("keep the first {vocab} rows"),
    );
    Ok(())
}

/// Byte tokens (`<0xNN>`) get type 6 and `<unused…>` tokens type 1.
fn fix_token_types(v: &mut View) {
    let Some(Array::String(tokens)) = v.array("tokenizer.ggml.tokens") else {
        return;
    };
    let want = |t: &str| {
        if t.len() == 6 && t.starts_with("<0x") && t.ends_with('>') {
            Some(6)
        } else if t.starts_with("<unused") {
            Some(1)
        } else {
            None
        }
    };
    let wanted: Vec<Option<i64>> = tokens.iter().map(|t| want(t)).collect();
    let new = match v.array("tokenizer.ggml.token_type") {
        Some(Array::I32(types)) => Array::I32(
            types
                .iter()
                .zip(wanted.iter().chain(std::iter::repeat(&None)))
                .map(|(&t, w)| w.map_or(t, |w| w as i32))
                .collect(),
        ),
        Some(Array::U32(types)) => Array::U32(
            types
                .iter()
                .zip(wanted.iter().chain(std::iter::repeat(&None)))
                .map(|(&t, w)| w.map_or(t, |w| w as u32))
                .collect(),
        ),
        _ => return,
    };
    v.set("tokenizer.ggml.token_type", Value::Array(new));
}

// --- gemma4 ---------------------------------------------------------------------------------

const GEMMA4_HIDDEN: [&str; 4] = ["a.", "v.", "mm.", "model.vision_tower."];

/// gemma4 in Ollama's layout (also the clip side's detector).
pub(crate) fn detect_gemma4(v: &View) -> bool {
    v.arch == "gemma4"
        && (GEMMA4_HIDDEN.iter().any(|p| v.has_prefix(p))
            || v.str("tokenizer.ggml.model") == Some("llama"))
}

fn apply_gemma4(v: &mut View) -> Result<(), CompatError> {
    if v.str("tokenizer.ggml.model") == Some("llama") {
        v.set("tokenizer.ggml.model", s("gemma4"));
    }
    for p in GEMMA4_HIDDEN {
        v.hide_prefix(p);
    }
    for b in 0..block_range(v, "gemma4.block_count", 0) {
        fuse_experts(v, b)?;
        v.rename(
            &format!("blk.{b}.ffn_gate_inp.per_expert_scale"),
            &format!("blk.{b}.ffn_down_exps.scale"),
        );
    }
    Ok(())
}

/// Block `b`'s separate expert gate and up projections fused into one tensor, each expert's
/// gate rows followed by its up rows.
fn fuse_experts(v: &mut View, b: u64) -> Result<(), CompatError> {
    let gate = format!("blk.{b}.ffn_gate_exps.weight");
    let up = format!("blk.{b}.ffn_up_exps.weight");
    let fused = format!("blk.{b}.ffn_gate_up_exps.weight");
    let sidecar = ["gate", "up"].iter().any(|p| {
        ["scale", "input_scale"]
            .iter()
            .any(|s| v.tensor(&format!("blk.{b}.ffn_{p}_exps.{s}")).is_some())
    });
    if sidecar || v.tensor(&gate).is_none() || v.tensor(&up).is_none() || v.tensor(&fused).is_some()
    {
        return Ok(());
    }
    let (g, u) = gate_up_pair(v, &gate, &up, 3)?;
    let n_exp = g.ne(2);
    if g.data.len() != u.data.len() || g.data.len() % n_exp != 0 {
        return Err(View::mismatch(
            &gate,
            format!("{} bytes do not split into {n_exp} experts", g.data.len()),
        ));
    }
    let ff2 = g
        .ne(1)
        .checked_mul(2)
        .ok_or_else(|| View::mismatch(&gate, "too many rows"))?;
    v.rename(&gate, &fused);
    v.rewrite(
        &fused,
        vec![g.ne(0), ff2, n_exp],
        g.ggml_type,
        Data::Interleave {
            parts: vec![g.data, u.data],
            n: n_exp,
        },
        "fuse expert gate and up",
    );
    hide_exact(v, &up);
    Ok(())
}
