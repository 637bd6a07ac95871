//! qwen35 and qwen35moe clip (spec §7.2): a Qwen3-VL style vision tower whose attention
//! projections are separate and whose patch embedding still has its two time slices in one
//! tensor.

use super::{
    HALF, Join, blocks, copy_vision, inject_norm, merge_qkv, renames, split_patch, uint_or,
    vision_flags,
};
use crate::compat::{CompatError, Handler, View, s};
use crate::gguf::{Array, Value};

pub(crate) const QWEN35MOE: Handler = Handler {
    name: "qwen35moe",
    detect: detect_moe,
    apply,
};

pub(crate) const QWEN35: Handler = Handler {
    name: "qwen35",
    detect: detect_dense,
    apply,
};

/// The text side's detector (§6.6) for arch `a`.
fn detect_for(v: &View, a: &str) -> bool {
    v.arch == a
        && ([
            "vision.block_count",
            "image_token_id",
            "ssm.v_head_reordered",
            "rope.mrope_interleaved",
        ]
        .iter()
        .any(|k| v.has(&format!("{a}.{k}")))
            || (a == "qwen35moe" && v.has("qwen35moe.feed_forward_length"))
            || v.has_prefix("mtp.")
            || v.has_prefix("v."))
}

fn detect_moe(v: &View) -> bool {
    detect_for(v, "qwen35moe")
}

fn detect_dense(v: &View) -> bool {
    detect_for(v, "qwen35")
}

fn apply(v: &mut View) -> Result<(), CompatError> {
    let a = v.arch.clone();
    copy_vision(
        v,
        &format!("{a}.vision"),
        &[
            "block_count",
            "embedding_length",
            "attention.head_count",
            "patch_size",
            "spatial_merge_size",
            "num_channels",
        ],
    );
    v.copy(
        &format!("{a}.embedding_length"),
        "clip.vision.projection_dim",
    );
    v.inject("clip.vision.feed_forward_length", Value::U32(4304));
    v.inject("clip.vision.image_size", Value::U32(768));
    v.inject("clip.vision.attention.layer_norm_epsilon", Value::F32(1e-6));
    inject_norm(v, HALF, HALF);
    let n = blocks(v, "clip.vision.block_count", 0)?;
    if n > 0 && !v.has("clip.vision.is_deepstack_layers") {
        v.set(
            "clip.vision.is_deepstack_layers",
            Value::Array(Array::Bool(vec![false; n as usize])),
        );
    }
    vision_flags(v, "gelu");
    v.set("clip.projector_type", s("qwen3vl_merger"));

    let merge_blocks = blocks(v, "clip.vision.block_count", 27)?;
    merge_qkv(v, merge_blocks, Join::Bytes)?;
    split_patch(v, uint_or(v, "clip.vision.num_channels", 3)?)?;
    renames(
        v,
        &[
            ("v.pos_embed", "v.position_embd"),
            ("v.patch_embed", "v.patch_embd"),
            ("v.merger.norm", "v.post_ln"),
            ("v.merger.linear_fc1", "mm.0"),
            ("v.merger.linear_fc2", "mm.2"),
            (".mlp.linear_fc1", ".ffn_up"),
            (".mlp.linear_fc2", ".ffn_down"),
            (".norm1", ".ln1"),
            (".norm2", ".ln2"),
        ],
    );
    super::widen(v, "v.position_embd.weight");
    Ok(())
}
