//! The clip translator against upstream's clip, one projector type at a time: a random-weight
//! projector in llama.cpp's own layout (`fixture::clip_native`) loads in upstream's mtmd with a
//! matching random-weight text model and encodes a fixed image; the same projector embedded in
//! an Ollama monolithic blob (`fixture::clip::to_ollama`) and translated back by
//! `compat::plan` has every native tensor byte for byte and every native `clip.*` key, and
//! upstream encodes the same image from it to bit-identical embeddings.

use llama::mtmd::{Bitmap, ChunkKind, Projector, ProjectorParams};
use ollamars::compat::fixture::clip_native::{self, Mmproj};
use ollamars::compat::fixture::{self, native};
use ollamars::compat::{self, View};
use ollamars::gguf::{Array, GgmlType, Gguf, Value};
use std::path::Path;

/// Tests that load models take turns (ggml's threads spin on 2 cores).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn u(k: &str, v: u32) -> (String, Value) {
    (k.to_string(), Value::U32(v))
}
fn f(k: &str, v: f32) -> (String, Value) {
    (k.to_string(), Value::F32(v))
}

fn set(kv: &mut Vec<(String, Value)>, k: &str, v: Value) {
    kv.retain(|(key, _)| key != k);
    kv.push((k.to_string(), v));
}

/// The keys of a tiny text model of llama.cpp architecture `arch` whose width is `n_embd`
/// (the projector's output), with `extra` control tokens in its vocabulary.
fn text_kv(arch: &str, n_embd: u64, extra: &[&str]) -> Vec<(String, Value)> {
    let a = |k: &str| format!("{arch}.{k}");
    let mut kv = vec![
        (
            "general.architecture".to_string(),
            Value::String(arch.into()),
        ),
        u(&a("block_count"), 2),
        u(&a("context_length"), 512),
        u(&a("embedding_length"), n_embd as u32),
        u(&a("feed_forward_length"), 128),
        u(&a("attention.head_count"), 4),
        u(&a("attention.head_count_kv"), 2),
        f(&a("attention.layer_norm_rms_epsilon"), 1e-5),
        f(&a("rope.freq_base"), 10000.0),
    ];
    let mut vocab = vec!["<|end|>"];
    vocab.extend_from_slice(extra);
    kv.extend(native::byte_vocab(&vocab));
    let i32s = |v: &[i32]| Value::Array(Array::I32(v.to_vec()));
    let u32s = |v: &[u32]| Value::Array(Array::U32(v.to_vec()));
    let moe = |kv: &mut Vec<(String, Value)>| {
        kv.push(u(&a("expert_count"), 4));
        kv.push(u(&a("expert_used_count"), 2));
        kv.push(u(&a("expert_feed_forward_length"), 32));
    };
    let ssm = |kv: &mut Vec<(String, Value)>| {
        kv.push(u(&a("ssm.conv_kernel"), 4));
        kv.push(u(&a("ssm.inner_size"), 64));
        kv.push(u(&a("ssm.state_size"), 16));
        kv.push(u(&a("ssm.time_step_rank"), 4));
        kv.push(u(&a("ssm.group_count"), 2));
    };
    match arch {
        "qwen2vl" => set(&mut kv, &a("rope.dimension_sections"), i32s(&[2, 3, 3, 0])),
        "qwen3vl" => {
            // The sections Ollama's layout implies need 128-wide heads.
            set(&mut kv, &a("attention.head_count"), Value::U32(2));
            set(&mut kv, &a("attention.head_count_kv"), Value::U32(1));
            set(
                &mut kv,
                &a("rope.dimension_sections"),
                i32s(&[24, 20, 20, 0]),
            );
        }
        "qwen35" => {
            ssm(&mut kv);
            kv.push(u(&a("full_attention_interval"), 2));
            kv.push((a("rope.dimension_sections"), i32s(&[2, 3, 3, 0])));
        }
        "llama4" => {
            set(&mut kv, &a("block_count"), Value::U32(4));
            moe(&mut kv);
            kv.push(u(&a("interleave_moe_layer_step"), 1));
        }
        "gemma4" => {
            kv.push(u(&a("attention.sliding_window"), 64));
            kv.push((
                a("attention.sliding_window_pattern"),
                Value::Array(Array::Bool(vec![true, false])),
            ));
            kv.push(u(&a("embedding_length_per_layer_input"), 16));
            for k in [
                "key_length",
                "value_length",
                "key_length_swa",
                "value_length_swa",
            ] {
                kv.push(u(&a(&format!("attention.{k}")), 16));
            }
        }
        "deepseek2-ocr" => {
            moe(&mut kv);
            kv.push(u(&a("expert_shared_count"), 1));
            kv.push(u(&a("leading_dense_block_count"), 1));
            set(&mut kv, &a("attention.head_count_kv"), Value::U32(4));
        }
        "nemotron_h" => {
            ssm(&mut kv);
            set(&mut kv, &a("block_count"), Value::U32(3));
            set(&mut kv, &a("attention.head_count_kv"), u32s(&[0, 2, 0]));
            set(&mut kv, &a("feed_forward_length"), u32s(&[0, 0, 128]));
            kv.push(f(&a("attention.layer_norm_epsilon"), 1e-5));
        }
        _ => {}
    }
    kv
}

/// A fixed `w × h` RGB image (a few gradients, so patches differ), one per `seed`.
fn image(w: u32, h: u32, seed: u32) -> Bitmap {
    let rgb: Vec<u8> = (0..h)
        .flat_map(|y| {
            (0..w).flat_map(move |x| {
                [
                    ((x * (7 + seed) + y * 3) % 256) as u8,
                    ((x * 2 + y * (11 + seed) + 40 * seed) % 256) as u8,
                    ((x * y + 90 + seed) % 256) as u8,
                ]
            })
        })
        .collect();
    Bitmap::from_rgb(w, h, &rgb).unwrap()
}

/// Upstream's embeddings of `img` through the projector at `mmproj` for `model`, as bits,
/// every media chunk one after another; all finite and not all zero.
fn embeddings(model: &llama::Model, mmproj: &Path, img: &Bitmap) -> Vec<u32> {
    let params = ProjectorParams {
        use_gpu: false,
        n_threads: 2,
        ..Default::default()
    };
    let p = Projector::load(model, mmproj, &params)
        .unwrap_or_else(|e| panic!("{}: upstream refuses it: {e}", mmproj.display()));
    assert!(p.supports_vision(), "{}: no vision", mmproj.display());
    let prompt = format!("look: {} now", p.marker());
    let chunks = p.tokenize(&prompt, &[img], true).unwrap();
    let mut out = Vec::new();
    let mut media = 0;
    for c in chunks.iter().filter(|c| c.kind() != ChunkKind::Text) {
        let e = p.encode(c).unwrap();
        assert_eq!(e.as_slice().len(), e.n_tokens() * e.n_embd());
        out.extend(e.as_slice().iter().map(|x| x.to_bits()));
        media += 1;
    }
    assert!(media > 0, "no image chunk");
    assert!(!out.is_empty());
    assert!(
        out.iter().all(|&b| f32::from_bits(b).is_finite()),
        "{}: non-finite embeddings",
        mmproj.display()
    );
    assert!(out.iter().any(|&b| f32::from_bits(b) != 0.0), "all zero");
    out
}

/// One projector type end to end (see the file's doc). `text_arch` is llama.cpp's text
/// architecture, `ollama` the Ollama one (whose handler must run), `mmproj` the native
/// projector made for the text model at the path it is given.
fn check(
    text_arch: &str,
    ollama: &str,
    kv: &[(String, Value)],
    mmproj: impl FnOnce(&Path) -> Mmproj,
    img: (u32, u32),
) {
    let _s = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let text = native::model(&dir, "text", kv, &[], 3).unwrap();
    let m = mmproj(&text);
    assert!(m.projection_dim() > 0);
    let native_path = dir.join("mmproj-native.gguf");
    let (nbytes, ng) = m.write(&native_path, 11).unwrap();
    assert!(
        compat::plan(&ng).unwrap().is_none(),
        "{ollama}: a native projector must be left alone"
    );

    // Upstream loads the native pair and encodes the image.
    let model = llama::Model::load(&text, llama::ModelParams::default()).unwrap();
    let bmp = image(img.0, img.1, 0);
    let want = embeddings(&model, &native_path, &bmp);
    // The embeddings depend on the image (the comparison below can fail).
    let other = embeddings(&model, &native_path, &image(img.0, img.1, 5));
    assert!(other != want, "{ollama}: two images encode alike");

    // The Ollama monolithic blob: the text model in Ollama's layout with the projector inside.
    let mut v = View::new(&Gguf::open(&text).unwrap());
    fixture::text::to_ollama_as(text_arch, ollama, &mut v).unwrap();
    fixture::clip::to_ollama(ollama, &ng, &nbytes, &mut v).unwrap();
    // The text fixture's marker tensor stands in for a vision tower: a real one is here now.
    v.retain("stand-in", |t| !t.name.contains("fixture_stand_in"));
    let blob = dir.join("ollama.gguf");
    fixture::write(&v, &text, &blob).unwrap();
    // The blob really is in Ollama's layout: no clip keys, and some native tensor is not in
    // it under the same name, shape and type.
    let bg = Gguf::open(&blob).unwrap();
    assert!(bg.metadata().iter().all(|(k, _)| !k.starts_with("clip.")));
    assert!(
        ng.tensors().iter().any(|t| !bg
            .tensors()
            .iter()
            .any(|b| b.name == t.name && b.dims == t.dims && b.ggml_type == t.ggml_type)),
        "{ollama}: the blob has the native tensor table"
    );

    let plan = compat::plan(&Gguf::open(&blob).unwrap())
        .unwrap()
        .unwrap_or_else(|| panic!("{ollama}: the monolithic blob was not detected"));
    let (h, clip) = plan
        .clip
        .as_ref()
        .unwrap_or_else(|| panic!("{ollama}: no projector planned"));
    assert_eq!(*h, ollama, "clip handler");
    let derived = dir.join("mmproj-derived.gguf");
    fixture::write(clip, &blob, &derived).unwrap();

    // Every native tensor, byte for byte, and nothing else.
    let (d, n) = (
        fixture::tensor_table_of(&derived),
        fixture::tensor_table_of(&native_path),
    );
    assert_eq!(
        d.keys().collect::<Vec<_>>(),
        n.keys().collect::<Vec<_>>(),
        "{ollama}: tensor names"
    );
    for (k, t) in &n {
        assert!(
            d[k] == *t,
            "{ollama}: tensor {k} differs ({:?} type {} vs native {:?} type {})",
            d[k].0,
            d[k].1,
            t.0,
            t.1
        );
    }
    // Every native key, with its value.
    let dg = Gguf::open(&derived).unwrap();
    assert_eq!(dg.architecture(), Some("clip"));
    for (k, val) in ng.metadata() {
        assert_eq!(dg.get(k), Some(val), "{ollama}: key {k}");
    }

    // Upstream encodes the same image from the derived file to the same bits.
    let got = embeddings(&model, &derived, &bmp);
    assert_eq!(got.len(), want.len(), "{ollama}: embedding count");
    assert!(got == want, "{ollama}: embeddings differ");
}

/// Row `token` of the F32 `token_embd.weight` of the model at `path`.
fn embedding_row(path: &Path, token: &str) -> Vec<u8> {
    let g = Gguf::open(path).unwrap();
    let id = match g.get("tokenizer.ggml.tokens") {
        Some(Value::Array(Array::String(t))) => t.iter().position(|x| x == token).unwrap(),
        _ => panic!("no vocabulary"),
    };
    let (dims, ty, bytes) = fixture::tensor_table_of(path)
        .remove("token_embd.weight")
        .unwrap();
    assert_eq!(ty, GgmlType::F32, "token_embd.weight must be F32");
    let row = dims[0] as usize * 4;
    bytes[id * row..(id + 1) * row].to_vec()
}

#[test]
fn qwen25vl() {
    check(
        "qwen2vl",
        "qwen25vl",
        &text_kv("qwen2vl", 64, &[]),
        |_| clip_native::qwen25vl(64),
        (128, 128),
    );
}

#[test]
fn qwen3vl() {
    check(
        "qwen3vl",
        "qwen3vl",
        &text_kv("qwen3vl", 256, &[]),
        |_| clip_native::qwen3vl(256, false),
        (48, 32),
    );
}

#[test]
fn qwen35() {
    check(
        "qwen35",
        "qwen35",
        &text_kv("qwen35", 64, &[]),
        |_| clip_native::qwen35(64),
        (32, 32),
    );
}

#[test]
fn mistral3_pixtral() {
    check(
        "mistral3",
        "mistral3",
        &text_kv("mistral3", 64, &["[IMG_BREAK]"]),
        |text| clip_native::pixtral(64, embedding_row(text, "[IMG_BREAK]")),
        (32, 24),
    );
}

#[test]
fn llama4() {
    check(
        "llama4",
        "llama4",
        &text_kv("llama4", 64, &[]),
        |_| clip_native::llama4(64),
        (32, 32),
    );
}

#[test]
fn gemma4v() {
    check(
        "gemma4",
        "gemma4",
        &text_kv("gemma4", 64, &[]),
        |_| clip_native::gemma4v(64),
        (96, 96),
    );
}

#[test]
fn glmocr_glm4v() {
    check(
        "glm4",
        "glmocr",
        &text_kv("glm4", 64, &[]),
        |_| clip_native::glm4v(64),
        (32, 32),
    );
}

#[test]
fn nemotron_v2_vl() {
    check(
        "nemotron_h",
        "nemotron_h_omni",
        &text_kv("nemotron_h", 64, &[]),
        |_| clip_native::nemotron_v2_vl(64),
        (16, 16),
    );
}

#[test]
fn qwen3vl_deepstack() {
    // One deepstack layer: the text model takes embeddings twice as wide.
    let mut kv = text_kv("qwen3vl", 256, &[]);
    kv.push(u("qwen3vl.n_deepstack_layers", 1));
    check(
        "qwen3vl",
        "qwen3vl",
        &kv,
        |_| clip_native::qwen3vl(256, true),
        (32, 32),
    );
}

#[test]
fn deepseekocr() {
    check(
        "deepseek2-ocr",
        "deepseekocr",
        &text_kv("deepseek2-ocr", 64, &[]),
        |_| clip_native::deepseekocr(64),
        (64, 128),
    );
}
