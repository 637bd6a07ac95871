//! Clip-side handlers (spec §7): the projector half of a monolithic vision blob, written as
//! its own mmproj GGUF with the `clip.*` metadata upstream's clip loader reads. Detectors run
//! on the blob's original metadata; the first that matches wins, in Ollama's order.
//!
//! The helpers below check every shape and type a rewrite relies on and answer a
//! [`CompatError`] with the reason instead of writing a file upstream would misread.

mod deepseekocr;
mod gemma3;
mod gemma4;
mod glmocr;
mod llama4;
mod mistral3;
mod nemotron;
mod qwen25vl;
mod qwen35;
mod qwen3vl;

use super::{CompatError, Data, Handler, Tensor, View, s};
use crate::gguf::{Array, GgmlType, Value};

/// The clip handlers, in dispatch order (spec §3, "Clip dispatch").
pub(crate) const HANDLERS: &[Handler] = &[
    gemma3::HANDLER,
    qwen35::QWEN35MOE,
    qwen35::QWEN35,
    mistral3::HANDLER,
    deepseekocr::HANDLER,
    nemotron::HANDLER,
    llama4::HANDLER,
    gemma4::HANDLER,
    glmocr::HANDLER,
    qwen25vl::HANDLER,
    qwen3vl::QWEN3VL,
    qwen3vl::QWEN3VLMOE,
];

/// Keeps only `general.*` and `clip.*` keys (the projector file needs no vocabulary) and sets
/// `general.architecture` to `clip`.
pub(crate) fn keep_projector_keys(v: &mut View) {
    v.set_arch("clip");
    v.retain_keys(|k| k.starts_with("general.") || k.starts_with("clip."));
}

/// The LLaVA/BakLLaVA default (§7.12): a clip file with a vision encoder and no projector
/// type gets `clip.projector_type = mlp`.
pub(crate) fn llava_default(v: &mut View) {
    if v.arch == "clip"
        && v.get("clip.has_vision_encoder") == Some(&Value::Bool(true))
        && !v.has("clip.projector_type")
        && !v.has("clip.vision.projector_type")
    {
        v.set("clip.projector_type", s("mlp"));
    }
}

/// The usual clip flags: a vision encoder and the activation.
pub(crate) fn vision_flags(v: &mut View, act: &str) {
    v.inject("clip.has_vision_encoder", Value::Bool(true));
    v.inject(&format!("clip.use_{act}"), Value::Bool(true));
}

/// Copies `<prefix>.<suffix>` to `clip.vision.<suffix>` for each suffix.
pub(crate) fn copy_vision(v: &mut View, prefix: &str, suffixes: &[&str]) {
    for sfx in suffixes {
        v.copy(&format!("{prefix}.{sfx}"), &format!("clip.vision.{sfx}"));
    }
}

/// An f32 array value.
pub(crate) fn f32s(x: &[f32]) -> Value {
    Value::Array(crate::gguf::Array::F32(x.to_vec()))
}

/// The mean and std most projectors use.
pub(crate) const HALF: [f32; 3] = [0.5, 0.5, 0.5];

/// OpenAI CLIP's image mean (§7.5, §7.10).
pub(crate) const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];

/// OpenAI CLIP's image std (§7.5, §7.10).
pub(crate) const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Injects the image mean and std when absent.
pub(crate) fn inject_norm(v: &mut View, mean: [f32; 3], std: [f32; 3]) {
    v.inject("clip.vision.image_mean", f32s(&mean));
    v.inject("clip.vision.image_std", f32s(&std));
}

/// The most blocks a vision or audio tower is believed to have; a larger count is refused so
/// that a hostile header cannot make a handler loop or allocate without bound.
pub(crate) const MAX_BLOCKS: u64 = 4096;

/// An error for a key that is present but unusable.
pub(crate) fn bad_key(key: &str, reason: impl Into<String>) -> CompatError {
    CompatError::Key {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// An unsigned integer key, `default` when absent; an error when present with another type.
pub(crate) fn uint_or(v: &View, key: &str, default: u64) -> Result<u64, CompatError> {
    match v.get(key) {
        None => Ok(default),
        Some(val) => val
            .as_u64()
            .ok_or_else(|| bad_key(key, "not a non-negative integer")),
    }
}

/// A block count: [`uint_or`], refused above [`MAX_BLOCKS`].
pub(crate) fn blocks(v: &View, key: &str, default: u64) -> Result<u64, CompatError> {
    let n = uint_or(v, key, default)?;
    if n > MAX_BLOCKS {
        return Err(bad_key(key, format!("{n} blocks (more than {MAX_BLOCKS})")));
    }
    Ok(n)
}

/// An integer array read entry by entry (positions kept; `None` for a non-integer array).
pub(crate) fn ints(v: &View, key: &str) -> Option<Vec<i64>> {
    fn conv<T: Copy>(x: &[T], f: impl Fn(T) -> Option<i64>) -> Vec<i64> {
        x.iter().map(|&e| f(e).unwrap_or(-1)).collect()
    }
    Some(match v.array(key)? {
        Array::U8(x) => conv(x, |e| Some(e.into())),
        Array::I8(x) => conv(x, |e| Some(e.into())),
        Array::U16(x) => conv(x, |e| Some(e.into())),
        Array::I16(x) => conv(x, |e| Some(e.into())),
        Array::U32(x) => conv(x, |e| Some(e.into())),
        Array::I32(x) => conv(x, |e| Some(e.into())),
        Array::U64(x) => conv(x, |e| i64::try_from(e).ok()),
        Array::I64(x) => x.clone(),
        _ => return None,
    })
}

/// `n` (read from `tensor`) as a u32 key value, or an error naming the tensor.
pub(crate) fn u32_value(tensor: &str, n: u64) -> Result<Value, CompatError> {
    u32::try_from(n)
        .map(Value::U32)
        .map_err(|_| View::mismatch(tensor, format!("{n} does not fit a u32 key")))
}

/// The tensor `name` (a copy), or an error saying it is missing.
pub(crate) fn need(v: &View, name: &str) -> Result<Tensor, CompatError> {
    v.tensor(name)
        .cloned()
        .ok_or_else(|| View::mismatch(name, "missing"))
}

/// Applies substring renames in order (each sees the result of the ones before).
pub(crate) fn renames(v: &mut View, pairs: &[(&str, &str)]) {
    for (from, to) in pairs {
        v.rename_substr(from, to);
    }
}

/// Renames every tensor whose name starts with `old` to start with `new` (a prefix change:
/// unlike a substring rename it never touches the middle of a name).
pub(crate) fn rename_prefix(v: &mut View, old: &str, new: &str) {
    let names: Vec<String> = v
        .tensors()
        .iter()
        .filter(|t| t.name.starts_with(old))
        .map(|t| t.name.clone())
        .collect();
    for n in names {
        v.rename(&n, &format!("{new}{}", &n[old.len()..]));
    }
}

/// Drops the tensor `name` from the output.
pub(crate) fn drop_tensor(v: &mut View, name: &str, why: &str) {
    v.retain(why, |t| t.name != name);
}

/// Whether [`Data::ToF32`] can convert `t`.
pub(crate) fn dequantizable(t: GgmlType) -> bool {
    matches!(
        t,
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0
    )
}

/// `t`'s bytes as F32.
pub(crate) fn as_f32(t: &Tensor) -> Data {
    if t.ggml_type == GgmlType::F32 {
        t.data.clone()
    } else {
        Data::ToF32 {
            from: t.ggml_type,
            data: Box::new(t.data.clone()),
        }
    }
}

/// Widens a half-precision tensor (F16, and unlike Ollama also BF16, which upstream's conv
/// and concat paths do not take either) to F32; other types are left as they are.
pub(crate) fn widen(v: &mut View, name: &str) {
    match v.tensor(name).map(|t| t.ggml_type) {
        Some(GgmlType::F16) => v.promote_f32(name),
        Some(GgmlType::BF16) => {
            let t = v.tensor(name).cloned().expect("checked above");
            v.rewrite(
                name,
                t.dims.clone(),
                GgmlType::F32,
                as_f32(&t),
                "widen BF16 -> F32",
            );
        }
        _ => {}
    }
}

/// The bytes of one row of `t` (`ne0` elements), when `ne0` is a whole number of blocks.
pub(crate) fn row_bytes(t: &Tensor) -> Option<u64> {
    let bs = t.ggml_type.block_size();
    let n0 = t.ne(0);
    n0.is_multiple_of(bs)
        .then(|| n0 / bs * t.ggml_type.type_size())
}

/// How [`merge_qkv`] joins the three projections.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Join {
    /// Bytes one after another, keeping the type (qwen35); when the three types differ the
    /// parts are dequantized to F32 instead (Ollama concatenates them unchecked).
    Bytes,
    /// Each part dequantized to F32, then joined (qwen3vl).
    F32,
}

/// Joins `parts` (same dims, checked by the caller) per `join`: the data and its type.
fn join(parts: &[Tensor], join: Join, what: &str) -> Result<(Data, GgmlType), CompatError> {
    let t0 = parts[0].ggml_type;
    // Unlike Ollama, which byte-concatenates whatever the types are, mixed types go via F32.
    if join == Join::Bytes && parts.iter().all(|p| p.ggml_type == t0) {
        return Ok((
            Data::Concat(parts.iter().map(|p| p.data.clone()).collect()),
            t0,
        ));
    }
    if let Some(p) = parts.iter().find(|p| !dequantizable(p.ggml_type)) {
        return Err(View::mismatch(
            &p.name,
            format!(
                "{what}: type {} cannot be converted to F32 to join it",
                p.ggml_type.name()
            ),
        ));
    }
    Ok((
        Data::Concat(parts.iter().map(as_f32).collect()),
        GgmlType::F32,
    ))
}

/// Merges `v.blk.b.attn_{q,k,v}` into `v.blk.b.attn_qkv` (weight `[ne0, 3·ne1]`, bias
/// `[3·ne0]`) for every block below `n_blocks` that has a Q weight; K and V leave the file.
pub(crate) fn merge_qkv(v: &mut View, n_blocks: u64, how: Join) -> Result<(), CompatError> {
    for b in 0..n_blocks {
        let q = format!("v.blk.{b}.attn_q.weight");
        if v.tensor(&q).is_none() {
            continue;
        }
        let parts = ["q", "k", "v"]
            .iter()
            .map(|p| need(v, &format!("v.blk.{b}.attn_{p}.weight")))
            .collect::<Result<Vec<_>, _>>()?;
        let (n0, n1) = (parts[0].ne(0), parts[0].ne(1));
        for p in &parts {
            if p.dims.len() > 2 || p.ne(0) != n0 || p.ne(1) != n1 {
                return Err(View::mismatch(
                    &p.name,
                    format!("dims {:?}: Q/K/V must all be [{n0}, {n1}]", p.dims),
                ));
            }
        }
        let rows = n1
            .checked_mul(3)
            .ok_or_else(|| View::mismatch(&q, "too many rows"))?;
        let (data, t) = join(&parts, how, "QKV merge")?;
        let qkv = format!("v.blk.{b}.attn_qkv.weight");
        v.rewrite(&q, vec![n0, rows], t, data, "merge Q, K, V");
        v.rename(&q, &qkv);
        for p in ["k", "v"] {
            drop_tensor(
                v,
                &format!("v.blk.{b}.attn_{p}.weight"),
                "merged into attn_qkv",
            );
        }
        let names: Vec<String> = ["q", "k", "v"]
            .iter()
            .map(|p| format!("v.blk.{b}.attn_{p}.bias"))
            .collect();
        let present: Vec<Tensor> = names.iter().filter_map(|n| v.tensor(n).cloned()).collect();
        match present.len() {
            0 => {}
            3 => {
                for p in &present {
                    if p.dims.len() != 1 || p.ne(0) != n1 {
                        return Err(View::mismatch(
                            &p.name,
                            format!("dims {:?}: a Q/K/V bias must be [{n1}]", p.dims),
                        ));
                    }
                }
                let (data, t) = join(&present, how, "QKV bias merge")?;
                v.rewrite(&names[0], vec![rows], t, data, "merge Q, K, V biases");
                v.rename(&names[0], &format!("v.blk.{b}.attn_qkv.bias"));
                for n in &names[1..] {
                    drop_tensor(v, n, "merged into attn_qkv");
                }
            }
            _ => {
                return Err(View::mismatch(
                    &names[0],
                    "some but not all of the Q/K/V biases exist",
                ));
            }
        }
    }
    Ok(())
}

/// Splits the Qwen-VL patch embedding `v.patch_embed.weight` `[W, H, 2, P]` into two F32
/// time slices `v.patch_embd.weight` and `v.patch_embd.weight.1`, each `[W, H, C, P/C]`:
/// output plane `c + C·o` of slice `t` is source plane `t + 2·(o·C + c)` (spec §7.2).
///
/// Ollama requires F16; BF16 and F32 sources (one element per block, so planes are whole)
/// are split the same way.
pub(crate) fn split_patch(v: &mut View, channels: u64) -> Result<(), CompatError> {
    const SRC: &str = "v.patch_embed.weight";
    let Some(t) = v.tensor(SRC).cloned() else {
        if v.tensor("v.patch_embd.weight").is_some() {
            return Ok(());
        }
        return Err(View::mismatch(SRC, "missing (no patch embedding)"));
    };
    let (w, h, time, p) = (t.ne(0), t.ne(1), t.ne(2), t.ne(3));
    if t.dims.len() > 4 || time != 2 {
        return Err(View::mismatch(
            SRC,
            format!("dims {:?}: expected [W, H, 2, P]", t.dims),
        ));
    }
    if !matches!(t.ggml_type, GgmlType::F16 | GgmlType::BF16 | GgmlType::F32) {
        return Err(View::mismatch(
            SRC,
            format!("type {}: expected F16", t.ggml_type.name()),
        ));
    }
    if channels == 0 || !p.is_multiple_of(channels) {
        return Err(View::mismatch(
            SRC,
            format!("{p} output planes do not divide into {channels} channels"),
        ));
    }
    let plane = w * h * t.ggml_type.type_size();
    let dims = vec![w, h, channels, p / channels];
    let slice = |k: u64| Data::ToF32 {
        from: t.ggml_type,
        data: Box::new(Data::Planes {
            data: Box::new(t.data.clone()),
            plane,
            order: (0..p).map(|i| k + 2 * i).collect(),
        }),
    };
    let slice1 = slice(1);
    v.rewrite(
        SRC,
        dims.clone(),
        GgmlType::F32,
        slice(0),
        "split patch embedding (time slice 0)",
    );
    v.rename(SRC, "v.patch_embd.weight");
    v.add_tensor(Tensor {
        name: "v.patch_embd.weight.1".into(),
        dims,
        ggml_type: GgmlType::F32,
        data: slice1,
    });
    Ok(())
}

#[cfg(test)]
mod tests;
