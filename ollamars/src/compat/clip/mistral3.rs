//! mistral3 clip (spec §7.9): the Pixtral tower. Ollama's converter left the vision Q/K rows
//! in Hugging Face order and wrote no `[IMG_BREAK]` embedding.

use super::{blocks, copy_vision, need, renames, row_bytes};
use crate::compat::{CompatError, Data, Handler, Tensor, View, s};
use crate::gguf::{Array, GgmlType, Value};

pub(crate) const HANDLER: Handler = Handler {
    name: "mistral3",
    detect,
    apply,
};

/// The text side's detector (§6.4).
fn detect(v: &View) -> bool {
    v.arch == "mistral3"
        && (v.has_prefix("v.")
            || v.has_prefix("mm.")
            || v.has("mistral3.rope.scaling.beta_fast")
            || v.has("mistral3.rope.scaling.mscale_all_dim")
            || v.has("mistral3.rope.scaling_beta"))
}

/// Pixtral's image mean (not quite CLIP's: the last digits differ).
const MEAN: [f32; 3] = [0.481_454_67, 0.457_827_5, 0.408_210_72];
/// Pixtral's image std.
const STD: [f32; 3] = [0.268_629_55, 0.261_302_6, 0.275_777_1];

/// The widest text embedding believed plausible (bounds the synthesized tensor).
const MAX_EMBD: u64 = 1 << 20;

fn apply(v: &mut View) -> Result<(), CompatError> {
    copy_vision(
        v,
        "mistral3.vision",
        &[
            "block_count",
            "embedding_length",
            "feed_forward_length",
            "attention.head_count",
            "image_size",
            "patch_size",
            "num_channels",
        ],
    );
    v.copy(
        "mistral3.spatial_merge_size",
        "clip.vision.spatial_merge_size",
    );
    v.copy("mistral3.vision.rope.freq_base", "clip.rope.freq_base");
    v.copy("mistral3.embedding_length", "clip.vision.projection_dim");
    v.inject("clip.vision.attention.layer_norm_epsilon", Value::F32(1e-5));
    super::inject_norm(v, MEAN, STD);
    super::vision_flags(v, "silu");
    v.set("clip.projector_type", s("pixtral"));

    let d = super::uint_or(v, "mistral3.embedding_length", 0)?;
    if d > MAX_EMBD {
        return Err(super::bad_key(
            "mistral3.embedding_length",
            format!("{d} (more than {MAX_EMBD})"),
        ));
    }
    if d > 0 {
        let data = img_break(v, d);
        v.add_tensor(Tensor {
            name: "v.token_embd.img_break".into(),
            dims: vec![d],
            ggml_type: GgmlType::F32,
            data,
        });
    }

    let n_blocks = blocks(v, "mistral3.vision.block_count", 0)?;
    for b in 0..n_blocks {
        for p in ["q", "k"] {
            let w = format!("v.blk.{b}.attn_{p}.weight");
            if v.tensor(&w).is_none() {
                continue;
            }
            let heads = v
                .u64("mistral3.vision.attention.head_count")
                .ok_or_else(|| {
                    super::bad_key(
                        "mistral3.vision.attention.head_count",
                        "missing: the vision Q/K rows cannot be permuted without it",
                    )
                })?;
            permute_rows(v, &w, heads)?;
            let bias = format!("v.blk.{b}.attn_{p}.bias");
            if v.tensor(&bias).is_some() {
                permute_rows(v, &bias, heads)?;
            }
        }
    }

    renames(
        v,
        &[
            ("v.patch_conv", "v.patch_embd"),
            ("v.encoder_norm", "v.pre_ln"),
            (".attn_output", ".attn_out"),
            (".attn_norm", ".ln1"),
            (".ffn_norm", ".ln2"),
            ("mm.linear_1", "mm.1"),
            ("mm.linear_2", "mm.2"),
            ("mm.patch_merger.merging_layer", "mm.patch_merger"),
            ("mm.norm", "mm.input_norm"),
        ],
    );
    super::widen(v, "v.patch_embd.weight");
    Ok(())
}

/// The `[IMG_BREAK]` embedding: row `[IMG_BREAK]` of `token_embd.weight`, which is what
/// llama.cpp's converter stores, when the vocabulary has that token and the row can be read
/// as F32; otherwise zeros, as Ollama always writes.
fn img_break(v: &View, d: u64) -> Data {
    let zeros = Data::Zeros { len: d * 4 };
    let id = match v.array("tokenizer.ggml.tokens") {
        Some(Array::String(t)) => t.iter().position(|x| x == "[IMG_BREAK]"),
        _ => None,
    };
    let (Some(id), Some(t)) = (id, v.tensor("token_embd.weight")) else {
        return zeros;
    };
    let id = id as u64;
    match row_bytes(t) {
        Some(row)
            if t.dims.len() == 2
                && t.ne(0) == d
                && id < t.ne(1)
                && super::dequantizable(t.ggml_type) =>
        {
            let one = Data::Planes {
                data: Box::new(t.data.clone()),
                plane: row,
                order: vec![id],
            };
            if t.ggml_type == GgmlType::F32 {
                one
            } else {
                Data::ToF32 {
                    from: t.ggml_type,
                    data: Box::new(one),
                }
            }
        }
        _ => zeros,
    }
}

/// The row order that turns Hugging Face's rotary layout into ggml's, for `rows` rows in
/// `heads` heads: output row `h·hd + 2j + s` is input row `h·hd + s·hd/2 + j`.
pub(crate) fn rope_order(rows: u64, heads: u64) -> Option<Vec<u64>> {
    if heads == 0 || !rows.is_multiple_of(heads) {
        return None;
    }
    let hd = rows / heads;
    if !hd.is_multiple_of(2) {
        return None;
    }
    let half = hd / 2;
    let mut order = Vec::with_capacity(rows as usize);
    for h in 0..heads {
        for j in 0..half {
            for s in 0..2 {
                order.push(h * hd + s * half + j);
            }
        }
    }
    Some(order)
}

/// Permutes the rows (`ne1`, or the elements of a 1-D tensor) of `name` into ggml's rotary
/// layout. Rows of any type are whole blocks, so quantized Q/K are permuted too (Ollama
/// leaves them unpermuted, which breaks the vision tower's rotary embedding).
fn permute_rows(v: &mut View, name: &str, heads: u64) -> Result<(), CompatError> {
    let t = need(v, name)?;
    let (rows, plane) = match t.dims.len() {
        1 if t.ggml_type.block_size() == 1 => (t.ne(0), t.ggml_type.type_size()),
        2 => (
            t.ne(1),
            row_bytes(&t).ok_or_else(|| View::mismatch(name, "rows are not whole blocks"))?,
        ),
        _ => {
            return Err(View::mismatch(
                name,
                format!(
                    "dims {:?} ({}): cannot permute its rows",
                    t.dims,
                    t.ggml_type.name()
                ),
            ));
        }
    };
    let order = rope_order(rows, heads).ok_or_else(|| {
        View::mismatch(
            name,
            format!("{rows} rows do not split into {heads} heads of even size"),
        )
    })?;
    v.rewrite(
        name,
        t.dims.clone(),
        t.ggml_type,
        Data::Planes {
            data: Box::new(t.data),
            plane,
            order,
        },
        "permute rotary rows",
    );
    Ok(())
}
