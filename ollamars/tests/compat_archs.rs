//! Every architecture of the translator: a random-weight model in llama.cpp's own layout
//! (tensor table from llama.cpp itself), turned into the Ollama layout the spec describes,
//! translated back; llama.cpp loads the result and its logits for a fixed prompt equal the
//! native file's, bit for bit.

use ollamars::compat::fixture::{self, Gemma3, native};
use ollamars::compat::{self, View};
use ollamars::gguf::{Array, Gguf, Value};
use std::collections::BTreeMap;
use std::path::Path;

fn u(k: &str, v: u32) -> (String, Value) {
    (k.to_string(), Value::U32(v))
}
fn f(k: &str, v: f32) -> (String, Value) {
    (k.to_string(), Value::F32(v))
}
fn st(k: &str, v: &str) -> (String, Value) {
    (k.to_string(), Value::String(v.to_string()))
}

/// Keys every decoder shares, under `arch`.
fn common(arch: &str) -> Vec<(String, Value)> {
    let mut kv = vec![
        st("general.architecture", arch),
        u(&format!("{arch}.block_count"), 2),
        u(&format!("{arch}.context_length"), 256),
        u(&format!("{arch}.embedding_length"), 64),
        u(&format!("{arch}.feed_forward_length"), 128),
        u(&format!("{arch}.attention.head_count"), 4),
        u(&format!("{arch}.attention.head_count_kv"), 2),
        f(&format!("{arch}.attention.layer_norm_rms_epsilon"), 1e-5),
        f(&format!("{arch}.rope.freq_base"), 10000.0),
    ];
    kv.extend(native::byte_vocab(&["<|end|>"]));
    kv
}

fn i32s(k: &str, v: &[i32]) -> (String, Value) {
    (k.to_string(), Value::Array(Array::I32(v.to_vec())))
}

/// The keys of a tiny model of llama.cpp architecture `arch`.
fn arch_kv(arch: &str) -> Vec<(String, Value)> {
    let mut kv = common(arch);
    let a = |k: &str| format!("{arch}.{k}");
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
        "gpt-oss" => {
            moe(&mut kv);
            kv.push(u(&a("attention.sliding_window"), 64));
        }
        "lfm2" => kv.push(u(&a("shortconv.l_cache"), 3)),
        "laguna" => {
            moe(&mut kv);
            kv.push(u(&a("leading_dense_block_count"), 1));
        }
        "gemma4" => {
            kv.push(u(&a("attention.sliding_window"), 64));
            kv.push((
                a("attention.sliding_window_pattern"),
                Value::Array(Array::Bool(vec![true, false])),
            ));
            kv.push(u(&a("embedding_length_per_layer_input"), 16));
            kv.push(u(&a("attention.key_length"), 16));
            kv.push(u(&a("attention.value_length"), 16));
            kv.push(u(&a("attention.key_length_swa"), 16));
            kv.push(u(&a("attention.value_length_swa"), 16));
        }
        "qwen35" | "qwen35moe" | "qwen3next" => {
            ssm(&mut kv);
            if arch != "qwen35" {
                moe(&mut kv);
            }
            if arch != "qwen3next" {
                kv.push(i32s(&a("rope.dimension_sections"), &[2, 3, 3, 0]));
            }
        }
        "nemotron_h" | "nemotron_h_moe" => {
            ssm(&mut kv);
            kv.push(f(&a("attention.layer_norm_epsilon"), 1e-5));
            if arch == "nemotron_h_moe" {
                moe(&mut kv);
                kv.push(u(&a("expert_shared_feed_forward_length"), 32));
                kv.push(u(&a("moe_latent_size"), 16));
            }
        }
        "llama4" => {
            moe(&mut kv);
            kv.push(u(&a("interleave_moe_layer_step"), 1));
        }
        "deepseek2" | "deepseek2-ocr" => {
            moe(&mut kv);
            kv.push(u(&a("expert_shared_count"), 1));
            kv.push(u(&a("leading_dense_block_count"), 1));
            if arch == "deepseek2" {
                kv.push(u(&a("attention.q_lora_rank"), 32));
                kv.push(u(&a("attention.kv_lora_rank"), 16));
                kv.push(u(&a("attention.key_length"), 24));
                kv.push(u(&a("attention.value_length"), 16));
                kv.push(u(&a("rope.dimension_count"), 8));
            }
        }
        "qwen2vl" | "qwen3vl" | "qwen3vlmoe" => {
            kv.push(i32s(&a("rope.dimension_sections"), &[2, 3, 3, 0]));
            if arch == "qwen3vlmoe" {
                moe(&mut kv);
            }
        }
        "gemma-embedding" => kv.push(u(&a("attention.sliding_window"), 64)),
        "gemma3" => {
            // The values Ollama's handler injects when a blob lacks them (gemma 3's own).
            kv.retain(|(k, _)| {
                !k.ends_with("layer_norm_rms_epsilon") && !k.ends_with("rope.freq_base")
            });
            kv.push(f(&a("attention.layer_norm_rms_epsilon"), 1e-6));
            kv.push(f(&a("rope.freq_base"), 1e6));
            kv.push(u(&a("attention.sliding_window"), 64));
        }
        "bert" => {
            kv.push(f(&a("attention.layer_norm_epsilon"), 1e-5));
            kv.push(u("tokenizer.ggml.token_type_count", 2));
        }
        "gemma3n" => {
            kv.push(u(&a("attention.sliding_window"), 64));
            kv.push(u(&a("embedding_length_per_layer_input"), 16));
            kv.push(u(&a("altup.active_idx"), 0));
            kv.push(u(&a("altup.num_inputs"), 4));
            kv.push(u(&a("laurel_rank"), 8));
        }
        _ => {}
    }
    kv
}

/// The logits (or, for an embedding model, the pooled embedding) of a fixed prompt, as bits.
fn outputs(path: &Path, embedding: bool) -> Vec<u32> {
    let model = llama::Model::load(path, llama::ModelParams::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let params = llama::ContextParams {
        n_ctx: 64,
        n_batch: 64,
        n_ubatch: 64,
        n_threads: 2,
        n_threads_batch: 2,
        embeddings: embedding,
        ..Default::default()
    };
    let mut ctx = llama::Context::new(&model, params).unwrap();
    let prompt: Vec<llama::Token> = vec![12, 40, 7, 99, 3, 150, 21, 8];
    if embedding {
        return ctx
            .embed(&prompt)
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
    }
    let batch = llama::Batch::from_tokens(&prompt, 0, 0).unwrap();
    ctx.decode(&batch).unwrap();
    let out = ctx.logits(prompt.len() as i32 - 1).expect("logits");
    assert!(out.iter().all(|x| x.is_finite()), "non-finite logits");
    out.iter().map(|x| x.to_bits()).collect()
}

fn tensor_bytes(path: &Path) -> BTreeMap<String, (Vec<u64>, u32, Vec<u8>)> {
    let g = Gguf::open(path).unwrap();
    let bytes = std::fs::read(path).unwrap();
    g.tensors()
        .iter()
        .map(|t| {
            let at = (g.data_offset() + t.offset) as usize;
            (
                t.name.clone(),
                (
                    t.dims.clone(),
                    t.ggml_type.id(),
                    bytes[at..at + t.size as usize].to_vec(),
                ),
            )
        })
        .collect()
}

/// native (llama.cpp layout) -> `to_ollama` -> translated: the translated file has the
/// native tensors byte for byte and llama.cpp computes the same outputs from it.
fn round_trip(
    arch: &str,
    kv: &[(String, Value)],
    to_ollama: impl FnOnce(&mut View),
    embedding: bool,
) -> Vec<&'static str> {
    let dir = tempfile::tempdir().unwrap();
    let native = native::model(dir.path(), arch, kv, &[], 7).unwrap();
    assert!(
        compat::plan(&Gguf::open(&native).unwrap())
            .unwrap()
            .is_none(),
        "{arch}: the llama.cpp-layout file must not be detected"
    );
    let mut v = View::new(&Gguf::open(&native).unwrap());
    to_ollama(&mut v);
    let ollama = dir.path().join("ollama.gguf");
    fixture::write(&v, &native, &ollama).unwrap();
    let plan = compat::plan(&Gguf::open(&ollama).unwrap())
        .unwrap()
        .unwrap_or_else(|| panic!("{arch}: the Ollama layout was not detected"));
    let text = plan.text.as_ref().expect("a text translation");
    let derived = dir.path().join("derived.gguf");
    fixture::write(text, &ollama, &derived).unwrap();
    assert_eq!(
        tensor_bytes(&derived),
        tensor_bytes(&native),
        "{arch}: tensors"
    );
    assert_eq!(
        outputs(&derived, embedding),
        outputs(&native, embedding),
        "{arch}: outputs"
    );
    plan.handlers
}

#[test]
fn gemma3_round_trip() {
    let ran = round_trip(
        "gemma3",
        &arch_kv("gemma3"),
        |v| fixture::gemma3(v, Gemma3::NoEpsilon),
        false,
    );
    assert_eq!(ran, ["gemma3"]);
}

#[test]
fn probe() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let only = std::env::var("ARCH").unwrap_or_default();
    for arch in only.split(',') {
        match native::model(dir.path(), arch, &arch_kv(arch), &[], 1) {
            Ok(p) => {
                let g = ollamars::gguf::Gguf::open(&p).unwrap();
                let names: Vec<String> = g
                    .tensors()
                    .iter()
                    .map(|t| format!("{}{:?}", t.name, t.dims))
                    .collect();
                eprintln!("OK {arch}: {}", names.join(" "));
            }
            Err(e) => eprintln!("FAIL {arch}: {e}"),
        }
    }
    let _ = Array::U8(vec![]);
}
