//! Text-side handlers (spec §5, §6), in Ollama's dispatch order. Each detector tests the
//! architecture string as it stands when its turn comes, so a handler that renames the
//! architecture (embeddinggemma, nemotron_h_omni) decides which later ones run.

mod gemma3;
mod gemma_family;
mod llama;
mod others;
mod qwen;

use super::{CompatError, Handler, Tensor, View};
use crate::gguf::{Array, Value};

/// The text handlers, in dispatch order (spec §3).
pub(crate) const HANDLERS: &[Handler] = &[
    gemma_family::EMBEDDINGGEMMA,
    gemma3::HANDLER,
    gemma_family::SNOWFLAKE,
    gemma_family::GEMMA3N,
    gemma_family::GEMMA4,
    qwen::QWEN35MOE,
    qwen::QWEN35,
    qwen::QWEN3NEXT,
    others::LAGUNA,
    others::GPTOSS,
    others::LFM2,
    others::OLMO3,
    others::MISTRAL3,
    qwen::QWEN25VL,
    qwen::QWEN3VL,
    others::GLM4MOELITE,
    others::DEEPSEEKOCR,
    others::NEMOTRON_H_OMNI,
    others::NEMOTRON_H_MOE,
    llama::LLAMA3,
    llama::SMOLLM,
    others::LLAMA4,
    others::GLMOCR,
];

/// Detectors the clip side can share: it tests the same markers, on the original metadata
/// (spec §3).
#[allow(unused_imports)]
pub(crate) use gemma_family::detect_gemma4;
#[allow(unused_imports)]
pub(crate) use others::{detect_mistral3, detect_nemotron_h_omni};
#[allow(unused_imports)]
pub(crate) use qwen::{detect_qwen35, detect_qwen35moe};

/// Whether `v` is `""`, absent or `default` (an unset pre-tokenizer).
pub(crate) fn unset_pre(v: &super::View) -> bool {
    matches!(
        v.str("tokenizer.ggml.pre"),
        None | Some("") | Some("default")
    )
}

/// The block index `N` of a name `blk.N.…`.
pub(crate) fn blk_index(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("blk.")?;
    let (n, _) = rest.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// One past the largest `blk.N.` index among the view's tensors (0 when there is none).
pub(crate) fn blocks_in_tensors(v: &View) -> u64 {
    v.tensors()
        .iter()
        .filter_map(|t| blk_index(&t.name))
        .max()
        .map_or(0, |n| n.saturating_add(1))
}

/// The blocks a per-block loop visits: the `key`'s value (or `default`), but never past the
/// blocks that have tensors, so a hostile count cannot make the loop run for billions of steps.
pub(crate) fn block_range(v: &View, key: &str, default: u64) -> u64 {
    v.u64(key).unwrap_or(default).min(blocks_in_tensors(v))
}

/// Drops the tensor named exactly `name`, if present.
pub(crate) fn hide_exact(v: &mut View, name: &str) {
    v.retain(name, |t| t.name != name);
}

/// Renames the first dot-separated component equal to `old` in every tensor name to `new`
/// (a whole-component match: `attn_out` does not match inside `attn_output`).
pub(crate) fn rename_component(v: &mut View, old: &str, new: &str) {
    let renames: Vec<(String, String)> = v
        .tensors()
        .iter()
        .filter_map(|t| {
            let mut parts: Vec<&str> = t.name.split('.').collect();
            let at = parts.iter().position(|p| *p == old)?;
            parts[at] = new;
            Some((t.name.clone(), parts.join(".")))
        })
        .collect();
    for (from, to) in renames {
        v.rename(&from, &to);
    }
}

/// An integer array read as i64s (any element width), or `None` for a missing or
/// non-integer key.
pub(crate) fn ints(v: &View, key: &str) -> Option<Vec<i64>> {
    Some(match v.array(key)? {
        Array::U8(x) => x.iter().map(|&e| e.into()).collect(),
        Array::I8(x) => x.iter().map(|&e| e.into()).collect(),
        Array::U16(x) => x.iter().map(|&e| e.into()).collect(),
        Array::I16(x) => x.iter().map(|&e| e.into()).collect(),
        Array::U32(x) => x.iter().map(|&e| e.into()).collect(),
        Array::I32(x) => x.iter().map(|&e| e.into()).collect(),
        Array::U64(x) => x.iter().map(|&e| e as i64).collect(),
        Array::I64(x) => x.clone(),
        _ => return None,
    })
}

/// An i32 array value.
pub(crate) fn i32_array(x: &[i32]) -> Value {
    Value::Array(Array::I32(x.to_vec()))
}

/// `[s0, s1, s2, 0]` as i32 from the first three entries of an integer array `key`, when it
/// has `min..=max` entries that fit i32.
pub(crate) fn sections4(v: &View, key: &str, min: usize, max: usize) -> Option<Value> {
    let s = ints(v, key)?;
    if s.len() < min || s.len() > max {
        return None;
    }
    let c = |i: usize| i32::try_from(s[i]).ok();
    Some(i32_array(&[c(0)?, c(1)?, c(2)?, 0]))
}

/// Replaces an array `key` of per-layer head counts by its maximum as a scalar u32. When
/// every entry is zero the key becomes `zero`, or is left alone when `zero` is `None`.
pub(crate) fn max_head_count_kv(
    v: &mut View,
    key: &str,
    zero: Option<u32>,
) -> Result<(), CompatError> {
    if v.array(key).is_none() {
        return Ok(());
    }
    let max = v
        .u64s(key)
        .ok_or_else(|| CompatError::Key {
            key: key.to_string(),
            reason: "not an integer array".into(),
        })?
        .into_iter()
        .max()
        .unwrap_or(0);
    let max = u32::try_from(max).map_err(|_| CompatError::Key {
        key: key.to_string(),
        reason: format!("head count {max} does not fit u32"),
    })?;
    match (max, zero) {
        (0, None) => {}
        (0, Some(z)) => v.set(key, Value::U32(z)),
        (m, _) => v.set(key, Value::U32(m)),
    }
    Ok(())
}

/// Copies every key under `old` to the same suffix under `new` (the copy rule), except those
/// whose suffix starts with one of `skip`.
pub(crate) fn copy_prefix_except(v: &mut View, old: &str, new: &str, skip: &[&str]) {
    let keys: Vec<String> = v
        .metadata()
        .iter()
        .map(|(k, _)| k)
        .filter(|k| {
            k.strip_prefix(old)
                .is_some_and(|rest| !skip.iter().any(|s| rest.starts_with(s)))
        })
        .cloned()
        .collect();
    for k in keys {
        v.copy(&k, &format!("{new}{}", &k[old.len()..]));
    }
}

/// A dimension as u32 for a key, or a layout error naming the tensor.
pub(crate) fn dim_u32(t: &Tensor, i: usize) -> Result<u32, CompatError> {
    u32::try_from(t.ne(i))
        .map_err(|_| View::mismatch(&t.name, format!("dimension {} does not fit u32", t.ne(i))))
}

/// The tensor `name` with exactly `n` dims, or a layout error.
/// A gate and an up tensor of `n` dims that are to be joined: the same type and dims.
pub(crate) fn gate_up_pair(
    v: &View,
    gate: &str,
    up: &str,
    n: usize,
) -> Result<(Tensor, Tensor), CompatError> {
    let g = tensor_nd(v, gate, n)?.clone();
    let u = tensor_nd(v, up, n)?.clone();
    if g.ggml_type != u.ggml_type {
        let why = format!(
            "type {} where the gate is {}",
            u.ggml_type.name(),
            g.ggml_type.name()
        );
        return Err(View::mismatch(up, why));
    }
    if g.dims != u.dims {
        let why = format!("dims {:?} where the gate has {:?}", u.dims, g.dims);
        return Err(View::mismatch(up, why));
    }
    Ok((g, u))
}

pub(crate) fn tensor_nd<'a>(v: &'a View, name: &str, n: usize) -> Result<&'a Tensor, CompatError> {
    let t = v
        .tensor(name)
        .ok_or_else(|| View::mismatch(name, "missing"))?;
    if t.dims.len() != n {
        return Err(View::mismatch(
            name,
            format!(
                "{}-D where {n}-D is needed (dims {:?})",
                t.dims.len(),
                t.dims
            ),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests;
