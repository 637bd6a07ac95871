//! Unit tests of the translator on synthetic headers (real models: `tests/compat.rs`).

use super::fixture::{self, Gemma3};
use super::*;
use crate::gguf::{Array, GgmlType, Gguf, GgufWriter, Value};

/// A small gemma3 file in llama.cpp's layout (the real 270m's keys, tiny shapes).
fn gemma3_native() -> Vec<u8> {
    let n_vocab = 8u64;
    let n_embd = 64u64;
    let mut w = GgufWriter::new()
        .kv("general.architecture", Value::String("gemma3".into()))
        .kv("general.name", Value::String("tiny".into()))
        .kv("gemma3.block_count", Value::U32(1))
        .kv("gemma3.context_length", Value::U32(32768))
        .kv("gemma3.embedding_length", Value::U32(n_embd as u32))
        .kv("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6))
        .kv("gemma3.rope.freq_base", Value::F32(1e6))
        .kv("tokenizer.ggml.model", Value::String("llama".into()))
        .kv("tokenizer.ggml.add_space_prefix", Value::Bool(false))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(Array::String(
                (0..n_vocab).map(|i| format!("t{i}")).collect(),
            )),
        )
        .kv(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32((0..n_vocab).map(|i| i as f32).collect())),
        )
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![1; n_vocab as usize])),
        );
    w = w.tensor_filled("token_embd.weight", &[n_embd, n_vocab], GgmlType::F32);
    w = w.tensor_filled("output_norm.weight", &[n_embd], GgmlType::F32);
    w.to_bytes()
}

fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

/// Applies a fixture to `native` and returns the Ollama-layout file.
fn ollama_layout(native: &[u8], f: impl Fn(&mut View)) -> tempfile::NamedTempFile {
    let src = write_tmp(native);
    let mut v = View::new(&Gguf::from_bytes(native).unwrap());
    f(&mut v);
    let out = tempfile::NamedTempFile::new().unwrap();
    fixture::write(&v, src.path(), out.path()).unwrap();
    out
}

/// Translates the file at `p` and returns the derived text file's bytes.
fn translate(p: &std::path::Path) -> (Plan, Vec<u8>) {
    let g = Gguf::open(p).unwrap();
    let plan = plan(&g).unwrap().expect("a translation");
    let v = plan.text.as_ref().expect("a text view");
    let out = tempfile::NamedTempFile::new().unwrap();
    fixture::write(v, p, out.path()).unwrap();
    (plan, std::fs::read(out.path()).unwrap())
}

fn kv(bytes: &[u8], key: &str) -> Option<Value> {
    Gguf::from_bytes(bytes).unwrap().get(key).cloned()
}

fn tensor_bytes(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let g = Gguf::from_bytes(bytes).unwrap();
    g.tensors()
        .iter()
        .map(|t| {
            let at = (g.data_offset() + t.offset) as usize;
            (t.name.clone(), bytes[at..at + t.size as usize].to_vec())
        })
        .collect()
}

#[test]
fn a_native_gemma3_file_is_not_detected() {
    assert!(
        plan(&Gguf::from_bytes(&gemma3_native()).unwrap())
            .unwrap()
            .is_none()
    );
}

#[test]
fn gemma3_current_layout_is_a_header_only_rewrite() {
    let native = gemma3_native();
    let o = ollama_layout(&native, |v| fixture::gemma3(v, Gemma3::Current));
    let (plan, derived) = translate(o.path());
    assert_eq!(plan.handlers, ["gemma3"]);
    assert!(plan.text_is_header_only());
    assert!(plan.clip.is_none());
    assert_eq!(
        kv(&derived, "gemma3.rope.freq_base_swa"),
        Some(Value::F32(10_000.0))
    );
    assert_eq!(
        kv(&derived, "tokenizer.ggml.add_space_prefix"),
        Some(Value::Bool(false))
    );
    assert!(kv(&derived, "tokenizer.chat_template").is_some());
    assert_eq!(tensor_bytes(&derived), tensor_bytes(&native));
}

#[test]
fn gemma3_missing_epsilon_comes_back_bit_identical() {
    let native = gemma3_native();
    let o = ollama_layout(&native, |v| fixture::gemma3(v, Gemma3::NoEpsilon));
    let (_, derived) = translate(o.path());
    for k in [
        "gemma3.attention.layer_norm_rms_epsilon",
        "gemma3.rope.freq_base",
    ] {
        assert_eq!(kv(&derived, k), kv(&native, k), "{k}");
    }
}

#[test]
fn gemma3_extra_vocab_is_truncated_to_the_embedding_rows() {
    let native = gemma3_native();
    let o = ollama_layout(&native, |v| fixture::gemma3(v, Gemma3::ExtraVocab));
    assert_eq!(
        kv(&std::fs::read(o.path()).unwrap(), "tokenizer.ggml.tokens").map(|v| match v {
            Value::Array(a) => a.len(),
            _ => 0,
        }),
        Some(11)
    );
    let (_, derived) = translate(o.path());
    for k in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
    ] {
        assert_eq!(kv(&derived, k), kv(&native, k), "{k}");
    }
}

#[test]
fn gemma3_long_context_gets_linear_scaling() {
    let o = ollama_layout(&gemma3_native(), |v| {
        fixture::gemma3(v, Gemma3::LongContext)
    });
    let (_, derived) = translate(o.path());
    assert_eq!(
        kv(&derived, "gemma3.rope.scaling.type"),
        Some(Value::String("linear".into()))
    );
    assert_eq!(
        kv(&derived, "gemma3.rope.scaling.factor"),
        Some(Value::F32(8.0))
    );
}

#[test]
fn gemma3_monolithic_blob_splits_into_text_and_projector() {
    let native = gemma3_native();
    let o = ollama_layout(&native, |v| fixture::gemma3(v, Gemma3::Monolithic));
    let (plan, derived) = translate(o.path());
    // The text view drops the vision tensors and compacts the data.
    assert_eq!(tensor_bytes(&derived), tensor_bytes(&native));
    let (h, clip) = plan.clip.expect("a projector");
    assert_eq!(h, "gemma3");
    let out = tempfile::NamedTempFile::new().unwrap();
    fixture::write(&clip, o.path(), out.path()).unwrap();
    let g = Gguf::open(out.path()).unwrap();
    assert_eq!(g.architecture(), Some("clip"));
    assert_eq!(
        g.get("clip.projector_type"),
        Some(&Value::String("gemma3".into()))
    );
    assert_eq!(g.get("clip.vision.projection_dim"), Some(&Value::U32(64)));
    assert!(g.get("tokenizer.ggml.tokens").is_none());
    let names: Vec<&str> = g.tensors().iter().map(|t| t.name.as_str()).collect();
    for n in [
        "v.patch_embd.weight",
        "v.position_embd.weight",
        "v.blk.0.ln1.weight",
        "v.blk.0.attn_out.weight",
        "v.blk.0.ffn_down.weight",
        "v.post_ln.weight",
        "mm.input_projection.weight",
        "mm.soft_emb_norm.weight",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("v.") || n.starts_with("mm."))
    );
    let pe = g
        .tensors()
        .iter()
        .find(|t| t.name == "v.patch_embd.weight")
        .unwrap();
    assert_eq!(pe.ggml_type, GgmlType::F32);
    // The widened bytes are the F16 source values, exactly.
    let src = std::fs::read(o.path()).unwrap();
    let sg = Gguf::from_bytes(&src).unwrap();
    let st = sg
        .tensors()
        .iter()
        .find(|t| t.name == "v.patch_embedding.weight")
        .unwrap();
    let at = (sg.data_offset() + st.offset) as usize;
    let want = f32_bytes(&to_f32(GgmlType::F16, &src[at..at + st.size as usize]));
    let dst = std::fs::read(out.path()).unwrap();
    let at = (g.data_offset() + pe.offset) as usize;
    assert_eq!(&dst[at..at + pe.size as usize], &want[..]);
}

#[test]
fn a_layout_whose_tensors_do_not_match_is_refused_with_the_reason() {
    // Claims the Ollama gemma3 layout (local rope key) but has no token embedding.
    let bytes = GgufWriter::new()
        .kv("general.architecture", Value::String("gemma3".into()))
        .kv("gemma3.rope.local.freq_base", Value::F32(1e4))
        .tensor_filled("output_norm.weight", &[64], GgmlType::F32)
        .to_bytes();
    let e = plan(&Gguf::from_bytes(&bytes).unwrap()).unwrap_err();
    assert!(e.to_string().contains("token_embd.weight"), "{e}");
}

fn llama3_vocab(eot_at: usize, eot: &str) -> Vec<String> {
    let mut t: Vec<String> = (0..128_010).map(|i| format!("t{i}")).collect();
    t[128_006] = "<|start_header_id|>".into();
    t[eot_at] = eot.into();
    t
}

fn llama3_file(tokens: Vec<String>, pre: &str, eos: u32) -> Vec<u8> {
    GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .kv("tokenizer.ggml.pre", Value::String(pre.into()))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(eos))
        .kv("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
        .tensor_filled("token_embd.weight", &[32, 4], GgmlType::F32)
        .to_bytes()
}

#[test]
fn llama3_markers_fix_pre_tokenizer_and_end_of_turn() {
    let bytes = llama3_file(llama3_vocab(128_009, "<|eot_id|>"), "default", 128_001);
    let p = plan(&Gguf::from_bytes(&bytes).unwrap()).unwrap().unwrap();
    assert_eq!(p.handlers, ["llama3"]);
    let v = p.text.unwrap();
    assert_eq!(v.str("tokenizer.ggml.pre"), Some("llama-bpe"));
    assert_eq!(v.u64("tokenizer.ggml.eos_token_id"), Some(128_009));
    assert_eq!(v.u64("tokenizer.ggml.eot_token_id"), Some(128_009));
    assert_eq!(
        v.get("tokenizer.ggml.eos_token_ids"),
        Some(&Value::Array(Array::I32(vec![128_009])))
    );
    assert!(!v.tensors_changed());
}

#[test]
fn llama3_negative_cases_are_left_alone() {
    // Token 128009 is something else.
    let other = llama3_file(llama3_vocab(128_009, "<|other|>"), "default", 128_001);
    assert!(plan(&Gguf::from_bytes(&other).unwrap()).unwrap().is_none());
    // No header marker in the tokens or a template.
    let mut t = llama3_vocab(128_009, "<|eot_id|>");
    t[128_006] = "t128006".into();
    let unmarked = llama3_file(t, "default", 128_001);
    assert!(
        plan(&Gguf::from_bytes(&unmarked).unwrap())
            .unwrap()
            .is_none()
    );
    // Already right.
    let fine = llama3_file(llama3_vocab(128_009, "<|eot_id|>"), "llama-bpe", 128_009);
    assert!(plan(&Gguf::from_bytes(&fine).unwrap()).unwrap().is_none());
}

#[test]
fn separate_projector_without_type_gets_the_llava_default() {
    let bytes = GgufWriter::new()
        .kv("general.architecture", Value::String("clip".into()))
        .kv("clip.has_vision_encoder", Value::Bool(true))
        .tensor_filled("mm.0.weight", &[32, 4], GgmlType::F32)
        .to_bytes();
    let p = plan(&Gguf::from_bytes(&bytes).unwrap()).unwrap().unwrap();
    let (h, v) = p.clip.unwrap();
    assert_eq!(h, "llava");
    assert_eq!(v.str("clip.projector_type"), Some("mlp"));
}
