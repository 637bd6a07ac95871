//! llama4 clip (spec §7.8): keys and names only; the tensor bytes are copied as they are.

use super::{HALF, bad_key, copy_vision, inject_norm, renames, vision_flags};
use crate::compat::{CompatError, Handler, View, s};
use crate::gguf::Value;

pub(crate) const HANDLER: Handler = Handler {
    name: "llama4",
    detect,
    apply,
};

/// The text side's detector (§6.12).
fn detect(v: &View) -> bool {
    v.arch == "llama4" && (v.has_prefix("v.") || v.has_prefix("mm."))
}

/// `round(1 / ratio)`, 2 when the ratio is absent, not positive or rounds to 0.
pub(crate) fn scale_factor(ratio: Option<f32>) -> Result<u32, CompatError> {
    let Some(r) = ratio.filter(|r| *r > 0.0) else {
        return Ok(2);
    };
    let f = (1.0 / f64::from(r)).round();
    if f < 1.0 {
        return Ok(2);
    }
    if !f.is_finite() || f >= 65_536.0 {
        return Err(bad_key(
            "llama4.vision.pixel_shuffle_ratio",
            format!("{r} gives a merge factor upstream refuses"),
        ));
    }
    Ok(f as u32)
}

fn apply(v: &mut View) -> Result<(), CompatError> {
    copy_vision(
        v,
        "llama4.vision",
        &[
            "block_count",
            "embedding_length",
            "feed_forward_length",
            "attention.head_count",
            "image_size",
            "patch_size",
        ],
    );
    v.copy(
        "llama4.vision.layer_norm_epsilon",
        "clip.vision.attention.layer_norm_epsilon",
    );
    v.copy("llama4.embedding_length", "clip.vision.projection_dim");
    let f = scale_factor(v.f32("llama4.vision.pixel_shuffle_ratio"))?;
    v.inject("clip.vision.projector.scale_factor", Value::U32(f));
    inject_norm(v, HALF, HALF);
    vision_flags(v, "gelu");
    v.set("clip.projector_type", s("llama4"));
    v.set("clip.vision.projector_type", s("llama4"));

    v.rename("v.positional_embedding_vlm", "v.position_embd.weight");
    renames(
        v,
        &[
            ("v.vision_adapter.mlp.fc1", "mm.model.mlp.1"),
            ("v.vision_adapter.mlp.fc2", "mm.model.mlp.2"),
            ("mm.linear_1", "mm.model.fc"),
            ("v.class_embedding", "v.class_embd"),
            ("v.layernorm_post", "v.post_ln"),
            ("v.layernorm_pre", "v.pre_ln"),
            ("v.patch_embedding", "v.patch_embd"),
            (".attn_output", ".attn_out"),
            (".attn_norm", ".ln1"),
            (".ffn_norm", ".ln2"),
            (".mlp.fc1", ".ffn_up"),
            (".mlp.fc2", ".ffn_down"),
        ],
    );
    Ok(())
}
