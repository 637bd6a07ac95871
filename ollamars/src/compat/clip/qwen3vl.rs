//! qwen3vl and qwen3vlmoe clip (spec §7.3): separate attention projections of mixed types
//! (F16 and Q8_0), the two-slice patch embedding, and the deepstack mergers under Ollama's
//! names.

use super::{
    HALF, Join, blocks, copy_vision, ints, merge_qkv, need, renames, split_patch, uint_or,
    vision_flags,
};
use crate::compat::{CompatError, Handler, View, s};
use crate::gguf::{Array, Value};

pub(crate) const QWEN3VL: Handler = Handler {
    name: "qwen3vl",
    detect: detect_dense,
    apply,
};

pub(crate) const QWEN3VLMOE: Handler = Handler {
    name: "qwen3vlmoe",
    detect: detect_moe,
    apply,
};

/// The text side's detector (§6.8): the arch and no `rope.dimension_sections`.
fn detect_for(v: &View, a: &str) -> bool {
    v.arch == a && !v.has(&format!("{a}.rope.dimension_sections"))
}

fn detect_dense(v: &View) -> bool {
    detect_for(v, "qwen3vl")
}

fn detect_moe(v: &View) -> bool {
    detect_for(v, "qwen3vlmoe")
}

fn apply(v: &mut View) -> Result<(), CompatError> {
    let a = v.arch.clone();
    let p = format!("{a}.vision");
    copy_vision(
        v,
        &p,
        &[
            "attention.head_count",
            "block_count",
            "embedding_length",
            "num_channels",
            "patch_size",
            "spatial_merge_size",
            "temporal_patch_size",
            "attention.layer_norm_epsilon",
            "rope.freq_base",
        ],
    );
    v.copy(
        &format!("{a}.embedding_length"),
        "clip.vision.projection_dim",
    );
    v.inject("clip.vision.num_channels", Value::U32(3));
    v.inject("clip.vision.temporal_patch_size", Value::U32(2));
    v.inject("clip.vision.rope.freq_base", Value::F32(10_000.0));
    // Not in Ollama's list: upstream requires the key, and Qwen3-VL's tower uses 1e-6.
    v.inject("clip.vision.attention.layer_norm_epsilon", Value::F32(1e-6));
    if !v.has("clip.vision.feed_forward_length") {
        let fc1 = need(v, "v.blk.0.mlp.linear_fc1.weight")?;
        v.set(
            "clip.vision.feed_forward_length",
            super::u32_value(&fc1.name, fc1.ne(1))?,
        );
    }
    if !v.has("clip.vision.image_size")
        && let Some(patch) = v.u64("clip.vision.patch_size")
    {
        let pos = need(v, "v.pos_embed.weight")?;
        let side = pos.ne(1).isqrt();
        let size = side
            .checked_mul(patch)
            .ok_or_else(|| View::mismatch(&pos.name, "image size overflows"))?;
        v.set("clip.vision.image_size", super::u32_value(&pos.name, size)?);
    }
    v.copy(&format!("{p}.image_mean"), "clip.vision.image_mean");
    v.copy(&format!("{p}.image_std"), "clip.vision.image_std");
    v.copy(
        &format!("{p}.shortest_edge"),
        "clip.vision.image_min_pixels",
    );
    v.copy(&format!("{p}.longest_edge"), "clip.vision.image_max_pixels");
    v.inject("clip.vision.image_min_pixels", Value::U32(65_536));
    v.inject("clip.vision.image_max_pixels", Value::U32(16_777_216));
    super::inject_norm(v, HALF, HALF);
    let n = blocks(v, "clip.vision.block_count", 0)?;
    let key = format!("{p}.deepstack_visual_indexes");
    let deepstack = match v.get(&key) {
        None => Vec::new(),
        Some(_) => {
            let d = ints(v, &key).ok_or_else(|| super::bad_key(&key, "not an integer array"))?;
            if d.len() as u64 > super::MAX_BLOCKS {
                return Err(super::bad_key(&key, format!("{} entries", d.len())));
            }
            d
        }
    };
    if !v.has("clip.vision.is_deepstack_layers") {
        let mut flags = vec![false; n as usize];
        for &d in &deepstack {
            if let Some(f) = usize::try_from(d).ok().and_then(|i| flags.get_mut(i)) {
                *f = true;
            }
        }
        v.set(
            "clip.vision.is_deepstack_layers",
            Value::Array(Array::Bool(flags)),
        );
    }
    vision_flags(v, "gelu");
    v.set("clip.projector_type", s("qwen3vl_merger"));

    merge_qkv(v, blocks(v, "clip.vision.block_count", 27)?, Join::F32)?;
    split_patch(v, uint_or(v, &format!("{p}.num_channels"), 3)?)?;
    for (from, to) in [
        ("v.merger.norm.weight", "v.post_ln.weight"),
        ("v.merger.norm.bias", "v.post_ln.bias"),
        ("v.merger.linear_fc1.weight", "mm.0.weight"),
        ("v.merger.linear_fc1.bias", "mm.0.bias"),
        ("v.merger.linear_fc2.weight", "mm.2.weight"),
        ("v.merger.linear_fc2.bias", "mm.2.bias"),
        ("v.patch_embed.bias", "v.patch_embd.bias"),
        ("v.pos_embed.weight", "v.position_embd.weight"),
    ] {
        v.rename(from, to);
    }
    for (i, &d) in deepstack.iter().enumerate() {
        if d < 0 {
            continue;
        }
        for (old, new) in [
            ("norm", "norm"),
            ("linear_fc1", "fc1"),
            ("linear_fc2", "fc2"),
        ] {
            for w in ["weight", "bias"] {
                v.rename(
                    &format!("v.deepstack_merger.{i}.{old}.{w}"),
                    &format!("v.deepstack.{d}.{new}.{w}"),
                );
            }
        }
    }
    renames(
        v,
        &[
            (".norm1", ".ln1"),
            (".norm2", ".ln2"),
            (".mlp.linear_fc1", ".ffn_up"),
            (".mlp.linear_fc2", ".ffn_down"),
        ],
    );
    super::widen(v, "v.position_embd.weight");
    Ok(())
}
