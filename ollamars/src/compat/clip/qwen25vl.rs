//! qwen25vl clip (spec §7.10): Qwen2.5-VL's windowed-attention tower.

use super::{CLIP_MEAN, CLIP_STD, copy_vision, ints, vision_flags, widen};
use crate::compat::{CompatError, Handler, View, s};
use crate::gguf::Value;

pub(crate) const HANDLER: Handler = Handler {
    name: "qwen25vl",
    detect,
    apply,
};

/// The text side's detector (§6.7): the arch alone.
fn detect(v: &View) -> bool {
    v.arch == "qwen25vl"
}

fn apply(v: &mut View) -> Result<(), CompatError> {
    copy_vision(
        v,
        "qwen25vl.vision",
        &[
            "attention.head_count",
            "block_count",
            "embedding_length",
            "num_channels",
            "patch_size",
            "spatial_merge_size",
            "window_size",
            "attention.layer_norm_epsilon",
        ],
    );
    v.copy("qwen25vl.embedding_length", "clip.vision.projection_dim");
    if !v.has("clip.vision.feed_forward_length")
        && let Some(up) = v.tensor("v.blk.0.ffn_up.weight")
    {
        let ff = super::u32_value(&up.name, up.ne(1))?;
        v.set("clip.vision.feed_forward_length", ff);
    }
    let key = "qwen25vl.vision.fullatt_block_indexes";
    match ints(v, key).and_then(|x| x.first().copied()) {
        Some(first) => {
            let p = u32::try_from(first)
                .ok()
                .and_then(|x| x.checked_add(1))
                .ok_or_else(|| super::bad_key(key, format!("first entry {first}")))?;
            v.set("clip.vision.n_wa_pattern", Value::U32(p));
        }
        None => v.inject("clip.vision.n_wa_pattern", Value::U32(8)),
    }
    v.inject("clip.vision.image_size", Value::U32(560));
    // Not in Ollama's list: upstream requires the key, and Qwen2.5-VL's tower uses 1e-6.
    v.inject("clip.vision.attention.layer_norm_epsilon", Value::F32(1e-6));
    super::inject_norm(v, CLIP_MEAN, CLIP_STD);
    vision_flags(v, "silu");
    v.set("clip.projector_type", s("qwen2.5vl_merger"));
    for (from, to) in [
        ("v.merger.ln_q.weight", "v.post_ln.weight"),
        ("v.merger.mlp.0.weight", "mm.0.weight"),
        ("v.merger.mlp.0.bias", "mm.0.bias"),
        ("v.merger.mlp.2.weight", "mm.2.weight"),
        ("v.merger.mlp.2.bias", "mm.2.bias"),
        ("v.patch_embd_0.weight", "v.patch_embd.weight"),
        ("v.patch_embd_1.weight", "v.patch_embd.weight.1"),
    ] {
        v.rename(from, to);
    }
    widen(v, "v.patch_embd.weight");
    widen(v, "v.patch_embd.weight.1");
    Ok(())
}
