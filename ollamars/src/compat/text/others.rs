//! The other architectures of spec §6: laguna, nemotron_h_moe, nemotron_h_omni, llama4
//! (§6.12), gptoss (§6.1), lfm2 (§6.2), olmo3 (§6.3), mistral3 (§6.4), glm4moelite (§6.9),
//! deepseekocr (§6.10) and glmocr (§6.11).

use super::{
    block_range, copy_prefix_except, dim_u32, gate_up_pair, rename_component, sections4, tensor_nd,
    unset_pre,
};
use crate::compat::{CompatError, Data, Handler, View, s};
use crate::gguf::Value;

pub(crate) const LAGUNA: Handler = Handler {
    name: "laguna",
    detect: detect_laguna,
    apply: apply_laguna,
};

pub(crate) const GPTOSS: Handler = Handler {
    name: "gptoss",
    detect: |v| v.arch == "gptoss",
    apply: apply_gptoss,
};

pub(crate) const LFM2: Handler = Handler {
    name: "lfm2",
    detect: detect_lfm2,
    apply: apply_lfm2,
};

pub(crate) const OLMO3: Handler = Handler {
    name: "olmo3",
    detect: |v| v.arch == "olmo3",
    apply: apply_olmo3,
};

pub(crate) const MISTRAL3: Handler = Handler {
    name: "mistral3",
    detect: detect_mistral3,
    apply: apply_mistral3,
};

pub(crate) const GLM4MOELITE: Handler = Handler {
    name: "glm4moelite",
    detect: |v| v.arch == "glm4moelite",
    apply: apply_glm4moelite,
};

pub(crate) const DEEPSEEKOCR: Handler = Handler {
    name: "deepseekocr",
    detect: |v| v.arch == "deepseekocr",
    apply: apply_deepseekocr,
};

pub(crate) const NEMOTRON_H_OMNI: Handler = Handler {
    name: "nemotron_h_omni",
    detect: detect_nemotron_h_omni,
    apply: apply_nemotron_h_omni,
};

pub(crate) const NEMOTRON_H_MOE: Handler = Handler {
    name: "nemotron_h_moe",
    detect: detect_nemotron_h_moe,
    apply: apply_nemotron_h_moe,
};

pub(crate) const LLAMA4: Handler = Handler {
    name: "llama4",
    detect: |v| v.arch == "llama4" && (v.has_prefix("v.") || v.has_prefix("mm.")),
    apply: apply_llama4,
};

pub(crate) const GLMOCR: Handler = Handler {
    name: "glmocr",
    detect: |v| v.arch == "glmocr",
    apply: apply_glmocr,
};

/// A u32 value of `n`, or a key error.
fn u32_key(key: &str, n: u64) -> Result<Value, CompatError> {
    u32::try_from(n)
        .map(Value::U32)
        .map_err(|_| CompatError::Key {
            key: key.to_string(),
            reason: format!("{n} does not fit u32"),
        })
}

// --- laguna ---------------------------------------------------------------------------------

fn detect_laguna(v: &View) -> bool {
    v.arch == "laguna"
        && (v.has("laguna.rope.swa.dimension_count")
            || v.has("laguna.rope.swa.freq_base")
            || v.tensor("blk.0.attn_g.weight").is_some())
}

fn apply_laguna(v: &mut View) -> Result<(), CompatError> {
    v.copy(
        "laguna.rope.swa.dimension_count",
        "laguna.rope.dimension_count_swa",
    );
    v.copy("laguna.rope.swa.freq_base", "laguna.rope.freq_base_swa");
    v.rename_suffix(".attn_g.weight", ".attn_gate.weight");
    Ok(())
}

// --- gptoss ---------------------------------------------------------------------------------

fn apply_gptoss(v: &mut View) -> Result<(), CompatError> {
    v.set_arch("gpt-oss");
    v.copy_prefix("gptoss.", "gpt-oss.");
    if !v.has("gpt-oss.expert_feed_forward_length") {
        let n = dim_u32(tensor_nd(v, "blk.0.ffn_gate_exps.weight", 3)?, 1)?;
        v.set("gpt-oss.expert_feed_forward_length", Value::U32(n));
    }
    v.inject("gpt-oss.rope.scaling.type", s("yarn"));
    v.set("tokenizer.ggml.pre", s("gpt-4o"));
    // Unlike Ollama's substring renames, these match whole name components, so a tensor that
    // already has the upstream name (`attn_output`, `attn_sinks.weight`) is left alone.
    rename_component(v, "attn_out", "attn_output");
    v.rename_suffix(".attn_sinks", ".attn_sinks.weight");
    rename_component(v, "ffn_norm", "post_attention_norm");
    Ok(())
}

// --- lfm2 -----------------------------------------------------------------------------------

fn detect_lfm2(v: &View) -> bool {
    v.arch == "lfm2"
        && v.tensor("output_norm.weight").is_some()
        && v.tensor("token_embd_norm.weight").is_none()
}

fn apply_lfm2(v: &mut View) -> Result<(), CompatError> {
    v.rename("output_norm.weight", "token_embd_norm.weight");
    v.set("tokenizer.ggml.pre", s("lfm2"));
    if v.tensor("blk.0.ffn_gate.weight").is_some() {
        let n = dim_u32(tensor_nd(v, "blk.0.ffn_gate.weight", 2)?, 1)?;
        if v.u64("lfm2.feed_forward_length") != Some(u64::from(n)) {
            v.set("lfm2.feed_forward_length", Value::U32(n));
        }
    }
    Ok(())
}

// --- olmo3 ----------------------------------------------------------------------------------

fn apply_olmo3(v: &mut View) -> Result<(), CompatError> {
    v.set_arch("olmo2");
    v.copy_prefix("olmo3.", "olmo2.");
    Ok(())
}

// --- mistral3 -------------------------------------------------------------------------------

/// mistral3 in Ollama's layout (also the clip side's detector).
pub(crate) fn detect_mistral3(v: &View) -> bool {
    v.arch == "mistral3"
        && (v.has_prefix("v.")
            || v.has_prefix("mm.")
            || v.has("mistral3.rope.scaling.beta_fast")
            || v.has("mistral3.rope.scaling.mscale_all_dim")
            || v.has("mistral3.rope.scaling_beta"))
}

fn apply_mistral3(v: &mut View) -> Result<(), CompatError> {
    for (from, to) in [
        ("rope.scaling.beta_fast", "rope.scaling.yarn_beta_fast"),
        ("rope.scaling.beta_slow", "rope.scaling.yarn_beta_slow"),
        (
            "rope.scaling.mscale_all_dim",
            "rope.scaling.yarn_log_multiplier",
        ),
        ("rope.scaling_beta", "attention.temperature_scale"),
    ] {
        v.copy(&format!("mistral3.{from}"), &format!("mistral3.{to}"));
    }
    if unset_pre(v) {
        v.set("tokenizer.ggml.pre", s("tekken"));
    }
    v.hide_prefix("v.");
    v.hide_prefix("mm.");
    Ok(())
}

// --- glm4moelite ----------------------------------------------------------------------------

fn apply_glm4moelite(v: &mut View) -> Result<(), CompatError> {
    const A: &str = "deepseek2";
    v.set_arch(A);
    v.copy_prefix("glm4moelite.", "deepseek2.");
    v.set(&format!("{A}.attention.head_count_kv"), Value::U32(1));
    if let (Some(l), Some(r)) = (
        v.u64("deepseek2.attention.kv_lora_rank"),
        v.u64("deepseek2.rope.dimension_count"),
    ) {
        let k = "deepseek2.attention.key_length";
        v.set(k, u32_key(k, l.saturating_add(r))?);
        let k = "deepseek2.attention.value_length";
        v.set(k, u32_key(k, l)?);
    }
    if let Some(h) = v.u64("glm4moelite.attention.key_length") {
        for k in [
            "deepseek2.attention.key_length_mla",
            "deepseek2.attention.value_length_mla",
        ] {
            v.set(k, u32_key(k, h)?);
        }
    }
    v.inject("deepseek2.expert_group_count", Value::U32(1));
    v.inject("deepseek2.expert_group_used_count", Value::U32(1));
    v.set("tokenizer.ggml.pre", s("glm4"));
    let ids = v.u64s("tokenizer.ggml.eos_token_ids").unwrap_or_default();
    for (key, at) in [
        ("tokenizer.ggml.eot_token_id", 1),
        ("tokenizer.ggml.eom_token_id", 2),
    ] {
        if !v.has(key)
            && let Some(&id) = ids.get(at)
        {
            v.set(key, u32_key(key, id)?);
        }
    }
    Ok(())
}

// --- deepseekocr ----------------------------------------------------------------------------

fn apply_deepseekocr(v: &mut View) -> Result<(), CompatError> {
    v.set_arch("deepseek2-ocr");
    v.copy_prefix("deepseekocr.", "deepseek2-ocr.");
    v.inject(
        "deepseek2-ocr.attention.layer_norm_rms_epsilon",
        Value::F32(1e-6),
    );
    let ff_key = "deepseek2-ocr.expert_feed_forward_length";
    let ff = if v.has(ff_key) {
        v.u64(ff_key)
    } else {
        let n = dim_u32(tensor_nd(v, "blk.1.ffn_down_exps.weight", 3)?, 0)?;
        v.set(ff_key, Value::U32(n));
        Some(u64::from(n))
    };
    let shared_key = "deepseek2-ocr.expert_shared_count";
    if !v.has(shared_key)
        && let Some(ff) = ff.filter(|&n| n > 0)
        && v.tensor("blk.1.ffn_down_shexp.weight").is_some()
    {
        let sh = tensor_nd(v, "blk.1.ffn_down_shexp.weight", 2)?.ne(0);
        v.set(shared_key, u32_key(shared_key, sh / ff)?);
    }
    for p in ["s.", "v.", "mm."] {
        v.hide_prefix(p);
    }
    Ok(())
}

// --- nemotron_h_omni / nemotron_h_moe -------------------------------------------------------

/// nemotron_h_omni in Ollama's layout (also the clip side's detector).
pub(crate) fn detect_nemotron_h_omni(v: &View) -> bool {
    v.arch == "nemotron_h_omni" && ["v.", "a.", "mm."].iter().any(|p| v.has_prefix(p))
}

fn apply_nemotron_h_omni(v: &mut View) -> Result<(), CompatError> {
    let moe = ["expert_count", "expert_used_count"].iter().any(|k| {
        v.u64(&format!("nemotron_h_omni.{k}"))
            .is_some_and(|n| n > 0)
    });
    let text = if moe { "nemotron_h_moe" } else { "nemotron_h" };
    v.set_arch(text);
    copy_prefix_except(
        v,
        "nemotron_h_omni.",
        &format!("{text}."),
        &["vision.", "audio."],
    );
    for p in ["a.", "v.", "mm."] {
        v.hide_prefix(p);
    }
    Ok(())
}

fn detect_nemotron_h_moe(v: &View) -> bool {
    v.arch == "nemotron_h_moe"
        && v.tensors().iter().any(|t| {
            // Ollama looks at blocks 0 and 1 only, and misses a blob whose first expert
            // layer comes later (a mamba and an attention layer first): any block counts here.
            t.name.starts_with("mtp.")
                || t.name.strip_prefix("blk.").is_some_and(|r| {
                    r.split_once('.').is_some_and(|(n, rest)| {
                        n.parse::<u32>().is_ok() && rest.starts_with("ffn_latent_in")
                    })
                })
        })
}

fn apply_nemotron_h_moe(v: &mut View) -> Result<(), CompatError> {
    let key = "nemotron_h_moe.moe_latent_size";
    if !v.has(key)
        && let Some(name) = (0..1024)
            .map(|b| format!("blk.{b}.ffn_latent_in.weight"))
            .find(|n| v.tensor(n).is_some())
    {
        let n = dim_u32(tensor_nd(v, &name, 2)?, 1)?;
        v.set(key, Value::U32(n));
    }
    // Whole components, unlike Ollama's substring renames.
    rename_component(v, "ffn_latent_in", "ffn_latent_down");
    rename_component(v, "ffn_latent_out", "ffn_latent_up");
    v.hide_prefix("mtp.");
    Ok(())
}

// --- llama4 ---------------------------------------------------------------------------------

fn apply_llama4(v: &mut View) -> Result<(), CompatError> {
    v.hide_prefix("v.");
    v.hide_prefix("mm.");
    Ok(())
}

// --- glmocr ---------------------------------------------------------------------------------

fn apply_glmocr(v: &mut View) -> Result<(), CompatError> {
    v.set_arch("glm4");
    v.copy_prefix("glmocr.", "glm4.");
    if let Some(s4) = sections4(v, "glm4.rope.mrope_section", 3, 3) {
        v.set("glm4.rope.dimension_sections", s4);
    }
    v.copy("glm4.attention.key_length", "glm4.rope.dimension_count");
    if v.has("tokenizer.ggml.pre") && v.str("tokenizer.ggml.pre") != Some("chatglm-bpe") {
        v.set("tokenizer.ggml.pre", s("chatglm-bpe"));
    }
    // Whole components (these needles already end in a dot in Ollama's table).
    rename_component(v, "attn_out", "attn_output");
    rename_component(v, "post_attn_norm", "post_attention_norm");
    rename_component(v, "post_ffn_norm", "post_ffw_norm");
    let blocks = block_range(v, "glm4.block_count", 16);
    for b in 0..blocks {
        fuse_gate_up(v, b)?;
    }
    for b in 0..blocks {
        v.hide_prefix(&format!("blk.{b}.ffn_gate."));
    }
    v.hide_prefix("v.");
    v.hide_prefix("mm.");
    Ok(())
}

/// Block `b`'s `ffn_gate` rows put in front of its `ffn_up` rows, in `ffn_up`.
fn fuse_gate_up(v: &mut View, b: u64) -> Result<(), CompatError> {
    let gate = format!("blk.{b}.ffn_gate.weight");
    let up = format!("blk.{b}.ffn_up.weight");
    if v.tensor(&gate).is_none() || v.tensor(&up).is_none() {
        return Ok(());
    }
    // Ollama does not compare the types and fails later, at load time.
    let (g, u) = gate_up_pair(v, &gate, &up, 2)?;
    let rows = u
        .ne(1)
        .checked_mul(2)
        .ok_or_else(|| View::mismatch(&up, "too many rows"))?;
    v.rewrite(
        &up,
        vec![u.ne(0), rows],
        u.ggml_type,
        Data::Concat(vec![g.data, u.data]),
        "gate and up joined",
    );
    Ok(())
}
