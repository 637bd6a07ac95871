//! Checks on a multimodal projector GGUF (an "mmproj" file, `general.architecture = "clip"`)
//! before it is stored: the metadata llama.cpp's clip loader reads (with the types its getters
//! assert) and tensors consistent with it. A file that passes loads without tripping the
//! loader's assertions on missing keys, missing block tensors or shapes the graph cannot use.
//!
//! Shape rules are exact for the projector types whose layout is known here (`gemma3`, `mlp`);
//! for every other type known to llama.cpp the encoder blocks are checked against the
//! embedding size and the projection is only required to exist.

use super::{Array, Gguf, TensorInfo, Value};
use std::collections::HashMap;

/// Projector type names llama.cpp's clip loader accepts (`clip.projector_type`).
pub const KNOWN_PROJECTOR_TYPES: &[&str] = &[
    "mlp",
    "ldp",
    "ldpv2",
    "resampler",
    "adapter",
    "qwen2vl_merger",
    "qwen2.5vl_merger",
    "qwen3vl_merger",
    "ling3vl",
    "step3vl",
    "gemma3",
    "gemma3nv",
    "gemma3na",
    "gemma4v",
    "gemma4a",
    "gemma4uv",
    "gemma4ua",
    "phi4",
    "idefics3",
    "pixtral",
    "ultravox",
    "internvl",
    "llama4",
    "qwen2a",
    "qwen3a",
    "glma",
    "qwen2.5o",
    "voxtral",
    "meralion",
    "musicflamingo",
    "lfm2",
    "kimivl",
    "paddleocr",
    "lightonocr",
    "cogvlm",
    "janus_pro",
    "dots_ocr",
    "dots3note_v",
    "dots3note_a",
    "deepseekocr",
    "deepseekocr2",
    "deepseek4v",
    "lfm2a",
    "glm4v",
    "glm5v",
    "youtuvl",
    "yasa2",
    "kimik25",
    "nemotron_v2_vl",
    "exaone4_5",
    "hunyuanvl",
    "minicpmv4_6",
    "granite_speech",
    "mimovl",
    "minimax_m3",
    "granite4_vision",
    "mimo_audio",
    "parakeet",
    "qwen3tts_spkenc",
    "qwen3tts_gen",
    "pockettts_spkenc",
    "pockettts_gen",
    "muse-glimmer",
];

/// Projector types whose encoder is not a stack of standard `blk.N` transformer blocks.
const NON_STANDARD_LAYERS: &[&str] = &["gemma3nv", "qwen3tts_spkenc", "pockettts_gen"];

/// Why a projector GGUF was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectorError {
    /// A metadata key is missing, has the wrong type or an invalid value.
    #[error("invalid projector: key {key:?} {reason}")]
    Key {
        /// The key.
        key: String,
        /// What was expected.
        reason: String,
    },
    /// A tensor is missing, unexpected, or has a shape that does not match the metadata.
    #[error("invalid projector: tensor {name:?} {reason}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What was expected.
        reason: String,
    },
}

fn key_err(key: &str, reason: impl Into<String>) -> ProjectorError {
    ProjectorError::Key {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn tensor_err(name: &str, reason: impl Into<String>) -> ProjectorError {
    ProjectorError::Tensor {
        name: name.chars().take(96).collect(),
        reason: reason.into(),
    }
}

/// Which encoders a projector has (`clip.has_vision_encoder`, `clip.has_audio_encoder`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modalities {
    /// Image input.
    pub vision: bool,
    /// Audio input.
    pub audio: bool,
}

/// What [`Gguf::validate_projector`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectorSummary {
    /// The encoders present.
    pub modalities: Modalities,
    /// The vision projector type (`gemma3`, `mlp`, …), when there is a vision encoder.
    pub vision_type: Option<String>,
    /// The audio projector type, when there is an audio encoder.
    pub audio_type: Option<String>,
    /// The file is an old LLaVA projector without `clip.projector_type`; llama.cpp needs
    /// `clip.projector_type = "mlp"` added before it loads it (as Ollama does at create time).
    pub needs_default_type: bool,
    /// The size of the embeddings the projector produces, where the layout determines it: it
    /// must equal the text model's embedding length.
    pub output_embedding: Option<u64>,
}

/// One encoder's hyperparameters as the loader reads them.
struct Hparams {
    prefix: &'static str,
    tensor_prefix: &'static str,
    n_embd: u64,
    n_head: u64,
    n_head_kv: u64,
    d_head: u64,
    n_ff: u64,
    n_layer: u64,
}

impl Gguf {
    /// Whether this GGUF is a projector (`general.architecture = "clip"`).
    pub fn is_projector(&self) -> bool {
        self.architecture() == Some("clip")
    }

    /// The encoders a projector declares (both false for other files).
    pub fn projector_modalities(&self) -> Modalities {
        let flag = |k: &str| matches!(self.get(k), Some(Value::Bool(true)));
        Modalities {
            vision: self.is_projector() && flag("clip.has_vision_encoder"),
            audio: self.is_projector() && flag("clip.has_audio_encoder"),
        }
    }

    /// Checks that this GGUF is a projector llama.cpp's clip loader accepts: the `clip.*`
    /// metadata it requires, with the types it reads them as, and tensors consistent with it
    /// (the patch embedding, every encoder block's attention and feed-forward tensors, no block
    /// beyond `block_count`, and the projection tensors of the projector type).
    ///
    /// # Errors
    /// [`ProjectorError`] naming the key or tensor and what was expected.
    pub fn validate_projector(&self) -> Result<ProjectorSummary, ProjectorError> {
        if !self.is_projector() {
            return Err(key_err(
                "general.architecture",
                format!(
                    "must be \"clip\" for a projector, found {:?}",
                    self.architecture().unwrap_or_default()
                ),
            ));
        }
        let vision = self.opt_bool("clip.has_vision_encoder")?.unwrap_or(false);
        let audio = self.opt_bool("clip.has_audio_encoder")?.unwrap_or(false);
        if !vision && !audio {
            return Err(key_err(
                "clip.has_vision_encoder",
                "must be true (or clip.has_audio_encoder): the projector has no encoder",
            ));
        }
        let use_gelu = self.opt_bool("clip.use_gelu")?.unwrap_or(false);
        let use_silu = self.opt_bool("clip.use_silu")?.unwrap_or(false);
        if use_gelu && use_silu {
            return Err(key_err(
                "clip.use_silu",
                "must not be true together with clip.use_gelu",
            ));
        }
        let by_name: HashMap<&str, &TensorInfo> = self
            .tensors()
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();

        let mut summary = ProjectorSummary {
            modalities: Modalities { vision, audio },
            vision_type: None,
            audio_type: None,
            needs_default_type: false,
            output_embedding: None,
        };
        if vision {
            let (ty, legacy) = self.projector_type("vision")?;
            let hp = self.hparams("vision", "v")?;
            self.check_vision_keys()?;
            self.check_vision_tensors(&ty, &hp, &by_name)?;
            summary.output_embedding = self.check_projection(&ty, &hp, &by_name)?;
            summary.vision_type = Some(ty);
            summary.needs_default_type = legacy;
        }
        if audio {
            let (ty, _) = self.projector_type("audio")?;
            let hp = self.hparams("audio", "a")?;
            self.req_u32("clip.audio.num_mel_bins")?;
            self.check_blocks(&ty, &hp, &by_name, false)?;
            self.check_projection(&ty, &hp, &by_name)?;
            summary.audio_type = Some(ty);
        }
        Ok(summary)
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, ProjectorError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(key_err(key, "must be a bool")),
        }
    }

    fn opt_u32(&self, key: &str) -> Result<Option<u64>, ProjectorError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::U32(v)) if *v <= i32::MAX as u32 => Ok(Some(u64::from(*v))),
            Some(Value::U32(v)) => Err(key_err(key, format!("value {v} exceeds {}", i32::MAX))),
            Some(_) => Err(key_err(key, "must be a u32")),
        }
    }

    fn req_u32(&self, key: &str) -> Result<u64, ProjectorError> {
        self.opt_u32(key)?
            .ok_or_else(|| key_err(key, "is required (a u32)"))
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>, ProjectorError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(key_err(key, "must be a string")),
        }
    }

    /// The projector type of one modality, and whether it is the legacy LLaVA form (no type).
    fn projector_type(&self, modality: &str) -> Result<(String, bool), ProjectorError> {
        let specific = format!("clip.{modality}.projector_type");
        let (key, ty) = match self.opt_str("clip.projector_type")? {
            Some(t) if !t.is_empty() => ("clip.projector_type".to_string(), t),
            _ => match self.opt_str(&specific)? {
                Some(t) if !t.is_empty() => (specific, t),
                _ if modality == "vision" => return Ok(("mlp".into(), true)),
                _ => {
                    return Err(key_err(
                        "clip.projector_type",
                        format!("is required (or {specific})"),
                    ));
                }
            },
        };
        if !KNOWN_PROJECTOR_TYPES.contains(&ty) {
            return Err(key_err(
                &key,
                format!("names an unknown projector type {ty:?}"),
            ));
        }
        // The legacy mixed-modality type stands for one type per modality.
        let ty = match (ty, modality) {
            ("qwen2.5o", "vision") => "qwen2.5vl_merger",
            ("qwen2.5o", _) => "qwen2a",
            (t, _) => t,
        };
        Ok((ty.to_string(), false))
    }

    fn hparams(
        &self,
        prefix: &'static str,
        tensor_prefix: &'static str,
    ) -> Result<Hparams, ProjectorError> {
        let k = |s: &str| format!("clip.{prefix}.{s}");
        let n_embd = self.req_u32(&k("embedding_length"))?;
        let n_head = self.req_u32(&k("attention.head_count"))?;
        let n_ff = self.req_u32(&k("feed_forward_length"))?;
        let n_layer = self.req_u32(&k("block_count"))?;
        self.req_u32(&k("projection_dim"))?;
        let eps = k("attention.layer_norm_epsilon");
        match self.get(&eps) {
            Some(Value::F32(_)) => {}
            Some(_) => return Err(key_err(&eps, "must be an f32")),
            None => return Err(key_err(&eps, "is required (an f32)")),
        }
        let n_head_kv = self
            .opt_u32(&k("attention.head_count_kv"))?
            .unwrap_or(n_head);
        let head_dim = self.opt_u32(&k("attention.head_dim"))?.filter(|&d| d > 0);
        if n_embd == 0 {
            return Err(key_err(&k("embedding_length"), "must be positive"));
        }
        if n_head == 0 || n_head_kv == 0 {
            return Err(key_err(&k("attention.head_count"), "must be positive"));
        }
        let d_head = match head_dim {
            Some(d) => d,
            None if n_embd.is_multiple_of(n_head) => n_embd / n_head,
            None => {
                return Err(key_err(
                    &k("attention.head_count"),
                    format!("must divide the embedding length {n_embd}"),
                ));
            }
        };
        if let Some(v) = self.get(&k("feature_layer")) {
            let Value::Array(Array::I32(layers)) = v else {
                return Err(key_err(&k("feature_layer"), "must be an array of i32"));
            };
            if let Some(bad) = layers.iter().find(|&&l| i64::from(l) > n_layer as i64) {
                return Err(key_err(
                    &k("feature_layer"),
                    format!("layer {bad} is beyond block_count {n_layer}"),
                ));
            }
        }
        Ok(Hparams {
            prefix,
            tensor_prefix,
            n_embd,
            n_head,
            n_head_kv,
            d_head,
            n_ff,
            n_layer,
        })
    }

    fn check_vision_keys(&self) -> Result<(), ProjectorError> {
        let image = self.req_u32("clip.vision.image_size")?;
        let patch = self.req_u32("clip.vision.patch_size")?;
        if patch == 0 {
            return Err(key_err("clip.vision.patch_size", "must be positive"));
        }
        if image != 0 && patch > image {
            return Err(key_err(
                "clip.vision.patch_size",
                format!("{patch} is larger than clip.vision.image_size {image}"),
            ));
        }
        for key in ["clip.vision.image_mean", "clip.vision.image_std"] {
            match self.get(key) {
                Some(Value::Array(Array::F32(v))) if v.len() >= 3 => {}
                Some(Value::Array(Array::F32(v))) => {
                    return Err(key_err(
                        key,
                        format!("needs at least 3 values, has {}", v.len()),
                    ));
                }
                Some(_) => return Err(key_err(key, "must be an array of f32")),
                None => return Err(key_err(key, "is required (3 f32 values)")),
            }
        }
        if let Some(v) = self.get("clip.vision.image_grid_pinpoints") {
            match v {
                Value::Array(Array::I32(p)) if p.len().is_multiple_of(2) => {}
                Value::Array(Array::I32(_)) => {
                    return Err(key_err(
                        "clip.vision.image_grid_pinpoints",
                        "needs an even number of values",
                    ));
                }
                _ => {
                    return Err(key_err(
                        "clip.vision.image_grid_pinpoints",
                        "must be an array of i32",
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_vision_tensors(
        &self,
        ty: &str,
        hp: &Hparams,
        by_name: &HashMap<&str, &TensorInfo>,
    ) -> Result<(), ProjectorError> {
        let patch = self.req_u32("clip.vision.patch_size")?;
        let exact = matches!(ty, "gemma3" | "mlp");
        const PATCH: &str = "v.patch_embd.weight";
        match by_name.get(PATCH) {
            Some(t) if exact => {
                expect_dims(t, &[patch, patch, 3, hp.n_embd])?;
            }
            Some(t) => {
                let last = t.dims.last().copied().unwrap_or_default();
                let per = patch.saturating_mul(patch).saturating_mul(hp.n_embd);
                if last != hp.n_embd || !t.elements().is_multiple_of(per) {
                    return Err(tensor_err(
                        PATCH,
                        format!(
                            "has shape {:?}, expected {patch}x{patch} patches per channel \
                             into {} embeddings",
                            t.dims, hp.n_embd
                        ),
                    ));
                }
            }
            None if !NON_STANDARD_LAYERS.contains(&ty) => {
                return Err(tensor_err(PATCH, "is required"));
            }
            None => {}
        }
        if let Some(t) = by_name.get("v.patch_embd.bias") {
            expect_len(t, hp.n_embd)?;
        }
        self.check_blocks(ty, hp, by_name, true)
    }

    /// The encoder blocks: none beyond `block_count`, each with the tensors the loader
    /// requires, and (for vision) shapes consistent with the metadata.
    fn check_blocks(
        &self,
        ty: &str,
        hp: &Hparams,
        by_name: &HashMap<&str, &TensorInfo>,
        shapes: bool,
    ) -> Result<(), ProjectorError> {
        if NON_STANDARD_LAYERS.contains(&ty) {
            return Ok(());
        }
        let blk = format!("{}.blk.", hp.tensor_prefix);
        for t in self.tensors() {
            let Some(rest) = t.name.strip_prefix(&blk) else {
                continue;
            };
            let index = rest.split('.').next().unwrap_or_default();
            match index.parse::<u64>() {
                Ok(n) if n < hp.n_layer => {}
                Ok(n) => {
                    return Err(tensor_err(
                        &t.name,
                        format!(
                            "belongs to block {n}, beyond clip.{}.block_count {}",
                            hp.prefix, hp.n_layer
                        ),
                    ));
                }
                Err(_) => {
                    return Err(tensor_err(&t.name, "has no block number"));
                }
            }
        }
        let (e, q, kv) = (hp.n_embd, hp.n_head * hp.d_head, hp.n_head_kv * hp.d_head);
        for il in 0..hp.n_layer {
            let name = |s: &str| format!("{blk}{il}.{s}");
            let get = |s: &str| by_name.get(name(s).as_str()).copied();
            let need = |s: &str| get(s).ok_or_else(|| tensor_err(&name(s), "is required"));
            let out = need("attn_out.weight")?;
            let moe = get("ffn_gate_exps.weight").is_some();
            let up = if moe {
                None
            } else {
                Some(need("ffn_up.weight")?)
            };
            let down = if moe {
                None
            } else {
                Some(need("ffn_down.weight")?)
            };
            if !shapes {
                continue;
            }
            match get("attn_qkv.weight") {
                Some(t) => expect_dims(t, &[e, 3 * q])?,
                None => {
                    expect_dims(need("attn_q.weight")?, &[e, q])?;
                    expect_dims(need("attn_k.weight")?, &[e, kv])?;
                    expect_dims(need("attn_v.weight")?, &[e, kv])?;
                }
            }
            expect_dims(out, &[q, e])?;
            if let (Some(up), Some(down)) = (up, down) {
                let f = check_ffn(up, down, e, hp.n_ff)?;
                if let Some(gate) = get("ffn_gate.weight") {
                    expect_dims(gate, &[e, f])?;
                }
            }
            for norm in ["ln1.weight", "ln2.weight", "ln1.bias", "ln2.bias"] {
                if let Some(t) = get(norm) {
                    expect_len(t, e)?;
                }
            }
        }
        Ok(())
    }

    /// The projection into the text model's embeddings; returns its output size when known.
    fn check_projection(
        &self,
        ty: &str,
        hp: &Hparams,
        by_name: &HashMap<&str, &TensorInfo>,
    ) -> Result<Option<u64>, ProjectorError> {
        let need = |n: &str| {
            by_name
                .get(n)
                .copied()
                .ok_or_else(|| tensor_err(n, format!("is required by projector type {ty:?}")))
        };
        match ty {
            "gemma3" => {
                let proj = need("mm.input_projection.weight")?;
                if proj.dims.len() != 2 || proj.dims[1] != hp.n_embd {
                    return Err(tensor_err(
                        &proj.name,
                        format!(
                            "has shape {:?}, expected [text embedding length, {}]",
                            proj.dims, hp.n_embd
                        ),
                    ));
                }
                expect_len(need("mm.soft_emb_norm.weight")?, hp.n_embd)?;
                Ok(Some(proj.dims[0]))
            }
            "mlp" if by_name.contains_key("mm.3.weight") => {
                // Yi-style LLaVA (mlp_norm): its output is the last norm.
                let b = need("mm.3.bias")?;
                Ok(Some(b.dims[0]))
            }
            "mlp" => {
                let first = need("mm.0.weight")?;
                let last = need("mm.2.weight")?;
                if first.dims.len() != 2 || last.dims.len() != 2 || first.dims[1] != last.dims[0] {
                    return Err(tensor_err(
                        &last.name,
                        format!(
                            "has shape {:?}, which does not follow mm.0.weight {:?}",
                            last.dims, first.dims
                        ),
                    ));
                }
                Ok(Some(last.dims[1]))
            }
            _ => {
                // Any other type: some projection tensor outside the encoders must exist.
                let outside =
                    |t: &&TensorInfo| !t.name.starts_with("v.") && !t.name.starts_with("a.");
                if self.tensors().iter().any(|t| outside(&t)) || ty == "gemma3nv" {
                    Ok(None)
                } else {
                    Err(tensor_err(
                        "mm.*",
                        format!("is required: projector type {ty:?} has no projection tensors"),
                    ))
                }
            }
        }
    }
}

fn expect_dims(t: &TensorInfo, want: &[u64]) -> Result<(), ProjectorError> {
    let mut have: &[u64] = &t.dims;
    // Trailing 1-sized dims are the same shape in ggml.
    while have.len() > want.len() && have.last() == Some(&1) {
        have = &have[..have.len() - 1];
    }
    if have == want {
        Ok(())
    } else {
        Err(tensor_err(
            &t.name,
            format!("has shape {:?}, expected {want:?}", t.dims),
        ))
    }
}

fn expect_len(t: &TensorInfo, n: u64) -> Result<(), ProjectorError> {
    expect_dims(t, &[n])
}

/// Up and down projections: `[e, f]` and `[f, e]`, or swapped (older conversions), with `f`
/// the feed-forward length when the metadata gives one (some conversions write 0). Returns `f`.
fn check_ffn(up: &TensorInfo, down: &TensorInfo, e: u64, n_ff: u64) -> Result<u64, ProjectorError> {
    let ok = |a: &TensorInfo, b: &TensorInfo| {
        a.dims.len() == 2
            && b.dims.len() == 2
            && a.dims[0] == e
            && b.dims[1] == e
            && a.dims[1] == b.dims[0]
            && (n_ff == 0 || a.dims[1] == n_ff)
    };
    if ok(up, down) {
        Ok(up.dims[1])
    } else if ok(down, up) {
        Ok(down.dims[1])
    } else {
        Err(tensor_err(
            &down.name,
            format!(
                "has shape {:?} with {} {:?}, expected [{}, {e}] and [{e}, {}]",
                down.dims,
                up.name,
                up.dims,
                ff_text(n_ff),
                ff_text(n_ff),
            ),
        ))
    }
}

fn ff_text(n_ff: u64) -> String {
    if n_ff == 0 {
        "feed_forward_length".into()
    } else {
        n_ff.to_string()
    }
}
