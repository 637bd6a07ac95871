//! glmocr clip (spec §7.7): GLM-4V's tower with its two patch-embedding slices under
//! Ollama's names.

use super::{copy_vision, vision_flags, widen};
use crate::compat::{CompatError, Handler, View, s};
use crate::gguf::{Array, Value};

pub(crate) const HANDLER: Handler = Handler {
    name: "glmocr",
    detect,
    apply,
};

/// The text side's detector (§6.11): the arch alone.
fn detect(v: &View) -> bool {
    v.arch == "glmocr"
}

fn apply(v: &mut View) -> Result<(), CompatError> {
    copy_vision(
        v,
        "glmocr.vision",
        &[
            "block_count",
            "embedding_length",
            "attention.head_count",
            "image_size",
            "patch_size",
            "spatial_merge_size",
        ],
    );
    v.copy(
        "glmocr.vision.intermediate_size",
        "clip.vision.feed_forward_length",
    );
    v.copy(
        "glmocr.vision.out_hidden_size",
        "clip.vision.projection_dim",
    );
    v.copy(
        "glmocr.vision.attention.layer_norm_rms_epsilon",
        "clip.vision.attention.layer_norm_epsilon",
    );
    for k in ["image_mean", "image_std"] {
        if matches!(
            v.get(&format!("glmocr.vision.{k}")),
            Some(Value::Array(Array::F32(_)))
        ) {
            v.copy(&format!("glmocr.vision.{k}"), &format!("clip.vision.{k}"));
        }
    }
    vision_flags(v, "silu");
    v.set("clip.projector_type", s("glm4v"));
    v.rename("v.patch_embd_0.weight", "v.patch_embd.weight");
    v.rename("v.patch_embd_1.weight", "v.patch_embd.weight.1");
    widen(v, "v.patch_embd.weight");
    widen(v, "v.patch_embd.weight.1");
    Ok(())
}
