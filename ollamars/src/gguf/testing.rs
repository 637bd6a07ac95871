//! Tiny GGUF models for tests (here and in the end-to-end tests of the `ollamars` binary).
//! Not part of the supported API.

use super::{GgmlType, GgufWriter, Value};

const N_EMBD: u64 = 256;
const N_VOCAB: u64 = 32;

/// Half-precision bits of a small float (normal range, mantissa truncated).
fn f16_bits(x: f32) -> u16 {
    if x == 0.0 {
        return 0;
    }
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let mant = ((b >> 13) & 0x3ff) as u16;
    sign | ((exp.clamp(1, 30) as u16) << 10) | mant
}

fn weights(n: u64, t: GgmlType, seed: u64) -> Vec<u8> {
    let val = |i: u64| (((i * 7919 + seed * 104729) % 257) as f32 - 128.0) / 512.0;
    match t {
        GgmlType::F32 => (0..n).flat_map(|i| val(i).to_le_bytes()).collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|i| f16_bits(val(i)).to_le_bytes())
            .collect(),
        other => panic!("no weights for {other:?}"),
    }
}

/// A tiny but complete one-layer llama model with tensors of type `t`, which llama.cpp can
/// quantize.
pub fn tiny_llama(t: GgmlType, file_type: u32, chat_template: Option<&str>) -> Vec<u8> {
    let s = |x: &str| Value::String(x.into());
    let mut w = GgufWriter::new()
        .kv("general.architecture", s("llama"))
        .kv("general.name", s("tiny"))
        .kv("general.file_type", Value::U32(file_type))
        .kv("llama.context_length", Value::U32(128))
        .kv("llama.embedding_length", Value::U32(N_EMBD as u32))
        .kv("llama.block_count", Value::U32(1))
        .kv("llama.feed_forward_length", Value::U32(N_EMBD as u32))
        .kv("llama.attention.head_count", Value::U32(4))
        .kv("llama.attention.head_count_kv", Value::U32(4))
        .kv("llama.rope.dimension_count", Value::U32(64))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("llama.vocab_size", Value::U32(N_VOCAB as u32));
    if let Some(ct) = chat_template {
        w = w.kv("tokenizer.chat_template", s(ct));
    }
    let mut seed = 0;
    let mut mat = |w: GgufWriter, name: &str, dims: &[u64]| {
        seed += 1;
        let n = dims.iter().product();
        w.tensor(name, dims, t, weights(n, t, seed))
    };
    let norm = |w: GgufWriter, name: &str| {
        w.tensor(
            name,
            &[N_EMBD],
            GgmlType::F32,
            weights(N_EMBD, GgmlType::F32, 99),
        )
    };
    w = mat(w, "token_embd.weight", &[N_EMBD, N_VOCAB]);
    w = norm(w, "output_norm.weight");
    w = mat(w, "output.weight", &[N_EMBD, N_VOCAB]);
    w = norm(w, "blk.0.attn_norm.weight");
    for n in [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ] {
        w = mat(w, &format!("blk.0.{n}.weight"), &[N_EMBD, N_EMBD]);
    }
    w = norm(w, "blk.0.ffn_norm.weight");
    w.to_bytes()
}

/// A tiny multimodal projector (mmproj) GGUF, editable so tests can build broken variants.
///
/// [`TinyProjector::gemma3`] is a complete `gemma3` vision projector: 2 encoder blocks of
/// width 32 (4 heads, feed-forward 64), 16-pixel images in 4-pixel patches, projecting into a
/// text model of the given embedding length. Tensors are F32, filled with a pattern.
#[derive(Debug, Clone)]
pub struct TinyProjector {
    /// Key/values in order.
    pub kv: Vec<(String, Value)>,
    /// Tensor names and dims in order.
    pub tensors: Vec<(String, Vec<u64>)>,
}

/// Vision width of [`TinyProjector::gemma3`].
pub const PROJ_EMBD: u64 = 32;
/// Feed-forward length of [`TinyProjector::gemma3`].
pub const PROJ_FF: u64 = 64;
/// Patch size of [`TinyProjector::gemma3`].
pub const PROJ_PATCH: u64 = 4;
/// Block count of [`TinyProjector::gemma3`].
pub const PROJ_BLOCKS: u64 = 2;

impl TinyProjector {
    /// A valid gemma3 projector whose output has `text_embd` values per token.
    pub fn gemma3(text_embd: u64) -> TinyProjector {
        use super::Array;
        let s = |x: &str| Value::String(x.into());
        let u = |x: u64| Value::U32(x as u32);
        let kv: Vec<(String, Value)> = vec![
            ("general.architecture".into(), s("clip")),
            ("general.name".into(), s("tiny-mmproj")),
            ("general.type".into(), s("mmproj")),
            ("clip.has_vision_encoder".into(), Value::Bool(true)),
            ("clip.projector_type".into(), s("gemma3")),
            ("clip.use_gelu".into(), Value::Bool(true)),
            ("clip.vision.embedding_length".into(), u(PROJ_EMBD)),
            ("clip.vision.feed_forward_length".into(), u(PROJ_FF)),
            ("clip.vision.block_count".into(), u(PROJ_BLOCKS)),
            ("clip.vision.attention.head_count".into(), u(4)),
            (
                "clip.vision.attention.layer_norm_epsilon".into(),
                Value::F32(1e-6),
            ),
            ("clip.vision.projection_dim".into(), u(text_embd)),
            ("clip.vision.image_size".into(), u(16)),
            ("clip.vision.patch_size".into(), u(PROJ_PATCH)),
            ("clip.vision.projector.scale_factor".into(), u(2)),
            (
                "clip.vision.image_mean".into(),
                Value::Array(Array::F32(vec![0.5; 3])),
            ),
            (
                "clip.vision.image_std".into(),
                Value::Array(Array::F32(vec![0.5; 3])),
            ),
        ];
        let (e, f, p) = (PROJ_EMBD, PROJ_FF, PROJ_PATCH);
        let mut tensors: Vec<(String, Vec<u64>)> = vec![
            ("v.patch_embd.weight".into(), vec![p, p, 3, e]),
            ("v.patch_embd.bias".into(), vec![e]),
            ("v.position_embd.weight".into(), vec![e, 16]),
        ];
        for il in 0..PROJ_BLOCKS {
            let b = |n: &str| format!("v.blk.{il}.{n}");
            for n in ["attn_q", "attn_k", "attn_v", "attn_out"] {
                tensors.push((b(&format!("{n}.weight")), vec![e, e]));
                tensors.push((b(&format!("{n}.bias")), vec![e]));
            }
            for n in ["ln1", "ln2"] {
                tensors.push((b(&format!("{n}.weight")), vec![e]));
                tensors.push((b(&format!("{n}.bias")), vec![e]));
            }
            tensors.push((b("ffn_up.weight"), vec![e, f]));
            tensors.push((b("ffn_up.bias"), vec![f]));
            tensors.push((b("ffn_down.weight"), vec![f, e]));
            tensors.push((b("ffn_down.bias"), vec![e]));
        }
        tensors.push(("v.post_ln.weight".into(), vec![e]));
        tensors.push(("v.post_ln.bias".into(), vec![e]));
        tensors.push(("mm.input_projection.weight".into(), vec![text_embd, e]));
        tensors.push(("mm.soft_emb_norm.weight".into(), vec![e]));
        TinyProjector { kv, tensors }
    }

    /// Sets (replaces or appends) a key.
    pub fn set_kv(mut self, key: &str, v: Value) -> Self {
        match self.kv.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = v,
            None => self.kv.push((key.into(), v)),
        }
        self
    }

    /// Removes a key.
    pub fn remove_kv(mut self, key: &str) -> Self {
        self.kv.retain(|(k, _)| k != key);
        self
    }

    /// Sets (replaces or appends) a tensor.
    pub fn set_tensor(mut self, name: &str, dims: &[u64]) -> Self {
        match self.tensors.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = dims.to_vec(),
            None => self.tensors.push((name.into(), dims.to_vec())),
        }
        self
    }

    /// Removes a tensor.
    pub fn remove_tensor(mut self, name: &str) -> Self {
        self.tensors.retain(|(n, _)| n != name);
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = GgufWriter::new();
        for (k, v) in &self.kv {
            w = w.kv(k, v.clone());
        }
        for (i, (n, dims)) in self.tensors.iter().enumerate() {
            let count = dims.iter().product();
            w = w.tensor(
                n,
                dims,
                GgmlType::F32,
                weights(count, GgmlType::F32, i as u64),
            );
        }
        w.to_bytes()
    }
}
