//! The Qwen family: qwen35 and qwen35moe with their multi-token-prediction layers (spec
//! §6.6), qwen3next (§6.5), qwen25vl (§6.7) and qwen3vl / qwen3vlmoe (§6.8).

use super::{blocks_in_tensors, i32_array, max_head_count_kv, sections4, tensor_nd};
use crate::compat::{CompatError, Data, Handler, View};
use crate::gguf::{GgmlType, Value};
use std::collections::BTreeSet;

pub(crate) const QWEN35MOE: Handler = Handler {
    name: "qwen35moe",
    detect: detect_qwen35moe,
    apply: apply_qwen35,
};

pub(crate) const QWEN35: Handler = Handler {
    name: "qwen35",
    detect: detect_qwen35,
    apply: apply_qwen35,
};

pub(crate) const QWEN3NEXT: Handler = Handler {
    name: "qwen3next",
    detect: detect_qwen3next,
    apply: apply_qwen3next,
};

pub(crate) const QWEN25VL: Handler = Handler {
    name: "qwen25vl",
    detect: |v| v.arch == "qwen25vl",
    apply: apply_qwen25vl,
};

pub(crate) const QWEN3VL: Handler = Handler {
    name: "qwen3vl",
    detect: detect_qwen3vl,
    apply: apply_qwen3vl,
};

// --- qwen35 / qwen35moe ---------------------------------------------------------------------

fn qwen35_marked(v: &View, a: &str) -> bool {
    [
        "vision.block_count",
        "image_token_id",
        "ssm.v_head_reordered",
        "rope.mrope_interleaved",
    ]
    .iter()
    .any(|k| v.has(&format!("{a}.{k}")))
        || v.has_prefix("mtp.")
        || v.has_prefix("v.")
}

/// qwen35moe in Ollama's layout (also the clip side's detector).
pub(crate) fn detect_qwen35moe(v: &View) -> bool {
    v.arch == "qwen35moe"
        && (qwen35_marked(v, "qwen35moe") || v.has("qwen35moe.feed_forward_length"))
}

/// qwen35 in Ollama's layout (also the clip side's detector).
pub(crate) fn detect_qwen35(v: &View) -> bool {
    v.arch == "qwen35" && qwen35_marked(v, "qwen35")
}

fn apply_qwen35(v: &mut View) -> Result<(), CompatError> {
    let a = v.arch.clone();
    max_head_count_kv(v, &format!("{a}.attention.head_count_kv"), Some(2))?;
    let sections = format!("{a}.rope.dimension_sections");
    if let Some(s4) = sections4(v, &sections, 3, 3) {
        v.set(&sections, s4);
    }
    v.rename_suffix(".ssm_dt", ".ssm_dt.bias");
    mtp(v, &a, a == "qwen35moe")?;
    for p in ["v.", "mm.", "mtp."] {
        v.hide_prefix(p);
    }
    Ok(())
}

/// `mtp.layers.N.<rest>` split into `(N, rest)`.
fn mtp_layer(name: &str) -> Option<(u64, &str)> {
    let rest = name.strip_prefix("mtp.layers.")?;
    let (n, rest) = rest.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((n.parse().ok()?, rest))
}

/// Whether a translated MTP tensor's name calls for the +1 norm shift (Ollama's converter
/// stored these norms without the offset the model adds at run time).
fn shifted_norm(name: &str) -> bool {
    (name.ends_with("_norm.weight") && !name.ends_with(".ssm_norm.weight"))
        || name.ends_with(".nextn.enorm.weight")
        || name.ends_with(".nextn.hnorm.weight")
}

/// The shared MTP tensors and where a single nextn layer keeps them.
const MTP_SHARED: [(&str, &str); 6] = [
    ("mtp.fc.weight", "nextn.eh_proj.weight"),
    ("mtp.pre_fc_norm_embedding.weight", "nextn.enorm.weight"),
    ("mtp.pre_fc_norm_hidden.weight", "nextn.hnorm.weight"),
    ("mtp.embed_tokens.weight", "nextn.embed_tokens.weight"),
    (
        "mtp.shared_head.head.weight",
        "nextn.shared_head_head.weight",
    ),
    (
        "mtp.shared_head.norm.weight",
        "nextn.shared_head_norm.weight",
    ),
];

/// Ollama's expert projections and the stacked tensors they become.
const MTP_EXPERTS: [(&str, &str); 3] = [
    ("gate_proj", "ffn_gate_exps"),
    ("up_proj", "ffn_up_exps"),
    ("down_proj", "ffn_down_exps"),
];

/// Renames `from` to `to` (skipped when `from` is missing or `to` exists), shifting norms.
fn mtp_rename(v: &mut View, from: &str, to: &str) -> Result<(), CompatError> {
    if v.tensor(from).is_none() || v.tensor(to).is_some() {
        return Ok(());
    }
    v.rename(from, to);
    if shifted_norm(to) {
        let t = v.tensor(to).expect("renamed above").clone();
        if !matches!(
            t.ggml_type,
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0
        ) {
            return Err(View::mismatch(
                from,
                format!("a norm of type {} cannot be shifted", t.ggml_type.name()),
            ));
        }
        v.rewrite(
            to,
            t.dims.clone(),
            GgmlType::F32,
            Data::AddF32 {
                data: Box::new(Data::ToF32 {
                    from: t.ggml_type,
                    data: Box::new(t.data),
                }),
                add: 1.0,
            },
            "norm +1 as F32",
        );
    }
    Ok(())
}

/// The legacy `mtp.*` tensors translated into native `blk.N.nextn`-style layers (§6.6 step 4).
fn mtp(v: &mut View, a: &str, moe: bool) -> Result<(), CompatError> {
    let legacy = v.has_prefix("mtp.");
    let native = v
        .tensors()
        .iter()
        .any(|t| t.name.starts_with("blk.") && t.name.contains(".nextn."));
    if !legacy || native {
        return Ok(());
    }
    let layers: BTreeSet<u64> = v
        .tensors()
        .iter()
        .filter_map(|t| mtp_layer(&t.name).map(|(n, _)| n))
        .collect();
    let nextn = layers.last().map_or(1, |n| n.saturating_add(1));
    let base = match blocks_in_tensors(v) {
        0 => v.u64(&format!("{a}.block_count")).unwrap_or(0),
        n => n,
    };
    if base == 0 {
        v.note("MTP tensors left hidden: no main blocks");
        return Ok(());
    }
    let key = |k: &str| CompatError::Key {
        key: format!("{a}.{k}"),
        reason: format!("{nextn} MTP layers after {base} blocks do not fit u32"),
    };
    let total = base
        .checked_add(nextn)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| key("block_count"))?;
    let nextn32 = u32::try_from(nextn).map_err(|_| key("nextn_predict_layers"))?;
    v.set(&format!("{a}.nextn_predict_layers"), Value::U32(nextn32));
    v.set(&format!("{a}.block_count"), Value::U32(total));
    if moe {
        for &i in &layers {
            for (src, dst) in MTP_EXPERTS {
                stack_experts(v, i, src, &format!("blk.{}.{dst}.weight", base + i))?;
            }
        }
    }
    let renames: Vec<(String, String)> = v
        .tensors()
        .iter()
        .filter_map(|t| {
            let (i, rest) = mtp_layer(&t.name)?;
            if moe && rest.starts_with("mlp.experts.") {
                return None;
            }
            Some((t.name.clone(), format!("blk.{}.{rest}", base + i)))
        })
        .collect();
    for (from, to) in renames {
        mtp_rename(v, &from, &to)?;
    }
    if nextn == 1 {
        for (src, dst) in MTP_SHARED {
            let src = if src == "mtp.shared_head.norm.weight" && v.tensor(src).is_none() {
                "mtp.norm.weight"
            } else {
                src
            };
            mtp_rename(v, src, &format!("blk.{base}.{dst}"))?;
        }
    } else if v.tensor("mtp.norm.weight").is_some()
        || MTP_SHARED.iter().any(|(src, _)| v.tensor(src).is_some())
    {
        v.note(format!(
            "shared MTP tensors left hidden: {nextn} MTP layers cannot share them"
        ));
    }
    Ok(())
}

/// `mtp.layers.i.mlp.experts.E.<src>.weight` for E = 0, 1, … stacked into `dst`
/// (`[ne0, ne1, n_experts]`, the experts' bytes in order); the first expert's entry becomes
/// `dst` and the others stay under `mtp.` (hidden).
fn stack_experts(v: &mut View, i: u64, src: &str, dst: &str) -> Result<(), CompatError> {
    let prefix = format!("mtp.layers.{i}.mlp.experts.");
    let tail = format!(".{src}.weight");
    let mut found: Vec<(u64, String)> = v
        .tensors()
        .iter()
        .filter_map(|t| {
            let e = t.name.strip_prefix(&prefix)?.strip_suffix(&tail)?;
            if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((e.parse().ok()?, t.name.clone()))
        })
        .collect();
    if found.is_empty() || v.tensor(dst).is_some() {
        return Ok(());
    }
    found.sort();
    if let Some((k, (e, name))) = found.iter().enumerate().find(|(k, (e, _))| *e != *k as u64) {
        return Err(View::mismatch(
            name,
            format!("expert {e} where expert {k} is expected (experts must run from 0)"),
        ));
    }
    let first = tensor_nd(v, &found[0].1, 2)?.clone();
    let mut parts = Vec::with_capacity(found.len());
    for (_, name) in &found {
        let t = tensor_nd(v, name, 2)?;
        if t.ggml_type != first.ggml_type || t.dims != first.dims {
            return Err(View::mismatch(
                name,
                format!(
                    "{:?} {} where expert 0 is {:?} {}",
                    t.dims,
                    t.ggml_type.name(),
                    first.dims,
                    first.ggml_type.name()
                ),
            ));
        }
        parts.push(t.data.clone());
    }
    let n = found.len() as u64;
    v.rename(&found[0].1, dst);
    v.rewrite(
        dst,
        vec![first.ne(0), first.ne(1), n],
        first.ggml_type,
        Data::Concat(parts),
        &format!("stack {n} experts"),
    );
    Ok(())
}

// --- qwen3next ------------------------------------------------------------------------------

fn detect_qwen3next(v: &View) -> bool {
    v.arch == "qwen3next" && v.has_suffix(".ssm_dt")
}

fn apply_qwen3next(v: &mut View) -> Result<(), CompatError> {
    max_head_count_kv(v, "qwen3next.attention.head_count_kv", None)?;
    v.rename_suffix(".ssm_dt", ".ssm_dt.bias");
    Ok(())
}

// --- qwen25vl -------------------------------------------------------------------------------

fn apply_qwen25vl(v: &mut View) -> Result<(), CompatError> {
    v.set_arch("qwen2vl");
    v.copy_prefix("qwen25vl.", "qwen2vl.");
    if let Some(s4) = sections4(v, "qwen2vl.rope.mrope_section", 3, usize::MAX) {
        v.set("qwen2vl.rope.dimension_sections", s4);
    }
    v.hide_prefix("v.");
    v.hide_prefix("mm.");
    Ok(())
}

// --- qwen3vl / qwen3vlmoe -------------------------------------------------------------------

fn detect_qwen3vl(v: &View) -> bool {
    matches!(v.arch.as_str(), "qwen3vl" | "qwen3vlmoe")
        && !v.has(&format!("{}.rope.dimension_sections", v.arch))
}

fn apply_qwen3vl(v: &mut View) -> Result<(), CompatError> {
    let a = v.arch.clone();
    v.set(
        &format!("{a}.rope.dimension_sections"),
        i32_array(&[24, 20, 20, 0]),
    );
    let n = v
        .array(&format!("{a}.vision.deepstack_visual_indexes"))
        .map_or(0, |x| x.len());
    let n = u32::try_from(n).map_err(|_| CompatError::Key {
        key: format!("{a}.vision.deepstack_visual_indexes"),
        reason: "too long".into(),
    })?;
    v.inject(&format!("{a}.n_deepstack_layers"), Value::U32(n));
    v.hide_prefix("v.");
    v.hide_prefix("mm.");
    Ok(())
}
