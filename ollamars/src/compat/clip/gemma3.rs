//! gemma3 clip (spec §7.1).

use super::{copy_vision, f32s, vision_flags};
use crate::compat::{CompatError, Handler, View, s};

pub(crate) const HANDLER: Handler = Handler {
    name: "gemma3",
    detect,
    apply,
};

fn detect(v: &View) -> bool {
    v.arch == "gemma3"
}

fn apply(v: &mut View) -> Result<(), CompatError> {
    copy_vision(
        v,
        "gemma3.vision",
        &[
            "block_count",
            "embedding_length",
            "feed_forward_length",
            "image_size",
            "patch_size",
            "attention.head_count",
            "attention.layer_norm_epsilon",
        ],
    );
    v.copy("gemma3.embedding_length", "clip.vision.projection_dim");
    // Unlike Ollama, which leaves clip's default merge of 4 (right for every published gemma 3,
    // 896 px / 14 px patches / 256 tokens): the blob's own tokens per image gives the exact
    // merge for any size.
    let side = match (
        v.u64("gemma3.vision.image_size"),
        v.u64("gemma3.vision.patch_size"),
    ) {
        (Some(i), Some(p)) if p > 0 => i / p,
        _ => 0,
    };
    if let Some(tpi) = v.u64("gemma3.mm.tokens_per_image") {
        let t = (tpi as f64).sqrt().round() as u64;
        if t > 0 && t * t == tpi && side > 0 && side % t == 0 {
            v.inject(
                "clip.vision.projector.scale_factor",
                crate::gguf::Value::U32((side / t) as u32),
            );
        }
    }
    v.inject("clip.vision.image_mean", f32s(&[0.5, 0.5, 0.5]));
    v.inject("clip.vision.image_std", f32s(&[0.5, 0.5, 0.5]));
    vision_flags(v, "gelu");
    v.set("clip.projector_type", s("gemma3"));
    for (from, to) in [
        ("v.patch_embedding", "v.patch_embd"),
        ("v.position_embedding", "v.position_embd"),
        ("v.post_layernorm", "v.post_ln"),
        (".layer_norm1", ".ln1"),
        (".layer_norm2", ".ln2"),
        (".attn_output", ".attn_out"),
        (".mlp.fc1", ".ffn_down"),
        (".mlp.fc2", ".ffn_up"),
        ("mm.mm_input_projection", "mm.input_projection"),
        ("mm.mm_soft_emb_norm", "mm.soft_emb_norm"),
    ] {
        v.rename_substr(from, to);
    }
    v.promote_f32("v.patch_embd.weight");
    v.promote_f32("v.position_embd.weight");
    Ok(())
}
