//! Clip-side handlers (spec §7): the projector half of a monolithic vision blob, written as
//! its own mmproj GGUF with the `clip.*` metadata upstream's clip loader reads. Detectors run
//! on the blob's original metadata; the first that matches wins, in Ollama's order.

mod gemma3;

use super::{Handler, View, s};
use crate::gguf::Value;

/// The clip handlers, in dispatch order.
pub(crate) const HANDLERS: &[Handler] = &[gemma3::HANDLER];

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
