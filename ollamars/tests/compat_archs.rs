//! Every architecture of the translator: a random-weight model in llama.cpp's own layout
//! (tensor table from llama.cpp itself), turned into the Ollama layout the spec describes,
//! translated back; llama.cpp loads the result and its logits for a fixed prompt equal the
//! native file's, bit for bit.

use ollamars::compat::fixture::{self, Gemma3, native};
use ollamars::compat::{self, View};
use ollamars::gguf::{Array, Gguf, Value};
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

fn u32s(v: &[u32]) -> Value {
    Value::Array(Array::U32(v.to_vec()))
}

/// Sets `k` in `kv`, replacing any value.
fn set(kv: &mut Vec<(String, Value)>, k: &str, v: Value) {
    kv.retain(|(key, _)| key != k);
    kv.push((k.to_string(), v));
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
        "lfm2" => {
            kv.push(u(&a("shortconv.l_cache"), 3));
            // Layer 0 a short convolution, layer 1 attention.
            set(&mut kv, &a("attention.head_count_kv"), u32s(&[0, 2]));
        }
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
            // Layer 0 linear attention, layer 1 full attention.
            kv.push(u(&a("full_attention_interval"), 2));
            if arch != "qwen35" {
                moe(&mut kv);
            }
            if arch != "qwen3next" {
                kv.push(i32s(&a("rope.dimension_sections"), &[2, 3, 3, 0]));
            }
        }
        "nemotron_h" | "nemotron_h_moe" => {
            ssm(&mut kv);
            // A mamba layer, an attention layer, a feed-forward (or expert) layer.
            set(&mut kv, &a("block_count"), Value::U32(3));
            set(&mut kv, &a("attention.head_count_kv"), u32s(&[0, 2, 0]));
            set(&mut kv, &a("feed_forward_length"), u32s(&[0, 0, 128]));
            kv.push(f(&a("attention.layer_norm_epsilon"), 1e-5));
            if arch == "nemotron_h_moe" {
                moe(&mut kv);
                kv.push(u(&a("expert_shared_feed_forward_length"), 32));
                kv.push(u(&a("moe_latent_size"), 16));
            }
        }
        "llama4" => {
            // Every fourth layer has no rope and tunes its attention temperature: four layers,
            // so the graph has one of each.
            set(&mut kv, &a("block_count"), Value::U32(4));
            moe(&mut kv);
            kv.push(u(&a("interleave_moe_layer_step"), 1));
        }
        "deepseek2" | "deepseek2-ocr" => {
            moe(&mut kv);
            kv.push(u(&a("expert_shared_count"), 1));
            kv.push(u(&a("leading_dense_block_count"), 1));
            if arch == "deepseek2-ocr" {
                // Multi-head attention, as DeepSeek-OCR's decoder has.
                set(&mut kv, &a("attention.head_count_kv"), Value::U32(4));
            }
            if arch == "deepseek2" {
                // MLA with one latent KV head, as GLM-4.7-Flash (glm4moelite) is.
                set(&mut kv, &a("attention.head_count_kv"), Value::U32(1));
                kv.push(u(&a("attention.q_lora_rank"), 32));
                kv.push(u(&a("attention.kv_lora_rank"), 16));
                kv.push(u(&a("attention.key_length"), 24));
                kv.push(u(&a("attention.value_length"), 16));
                kv.push(u(&a("attention.key_length_mla"), 16));
                kv.push(u(&a("attention.value_length_mla"), 16));
                kv.push(u(&a("rope.dimension_count"), 8));
                kv.push(u(&a("expert_group_count"), 1));
                kv.push(u(&a("expert_group_used_count"), 1));
            }
        }
        "qwen2vl" | "qwen3vl" | "qwen3vlmoe" => {
            if arch == "qwen2vl" {
                kv.push(i32s(&a("rope.dimension_sections"), &[2, 3, 3, 0]));
            } else {
                // The sections Ollama's layout implies need 128-wide heads.
                set(&mut kv, &a("embedding_length"), Value::U32(256));
                set(&mut kv, &a("attention.head_count"), Value::U32(2));
                set(&mut kv, &a("attention.head_count_kv"), Value::U32(1));
                kv.push(i32s(&a("rope.dimension_sections"), &[24, 20, 20, 0]));
            }
            if arch == "qwen3vlmoe" {
                moe(&mut kv);
            }
        }
        "gemma-embedding" => {
            // Five sliding layers, then a global one: six, so both attention masks are used.
            set(&mut kv, &a("block_count"), Value::U32(6));
            kv.push(u(&a("attention.sliding_window"), 64));
            kv.push(u(&a("dense_2_feat_in"), 64));
            kv.push(u(&a("dense_2_feat_out"), 128));
            kv.push(u(&a("dense_3_feat_in"), 128));
            kv.push(u(&a("dense_3_feat_out"), 64));
            kv.push(u(&a("pooling_type"), 1));
        }
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
            // snowflake-arctic-embed2: BERT with a T5 (Unigram) vocabulary and its
            // precompiled normalizer map (here a valid empty one).
            kv.push(f(&a("attention.layer_norm_epsilon"), 1e-5));
            kv.push(u("tokenizer.ggml.token_type_count", 2));
            kv.push(u(&a("pooling_type"), 1));
            set(&mut kv, "tokenizer.ggml.model", Value::String("t5".into()));
            kv.retain(|(k, _)| k != "tokenizer.ggml.merges" && k != "tokenizer.ggml.pre");
            let n = match kv.iter().find(|(k, _)| k == "tokenizer.ggml.tokens") {
                Some((_, Value::Array(t))) => t.len(),
                _ => 0,
            };
            kv.push((
                "tokenizer.ggml.scores".into(),
                Value::Array(Array::F32((0..n).map(|i| -(i as f32)).collect())),
            ));
            kv.push((
                "tokenizer.ggml.precompiled_charsmap".into(),
                Value::Array(Array::U8(vec![0, 0, 0, 0, 0, 0, 0, 0])),
            ));
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
    let (d, n) = (
        fixture::tensor_table_of(&derived),
        fixture::tensor_table_of(&native),
    );
    let names = |m: &fixture::TensorTable| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&d), names(&n), "{arch}: tensor names");
    for (k, v) in &n {
        assert!(
            d[k] == *v,
            "{arch}: tensor {k} differs ({:?} {} vs {:?} {})",
            d[k].0,
            d[k].1.name(),
            v.0,
            v.1.name()
        );
    }
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

/// Tests that load models take turns (ggml's threads spin on 2 cores).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// One architecture: llama.cpp's `arch` written as Ollama's `ollama` and translated back.
fn arch_round_trip(arch: &str, ollama: &str) -> Vec<&'static str> {
    let _s = serial();
    let embedding = matches!(arch, "bert" | "gemma-embedding");
    round_trip(
        arch,
        &arch_kv(arch),
        |v| fixture::text::to_ollama_as(arch, ollama, v).unwrap(),
        embedding,
    )
}

macro_rules! arch_tests {
    ($($name:ident: $arch:literal as $ollama:literal => [$($h:literal),*];)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(arch_round_trip($arch, $ollama), [$($h),*] as [&str; _]);
        }
    )*};
}

arch_tests! {
    embeddinggemma: "gemma-embedding" as "gemma3" => ["embeddinggemma"];
    snowflake_bert: "bert" as "bert" => ["bert-charsmap"];
    gemma3n: "gemma3n" as "gemma3n" => ["gemma3n"];
    gemma4: "gemma4" as "gemma4" => ["gemma4"];
    qwen35moe: "qwen35moe" as "qwen35moe" => ["qwen35moe"];
    qwen35: "qwen35" as "qwen35" => ["qwen35"];
    qwen3next: "qwen3next" as "qwen3next" => ["qwen3next"];
    laguna: "laguna" as "laguna" => ["laguna"];
    gptoss: "gpt-oss" as "gptoss" => ["gptoss"];
    lfm2: "lfm2" as "lfm2" => ["lfm2"];
    olmo3: "olmo2" as "olmo3" => ["olmo3"];
    mistral3: "mistral3" as "mistral3" => ["mistral3"];
    qwen25vl: "qwen2vl" as "qwen25vl" => ["qwen25vl"];
    qwen3vl: "qwen3vl" as "qwen3vl" => ["qwen3vl"];
    qwen3vlmoe: "qwen3vlmoe" as "qwen3vlmoe" => ["qwen3vl"];
    glm4moelite: "deepseek2" as "glm4moelite" => ["glm4moelite"];
    deepseekocr: "deepseek2-ocr" as "deepseekocr" => ["deepseekocr"];
    nemotron_h_moe: "nemotron_h_moe" as "nemotron_h_moe" => ["nemotron_h_moe"];
    nemotron_h_omni_moe: "nemotron_h_moe" as "nemotron_h_omni" => ["nemotron_h_omni", "nemotron_h_moe"];
    nemotron_h_omni: "nemotron_h" as "nemotron_h_omni" => ["nemotron_h_omni"];
    llama4: "llama4" as "llama4" => ["llama4"];
    glmocr: "glm4" as "glmocr" => ["glmocr"];
}
