//! gemma4 clip (spec §7.6): the vision tower (`gemma4v`) already has upstream's names; the
//! audio conformer (`gemma4a`) needs its norms and projections renamed.

use super::{blocks, copy_vision, widen};
use crate::compat::{CompatError, Handler, View, s};
use crate::gguf::Value;

pub(crate) const HANDLER: Handler = Handler {
    name: "gemma4",
    detect,
    apply,
};

/// The text side's detector (§5.5).
fn detect(v: &View) -> bool {
    v.arch == "gemma4"
        && (["a.", "v.", "mm.", "model.vision_tower."]
            .iter()
            .any(|p| v.has_prefix(p))
            || v.str("tokenizer.ggml.model") == Some("llama"))
}

fn apply(v: &mut View) -> Result<(), CompatError> {
    if v.has_prefix("v.") {
        copy_vision(
            v,
            "gemma4.vision",
            &[
                "block_count",
                "embedding_length",
                "feed_forward_length",
                "attention.head_count",
                "patch_size",
                "attention.layer_norm_epsilon",
            ],
        );
        v.inject("clip.vision.image_size", Value::U32(224));
        v.copy("gemma4.embedding_length", "clip.vision.projection_dim");
        super::inject_norm(v, [0.0; 3], [1.0; 3]);
        // Not in Ollama's list: upstream needs the flag to load the tower at all, the
        // epsilon is required, and Gemma's vision MLP is GELU (tanh).
        super::vision_flags(v, "gelu");
        v.inject("clip.vision.attention.layer_norm_epsilon", Value::F32(1e-6));
        v.set("clip.vision.projector_type", s("gemma4v"));
        widen(v, "v.patch_embd.weight");
    }
    if v.has_prefix("a.") {
        for k in [
            "block_count",
            "embedding_length",
            "feed_forward_length",
            "attention.head_count",
            "attention.layer_norm_epsilon",
        ] {
            v.copy(&format!("gemma4.audio.{k}"), &format!("clip.audio.{k}"));
        }
        v.inject("clip.audio.num_mel_bins", Value::U32(128));
        v.copy("gemma4.embedding_length", "clip.audio.projection_dim");
        // Not in Ollama's list: upstream requires the key (and then uses 1e-6 regardless).
        v.inject("clip.audio.attention.layer_norm_epsilon", Value::F32(1e-6));
        v.inject("clip.has_audio_encoder", Value::Bool(true));
        v.set("clip.audio.projector_type", s("gemma4a"));
        v.rename("a.pre_encode.out.weight", "a.input_projection.weight");
        v.rename("mm.a.fc.weight", "a.pre_encode.out.weight");
        v.rename("mm.a.fc.bias", "a.pre_encode.out.bias");
        for i in 0..blocks(v, "gemma4.audio.block_count", 12)? {
            for (from, to) in [
                ("ln1", "attn_pre_norm"),
                ("ln2", "attn_post_norm"),
                ("layer_pre_norm", "ln2"),
                ("linear_pos", "attn_k_rel"),
            ] {
                v.rename(
                    &format!("a.blk.{i}.{from}.weight"),
                    &format!("a.blk.{i}.{to}.weight"),
                );
            }
        }
    }
    Ok(())
}
