//! nemotron_h_omni clip (spec §7.5): the RADIO vision tower. Its position embedding is stored
//! for the training resolution in one of several layouts and is resampled here to the fixed
//! input grid; the audio encoder is turned off (its `a.` tensors leave the projector file).

use super::{CLIP_MEAN, CLIP_STD, as_f32, dequantizable, need, uint_or, widen};
use crate::compat::{CompatError, Data, Handler, View, s};
use crate::gguf::{GgmlType, Value};

pub(crate) const HANDLER: Handler = Handler {
    name: "nemotron_h_omni",
    detect,
    apply,
};

const N: &str = "nemotron_h_omni";

/// The text side's detector (§6.12).
fn detect(v: &View) -> bool {
    v.arch == N && (v.has_prefix("v.") || v.has_prefix("a.") || v.has_prefix("mm."))
}

/// The most floats a channel-major position table may have (its transposition is planned as
/// one index per float; RADIO's is 1024 × 1280).
const MAX_TRANSPOSE: u64 = 1 << 22;

/// The largest resampled table written (RADIO's at 512 px is 5 MiB).
const MAX_TABLE_BYTES: u64 = 1 << 28;

fn apply(v: &mut View) -> Result<(), CompatError> {
    super::copy_vision(
        v,
        &format!("{N}.vision"),
        &[
            "block_count",
            "embedding_length",
            "feed_forward_length",
            "attention.head_count",
            "patch_size",
            "image_size",
            "num_channels",
            "projector.scale_factor",
            "attention.layer_norm_epsilon",
            "image_mean",
            "image_std",
            "image_token_id",
            "image_start_token_id",
            "image_end_token_id",
            "max_tiles",
            "min_num_patches",
            "max_num_patches",
        ],
    );
    v.copy(
        &format!("{N}.embedding_length"),
        "clip.vision.projection_dim",
    );
    v.inject("clip.vision.block_count", Value::U32(32));
    v.inject("clip.vision.embedding_length", Value::U32(1280));
    let e = uint_or(v, "clip.vision.embedding_length", 1280)?;
    let ff = e
        .checked_mul(4)
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| super::bad_key("clip.vision.embedding_length", "too large"))?;
    v.inject("clip.vision.feed_forward_length", Value::U32(ff));
    v.inject("clip.vision.attention.head_count", Value::U32(16));
    v.inject("clip.vision.attention.layer_norm_epsilon", Value::F32(1e-6));
    v.inject("clip.vision.patch_size", Value::U32(16));
    v.inject("clip.vision.image_size", Value::U32(512));
    v.inject("clip.vision.num_channels", Value::U32(3));
    v.inject("clip.vision.projector.scale_factor", Value::U32(2));
    super::inject_norm(v, CLIP_MEAN, CLIP_STD);
    v.set("clip.vision.projector_type", s("nemotron_v2_vl"));
    super::vision_flags(v, "gelu");
    v.set("clip.has_audio_encoder", Value::Bool(false));

    v.rename("v.cls_embd", "v.class_embd");
    widen(v, "v.class_embd");
    position_embedding(v, e)?;
    patch_embedding(v)?;
    for (from, to) in [
        ("mm.norm.weight", "mm.model.mlp.0.weight"),
        ("mm.1.weight", "mm.model.mlp.1.weight"),
        ("mm.2.weight", "mm.model.mlp.3.weight"),
    ] {
        v.rename(from, to);
    }
    Ok(())
}

/// How a position table is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `E` floats per position, positions one after another (`[E, N]`, `[E, N, 1]`).
    PositionMajor,
    /// `N` floats per channel (`[N, E]`, `[1, N, E]`).
    ChannelMajor,
}

/// The layout, width `E` and position count `N` of a position table with `dims`: the reading
/// whose position count is a perfect square and whose width is `e`.
pub(crate) fn infer_layout(dims: &[u64], e: u64) -> Option<(Layout, u64)> {
    let d = |i: usize| dims.get(i).copied().unwrap_or(1);
    let readings: &[(Layout, u64, u64)] = match dims.len() {
        2 => &[
            (Layout::PositionMajor, d(0), d(1)),
            (Layout::ChannelMajor, d(1), d(0)),
        ],
        3 if d(2) == 1 => &[(Layout::PositionMajor, d(0), d(1))],
        3 if d(0) == 1 => &[(Layout::ChannelMajor, d(2), d(1))],
        _ => &[],
    };
    readings
        .iter()
        .find(|&&(_, w, n)| w == e && n > 0 && n.isqrt() * n.isqrt() == n)
        .map(|&(l, _, n)| (l, n))
}

/// `v.position_embd` (or `.weight`) resampled to the `S×S` grid of the input size, as F32
/// `[E, S·S]` named `v.position_embd.weight`.
fn position_embedding(v: &mut View, e: u64) -> Result<(), CompatError> {
    let name = if v.tensor("v.position_embd").is_some() {
        "v.position_embd"
    } else {
        "v.position_embd.weight"
    };
    let t = need(v, name)?;
    let (layout, n) = infer_layout(&t.dims, e).ok_or_else(|| {
        View::mismatch(
            name,
            format!(
                "dims {:?}: not [E, N], [N, E], [1, N, E] or [E, N, 1] with E = {e} and N a square",
                t.dims
            ),
        )
    })?;
    if !dequantizable(t.ggml_type) {
        return Err(View::mismatch(
            name,
            format!("type {} cannot be converted to F32", t.ggml_type.name()),
        ));
    }
    let image = uint_or(v, "clip.vision.image_size", 512)?;
    let patch = uint_or(v, "clip.vision.patch_size", 16)?;
    let side_out = image.checked_div(patch).unwrap_or(0);
    let bytes = side_out
        .checked_mul(side_out)
        .and_then(|x| x.checked_mul(e))
        .and_then(|x| x.checked_mul(4));
    if side_out == 0 || bytes.is_none_or(|b| b > MAX_TABLE_BYTES) {
        return Err(super::bad_key(
            "clip.vision.image_size",
            format!("image {image} / patch {patch} is not a usable grid for width {e}"),
        ));
    }
    let mut data = as_f32(&t);
    if layout == Layout::ChannelMajor {
        let total = n * e;
        if total > MAX_TRANSPOSE {
            return Err(View::mismatch(name, "too large to transpose"));
        }
        data = Data::Planes {
            data: Box::new(data),
            plane: 4,
            order: (0..n)
                .flat_map(|p| (0..e).map(move |c| c * n + p))
                .collect(),
        };
    }
    let side_in = n.isqrt();
    if side_in != side_out {
        data = Data::Resample {
            data: Box::new(data),
            width: e,
            side_in,
            side_out,
        };
    }
    v.rewrite(
        name,
        vec![e, side_out * side_out],
        GgmlType::F32,
        data,
        "resample position embedding",
    );
    v.rename(name, "v.position_embd.weight");
    Ok(())
}

/// A flat `[P·P·C, E]` patch embedding reshaped to `[P, P, C, E]` and converted to F32 (the
/// element order is the same).
fn patch_embedding(v: &mut View) -> Result<(), CompatError> {
    const NAME: &str = "v.patch_embd.weight";
    let Some(t) = v.tensor(NAME).cloned() else {
        return Ok(());
    };
    if t.dims.len() != 2 {
        return Ok(());
    }
    let p = uint_or(v, "clip.vision.patch_size", 16)?;
    let c = uint_or(v, "clip.vision.num_channels", 3)?;
    let want = p.checked_mul(p).and_then(|x| x.checked_mul(c));
    if want != Some(t.ne(0)) {
        return Err(View::mismatch(
            NAME,
            format!(
                "dims {:?}: expected [{p}·{p}·{c}, E] for patch {p} and {c} channels",
                t.dims
            ),
        ));
    }
    if !dequantizable(t.ggml_type) {
        return Err(View::mismatch(
            NAME,
            format!("type {} cannot be converted to F32", t.ggml_type.name()),
        ));
    }
    v.rewrite(
        NAME,
        vec![p, p, c, t.ne(1)],
        GgmlType::F32,
        as_f32(&t),
        "reshape patch embedding",
    );
    Ok(())
}
