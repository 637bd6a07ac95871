//! deepseekocr clip (spec §7.4): a SAM encoder under `s.` and a CLIP ViT under `v.`, both
//! with Ollama's names.

use super::{HALF, copy_vision, inject_norm, rename_prefix, renames, vision_flags, widen};
use crate::compat::{CompatError, Handler, View, s};
use crate::gguf::Value;

pub(crate) const HANDLER: Handler = Handler {
    name: "deepseekocr",
    detect,
    apply,
};

/// The text side's detector (§6.10): the arch alone.
fn detect(v: &View) -> bool {
    v.arch == "deepseekocr"
}

fn apply(v: &mut View) -> Result<(), CompatError> {
    copy_vision(
        v,
        "deepseekocr.vision",
        &[
            "block_count",
            "embedding_length",
            "image_size",
            "patch_size",
        ],
    );
    v.copy(
        "deepseekocr.vision.head_count",
        "clip.vision.attention.head_count",
    );
    for k in ["block_count", "embedding_length", "head_count"] {
        v.copy(
            &format!("deepseekocr.sam.{k}"),
            &format!("clip.vision.sam.{k}"),
        );
    }
    v.inject("clip.vision.feed_forward_length", Value::U32(64));
    v.inject("clip.vision.projection_dim", Value::U32(1280));
    v.inject("clip.vision.projector.scale_factor", Value::U32(1));
    v.inject("clip.vision.window_size", Value::U32(14));
    v.inject("clip.vision.attention.layer_norm_epsilon", Value::F32(1e-6));
    inject_norm(v, HALF, HALF);
    vision_flags(v, "gelu");
    v.set("clip.projector_type", s("deepseekocr"));

    rename_prefix(v, "s.", "v.sam.");
    v.rename("v.sam.position_embd", "v.sam.pos_embd.weight");
    renames(
        v,
        &[
            (".self_attn.out_proj", ".attn_out"),
            (".self_attn.qkv_proj", ".attn_qkv"),
            (".layer_norm1", ".ln1"),
            (".layer_norm2", ".ln2"),
            (".mlp.fc1", ".ffn_up"),
            (".mlp.fc2", ".ffn_down"),
            ("v.pre_layrnorm", "v.pre_ln"),
            (".attn.proj", ".attn.out"),
            (".attn.rel_pos_h", ".attn.pos_h.weight"),
            (".attn.rel_pos_w", ".attn.pos_w.weight"),
            (".norm1", ".pre_ln"),
            (".norm2", ".post_ln"),
            ("mm.layers", "mm.model.fc"),
            ("mm.image_newline", "v.image_newline"),
            ("mm.view_seperator", "v.view_seperator"),
        ],
    );
    for t in [
        "v.patch_embd.weight",
        "v.sam.patch_embd.weight",
        "v.position_embd.weight",
    ] {
        widen(v, t);
    }
    Ok(())
}
