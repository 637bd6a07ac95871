//! Unit tests of the clip handlers on small synthetic files: detection, keys, names, the data
//! rewrites byte for byte, refusals, and round trips through the fixture inverses
//! (`fixture::clip::to_ollama`).

use super::super::{View, f32_bytes, fixture, plan, plan_clip, to_f32};
use super::mistral3::rope_order;
use super::nemotron::{Layout, infer_layout};
use crate::gguf::{Array, GgmlType, Gguf, GgufWriter, Value};

// ---------------------------------------------------------------------------------------
// Builders.

/// A tensor to write: name, dims, type and bytes (noise when `None`).
type Entry = (String, Vec<u64>, GgmlType, Option<Vec<u8>>);

/// A file being built: keys and tensors.
#[derive(Default, Clone)]
struct B {
    kv: Vec<(String, Value)>,
    t: Vec<Entry>,
}

impl B {
    fn k(mut self, k: &str, v: Value) -> Self {
        self.kv.retain(|(x, _)| x != k);
        self.kv.push((k.to_string(), v));
        self
    }
    fn u(self, k: &str, n: u32) -> Self {
        self.k(k, Value::U32(n))
    }
    fn f(self, k: &str, x: f32) -> Self {
        self.k(k, Value::F32(x))
    }
    fn s(self, k: &str, x: &str) -> Self {
        self.k(k, Value::String(x.into()))
    }
    fn yes(self, k: &str) -> Self {
        self.k(k, Value::Bool(true))
    }
    fn t(mut self, name: &str, dims: &[u64], ty: GgmlType) -> Self {
        self.t.push((name.to_string(), dims.to_vec(), ty, None));
        self
    }
    fn tb(mut self, name: &str, dims: &[u64], ty: GgmlType, bytes: Vec<u8>) -> Self {
        self.t
            .push((name.to_string(), dims.to_vec(), ty, Some(bytes)));
        self
    }
    fn bytes(&self, arch: &str) -> Vec<u8> {
        let mut w = GgufWriter::new().kv("general.architecture", Value::String(arch.into()));
        for (k, v) in &self.kv {
            w = w.kv(k, v.clone());
        }
        for (i, (name, dims, ty, b)) in self.t.iter().enumerate() {
            let n: u64 = dims.iter().product();
            let seed = 1000 + i as u64;
            let data = b.clone().unwrap_or_else(|| match ty {
                GgmlType::F16 => fixture::f16_noise(n, seed),
                _ => fixture::f32_noise(n, seed),
            });
            w = w.tensor(name, dims, *ty, data);
        }
        w.to_bytes()
    }
}

fn f32s(x: &[f32]) -> Value {
    Value::Array(Array::F32(x.to_vec()))
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect()
}

/// One Q8_0 block per 32 values, scale 1 (values are small integers).
fn q8_bytes(v: &[f32]) -> Vec<u8> {
    v.chunks(32)
        .flat_map(|c| {
            let mut b = half::f16::from_f32(1.0).to_le_bytes().to_vec();
            b.extend(c.iter().map(|&x| (x as i8) as u8));
            b
        })
        .collect()
}

/// A text model of `arch` with `n_embd` and a 16-token vocabulary.
fn text(arch: &str, n_embd: u64) -> B {
    B::default()
        .u(&format!("{arch}.embedding_length"), n_embd as u32)
        .u(&format!("{arch}.block_count"), 1)
        .k(
            "tokenizer.ggml.tokens",
            Value::Array(Array::String((0..16).map(|i| format!("t{i}")).collect())),
        )
        .t("token_embd.weight", &[n_embd, 16], GgmlType::F32)
        .t("output_norm.weight", &[n_embd], GgmlType::F32)
}

fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

/// The projector translated from the Ollama-layout file `bytes`: handler and file bytes.
fn clip_of(bytes: &[u8]) -> Result<(&'static str, Vec<u8>), crate::compat::CompatError> {
    let src = write_tmp(bytes);
    let g = Gguf::from_bytes(bytes).unwrap();
    let (h, v) = plan_clip(&g)?.expect("a projector");
    let out = tempfile::NamedTempFile::new().unwrap();
    fixture::write(&v, src.path(), out.path()).unwrap();
    Ok((h, std::fs::read(out.path()).unwrap()))
}

/// The clip handler whose detector picks `bytes` (what `plan_clip` would run), if any:
/// none for a file without `v.` tensors.
fn handler_of(bytes: &[u8]) -> Option<&'static str> {
    let v = View::new(&Gguf::from_bytes(bytes).unwrap());
    if !v.has_prefix("v.") {
        return None;
    }
    super::HANDLERS
        .iter()
        .find(|h| (h.detect)(&v))
        .map(|h| h.name)
}

fn err_of(bytes: &[u8]) -> String {
    plan_clip(&Gguf::from_bytes(bytes).unwrap())
        .err()
        .map(|e| e.to_string())
        .expect("an error")
}

use crate::compat::fixture::tensor_table as tensors;

fn tensor(bytes: &[u8], name: &str) -> (Vec<u64>, GgmlType, Vec<u8>) {
    tensors(bytes)
        .remove(name)
        .unwrap_or_else(|| panic!("{name} in {:?}", tensors(bytes).keys()))
}

fn floats(bytes: &[u8], name: &str) -> Vec<f32> {
    let (_, t, b) = tensor(bytes, name);
    assert_eq!(t, GgmlType::F32, "{name}");
    to_f32(GgmlType::F32, &b)
}

fn clip_keys(bytes: &[u8]) -> Vec<(String, Value)> {
    let g = Gguf::from_bytes(bytes).unwrap();
    let mut kv: Vec<_> = g
        .metadata()
        .iter()
        .filter(|(k, _)| k.starts_with("clip."))
        .cloned()
        .collect();
    kv.sort_by(|a, b| a.0.cmp(&b.0));
    kv
}

fn key(bytes: &[u8], k: &str) -> Option<Value> {
    Gguf::from_bytes(bytes).unwrap().get(k).cloned()
}

/// Turns the native projector into Ollama's layout inside `text`, translates the result and
/// checks the projector comes back: the same `clip.*` keys and values and the same tensors,
/// byte for byte. Returns the handler and the translated file.
fn round_trip(
    arch: &str,
    native: &[u8],
    text: &[u8],
    extra: impl Fn(&mut View),
) -> (&'static str, Vec<u8>) {
    let tsrc = write_tmp(text);
    let mut v = View::new(&Gguf::from_bytes(text).unwrap());
    fixture::clip::to_ollama(arch, &Gguf::from_bytes(native).unwrap(), native, &mut v).unwrap();
    extra(&mut v);
    let ollama = tempfile::NamedTempFile::new().unwrap();
    fixture::write(&v, tsrc.path(), ollama.path()).unwrap();
    let ollama = std::fs::read(ollama.path()).unwrap();
    // The Ollama layout really is different: no clip keys, other names.
    assert!(clip_keys(&ollama).is_empty());
    assert_ne!(
        tensors(&ollama).keys().collect::<Vec<_>>(),
        tensors(native).keys().collect::<Vec<_>>()
    );
    let (h, got) = clip_of(&ollama).unwrap();
    assert_eq!(
        key(&got, "general.architecture"),
        Some(Value::String("clip".into()))
    );
    // The translator also states what the native files leave to the default.
    let mut got_keys = clip_keys(&got);
    let native_keys = clip_keys(native);
    if !native_keys
        .iter()
        .any(|(k, _)| k == "clip.has_audio_encoder")
    {
        got_keys.retain(|kv| *kv != ("clip.has_audio_encoder".to_string(), Value::Bool(false)));
    }
    assert_eq!(got_keys, native_keys, "{arch}: clip keys");
    let (want, have) = (tensors(native), tensors(&got));
    assert_eq!(
        have.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{arch}: tensor names"
    );
    for (name, w) in &want {
        assert_eq!(&have[name], w, "{arch}: tensor {name}");
    }
    (h, got)
}

const HALF: [f32; 3] = [0.5, 0.5, 0.5];

// ---------------------------------------------------------------------------------------
// Dispatch and detection.

#[test]
fn handlers_are_in_ollamas_clip_dispatch_order() {
    let names: Vec<&str> = super::HANDLERS.iter().map(|h| h.name).collect();
    assert_eq!(
        names,
        [
            "gemma3",
            "qwen35moe",
            "qwen35",
            "mistral3",
            "deepseekocr",
            "nemotron_h_omni",
            "llama4",
            "gemma4",
            "glmocr",
            "qwen25vl",
            "qwen3vl",
            "qwen3vlmoe",
        ]
    );
}

/// A file of `arch` with one vision tensor (and the marker its detector needs).
fn marked(arch: &str) -> Vec<u8> {
    text(arch, 64)
        .t("v.blk.0.ln1.weight", &[32], GgmlType::F32)
        .bytes(arch)
}

#[test]
fn each_arch_with_vision_tensors_picks_its_own_handler() {
    for (arch, want) in [
        ("qwen35moe", "qwen35moe"),
        ("qwen35", "qwen35"),
        ("mistral3", "mistral3"),
        ("deepseekocr", "deepseekocr"),
        ("nemotron_h_omni", "nemotron_h_omni"),
        ("llama4", "llama4"),
        ("gemma4", "gemma4"),
        ("glmocr", "glmocr"),
        ("qwen25vl", "qwen25vl"),
        ("qwen3vl", "qwen3vl"),
        ("qwen3vlmoe", "qwen3vlmoe"),
    ] {
        assert_eq!(handler_of(&marked(arch)), Some(want), "{arch}");
    }
}

#[test]
fn native_files_are_left_alone() {
    // Text models without vision tensors: no projector.
    for arch in [
        "qwen35",
        "qwen3vl",
        "mistral3",
        "nemotron_h_omni",
        "llama4",
        "gemma4",
        "glmocr",
        "qwen25vl",
        "deepseekocr",
    ] {
        let g = Gguf::from_bytes(&text(arch, 64).bytes(arch)).unwrap();
        assert!(plan_clip(&g).unwrap().is_none(), "{arch}");
    }
    // Arches with no clip handler, even with vision tensors.
    for arch in ["gemma3n", "llama", "lfm2", "olmo3"] {
        let g = Gguf::from_bytes(&marked(arch)).unwrap();
        assert!(plan_clip(&g).unwrap().is_none(), "{arch}");
    }
    // A native mmproj: nothing to do.
    let mm = B::default()
        .s("clip.projector_type", "qwen3vl_merger")
        .yes("clip.has_vision_encoder")
        .t("v.blk.0.ln1.weight", &[32], GgmlType::F32)
        .bytes("clip");
    assert!(plan(&Gguf::from_bytes(&mm).unwrap()).unwrap().is_none());
}

#[test]
fn detectors_reuse_the_text_side_rules_on_the_original_metadata() {
    // qwen3vl with dimension sections is in upstream's layout as far as Ollama can tell.
    let b = text("qwen3vl", 64)
        .k(
            "qwen3vl.rope.dimension_sections",
            Value::Array(Array::I32(vec![24, 20, 20, 0])),
        )
        .t("v.blk.0.ln1.weight", &[32], GgmlType::F32)
        .bytes("qwen3vl");
    assert_eq!(handler_of(&b), None);
    // llama4 needs `v.` or `mm.`; nemotron also takes `a.`-only towers' files to the
    // handler, and plan_clip then still needs a `v.` tensor.
    let a_only = text("nemotron_h_omni", 64)
        .t("a.blk.0.ln1.weight", &[8], GgmlType::F32)
        .bytes("nemotron_h_omni");
    assert_eq!(handler_of(&a_only), None);
}

// ---------------------------------------------------------------------------------------
// qwen35 / qwen35moe (§7.2).

fn qwen35_native(blocks: u32) -> B {
    let mut b = B::default()
        .s("clip.projector_type", "qwen3vl_merger")
        .yes("clip.has_vision_encoder")
        .yes("clip.use_gelu")
        .u("clip.vision.block_count", blocks)
        .u("clip.vision.embedding_length", 32)
        .u("clip.vision.attention.head_count", 2)
        .u("clip.vision.patch_size", 4)
        .u("clip.vision.spatial_merge_size", 2)
        .u("clip.vision.num_channels", 3)
        .u("clip.vision.projection_dim", 64)
        .u("clip.vision.feed_forward_length", 4304)
        .u("clip.vision.image_size", 768)
        .f("clip.vision.attention.layer_norm_epsilon", 1e-6)
        .k("clip.vision.image_mean", f32s(&HALF))
        .k("clip.vision.image_std", f32s(&HALF))
        .k(
            "clip.vision.is_deepstack_layers",
            Value::Array(Array::Bool(vec![false; blocks as usize])),
        );
    for i in 0..blocks {
        let p = format!("v.blk.{i}");
        b = b
            .t(&format!("{p}.attn_qkv.weight"), &[32, 96], GgmlType::F16)
            .t(&format!("{p}.attn_qkv.bias"), &[96], GgmlType::F32)
            .t(&format!("{p}.attn_out.weight"), &[32, 32], GgmlType::F16)
            .t(&format!("{p}.ln1.weight"), &[32], GgmlType::F32)
            .t(&format!("{p}.ln1.bias"), &[32], GgmlType::F32)
            .t(&format!("{p}.ln2.weight"), &[32], GgmlType::F32)
            .t(&format!("{p}.ffn_up.weight"), &[32, 64], GgmlType::F16)
            .t(&format!("{p}.ffn_up.bias"), &[64], GgmlType::F32)
            .t(&format!("{p}.ffn_down.weight"), &[64, 32], GgmlType::F16);
    }
    b.t("v.patch_embd.weight", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.patch_embd.weight.1", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.patch_embd.bias", &[32], GgmlType::F32)
        .t("v.position_embd.weight", &[32, 16], GgmlType::F32)
        .t("v.post_ln.weight", &[32], GgmlType::F32)
        .t("v.post_ln.bias", &[32], GgmlType::F32)
        .t("mm.0.weight", &[128, 128], GgmlType::F16)
        .t("mm.0.bias", &[128], GgmlType::F32)
        .t("mm.2.weight", &[128, 64], GgmlType::F16)
        .t("mm.2.bias", &[64], GgmlType::F32)
}

#[test]
fn qwen35_round_trip() {
    for arch in ["qwen35", "qwen35moe"] {
        let native = qwen35_native(2).bytes("clip");
        let (h, _) = round_trip(arch, &native, &text(arch, 64).bytes(arch), |_| {});
        assert_eq!(h, arch);
    }
}

#[test]
fn qwen35_defaults_and_names() {
    // A bare Ollama layout: one block, only the block count and width.
    let b = text("qwen35", 64)
        .u("qwen35.vision.block_count", 1)
        .u("qwen35.vision.embedding_length", 32)
        .t("v.blk.0.attn_q.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.attn_k.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.attn_v.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.mlp.linear_fc1.weight", &[32, 64], GgmlType::F16)
        .t("v.blk.0.norm1.weight", &[32], GgmlType::F32)
        .t("v.patch_embed.weight", &[2, 2, 2, 6], GgmlType::F16)
        .t("v.patch_embed.bias", &[32], GgmlType::F32)
        .t("v.pos_embed.weight", &[32, 4], GgmlType::F16)
        .t("v.merger.linear_fc1.weight", &[128, 128], GgmlType::F16)
        .bytes("qwen35");
    let (_, out) = clip_of(&b).unwrap();
    for (k, v) in [
        (
            "clip.projector_type",
            Value::String("qwen3vl_merger".into()),
        ),
        ("clip.vision.feed_forward_length", Value::U32(4304)),
        ("clip.vision.image_size", Value::U32(768)),
        ("clip.vision.attention.layer_norm_epsilon", Value::F32(1e-6)),
        ("clip.vision.image_mean", f32s(&HALF)),
        ("clip.vision.projection_dim", Value::U32(64)),
        (
            "clip.vision.is_deepstack_layers",
            Value::Array(Array::Bool(vec![false])),
        ),
        ("clip.use_gelu", Value::Bool(true)),
        ("clip.has_vision_encoder", Value::Bool(true)),
    ] {
        assert_eq!(key(&out, k), Some(v), "{k}");
    }
    assert!(key(&out, "tokenizer.ggml.tokens").is_none());
    let names: Vec<String> = tensors(&out).into_keys().collect();
    assert_eq!(
        names,
        [
            "mm.0.weight",
            "v.blk.0.attn_qkv.weight",
            "v.blk.0.ffn_up.weight",
            "v.blk.0.ln1.weight",
            "v.patch_embd.bias",
            "v.patch_embd.weight",
            "v.patch_embd.weight.1",
            "v.position_embd.weight",
        ]
    );
    assert_eq!(tensor(&out, "v.position_embd.weight").1, GgmlType::F32);
}

#[test]
fn qwen35_qkv_is_a_byte_concat_and_biases_follow() {
    let q = f16_bytes(&[1.0; 8]);
    let k = f16_bytes(&[2.0; 8]);
    let vv = f16_bytes(&[3.0; 8]);
    let b = text("qwen35", 64)
        .u("qwen35.vision.block_count", 1)
        .tb("v.blk.0.attn_q.weight", &[4, 2], GgmlType::F16, q.clone())
        .tb("v.blk.0.attn_k.weight", &[4, 2], GgmlType::F16, k.clone())
        .tb("v.blk.0.attn_v.weight", &[4, 2], GgmlType::F16, vv.clone())
        .tb(
            "v.blk.0.attn_q.bias",
            &[2],
            GgmlType::F32,
            f32_bytes(&[1.0, 1.5]),
        )
        .tb(
            "v.blk.0.attn_k.bias",
            &[2],
            GgmlType::F32,
            f32_bytes(&[2.0, 2.5]),
        )
        .tb(
            "v.blk.0.attn_v.bias",
            &[2],
            GgmlType::F32,
            f32_bytes(&[3.0, 3.5]),
        )
        .t("v.patch_embed.weight", &[2, 2, 2, 3], GgmlType::F16)
        .bytes("qwen35");
    let (_, out) = clip_of(&b).unwrap();
    let (dims, t, bytes) = tensor(&out, "v.blk.0.attn_qkv.weight");
    assert_eq!((dims, t), (vec![4, 6], GgmlType::F16));
    assert_eq!(bytes, [q, k, vv].concat());
    assert_eq!(
        floats(&out, "v.blk.0.attn_qkv.bias"),
        [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    );
    let names: Vec<String> = tensors(&out).into_keys().collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("attn_k") || n.contains("attn_v"))
    );
}

#[test]
fn qwen35_mixed_qkv_types_are_joined_as_f32_not_as_raw_bytes() {
    let kv: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
    let b = text("qwen35", 64)
        .u("qwen35.vision.block_count", 1)
        .tb(
            "v.blk.0.attn_q.weight",
            &[32, 1],
            GgmlType::F16,
            f16_bytes(&[0.5; 32]),
        )
        .tb(
            "v.blk.0.attn_k.weight",
            &[32, 1],
            GgmlType::Q8_0,
            q8_bytes(&kv),
        )
        .tb(
            "v.blk.0.attn_v.weight",
            &[32, 1],
            GgmlType::F16,
            f16_bytes(&[-1.0; 32]),
        )
        .t("v.patch_embed.weight", &[2, 2, 2, 3], GgmlType::F16)
        .bytes("qwen35");
    let (_, out) = clip_of(&b).unwrap();
    let want: Vec<f32> = [vec![0.5; 32], kv, vec![-1.0; 32]].concat();
    assert_eq!(floats(&out, "v.blk.0.attn_qkv.weight"), want);
    assert_eq!(tensor(&out, "v.blk.0.attn_qkv.weight").0, [32, 3]);
}

#[test]
fn patch_split_follows_the_spec_index_formula() {
    // [W=2, H=1, T=2, P=6], C=3 → O=2; every element holds its source plane's index.
    let (w, h, p, c) = (2u64, 1u64, 6u64, 3u64);
    let src: Vec<f32> = (0..2 * p)
        .flat_map(|plane| std::iter::repeat_n(plane as f32, (w * h) as usize))
        .collect();
    let b = text("qwen35", 64)
        .u("qwen35.vision.block_count", 0)
        .u("qwen35.vision.num_channels", c as u32)
        .tb(
            "v.patch_embed.weight",
            &[w, h, 2, p],
            GgmlType::F16,
            f16_bytes(&src),
        )
        .bytes("qwen35");
    let (_, out) = clip_of(&b).unwrap();
    for (t, name) in ["v.patch_embd.weight", "v.patch_embd.weight.1"]
        .iter()
        .enumerate()
    {
        assert_eq!(tensor(&out, name).0, [w, h, c, p / c], "{name}");
        let got = floats(&out, name);
        for o in 0..p / c {
            for ch in 0..c {
                let at = (w * h * (ch + c * o)) as usize;
                let want = (t as u64 + 2 * (o * c + ch)) as f32;
                assert_eq!(
                    &got[at..at + (w * h) as usize],
                    &[want, want],
                    "{name} o{o} c{ch}"
                );
            }
        }
    }
}

#[test]
fn qwen35_refuses_shapes_it_cannot_split_or_merge() {
    let base = || text("qwen35", 64).u("qwen35.vision.block_count", 1);
    // Time dimension is not 2.
    let e = err_of(
        &base()
            .t("v.patch_embed.weight", &[2, 2, 3, 6], GgmlType::F16)
            .bytes("qwen35"),
    );
    assert!(
        e.contains("v.patch_embed.weight") && e.contains("[W, H, 2, P]"),
        "{e}"
    );
    // Channels do not divide the output planes.
    let e = err_of(
        &base()
            .u("qwen35.vision.num_channels", 4)
            .t("v.patch_embed.weight", &[2, 2, 2, 6], GgmlType::F16)
            .bytes("qwen35"),
    );
    assert!(e.contains("4 channels"), "{e}");
    // A quantized patch embedding.
    let e = err_of(
        &base()
            .t("v.patch_embed.weight", &[32, 1, 2, 3], GgmlType::Q8_0)
            .bytes("qwen35"),
    );
    assert!(e.contains("Q8_0"), "{e}");
    // No patch embedding at all.
    let e = err_of(
        &base()
            .t("v.post_ln.weight", &[4], GgmlType::F32)
            .bytes("qwen35"),
    );
    assert!(
        e.contains("v.patch_embed.weight") && e.contains("missing"),
        "{e}"
    );
    // K of another shape.
    let e = err_of(
        &base()
            .t("v.blk.0.attn_q.weight", &[4, 2], GgmlType::F16)
            .t("v.blk.0.attn_k.weight", &[4, 4], GgmlType::F16)
            .t("v.blk.0.attn_v.weight", &[4, 2], GgmlType::F16)
            .bytes("qwen35"),
    );
    assert!(e.contains("v.blk.0.attn_k.weight"), "{e}");
    // V missing.
    let e = err_of(
        &base()
            .t("v.blk.0.attn_q.weight", &[4, 2], GgmlType::F16)
            .t("v.blk.0.attn_k.weight", &[4, 2], GgmlType::F16)
            .bytes("qwen35"),
    );
    assert!(
        e.contains("v.blk.0.attn_v.weight") && e.contains("missing"),
        "{e}"
    );
    // Only some biases.
    let e = err_of(
        &base()
            .t("v.blk.0.attn_q.weight", &[4, 2], GgmlType::F16)
            .t("v.blk.0.attn_k.weight", &[4, 2], GgmlType::F16)
            .t("v.blk.0.attn_v.weight", &[4, 2], GgmlType::F16)
            .t("v.blk.0.attn_q.bias", &[2], GgmlType::F32)
            .bytes("qwen35"),
    );
    assert!(e.contains("not all"), "{e}");
    // An implausible block count.
    let e = err_of(
        &text("qwen35", 64)
            .u("qwen35.vision.block_count", 1 << 30)
            .t("v.patch_embed.weight", &[2, 2, 2, 6], GgmlType::F16)
            .bytes("qwen35"),
    );
    assert!(e.contains("block_count") && e.contains("4096"), "{e}");
}

// ---------------------------------------------------------------------------------------
// qwen3vl / qwen3vlmoe (§7.3).

fn qwen3vl_native() -> B {
    let mut b = B::default()
        .s("clip.projector_type", "qwen3vl_merger")
        .yes("clip.has_vision_encoder")
        .yes("clip.use_gelu")
        .u("clip.vision.block_count", 2)
        .u("clip.vision.embedding_length", 32)
        .u("clip.vision.attention.head_count", 2)
        .u("clip.vision.num_channels", 3)
        .u("clip.vision.patch_size", 4)
        .u("clip.vision.spatial_merge_size", 2)
        .u("clip.vision.temporal_patch_size", 2)
        .f("clip.vision.attention.layer_norm_epsilon", 1e-6)
        .f("clip.vision.rope.freq_base", 10_000.0)
        .u("clip.vision.projection_dim", 64)
        .u("clip.vision.feed_forward_length", 64)
        .u("clip.vision.image_size", 16)
        .k("clip.vision.image_mean", f32s(&[0.25, 0.5, 0.75]))
        .k("clip.vision.image_std", f32s(&[0.125, 0.25, 0.5]))
        .u("clip.vision.image_min_pixels", 1024)
        .u("clip.vision.image_max_pixels", 4096)
        .k(
            "clip.vision.is_deepstack_layers",
            Value::Array(Array::Bool(vec![false, true])),
        );
    for i in 0..2 {
        let p = format!("v.blk.{i}");
        b = b
            .t(&format!("{p}.attn_qkv.weight"), &[32, 96], GgmlType::F32)
            .t(&format!("{p}.attn_qkv.bias"), &[96], GgmlType::F32)
            .t(&format!("{p}.attn_out.weight"), &[32, 32], GgmlType::F16)
            .t(&format!("{p}.ln1.weight"), &[32], GgmlType::F32)
            .t(&format!("{p}.ln2.bias"), &[32], GgmlType::F32)
            .t(&format!("{p}.ffn_up.weight"), &[32, 64], GgmlType::F16)
            .t(&format!("{p}.ffn_down.weight"), &[64, 32], GgmlType::F16);
    }
    for (n, dims) in [
        ("norm", vec![128]),
        ("fc1", vec![128, 128]),
        ("fc2", vec![128, 64]),
    ] {
        b = b
            .t(&format!("v.deepstack.1.{n}.weight"), &dims, GgmlType::F32)
            .t(
                &format!("v.deepstack.1.{n}.bias"),
                &[dims[dims.len() - 1]],
                GgmlType::F32,
            );
    }
    b.t("v.patch_embd.weight", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.patch_embd.weight.1", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.patch_embd.bias", &[32], GgmlType::F32)
        .t("v.position_embd.weight", &[32, 16], GgmlType::F32)
        .t("v.post_ln.weight", &[32], GgmlType::F32)
        .t("mm.0.weight", &[128, 128], GgmlType::F16)
        .t("mm.2.weight", &[128, 64], GgmlType::F16)
        .t("mm.2.bias", &[64], GgmlType::F32)
}

#[test]
fn qwen3vl_round_trip() {
    for arch in ["qwen3vl", "qwen3vlmoe"] {
        let native = qwen3vl_native().bytes("clip");
        let (h, _) = round_trip(arch, &native, &text(arch, 64).bytes(arch), |_| {});
        assert_eq!(h, arch);
    }
}

#[test]
fn qwen3vl_dequantizes_mixed_qkv_to_f32_and_derives_sizes() {
    let k: Vec<f32> = (0..64).map(|i| (i % 7) as f32 - 3.0).collect();
    let b = text("qwen3vl", 64)
        .u("qwen3vl.vision.block_count", 1)
        .u("qwen3vl.vision.patch_size", 16)
        .k(
            "qwen3vl.vision.deepstack_visual_indexes",
            Value::Array(Array::I32(vec![0, 5, -1])),
        )
        .tb(
            "v.blk.0.attn_q.weight",
            &[32, 2],
            GgmlType::F16,
            f16_bytes(&[0.25; 64]),
        )
        .tb(
            "v.blk.0.attn_k.weight",
            &[32, 2],
            GgmlType::Q8_0,
            q8_bytes(&k),
        )
        .tb(
            "v.blk.0.attn_v.weight",
            &[32, 2],
            GgmlType::F16,
            f16_bytes(&[2.0; 64]),
        )
        .t("v.blk.0.mlp.linear_fc1.weight", &[32, 48], GgmlType::F16)
        .t("v.pos_embed.weight", &[32, 20], GgmlType::F16)
        .t("v.patch_embed.weight", &[2, 2, 2, 3], GgmlType::F16)
        .t(
            "v.deepstack_merger.0.linear_fc1.weight",
            &[8, 8],
            GgmlType::F16,
        )
        .t("v.deepstack_merger.1.norm.bias", &[8], GgmlType::F32)
        .bytes("qwen3vl");
    let (_, out) = clip_of(&b).unwrap();
    let (dims, t, _) = tensor(&out, "v.blk.0.attn_qkv.weight");
    assert_eq!((dims, t), (vec![32, 6], GgmlType::F32));
    let want: Vec<f32> = [vec![0.25; 64], k, vec![2.0; 64]].concat();
    assert_eq!(floats(&out, "v.blk.0.attn_qkv.weight"), want);
    for (k, v) in [
        ("clip.vision.feed_forward_length", Value::U32(48)),
        // floor(√20) = 4 positions per side × patch 16.
        ("clip.vision.image_size", Value::U32(64)),
        ("clip.vision.num_channels", Value::U32(3)),
        ("clip.vision.temporal_patch_size", Value::U32(2)),
        ("clip.vision.rope.freq_base", Value::F32(10_000.0)),
        ("clip.vision.image_min_pixels", Value::U32(65_536)),
        ("clip.vision.image_max_pixels", Value::U32(16_777_216)),
        ("clip.vision.image_mean", f32s(&HALF)),
        // Entry 5 is out of range for one block, -1 is not an index.
        (
            "clip.vision.is_deepstack_layers",
            Value::Array(Array::Bool(vec![true])),
        ),
        (
            "clip.projector_type",
            Value::String("qwen3vl_merger".into()),
        ),
    ] {
        assert_eq!(key(&out, k), Some(v), "{k}");
    }
    let names: Vec<String> = tensors(&out).into_keys().collect();
    assert!(
        names.contains(&"v.deepstack.0.fc1.weight".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"v.deepstack.5.norm.bias".to_string()),
        "{names:?}"
    );
    assert_eq!(tensor(&out, "v.position_embd.weight").1, GgmlType::F32);
}

#[test]
fn qwen3vl_refuses_a_type_it_cannot_dequantize() {
    let b = text("qwen3vl", 64)
        .u("qwen3vl.vision.block_count", 1)
        .u("qwen3vl.vision.patch_size", 16)
        .t("v.blk.0.mlp.linear_fc1.weight", &[256, 48], GgmlType::F16)
        .t("v.pos_embed.weight", &[256, 4], GgmlType::F16)
        .t("v.blk.0.attn_q.weight", &[256, 1], GgmlType::F16)
        .t("v.blk.0.attn_k.weight", &[256, 1], GgmlType::Q4_K)
        .t("v.blk.0.attn_v.weight", &[256, 1], GgmlType::F16)
        .t("v.patch_embed.weight", &[2, 2, 2, 3], GgmlType::F16)
        .bytes("qwen3vl");
    let e = err_of(&b);
    assert!(
        e.contains("v.blk.0.attn_k.weight") && e.contains("Q4_K"),
        "{e}"
    );
    // Without the fc1 tensor the feed-forward width cannot be derived.
    let b = text("qwen3vl", 64)
        .t("v.patch_embed.weight", &[2, 2, 2, 3], GgmlType::F16)
        .bytes("qwen3vl");
    assert!(err_of(&b).contains("v.blk.0.mlp.linear_fc1.weight"));
}

// ---------------------------------------------------------------------------------------
// mistral3 (§7.9).

const PIXTRAL_MEAN: [f32; 3] = [0.481_454_67, 0.457_827_5, 0.408_210_72];
const PIXTRAL_STD: [f32; 3] = [0.268_629_55, 0.261_302_6, 0.275_777_1];

fn mistral3_native() -> B {
    B::default()
        .s("clip.projector_type", "pixtral")
        .yes("clip.has_vision_encoder")
        .yes("clip.use_silu")
        .u("clip.vision.block_count", 1)
        .u("clip.vision.embedding_length", 32)
        .u("clip.vision.feed_forward_length", 64)
        .u("clip.vision.attention.head_count", 2)
        .u("clip.vision.image_size", 32)
        .u("clip.vision.patch_size", 4)
        .u("clip.vision.num_channels", 3)
        .u("clip.vision.spatial_merge_size", 2)
        .f("clip.rope.freq_base", 10_000.0)
        .u("clip.vision.projection_dim", 64)
        .f("clip.vision.attention.layer_norm_epsilon", 1e-5)
        .k("clip.vision.image_mean", f32s(&PIXTRAL_MEAN))
        .k("clip.vision.image_std", f32s(&PIXTRAL_STD))
        .t("v.patch_embd.weight", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.pre_ln.weight", &[32], GgmlType::F32)
        .t("v.blk.0.attn_q.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.attn_k.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.attn_v.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.attn_out.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.ln1.weight", &[32], GgmlType::F32)
        .t("v.blk.0.ln2.weight", &[32], GgmlType::F32)
        .t("v.blk.0.ffn_gate.weight", &[32, 64], GgmlType::F16)
        .t("v.blk.0.ffn_up.weight", &[32, 64], GgmlType::F16)
        .t("v.blk.0.ffn_down.weight", &[64, 32], GgmlType::F16)
        .t("mm.input_norm.weight", &[32], GgmlType::F32)
        .t("mm.patch_merger.weight", &[128, 32], GgmlType::F16)
        .t("mm.1.weight", &[32, 64], GgmlType::F16)
        .t("mm.1.bias", &[64], GgmlType::F32)
        .t("mm.2.weight", &[64, 64], GgmlType::F16)
        .t("v.token_embd.img_break", &[64], GgmlType::F32)
}

/// A mistral3 text model whose vocabulary has `[IMG_BREAK]` at 12 and whose embedding row 12
/// is `row`.
fn mistral3_text(row: &[u8]) -> Vec<u8> {
    let mut tokens: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
    tokens[12] = "[IMG_BREAK]".into();
    let mut embd = fixture::f32_noise(64 * 16, 7);
    embd[12 * 256..13 * 256].copy_from_slice(row);
    let mut b =
        text("mistral3", 64).k("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    b.t.retain(|t| t.0 != "token_embd.weight");
    b.tb("token_embd.weight", &[64, 16], GgmlType::F32, embd)
        .bytes("mistral3")
}

#[test]
fn mistral3_round_trip_with_the_img_break_row() {
    let native = mistral3_native().bytes("clip");
    let row = tensor(&native, "v.token_embd.img_break").2;
    let (h, _) = round_trip("mistral3", &native, &mistral3_text(&row), |_| {});
    assert_eq!(h, "mistral3");
}

#[test]
fn mistral3_without_the_token_gets_a_zero_img_break() {
    let native = mistral3_native().bytes("clip");
    let tsrc = text("mistral3", 64).bytes("mistral3");
    let mut v = View::new(&Gguf::from_bytes(&tsrc).unwrap());
    fixture::clip::to_ollama(
        "mistral3",
        &Gguf::from_bytes(&native).unwrap(),
        &native,
        &mut v,
    )
    .unwrap();
    let src = write_tmp(&tsrc);
    let o = tempfile::NamedTempFile::new().unwrap();
    fixture::write(&v, src.path(), o.path()).unwrap();
    let (_, out) = clip_of(&std::fs::read(o.path()).unwrap()).unwrap();
    let (dims, t, b) = tensor(&out, "v.token_embd.img_break");
    assert_eq!((dims, t), (vec![64], GgmlType::F32));
    assert_eq!(b, vec![0u8; 256]);
    // Everything else still matches the native projector.
    assert_eq!(
        tensor(&out, "v.blk.0.attn_q.weight"),
        tensor(&native, "v.blk.0.attn_q.weight")
    );
}

#[test]
fn rope_order_is_the_spec_formula() {
    // 2 heads of 4 rows: per head [0, 2, 1, 3].
    assert_eq!(rope_order(8, 2).unwrap(), [0, 2, 1, 3, 4, 6, 5, 7]);
    let o = rope_order(12, 2).unwrap();
    let (hd, half) = (6u64, 3u64);
    for h in 0..2 {
        for j in 0..half {
            for s in 0..2 {
                assert_eq!(o[(h * hd + 2 * j + s) as usize], h * hd + s * half + j);
            }
        }
    }
    assert!(rope_order(8, 3).is_none());
    assert!(rope_order(6, 2).is_none()); // odd head size
    assert!(rope_order(8, 0).is_none());
}

#[test]
fn mistral3_permutes_f16_and_quantized_q_k_rows() {
    // Q: F16 [2, 4] (rows of 2), row r holds r. K: Q8_0 [32, 4], row r holds r.
    let q: Vec<f32> = (0..4).flat_map(|r| [r as f32; 2]).collect();
    let k: Vec<f32> = (0..4).flat_map(|r| [r as f32; 32]).collect();
    let b = text("mistral3", 64)
        .u("mistral3.vision.block_count", 1)
        .u("mistral3.vision.attention.head_count", 1)
        .tb(
            "v.blk.0.attn_q.weight",
            &[2, 4],
            GgmlType::F16,
            f16_bytes(&q),
        )
        .tb(
            "v.blk.0.attn_k.weight",
            &[32, 4],
            GgmlType::Q8_0,
            q8_bytes(&k),
        )
        .tb(
            "v.blk.0.attn_k.bias",
            &[4],
            GgmlType::F32,
            f32_bytes(&[0.0, 1.0, 2.0, 3.0]),
        )
        .t("v.patch_conv.weight", &[4, 4, 3, 32], GgmlType::F16)
        .bytes("mistral3");
    let (_, out) = clip_of(&b).unwrap();
    // One head of 4: output rows take input rows 0, 2, 1, 3.
    let (_, t, qb) = tensor(&out, "v.blk.0.attn_q.weight");
    assert_eq!(t, GgmlType::F16);
    assert_eq!(
        to_f32(GgmlType::F16, &qb),
        [0.0, 0.0, 2.0, 2.0, 1.0, 1.0, 3.0, 3.0]
    );
    let (_, t, kb) = tensor(&out, "v.blk.0.attn_k.weight");
    assert_eq!(t, GgmlType::Q8_0);
    let kv = to_f32(GgmlType::Q8_0, &kb);
    for (row, want) in [0.0, 2.0, 1.0, 3.0].iter().enumerate() {
        assert!(
            kv[row * 32..(row + 1) * 32].iter().all(|x| x == want),
            "row {row}"
        );
    }
    assert_eq!(floats(&out, "v.blk.0.attn_k.bias"), [0.0, 2.0, 1.0, 3.0]);
    // Keys and names.
    assert_eq!(
        key(&out, "clip.projector_type"),
        Some(Value::String("pixtral".into()))
    );
    assert_eq!(key(&out, "clip.use_silu"), Some(Value::Bool(true)));
    assert_eq!(
        key(&out, "clip.vision.attention.layer_norm_epsilon"),
        Some(Value::F32(1e-5))
    );
    assert_eq!(tensor(&out, "v.patch_embd.weight").1, GgmlType::F32);
    assert_eq!(tensor(&out, "v.token_embd.img_break").0, [64]);
}

#[test]
fn mistral3_refuses_q_k_it_cannot_permute() {
    let base = || {
        text("mistral3", 64).u("mistral3.vision.block_count", 1).t(
            "v.blk.0.attn_q.weight",
            &[4, 6],
            GgmlType::F16,
        )
    };
    let e = err_of(&base().bytes("mistral3"));
    assert!(e.contains("mistral3.vision.attention.head_count"), "{e}");
    let e = err_of(
        &base()
            .u("mistral3.vision.attention.head_count", 4)
            .bytes("mistral3"),
    );
    assert!(
        e.contains("v.blk.0.attn_q.weight") && e.contains("4 heads"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// deepseekocr (§7.4).

fn deepseekocr_native() -> B {
    B::default()
        .s("clip.projector_type", "deepseekocr")
        .yes("clip.has_vision_encoder")
        .yes("clip.use_gelu")
        .u("clip.vision.block_count", 1)
        .u("clip.vision.embedding_length", 32)
        .u("clip.vision.image_size", 64)
        .u("clip.vision.patch_size", 4)
        .u("clip.vision.attention.head_count", 2)
        .u("clip.vision.sam.block_count", 1)
        .u("clip.vision.sam.embedding_length", 16)
        .u("clip.vision.sam.head_count", 2)
        .u("clip.vision.feed_forward_length", 64)
        .u("clip.vision.projection_dim", 1280)
        .u("clip.vision.projector.scale_factor", 1)
        .u("clip.vision.window_size", 14)
        .f("clip.vision.attention.layer_norm_epsilon", 1e-6)
        .k("clip.vision.image_mean", f32s(&HALF))
        .k("clip.vision.image_std", f32s(&HALF))
        .t("v.sam.pos_embd.weight", &[16, 4, 4], GgmlType::F32)
        .t("v.sam.patch_embd.weight", &[4, 4, 3, 16], GgmlType::F32)
        .t("v.sam.patch_embd.bias", &[16], GgmlType::F32)
        .t("v.sam.blk.0.attn.qkv.weight", &[16, 48], GgmlType::F16)
        .t("v.sam.blk.0.attn.out.weight", &[16, 16], GgmlType::F16)
        .t("v.sam.blk.0.attn.out.bias", &[16], GgmlType::F32)
        .t("v.sam.blk.0.pre_ln.weight", &[16], GgmlType::F32)
        .t("v.sam.blk.0.post_ln.bias", &[16], GgmlType::F32)
        .t("v.sam.blk.0.attn.pos_h.weight", &[8, 7], GgmlType::F32)
        .t("v.sam.blk.0.attn.pos_w.weight", &[8, 7], GgmlType::F32)
        .t("v.sam.blk.0.mlp.lin1.weight", &[16, 32], GgmlType::F16)
        .t("v.sam.neck.0.weight", &[1, 1, 16, 32], GgmlType::F16)
        .t("v.sam.net_2.weight", &[3, 3, 32, 32], GgmlType::F16)
        .t("v.patch_embd.weight", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.position_embd.weight", &[32, 17], GgmlType::F32)
        .t("v.class_embd", &[32], GgmlType::F32)
        .t("v.pre_ln.weight", &[32], GgmlType::F32)
        .t("v.blk.0.attn_qkv.weight", &[32, 96], GgmlType::F16)
        .t("v.blk.0.attn_out.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.ln1.weight", &[32], GgmlType::F32)
        .t("v.blk.0.ln2.bias", &[32], GgmlType::F32)
        .t("v.blk.0.ffn_up.weight", &[32, 64], GgmlType::F16)
        .t("v.blk.0.ffn_down.weight", &[64, 32], GgmlType::F16)
        .t("mm.model.fc.weight", &[64, 64], GgmlType::F16)
        .t("mm.model.fc.bias", &[64], GgmlType::F32)
        .t("v.image_newline", &[64], GgmlType::F32)
        .t("v.view_seperator", &[64], GgmlType::F32)
}

#[test]
fn deepseekocr_round_trip() {
    let native = deepseekocr_native().bytes("clip");
    let (h, _) = round_trip(
        "deepseekocr",
        &native,
        &text("deepseekocr", 64).bytes("deepseekocr"),
        |_| {},
    );
    assert_eq!(h, "deepseekocr");
}

#[test]
fn deepseekocr_prefix_change_touches_only_the_prefix() {
    // `mm.layers` contains "s." in its middle; only names starting `s.` move.
    let b = text("deepseekocr", 64)
        .t("s.blk.0.norm1.weight", &[16], GgmlType::F32)
        .t("s.position_embd", &[16, 4, 4], GgmlType::F32)
        .t("mm.layers.weight", &[64, 64], GgmlType::F16)
        .t("v.pre_layrnorm.weight", &[32], GgmlType::F32)
        .bytes("deepseekocr");
    let (_, out) = clip_of(&b).unwrap();
    let names: Vec<String> = tensors(&out).into_keys().collect();
    assert_eq!(
        names,
        [
            "mm.model.fc.weight",
            "v.pre_ln.weight",
            "v.sam.blk.0.pre_ln.weight",
            "v.sam.pos_embd.weight",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// nemotron_h_omni (§7.5).

const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

fn nemotron_native() -> B {
    B::default()
        .s("clip.vision.projector_type", "nemotron_v2_vl")
        .yes("clip.has_vision_encoder")
        .yes("clip.use_gelu")
        .k("clip.has_audio_encoder", Value::Bool(false))
        .u("clip.vision.block_count", 1)
        .u("clip.vision.embedding_length", 32)
        .u("clip.vision.feed_forward_length", 96)
        .u("clip.vision.attention.head_count", 2)
        .u("clip.vision.patch_size", 4)
        .u("clip.vision.image_size", 16)
        .u("clip.vision.num_channels", 3)
        .u("clip.vision.projector.scale_factor", 2)
        .f("clip.vision.attention.layer_norm_epsilon", 1e-6)
        .k("clip.vision.image_mean", f32s(&CLIP_MEAN))
        .k("clip.vision.image_std", f32s(&CLIP_STD))
        .u("clip.vision.image_token_id", 18)
        .u("clip.vision.max_tiles", 12)
        .u("clip.vision.projection_dim", 64)
        .t("v.class_embd", &[32, 2], GgmlType::F32)
        .t("v.position_embd.weight", &[32, 16], GgmlType::F32)
        .t("v.patch_embd.weight", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.blk.0.attn_qkv.weight", &[32, 96], GgmlType::F16)
        .t("v.blk.0.ln1.weight", &[32], GgmlType::F32)
        .t("mm.model.mlp.0.weight", &[128], GgmlType::F32)
        .t("mm.model.mlp.1.weight", &[128, 64], GgmlType::F16)
        .t("mm.model.mlp.3.weight", &[64, 64], GgmlType::F16)
}

#[test]
fn nemotron_round_trip_drops_the_audio_tower() {
    let native = nemotron_native().bytes("clip");
    let (h, out) = round_trip(
        "nemotron_h_omni",
        &native,
        &text("nemotron_h_omni", 64).bytes("nemotron_h_omni"),
        |v| {
            v.add_tensor(crate::compat::Tensor {
                name: "a.blk.0.ln1.weight".into(),
                dims: vec![8],
                ggml_type: GgmlType::F32,
                data: crate::compat::Data::Bytes(vec![0; 32]),
            })
        },
    );
    assert_eq!(h, "nemotron_h_omni");
    assert!(!tensors(&out).keys().any(|n| n.starts_with("a.")));
}

#[test]
fn nemotron_defaults() {
    let b = text("nemotron_h_omni", 64)
        .t("v.cls_embd", &[1280, 1], GgmlType::F16)
        .t("v.position_embd", &[1280, 1024], GgmlType::F16)
        .bytes("nemotron_h_omni");
    let (_, out) = clip_of(&b).unwrap();
    for (k, v) in [
        ("clip.vision.block_count", Value::U32(32)),
        ("clip.vision.embedding_length", Value::U32(1280)),
        ("clip.vision.feed_forward_length", Value::U32(5120)),
        ("clip.vision.attention.head_count", Value::U32(16)),
        ("clip.vision.patch_size", Value::U32(16)),
        ("clip.vision.image_size", Value::U32(512)),
        ("clip.vision.num_channels", Value::U32(3)),
        ("clip.vision.projector.scale_factor", Value::U32(2)),
        ("clip.vision.image_mean", f32s(&CLIP_MEAN)),
        ("clip.vision.projection_dim", Value::U32(64)),
        ("clip.has_audio_encoder", Value::Bool(false)),
    ] {
        assert_eq!(key(&out, k), Some(v), "{k}");
    }
    assert!(key(&out, "clip.projector_type").is_none());
    // 32×32 positions resampled to 512/16 = 32: the identity.
    let (dims, t, _) = tensor(&out, "v.position_embd.weight");
    assert_eq!((dims, t), (vec![1280, 1024], GgmlType::F32));
    assert_eq!(tensor(&out, "v.class_embd").1, GgmlType::F32);
}

#[test]
fn nemotron_position_layouts_are_inferred() {
    assert_eq!(infer_layout(&[8, 16], 8), Some((Layout::PositionMajor, 16)));
    assert_eq!(infer_layout(&[16, 8], 8), Some((Layout::ChannelMajor, 16)));
    assert_eq!(
        infer_layout(&[8, 16, 1], 8),
        Some((Layout::PositionMajor, 16))
    );
    assert_eq!(
        infer_layout(&[1, 16, 8], 8),
        Some((Layout::ChannelMajor, 16))
    );
    // Both dims square: the width decides.
    assert_eq!(infer_layout(&[16, 4], 4), Some((Layout::ChannelMajor, 16)));
    assert_eq!(infer_layout(&[16, 4], 16), Some((Layout::PositionMajor, 4)));
    assert_eq!(infer_layout(&[8, 15], 8), None);
    assert_eq!(infer_layout(&[8, 16], 7), None);
    assert_eq!(infer_layout(&[8, 16, 2], 8), None);
}

/// A nemotron file with position table `pos` (F32 bytes, dims `dims`), width 2 and a 3×3
/// target grid.
fn nemotron_pos(dims: &[u64], pos: &[f32]) -> Vec<u8> {
    text("nemotron_h_omni", 64)
        .u("nemotron_h_omni.vision.embedding_length", 2)
        .u("nemotron_h_omni.vision.image_size", 12)
        .u("nemotron_h_omni.vision.patch_size", 4)
        .tb("v.position_embd", dims, GgmlType::F32, f32_bytes(pos))
        .bytes("nemotron_h_omni")
}

#[test]
fn nemotron_resamples_with_aligned_corners_in_both_layouts() {
    // 2×2 grid, channel 0 = 0,1,2,3 and channel 1 = 10,20,30,40, position-major.
    let pm = [0.0, 10.0, 1.0, 20.0, 2.0, 30.0, 3.0, 40.0];
    let (_, out) = clip_of(&nemotron_pos(&[2, 4], &pm)).unwrap();
    let got = floats(&out, "v.position_embd.weight");
    assert_eq!(tensor(&out, "v.position_embd.weight").0, [2, 9]);
    let ch0: Vec<f32> = got.iter().step_by(2).copied().collect();
    let ch1: Vec<f32> = got.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(ch0, [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]);
    // Corners are the source corners, the centre is their mean.
    assert_eq!(
        [ch1[0], ch1[2], ch1[6], ch1[8], ch1[4]],
        [10.0, 20.0, 30.0, 40.0, 25.0]
    );
    // The same table channel-major ([N, E]) gives the same result.
    let cm = [0.0, 1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 40.0];
    let (_, out2) = clip_of(&nemotron_pos(&[4, 2], &cm)).unwrap();
    assert_eq!(floats(&out2, "v.position_embd.weight"), got);
    let (_, out3) = clip_of(&nemotron_pos(&[1, 4, 2], &cm)).unwrap();
    assert_eq!(floats(&out3, "v.position_embd.weight"), got);
}

#[test]
fn nemotron_patch_embedding_is_reshaped_in_place() {
    let vals: Vec<f32> = (0..48 * 2).map(|i| i as f32).collect();
    let b = text("nemotron_h_omni", 64)
        .u("nemotron_h_omni.vision.embedding_length", 2)
        .u("nemotron_h_omni.vision.patch_size", 4)
        .tb(
            "v.patch_embd.weight",
            &[48, 2],
            GgmlType::F16,
            f16_bytes(&vals),
        )
        .tb(
            "v.position_embd",
            &[2, 1024],
            GgmlType::F32,
            vec![0; 2 * 1024 * 4],
        )
        .bytes("nemotron_h_omni");
    let (_, out) = clip_of(&b).unwrap();
    assert_eq!(tensor(&out, "v.patch_embd.weight").0, [4, 4, 3, 2]);
    assert_eq!(floats(&out, "v.patch_embd.weight"), vals);
}

#[test]
fn nemotron_refuses_tables_it_cannot_read() {
    let e = err_of(&nemotron_pos(&[2, 3], &[0.0; 6]));
    assert!(e.contains("v.position_embd") && e.contains("square"), "{e}");
    let b = text("nemotron_h_omni", 64)
        .u("nemotron_h_omni.vision.embedding_length", 2)
        .u("nemotron_h_omni.vision.patch_size", 4)
        .tb(
            "v.position_embd",
            &[2, 1024],
            GgmlType::F32,
            vec![0; 2 * 1024 * 4],
        )
        .t("v.patch_embd.weight", &[40, 2], GgmlType::F16)
        .bytes("nemotron_h_omni");
    let e = err_of(&b);
    assert!(
        e.contains("v.patch_embd.weight") && e.contains("[4·4·3, E]"),
        "{e}"
    );
    let b = text("nemotron_h_omni", 64)
        .u("nemotron_h_omni.vision.image_size", 2)
        .t("v.position_embd", &[1280, 1024], GgmlType::F16)
        .bytes("nemotron_h_omni");
    assert!(err_of(&b).contains("clip.vision.image_size"));
    // A grid whose resampled table would be gigabytes.
    let b = nemotron_pos(&[2, 4], &[0.0; 8]);
    let mut v = View::new(&Gguf::from_bytes(&b).unwrap());
    v.set("nemotron_h_omni.vision.image_size", Value::U32(1 << 30));
    v.set("nemotron_h_omni.vision.patch_size", Value::U32(1));
    let big = write_tmp(&b);
    let o = tempfile::NamedTempFile::new().unwrap();
    fixture::write(&v, big.path(), o.path()).unwrap();
    let e = err_of(&std::fs::read(o.path()).unwrap());
    assert!(e.contains("not a usable grid"), "{e}");
}

// ---------------------------------------------------------------------------------------
// llama4 (§7.8).

fn llama4_native() -> B {
    B::default()
        .s("clip.projector_type", "llama4")
        .s("clip.vision.projector_type", "llama4")
        .yes("clip.has_vision_encoder")
        .yes("clip.use_gelu")
        .u("clip.vision.block_count", 1)
        .u("clip.vision.embedding_length", 32)
        .u("clip.vision.feed_forward_length", 64)
        .u("clip.vision.attention.head_count", 2)
        .u("clip.vision.image_size", 16)
        .u("clip.vision.patch_size", 4)
        .f("clip.vision.attention.layer_norm_epsilon", 1e-5)
        .u("clip.vision.projection_dim", 64)
        .u("clip.vision.projector.scale_factor", 2)
        .k("clip.vision.image_mean", f32s(&HALF))
        .k("clip.vision.image_std", f32s(&HALF))
        .t("v.patch_embd.weight", &[4, 4, 3, 32], GgmlType::F16)
        .t("v.class_embd", &[32], GgmlType::F32)
        .t("v.position_embd.weight", &[32, 17], GgmlType::F32)
        .t("v.pre_ln.weight", &[32], GgmlType::F32)
        .t("v.post_ln.bias", &[32], GgmlType::F32)
        .t("v.blk.0.attn_q.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.attn_out.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.ln1.weight", &[32], GgmlType::F32)
        .t("v.blk.0.ln2.weight", &[32], GgmlType::F32)
        .t("v.blk.0.ffn_up.weight", &[32, 64], GgmlType::F16)
        .t("v.blk.0.ffn_down.bias", &[32], GgmlType::F32)
        .t("mm.model.mlp.1.weight", &[128, 64], GgmlType::F16)
        .t("mm.model.mlp.2.weight", &[64, 64], GgmlType::F16)
        .t("mm.model.fc.weight", &[64, 64], GgmlType::F16)
}

#[test]
fn llama4_round_trip() {
    let native = llama4_native().bytes("clip");
    let (h, _) = round_trip(
        "llama4",
        &native,
        &text("llama4", 64).bytes("llama4"),
        |_| {},
    );
    assert_eq!(h, "llama4");
}

#[test]
fn llama4_scale_factor_from_the_pixel_shuffle_ratio() {
    use super::llama4::scale_factor;
    assert_eq!(scale_factor(None).unwrap(), 2);
    assert_eq!(scale_factor(Some(0.5)).unwrap(), 2);
    assert_eq!(scale_factor(Some(0.25)).unwrap(), 4);
    assert_eq!(scale_factor(Some(0.3)).unwrap(), 3);
    assert_eq!(scale_factor(Some(0.0)).unwrap(), 2);
    assert_eq!(scale_factor(Some(-1.0)).unwrap(), 2);
    assert_eq!(scale_factor(Some(3.0)).unwrap(), 2); // rounds to 0
    assert!(scale_factor(Some(1e-9)).is_err());
}

// ---------------------------------------------------------------------------------------
// gemma4 (§7.6).

fn gemma4_native() -> B {
    let mut b = B::default()
        .s("clip.vision.projector_type", "gemma4v")
        .s("clip.audio.projector_type", "gemma4a")
        .yes("clip.has_vision_encoder")
        .yes("clip.has_audio_encoder")
        .yes("clip.use_gelu")
        .u("clip.vision.block_count", 1)
        .u("clip.vision.embedding_length", 32)
        .u("clip.vision.feed_forward_length", 64)
        .u("clip.vision.attention.head_count", 2)
        .u("clip.vision.patch_size", 4)
        .f("clip.vision.attention.layer_norm_epsilon", 1e-6)
        .u("clip.vision.image_size", 224)
        .u("clip.vision.projection_dim", 64)
        .k("clip.vision.image_mean", f32s(&[0.0; 3]))
        .k("clip.vision.image_std", f32s(&[1.0; 3]))
        .u("clip.audio.block_count", 2)
        .u("clip.audio.embedding_length", 16)
        .u("clip.audio.feed_forward_length", 32)
        .u("clip.audio.attention.head_count", 2)
        .f("clip.audio.attention.layer_norm_epsilon", 1e-6)
        .u("clip.audio.num_mel_bins", 128)
        .u("clip.audio.projection_dim", 64)
        .t("v.patch_embd.weight", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.position_embd.weight", &[32, 2, 64], GgmlType::F16)
        .t("v.blk.0.attn_q.weight", &[32, 32], GgmlType::F16)
        .t("v.blk.0.ln1.weight", &[32], GgmlType::F32)
        .t("mm.input_projection.weight", &[32, 64], GgmlType::F16)
        .t("a.conv1d.0.weight", &[3, 3, 1, 8], GgmlType::F16)
        .t("a.input_projection.weight", &[64, 16], GgmlType::F16)
        .t("a.pre_encode.out.weight", &[16, 64], GgmlType::F16)
        .t("a.pre_encode.out.bias", &[64], GgmlType::F32);
    for i in 0..2 {
        for n in [
            "attn_pre_norm",
            "attn_post_norm",
            "ln2",
            "attn_k_rel",
            "ffn_norm",
        ] {
            b = b.t(&format!("a.blk.{i}.{n}.weight"), &[16], GgmlType::F32);
        }
    }
    b
}

#[test]
fn gemma4_round_trip_with_audio() {
    let native = gemma4_native().bytes("clip");
    let (h, _) = round_trip(
        "gemma4",
        &native,
        &text("gemma4", 64).bytes("gemma4"),
        |_| {},
    );
    assert_eq!(h, "gemma4");
}

#[test]
fn gemma4_audio_block_renames_run_in_order() {
    // The old ln2 must move away before layer_pre_norm takes its name.
    let b = text("gemma4", 64)
        .u("gemma4.audio.block_count", 1)
        .t("v.patch_embd.weight", &[4, 4, 3, 8], GgmlType::F16)
        .tb("a.blk.0.ln1.weight", &[1], GgmlType::F32, f32_bytes(&[1.0]))
        .tb("a.blk.0.ln2.weight", &[1], GgmlType::F32, f32_bytes(&[2.0]))
        .tb(
            "a.blk.0.layer_pre_norm.weight",
            &[1],
            GgmlType::F32,
            f32_bytes(&[3.0]),
        )
        .tb(
            "a.blk.0.linear_pos.weight",
            &[1],
            GgmlType::F32,
            f32_bytes(&[4.0]),
        )
        .bytes("gemma4");
    let (_, out) = clip_of(&b).unwrap();
    for (name, want) in [
        ("a.blk.0.attn_pre_norm.weight", 1.0),
        ("a.blk.0.attn_post_norm.weight", 2.0),
        ("a.blk.0.ln2.weight", 3.0),
        ("a.blk.0.attn_k_rel.weight", 4.0),
    ] {
        assert_eq!(floats(&out, name), [want], "{name}");
    }
    assert_eq!(key(&out, "clip.audio.num_mel_bins"), Some(Value::U32(128)));
    assert_eq!(key(&out, "clip.has_audio_encoder"), Some(Value::Bool(true)));
    assert_eq!(key(&out, "clip.vision.image_size"), Some(Value::U32(224)));
    assert_eq!(
        key(&out, "clip.vision.projector_type"),
        Some(Value::String("gemma4v".into()))
    );
    assert_eq!(tensor(&out, "v.patch_embd.weight").1, GgmlType::F32);
}

// ---------------------------------------------------------------------------------------
// glmocr (§7.7) and qwen25vl (§7.10).

fn glmocr_native() -> B {
    B::default()
        .s("clip.projector_type", "glm4v")
        .yes("clip.has_vision_encoder")
        .yes("clip.use_silu")
        .u("clip.vision.block_count", 1)
        .u("clip.vision.embedding_length", 32)
        .u("clip.vision.attention.head_count", 2)
        .u("clip.vision.image_size", 32)
        .u("clip.vision.patch_size", 4)
        .u("clip.vision.spatial_merge_size", 2)
        .u("clip.vision.feed_forward_length", 64)
        .u("clip.vision.projection_dim", 48)
        .f("clip.vision.attention.layer_norm_epsilon", 1e-5)
        .k("clip.vision.image_mean", f32s(&CLIP_MEAN))
        .k("clip.vision.image_std", f32s(&CLIP_STD))
        .t("v.patch_embd.weight", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.patch_embd.weight.1", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.patch_embd.bias", &[32], GgmlType::F32)
        .t("v.blk.0.attn_qkv.weight", &[32, 96], GgmlType::F16)
        .t("mm.model.fc.weight", &[48, 48], GgmlType::F16)
        .t("mm.up.weight", &[48, 96], GgmlType::F16)
        .t("mm.patch_merger.weight", &[2, 2, 32, 48], GgmlType::F16)
        .t("mm.patch_merger.bias", &[48], GgmlType::F32)
}

#[test]
fn glmocr_round_trip() {
    let native = glmocr_native().bytes("clip");
    let (h, _) = round_trip(
        "glmocr",
        &native,
        &text("glmocr", 64).bytes("glmocr"),
        |_| {},
    );
    assert_eq!(h, "glmocr");
}

#[test]
fn glmocr_widens_f16_and_bf16_patch_slices() {
    let v = [1.5f32, -2.0, 0.25, 8.0];
    let bf: Vec<u8> = v
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let b = text("glmocr", 64)
        .tb(
            "v.patch_embd_0.weight",
            &[2, 2, 1, 1],
            GgmlType::F16,
            f16_bytes(&v),
        )
        .tb("v.patch_embd_1.weight", &[2, 2, 1, 1], GgmlType::BF16, bf)
        .bytes("glmocr");
    let (_, out) = clip_of(&b).unwrap();
    assert_eq!(floats(&out, "v.patch_embd.weight"), v);
    assert_eq!(floats(&out, "v.patch_embd.weight.1"), v);
    assert_eq!(
        key(&out, "clip.projector_type"),
        Some(Value::String("glm4v".into()))
    );
}

fn qwen25vl_native() -> B {
    B::default()
        .s("clip.projector_type", "qwen2.5vl_merger")
        .yes("clip.has_vision_encoder")
        .yes("clip.use_silu")
        .u("clip.vision.attention.head_count", 2)
        .u("clip.vision.block_count", 4)
        .u("clip.vision.embedding_length", 32)
        .u("clip.vision.num_channels", 3)
        .u("clip.vision.patch_size", 4)
        .u("clip.vision.spatial_merge_size", 2)
        .u("clip.vision.window_size", 112)
        .f("clip.vision.attention.layer_norm_epsilon", 1e-6)
        .u("clip.vision.projection_dim", 64)
        .u("clip.vision.feed_forward_length", 80)
        .u("clip.vision.n_wa_pattern", 2)
        .u("clip.vision.image_size", 560)
        .k("clip.vision.image_mean", f32s(&CLIP_MEAN))
        .k("clip.vision.image_std", f32s(&CLIP_STD))
        .t("v.patch_embd.weight", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.patch_embd.weight.1", &[4, 4, 3, 32], GgmlType::F32)
        .t("v.blk.0.ffn_up.weight", &[32, 80], GgmlType::F16)
        .t("v.blk.0.attn_q.weight", &[32, 32], GgmlType::F16)
        .t("v.post_ln.weight", &[32], GgmlType::F32)
        .t("mm.0.weight", &[128, 128], GgmlType::F16)
        .t("mm.0.bias", &[128], GgmlType::F32)
        .t("mm.2.weight", &[128, 64], GgmlType::F16)
        .t("mm.2.bias", &[64], GgmlType::F32)
}

#[test]
fn qwen25vl_round_trip() {
    let native = qwen25vl_native().bytes("clip");
    let (h, _) = round_trip(
        "qwen25vl",
        &native,
        &text("qwen25vl", 64).bytes("qwen25vl"),
        |_| {},
    );
    assert_eq!(h, "qwen25vl");
}

#[test]
fn qwen25vl_window_pattern() {
    let with = |idx: Option<Vec<i32>>| {
        let mut b = text("qwen25vl", 64).t("v.patch_embd_0.weight", &[4, 4, 3, 8], GgmlType::F16);
        if let Some(i) = idx {
            b = b.k(
                "qwen25vl.vision.fullatt_block_indexes",
                Value::Array(Array::I32(i)),
            );
        }
        b.bytes("qwen25vl")
    };
    let (_, out) = clip_of(&with(Some(vec![7, 15, 23]))).unwrap();
    assert_eq!(key(&out, "clip.vision.n_wa_pattern"), Some(Value::U32(8)));
    let (_, out) = clip_of(&with(Some(vec![3]))).unwrap();
    assert_eq!(key(&out, "clip.vision.n_wa_pattern"), Some(Value::U32(4)));
    let (_, out) = clip_of(&with(None)).unwrap();
    assert_eq!(key(&out, "clip.vision.n_wa_pattern"), Some(Value::U32(8)));
    assert_eq!(key(&out, "clip.vision.image_size"), Some(Value::U32(560)));
    assert!(err_of(&with(Some(vec![-1]))).contains("fullatt_block_indexes"));
}

#[test]
fn spec_constants() {
    let close = |a: [f32; 3], b: [f64; 3]| {
        a.iter()
            .zip(b)
            .all(|(&x, y)| (f64::from(x) - y).abs() < 1e-7)
    };
    assert!(close(super::CLIP_MEAN, [0.48145466, 0.4578275, 0.40821073]));
    assert!(close(super::CLIP_STD, [0.26862954, 0.26130258, 0.27577711]));
    assert!(close(PIXTRAL_MEAN, [0.48145467, 0.4578275, 0.40821072]));
    assert!(close(PIXTRAL_STD, [0.26862955, 0.26130259, 0.2757771]));
    assert_eq!(super::CLIP_MEAN, CLIP_MEAN);
}

#[test]
fn the_public_plan_carries_the_projector() {
    let native = qwen25vl_native().bytes("clip");
    let t = text("qwen25vl", 64).bytes("qwen25vl");
    let mut v = View::new(&Gguf::from_bytes(&t).unwrap());
    fixture::clip::to_ollama(
        "qwen25vl",
        &Gguf::from_bytes(&native).unwrap(),
        &native,
        &mut v,
    )
    .unwrap();
    let src = write_tmp(&t);
    let o = tempfile::NamedTempFile::new().unwrap();
    fixture::write(&v, src.path(), o.path()).unwrap();
    let p = plan(&Gguf::open(o.path()).unwrap())
        .unwrap()
        .expect("a plan");
    assert!(
        p.summary().contains("projector: qwen25vl"),
        "{}",
        p.summary()
    );
    let (h, clip) = p.clip.expect("a projector");
    assert_eq!(h, "qwen25vl");
    assert!(clip.changes().iter().any(|c| c.contains("promote")));
}
