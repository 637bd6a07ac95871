//! Unit tests of the text handlers on small synthetic headers: detection (Ollama layout yes,
//! llama.cpp layout no), the edits, the data ops byte for byte, refusals of bad shapes, and
//! the round trip llama.cpp layout → fixture (Ollama layout) → translation → llama.cpp layout.

use super::{gemma_family, others, qwen};
use crate::compat::fixture::{self, text::to_ollama_as};
use crate::compat::{CompatError, Handler, Plan, View, f32_bytes, plan, to_f32};
use crate::gguf::{Array, GgmlType, Gguf, GgufWriter, Value};
use std::io::Cursor;

// --- building synthetic files ---------------------------------------------------------------

/// A synthetic file: keys (a leading `.` means under the architecture's prefix) and tensors
/// with deterministic contents.
struct Native {
    arch: String,
    kv: Vec<(String, Value)>,
    tensors: Vec<Spec>,
}

/// A tensor to write: name, dims, type, and its bytes (or `None` for [`contents`]).
type Spec = (String, Vec<u64>, GgmlType, Option<Vec<u8>>);

fn file(arch: &str) -> Native {
    Native {
        arch: arch.to_string(),
        kv: vec![
            ("general.architecture".into(), Value::String(arch.into())),
            ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(Array::String(
                    ["a", "b", "c", "d"].map(String::from).to_vec(),
                )),
            ),
        ],
        tensors: Vec::new(),
    }
}

impl Native {
    fn k(mut self, key: &str, v: Value) -> Self {
        let key = match key.strip_prefix('.') {
            Some(rest) => format!("{}.{rest}", self.arch),
            None => key.to_string(),
        };
        self.kv.retain(|(k, _)| *k != key);
        self.kv.push((key, v));
        self
    }

    /// An F32 tensor.
    fn t(self, name: &str, dims: &[u64]) -> Self {
        self.tt(name, dims, GgmlType::F32)
    }

    fn tt(mut self, name: &str, dims: &[u64], ty: GgmlType) -> Self {
        self.tensors.push((name.into(), dims.to_vec(), ty, None));
        self
    }

    /// A tensor with the given bytes.
    fn tb(mut self, name: &str, dims: &[u64], ty: GgmlType, bytes: Vec<u8>) -> Self {
        self.tensors
            .push((name.into(), dims.to_vec(), ty, Some(bytes)));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut w = GgufWriter::new();
        for (k, v) in &self.kv {
            w = w.kv(k, v.clone());
        }
        for (i, (name, dims, ty, data)) in self.tensors.iter().enumerate() {
            let data = data
                .clone()
                .unwrap_or_else(|| contents(dims, *ty, i as u64 + 1));
            w = w.tensor(name, dims, *ty, data);
        }
        w.to_bytes()
    }
}

/// Deterministic contents: floats in [0.5, 1.5) for float types (so a norm shift of -1 then
/// +1 is exact), other bytes from an LCG.
fn contents(dims: &[u64], ty: GgmlType, seed: u64) -> Vec<u8> {
    let n: u64 = dims.iter().product();
    let vals = (0..n).map(|i| 0.5 + ((i * 7 + seed * 13) % 97) as f32 / 97.0);
    match ty {
        GgmlType::F32 => vals.flat_map(f32::to_le_bytes).collect(),
        GgmlType::F16 => vals
            .flat_map(|x| half::f16::from_f32(x).to_le_bytes())
            .collect(),
        GgmlType::BF16 => vals
            .flat_map(|x| half::bf16::from_f32(x).to_le_bytes())
            .collect(),
        _ => {
            let len = n / ty.block_size() * ty.type_size();
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 56) as u8
                })
                .collect()
        }
    }
}

fn f32s(x: &[f32]) -> Vec<u8> {
    f32_bytes(x)
}

fn write_tmp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

/// Writes `v` (a view of `src`) and returns the file's bytes.
fn write(v: &View, src: &[u8]) -> Vec<u8> {
    let s = write_tmp(src);
    let out = tempfile::NamedTempFile::new().unwrap();
    fixture::write(v, s.path(), out.path()).unwrap();
    std::fs::read(out.path()).unwrap()
}

/// The fixture's Ollama layout of `native`.
fn ollama(native: &[u8], arch: &str, as_: &str) -> Result<Vec<u8>, CompatError> {
    let mut v = View::new(&Gguf::from_bytes(native).unwrap());
    to_ollama_as(arch, as_, &mut v)?;
    Ok(write(&v, native))
}

/// The translation of `bytes`: the plan and the derived text file.
fn translate(bytes: &[u8]) -> (Plan, Vec<u8>) {
    let p = plan(&Gguf::from_bytes(bytes).unwrap())
        .unwrap()
        .expect("a translation");
    let derived = write(p.text.as_ref().expect("a text view"), bytes);
    (p, derived)
}

use crate::compat::fixture::tensor_table as tensors;

fn kv(bytes: &[u8], key: &str) -> Option<Value> {
    Gguf::from_bytes(bytes).unwrap().get(key).cloned()
}

fn names(bytes: &[u8]) -> Vec<String> {
    tensors(bytes).into_keys().collect()
}

/// The round trip: `native` is left alone, its fixture is translated by exactly `handlers`,
/// and the result has every native key with its value and exactly the native tensors.
/// Returns the Ollama-layout file and the derived one.
fn round_trip(native: &Native, as_: &str, handlers: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let nb = native.bytes();
    assert!(
        plan(&Gguf::from_bytes(&nb).unwrap()).unwrap().is_none(),
        "the llama.cpp layout of {} must be left alone",
        native.arch
    );
    let ob = ollama(&nb, &native.arch, as_).unwrap();
    assert_eq!(
        kv(&ob, "general.architecture"),
        Some(Value::String(as_.into()))
    );
    let (p, derived) = translate(&ob);
    assert_eq!(p.handlers, handlers);
    let (n, d) = (
        Gguf::from_bytes(&nb).unwrap(),
        Gguf::from_bytes(&derived).unwrap(),
    );
    for (k, v) in n.metadata() {
        assert_eq!(d.get(k), Some(v), "key {k}");
    }
    assert_eq!(tensors(&derived), tensors(&nb));
    (ob, derived)
}

/// Runs one handler on `bytes` (which it must detect) and checks the result.
fn run(h: &Handler, bytes: &[u8]) -> Result<View, CompatError> {
    let mut v = View::new(&Gguf::from_bytes(bytes).unwrap());
    assert!((h.detect)(&v), "{} must detect this file", h.name);
    (h.apply)(&mut v)?;
    v.verify()?;
    Ok(v)
}

fn detects(h: &Handler, bytes: &[u8]) -> bool {
    (h.detect)(&View::new(&Gguf::from_bytes(bytes).unwrap()))
}

/// The bytes tensor `name` of view `v` (of the file `src`) would have.
fn data(v: &View, src: &[u8], name: &str) -> Vec<u8> {
    let g = Gguf::from_bytes(src).unwrap();
    let t = v
        .tensor(name)
        .unwrap_or_else(|| panic!("{name} in the view"));
    t.data
        .materialize(&mut Cursor::new(src), g.data_offset())
        .unwrap()
}

fn src_bytes(src: &[u8], name: &str) -> Vec<u8> {
    tensors(src).remove(name).expect(name).2
}

fn layout_error(e: CompatError, tensor: &str) {
    match e {
        CompatError::Layout { tensor: t, reason } => {
            assert_eq!(t, tensor, "{reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected a layout error for {tensor}, got {other}"),
    }
}

// --- dispatch -------------------------------------------------------------------------------

#[test]
fn handlers_run_in_ollamas_dispatch_order() {
    let order: Vec<&str> = super::HANDLERS.iter().map(|h| h.name).collect();
    assert_eq!(
        order,
        [
            "embeddinggemma",
            "gemma3",
            "bert-charsmap",
            "gemma3n",
            "gemma4",
            "qwen35moe",
            "qwen35",
            "qwen3next",
            "laguna",
            "gptoss",
            "lfm2",
            "olmo3",
            "mistral3",
            "qwen25vl",
            "qwen3vl",
            "glm4moelite",
            "deepseekocr",
            "nemotron_h_omni",
            "nemotron_h_moe",
            "llama3",
            "smollm-pretokenizer",
            "llama4",
            "glmocr",
        ]
    );
}

#[test]
fn every_fixture_pair_is_known_and_others_are_refused() {
    for (a, o) in fixture::text::ARCHES {
        let mut v = View::new(&Gguf::from_bytes(&file(a).bytes()).unwrap());
        // Each fails for want of tensors or keys, but never as an unknown pair.
        if let Err(CompatError::Key { reason, .. }) = to_ollama_as(a, o, &mut v) {
            assert!(!reason.contains("no Ollama-layout fixture"), "{a} {o}");
        }
    }
    let mut v = View::new(&Gguf::from_bytes(&file("llama").bytes()).unwrap());
    assert!(fixture::text::to_ollama("llama", &mut v).is_err());
    assert!(fixture::text::to_ollama("gemma4", &mut v).is_err());
}

// --- embeddinggemma -------------------------------------------------------------------------

fn embeddinggemma_native() -> Native {
    file("gemma-embedding")
        .k(".block_count", Value::U32(2))
        .k(".embedding_length", Value::U32(8))
        .k(".attention.layer_norm_rms_epsilon", Value::F32(1e-6))
        .k(".rope.freq_base_swa", Value::F32(10_000.0))
        .k(".dense_2_feat_in", Value::U32(8))
        .k(".dense_2_feat_out", Value::U32(16))
        .k(".dense_3_feat_in", Value::U32(16))
        .k(".dense_3_feat_out", Value::U32(8))
        .t("token_embd.weight", &[8, 4])
        .t("output_norm.weight", &[8])
        .t("blk.0.attn_norm.weight", &[8])
        .t("dense_2.weight", &[8, 16])
        .t("dense_3.weight", &[16, 8])
}

#[test]
fn embeddinggemma_round_trip_and_edits() {
    let (o, d) = round_trip(&embeddinggemma_native(), "gemma3", &["embeddinggemma"]);
    assert!(names(&o).contains(&"dense.0.weight".to_string()));
    assert!(names(&o).contains(&"norm.weight".to_string()));
    assert_eq!(kv(&o, "gemma3.dense_2_feat_in"), None);
    assert_eq!(kv(&o, "gemma3.attention.causal"), Some(Value::Bool(false)));
    assert_eq!(kv(&d, "gemma-embedding.attention.causal"), None);
    assert_eq!(
        kv(&d, "gemma-embedding.attention.sliding_window_pattern"),
        None
    );
}

#[test]
fn embeddinggemma_needs_2d_dense_layers() {
    let bytes = file("gemma3")
        .t("token_embd.weight", &[8, 4])
        .t("dense.0.weight", &[8, 4, 2])
        .bytes();
    layout_error(
        run(&gemma_family::EMBEDDINGGEMMA, &bytes).unwrap_err(),
        "dense.0.weight",
    );
    // Without dense layers it is plain gemma3.
    let plain = file("gemma3").t("token_embd.weight", &[8, 4]).bytes();
    assert!(!detects(&gemma_family::EMBEDDINGGEMMA, &plain));
}

// --- bert charsmap --------------------------------------------------------------------------

fn bert_native() -> Native {
    file("bert")
        .k("tokenizer.ggml.model", Value::String("t5".into()))
        .k(
            "tokenizer.ggml.precompiled_charsmap",
            Value::Array(Array::U8((0..=255u8).chain([7]).collect())),
        )
        .t("token_embd.weight", &[8, 4])
}

#[test]
fn bert_charsmap_round_trip() {
    let (o, _) = round_trip(&bert_native(), "bert", &["bert-charsmap"]);
    match kv(&o, "tokenizer.ggml.precompiled_charsmap") {
        Some(Value::Array(Array::String(s))) => {
            assert!(s.iter().all(|c| c.len() == 1));
            assert_eq!(s.last().map(String::as_str), Some("="));
        }
        other => panic!("{other:?}"),
    }
}

fn charsmap_file(parts: &[&str]) -> Vec<u8> {
    file("bert")
        .k("tokenizer.ggml.model", Value::String("t5".into()))
        .k(
            "tokenizer.ggml.precompiled_charsmap",
            Value::Array(Array::String(parts.iter().map(|s| s.to_string()).collect())),
        )
        .bytes()
}

#[test]
fn bert_charsmap_decodes_up_to_the_padding_and_refuses_bad_text() {
    let v = run(
        &gemma_family::SNOWFLAKE,
        &charsmap_file(&["Q", "U", "J", "D", "Q", "Q", "=", "="]),
    )
    .unwrap();
    assert_eq!(
        v.get("tokenizer.ggml.precompiled_charsmap"),
        Some(&Value::Array(Array::U8(b"ABCA".to_vec())))
    );
    assert_eq!(
        gemma_family::decode_base64("QUJD=QUJD"),
        Some(b"ABC".to_vec())
    );
    assert_eq!(gemma_family::decode_base64("QU*D"), None);
    // A two-character element, a bad character, or nothing decoded: left alone.
    for bad in [&["QU", "JD"][..], &["Q", "*"], &["=", "Q"]] {
        let v = run(&gemma_family::SNOWFLAKE, &charsmap_file(bad)).unwrap();
        assert!(!v.changed(), "{bad:?}");
    }
    let not_t5 = charsmap_file(&["Q"]);
    let not_t5 = {
        let mut v = View::new(&Gguf::from_bytes(&not_t5).unwrap());
        v.set("tokenizer.ggml.model", Value::String("bert".into()));
        write(&v, &not_t5)
    };
    assert!(!detects(&gemma_family::SNOWFLAKE, &not_t5));
}

// --- gemma3n --------------------------------------------------------------------------------

fn gemma3n_native() -> Native {
    file("gemma3n")
        .k(
            "tokenizer.ggml.tokens",
            Value::Array(Array::String(
                ["<pad>", "<0x41>", "<unused0>", "hello", "x", "y"]
                    .map(String::from)
                    .to_vec(),
            )),
        )
        .k(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
        )
        .k(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![3, 6, 1, 1, 1, 1])),
        )
        .k("tokenizer.ggml.model", Value::String("llama".into()))
        .tt("token_embd.weight", &[32, 6], GgmlType::Q8_0)
        .t("per_layer_token_embd.weight", &[16, 6])
}

#[test]
fn gemma3n_round_trip_keeps_the_embedding_prefix_verbatim() {
    let (o, d) = round_trip(&gemma3n_native(), "gemma3n", &["gemma3n"]);
    let t = &tensors(&o)["token_embd.weight"];
    assert_eq!(t.0, [32, 10]);
    assert_eq!(
        kv(&d, "tokenizer.ggml.eos_token_ids"),
        Some(Value::Array(Array::I32(vec![1, 106])))
    );
}

#[test]
fn gemma3n_token_types_and_eos_list() {
    let base = gemma3n_native().k(
        "tokenizer.ggml.token_type",
        Value::Array(Array::I32(vec![3, 1, 4, 1, 1, 1])),
    );
    let mut n = base;
    n.tensors[0].1 = vec![32, 8];
    let v = run(&gemma_family::GEMMA3N, &n.bytes()).unwrap();
    assert_eq!(
        v.get("tokenizer.ggml.token_type"),
        Some(&Value::Array(Array::I32(vec![3, 6, 1, 1, 1, 1])))
    );
    assert_eq!(v.tensor("token_embd.weight").unwrap().dims, [32, 6]);
    for (had, want) in [
        (Array::I32(vec![1]), Array::I32(vec![1, 106])),
        (Array::U32(vec![106, 1]), Array::U32(vec![106, 1])),
        (Array::U32(vec![2]), Array::U32(vec![2, 106])),
    ] {
        let b = {
            let mut n = gemma3n_native().k("tokenizer.ggml.eos_token_ids", Value::Array(had));
            n.tensors[0].1 = vec![32, 7];
            n.bytes()
        };
        let v = run(&gemma_family::GEMMA3N, &b).unwrap();
        assert_eq!(
            v.get("tokenizer.ggml.eos_token_ids"),
            Some(&Value::Array(want))
        );
    }
}

#[test]
fn gemma3n_refuses_an_embedding_shorter_than_the_vocabulary() {
    let mut n = gemma3n_native();
    n.tensors[1].1 = vec![16, 9];
    layout_error(
        run(&gemma_family::GEMMA3N, &n.bytes()).unwrap_err(),
        "token_embd.weight",
    );
}

// --- gemma4 ---------------------------------------------------------------------------------

fn gemma4_native() -> Native {
    file("gemma4")
        .k("tokenizer.ggml.model", Value::String("gemma4".into()))
        .k(".block_count", Value::U32(2))
        .t("token_embd.weight", &[8, 4])
        .t("blk.0.ffn_gate_inp.weight", &[8, 3])
        .tt("blk.0.ffn_gate_up_exps.weight", &[8, 8, 3], GgmlType::F16)
        .tt("blk.0.ffn_down_exps.weight", &[4, 8, 3], GgmlType::F16)
        .t("blk.0.ffn_down_exps.scale", &[3])
        .t("blk.1.attn_norm.weight", &[8])
}

#[test]
fn gemma4_round_trip_fuses_experts_back_bit_exact() {
    let (o, _) = round_trip(&gemma4_native(), "gemma4", &["gemma4"]);
    let t = tensors(&o);
    assert_eq!(t["blk.0.ffn_gate_exps.weight"].0, [8, 4, 3]);
    assert!(t.contains_key("blk.0.ffn_gate_inp.per_expert_scale"));
    assert_eq!(
        kv(&o, "tokenizer.ggml.model"),
        Some(Value::String("llama".into()))
    );
}

#[test]
fn gemma4_interleaves_gate_and_up_per_expert_and_hides_towers() {
    let gate: Vec<u8> = (0..24).collect();
    let up: Vec<u8> = (100..124).collect();
    // Two F16 rows of 4 per expert is 8 bytes per expert: slices of gate then of up.
    let src = file("gemma4")
        .k(".block_count", Value::U32(1))
        .tb(
            "blk.0.ffn_gate_exps.weight",
            &[4, 1, 3],
            GgmlType::F16,
            gate.clone(),
        )
        .tb(
            "blk.0.ffn_up_exps.weight",
            &[4, 1, 3],
            GgmlType::F16,
            up.clone(),
        )
        .t("v.patch_embd.weight", &[4])
        .t("a.conv.weight", &[4])
        .t("model.vision_tower.x", &[4])
        .bytes();
    let v = run(&gemma_family::GEMMA4, &src).unwrap();
    let t = v.tensor("blk.0.ffn_gate_up_exps.weight").unwrap();
    assert_eq!(t.dims, [4, 2, 3]);
    let mut want = Vec::new();
    for e in 0..3 {
        want.extend_from_slice(&gate[e * 8..e * 8 + 8]);
        want.extend_from_slice(&up[e * 8..e * 8 + 8]);
    }
    assert_eq!(data(&v, &src, "blk.0.ffn_gate_up_exps.weight"), want);
    let left: Vec<&str> = v.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(left, ["blk.0.ffn_gate_up_exps.weight"]);
}

#[test]
fn gemma4_leaves_experts_with_sidecars_and_refuses_mismatches() {
    let base = || {
        file("gemma4")
            .k(".block_count", Value::U32(1))
            .t("v.x", &[4])
            .tt("blk.0.ffn_gate_exps.weight", &[32, 2, 3], GgmlType::Q8_0)
    };
    let side = base()
        .tt("blk.0.ffn_up_exps.weight", &[32, 2, 3], GgmlType::Q8_0)
        .t("blk.0.ffn_up_exps.scale", &[3])
        .bytes();
    let v = run(&gemma_family::GEMMA4, &side).unwrap();
    assert!(v.tensor("blk.0.ffn_gate_up_exps.weight").is_none());
    let types = base()
        .tt("blk.0.ffn_up_exps.weight", &[32, 2, 3], GgmlType::Q4_0)
        .bytes();
    layout_error(
        run(&gemma_family::GEMMA4, &types).unwrap_err(),
        "blk.0.ffn_up_exps.weight",
    );
    let dims = base()
        .tt("blk.0.ffn_up_exps.weight", &[32, 3, 3], GgmlType::Q8_0)
        .bytes();
    layout_error(
        run(&gemma_family::GEMMA4, &dims).unwrap_err(),
        "blk.0.ffn_up_exps.weight",
    );
    let flat = file("gemma4")
        .k(".block_count", Value::U32(1))
        .t("v.x", &[4])
        .t("blk.0.ffn_gate_exps.weight", &[32, 2])
        .t("blk.0.ffn_up_exps.weight", &[32, 2])
        .bytes();
    layout_error(
        run(&gemma_family::GEMMA4, &flat).unwrap_err(),
        "blk.0.ffn_gate_exps.weight",
    );
}

// --- qwen35 / qwen35moe ---------------------------------------------------------------------

fn qwen35moe_native() -> Native {
    file("qwen35moe")
        .k(".block_count", Value::U32(3))
        .k(".nextn_predict_layers", Value::U32(1))
        .k(".full_attention_interval", Value::U32(2))
        .k(".attention.head_count_kv", Value::U32(2))
        .k(
            ".rope.dimension_sections",
            Value::Array(Array::I32(vec![2, 3, 3, 0])),
        )
        .t("token_embd.weight", &[8, 4])
        .t("output_norm.weight", &[8])
        .t("blk.0.ssm_dt.bias", &[4])
        .t("blk.0.ssm_norm.weight", &[4])
        .t("blk.1.attn_norm.weight", &[8])
        .t("blk.1.ffn_gate_exps.weight", &[8, 4, 3])
        .t("blk.2.attn_norm.weight", &[8])
        .t("blk.2.attn_q_norm.weight", &[4])
        .t("blk.2.post_attention_norm.weight", &[8])
        .tt("blk.2.attn_q.weight", &[8, 8], GgmlType::F16)
        .t("blk.2.ffn_gate_inp.weight", &[8, 3])
        .tt("blk.2.ffn_gate_exps.weight", &[32, 4, 3], GgmlType::Q8_0)
        .tt("blk.2.ffn_up_exps.weight", &[32, 4, 3], GgmlType::Q8_0)
        .tt("blk.2.ffn_down_exps.weight", &[4, 32, 3], GgmlType::F16)
        .t("blk.2.nextn.eh_proj.weight", &[16, 8])
        .t("blk.2.nextn.enorm.weight", &[8])
        .t("blk.2.nextn.hnorm.weight", &[8])
        .t("blk.2.nextn.shared_head_norm.weight", &[8])
}

#[test]
fn qwen35moe_round_trip_with_mtp() {
    let (o, d) = round_trip(&qwen35moe_native(), "qwen35moe", &["qwen35moe"]);
    let n = names(&o);
    for want in [
        "blk.0.ssm_dt",
        "mtp.layers.0.attn_norm.weight",
        "mtp.layers.0.mlp.experts.2.gate_proj.weight",
        "mtp.layers.0.mlp.experts.0.down_proj.weight",
        "mtp.fc.weight",
        "mtp.pre_fc_norm_embedding.weight",
        "mtp.pre_fc_norm_hidden.weight",
        "mtp.shared_head.norm.weight",
    ] {
        assert!(n.contains(&want.to_string()), "{want} in {n:?}");
    }
    assert!(!n.iter().any(|x| x.starts_with("blk.2.")));
    assert_eq!(kv(&o, "qwen35moe.block_count"), Some(Value::U32(2)));
    assert_eq!(kv(&o, "qwen35moe.nextn_predict_layers"), None);
    assert_eq!(
        kv(&o, "qwen35moe.attention.head_count_kv"),
        Some(Value::Array(Array::I32(vec![0, 2])))
    );
    assert_eq!(
        kv(&o, "qwen35moe.rope.dimension_sections"),
        Some(Value::Array(Array::I32(vec![2, 3, 3])))
    );
    // The stored norms are one less than the native ones.
    let on = to_f32(
        GgmlType::F32,
        &tensors(&o)["mtp.layers.0.attn_norm.weight"].2,
    );
    let dn = to_f32(GgmlType::F32, &tensors(&d)["blk.2.attn_norm.weight"].2);
    assert!(on.iter().zip(&dn).all(|(a, b)| a + 1.0 == *b));
}

#[test]
fn qwen35_dense_round_trip_with_and_without_mtp() {
    let dense = file("qwen35")
        .k(".block_count", Value::U32(2))
        .k(".nextn_predict_layers", Value::U32(1))
        .k(".attention.head_count_kv", Value::U32(4))
        .t("token_embd.weight", &[8, 4])
        .t("blk.0.ssm_dt.bias", &[4])
        .t("blk.0.attn_norm.weight", &[8])
        .t("blk.1.attn_norm.weight", &[8])
        .t("blk.1.ffn_gate.weight", &[8, 4])
        .tt("blk.1.nextn.hnorm.weight", &[8], GgmlType::F32)
        .t("blk.1.nextn.embed_tokens.weight", &[8, 4]);
    let (o, _) = round_trip(&dense, "qwen35", &["qwen35"]);
    assert!(names(&o).contains(&"mtp.layers.0.ffn_gate.weight".to_string()));
    assert!(names(&o).contains(&"mtp.embed_tokens.weight".to_string()));
    let plain = file("qwen35")
        .k(".block_count", Value::U32(1))
        .k(".attention.head_count_kv", Value::U32(4))
        .t("token_embd.weight", &[8, 4])
        .t("blk.0.ssm_dt.bias", &[4]);
    let (o, _) = round_trip(&plain, "qwen35", &["qwen35"]);
    assert_eq!(
        kv(&o, "qwen35.rope.mrope_interleaved"),
        Some(Value::Bool(true))
    );
}

#[test]
fn qwen35_norm_shift_is_plus_one_as_f32_from_f16_and_bf16() {
    let h: Vec<u8> = [0.0f32, 0.5, -1.0, 2.0]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let b: Vec<u8> = [0.25f32, -0.5, 1.0, 3.0]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let src = file("qwen35")
        .k(".block_count", Value::U32(1))
        .t("blk.0.attn_norm.weight", &[4])
        .tb("mtp.pre_fc_norm_hidden.weight", &[4], GgmlType::F16, h)
        .tb(
            "mtp.layers.0.post_attention_norm.weight",
            &[4],
            GgmlType::BF16,
            b,
        )
        .t("mtp.layers.0.ssm_norm.weight", &[4])
        .t("mtp.fc.weight", &[8, 4])
        .bytes();
    let v = run(&qwen::QWEN35, &src).unwrap();
    let hn = v.tensor("blk.1.nextn.hnorm.weight").unwrap();
    assert_eq!(hn.ggml_type, GgmlType::F32);
    assert_eq!(
        data(&v, &src, "blk.1.nextn.hnorm.weight"),
        f32s(&[1.0, 1.5, 0.0, 3.0])
    );
    assert_eq!(
        data(&v, &src, "blk.1.post_attention_norm.weight"),
        f32s(&[1.25, 0.5, 2.0, 4.0])
    );
    // Not shifted: the SSM norm and the projection keep their bytes.
    assert_eq!(
        data(&v, &src, "blk.1.ssm_norm.weight"),
        src_bytes(&src, "mtp.layers.0.ssm_norm.weight")
    );
    assert_eq!(
        data(&v, &src, "blk.1.nextn.eh_proj.weight"),
        src_bytes(&src, "mtp.fc.weight")
    );
    assert_eq!(v.u64("qwen35.block_count"), Some(2));
    assert_eq!(v.u64("qwen35.nextn_predict_layers"), Some(1));
    assert!(!v.tensors().iter().any(|t| t.name.starts_with("mtp.")));
}

fn experts_file(experts: &[(u64, &[u64], GgmlType)]) -> Vec<u8> {
    let mut n = file("qwen35moe")
        .k(".block_count", Value::U32(1))
        .t("blk.0.attn_norm.weight", &[4]);
    for (e, dims, ty) in experts {
        n = n.tt(
            &format!("mtp.layers.0.mlp.experts.{e}.up_proj.weight"),
            dims,
            *ty,
        );
    }
    n.bytes()
}

#[test]
fn qwen35moe_stacks_mtp_experts_in_order() {
    let src = experts_file(&[
        (1, &[4, 2], GgmlType::F16),
        (0, &[4, 2], GgmlType::F16),
        (2, &[4, 2], GgmlType::F16),
    ]);
    let v = run(&qwen::QWEN35MOE, &src).unwrap();
    let t = v.tensor("blk.1.ffn_up_exps.weight").unwrap();
    assert_eq!(t.dims, [4, 2, 3]);
    let want: Vec<u8> = (0..3)
        .flat_map(|e| {
            src_bytes(
                &src,
                &format!("mtp.layers.0.mlp.experts.{e}.up_proj.weight"),
            )
        })
        .collect();
    assert_eq!(data(&v, &src, "blk.1.ffn_up_exps.weight"), want);
    assert_eq!(v.tensors().len(), 2);
}

#[test]
fn qwen35moe_refuses_gapped_or_mismatched_experts_and_unshiftable_norms() {
    let gap = experts_file(&[(0, &[4, 2], GgmlType::F16), (2, &[4, 2], GgmlType::F16)]);
    layout_error(
        run(&qwen::QWEN35MOE, &gap).unwrap_err(),
        "mtp.layers.0.mlp.experts.2.up_proj.weight",
    );
    let shape = experts_file(&[(0, &[4, 2], GgmlType::F16), (1, &[4, 3], GgmlType::F16)]);
    layout_error(
        run(&qwen::QWEN35MOE, &shape).unwrap_err(),
        "mtp.layers.0.mlp.experts.1.up_proj.weight",
    );
    let ty = experts_file(&[(0, &[32, 2], GgmlType::F16), (1, &[32, 2], GgmlType::Q8_0)]);
    layout_error(
        run(&qwen::QWEN35MOE, &ty).unwrap_err(),
        "mtp.layers.0.mlp.experts.1.up_proj.weight",
    );
    let flat = experts_file(&[(0, &[4, 2, 2], GgmlType::F16)]);
    layout_error(
        run(&qwen::QWEN35MOE, &flat).unwrap_err(),
        "mtp.layers.0.mlp.experts.0.up_proj.weight",
    );
    let q = file("qwen35")
        .k(".block_count", Value::U32(1))
        .t("blk.0.attn_norm.weight", &[4])
        .tt("mtp.layers.0.attn_norm.weight", &[32], GgmlType::Q4_0)
        .bytes();
    layout_error(
        run(&qwen::QWEN35, &q).unwrap_err(),
        "mtp.layers.0.attn_norm.weight",
    );
}

#[test]
fn qwen35_head_counts_sections_and_several_mtp_layers() {
    let src = file("qwen35")
        .k(
            ".attention.head_count_kv",
            Value::Array(Array::U32(vec![0, 0, 0])),
        )
        .k(
            ".rope.dimension_sections",
            Value::Array(Array::U32(vec![11, 11, 10])),
        )
        .k(".block_count", Value::U32(1))
        .t("blk.0.attn_norm.weight", &[4])
        .t("mtp.layers.0.attn_norm.weight", &[4])
        .t("mtp.layers.1.attn_norm.weight", &[4])
        .t("mtp.fc.weight", &[4, 4])
        .bytes();
    let v = run(&qwen::QWEN35, &src).unwrap();
    assert_eq!(
        v.get("qwen35.attention.head_count_kv"),
        Some(&Value::U32(2))
    );
    assert_eq!(
        v.get("qwen35.rope.dimension_sections"),
        Some(&Value::Array(Array::I32(vec![11, 11, 10, 0])))
    );
    assert_eq!(v.u64("qwen35.nextn_predict_layers"), Some(2));
    assert_eq!(v.u64("qwen35.block_count"), Some(3));
    assert!(v.tensor("blk.2.attn_norm.weight").is_some());
    // Two MTP layers cannot share one eh_proj: hidden, and said so.
    assert!(v.tensor("blk.1.nextn.eh_proj.weight").is_none());
    assert!(v.changes().iter().any(|c| c.contains("shared MTP")));
    // Native nextn layers already there: the legacy tensors are only hidden.
    let both = file("qwen35")
        .t("blk.0.attn_norm.weight", &[4])
        .t("blk.1.nextn.enorm.weight", &[4])
        .t("mtp.layers.0.attn_norm.weight", &[4])
        .bytes();
    let v = run(&qwen::QWEN35, &both).unwrap();
    assert_eq!(v.tensors().len(), 2);
    assert!(v.u64("qwen35.nextn_predict_layers").is_none());
}

#[test]
fn qwen35_detection() {
    let native = qwen35moe_native().bytes();
    assert!(!detects(&qwen::QWEN35MOE, &native));
    let marked = file("qwen35moe")
        .k(".feed_forward_length", Value::U32(4))
        .bytes();
    assert!(detects(&qwen::QWEN35MOE, &marked));
    let dense = file("qwen35")
        .k(".feed_forward_length", Value::U32(4))
        .bytes();
    assert!(!detects(&qwen::QWEN35, &dense));
    for k in [
        ".vision.block_count",
        ".image_token_id",
        ".ssm.v_head_reordered",
    ] {
        assert!(detects(
            &qwen::QWEN35,
            &file("qwen35").k(k, Value::U32(1)).bytes()
        ));
    }
    assert!(detects(
        &qwen::QWEN35,
        &file("qwen35").t("v.x", &[4]).bytes()
    ));
}

// --- qwen3next ------------------------------------------------------------------------------

#[test]
fn qwen3next_round_trip_and_zero_heads_left_alone() {
    let native = file("qwen3next")
        .k(".block_count", Value::U32(4))
        .k(".attention.head_count_kv", Value::U32(2))
        .t("blk.0.ssm_dt.bias", &[4])
        .t("blk.3.attn_norm.weight", &[4]);
    let (o, _) = round_trip(&native, "qwen3next", &["qwen3next"]);
    assert_eq!(
        kv(&o, "qwen3next.attention.head_count_kv"),
        Some(Value::Array(Array::I32(vec![0, 0, 0, 2])))
    );
    let zero = file("qwen3next")
        .k(
            ".attention.head_count_kv",
            Value::Array(Array::I32(vec![0, 0])),
        )
        .t("blk.0.ssm_dt", &[4])
        .bytes();
    let v = run(&qwen::QWEN3NEXT, &zero).unwrap();
    assert!(matches!(
        v.get("qwen3next.attention.head_count_kv"),
        Some(Value::Array(_))
    ));
    assert!(v.tensor("blk.0.ssm_dt.bias").is_some());
    let bad = file("qwen3next")
        .k(
            ".attention.head_count_kv",
            Value::Array(Array::String(vec!["x".into()])),
        )
        .t("blk.0.ssm_dt", &[4])
        .bytes();
    assert!(matches!(
        run(&qwen::QWEN3NEXT, &bad),
        Err(CompatError::Key { .. })
    ));
}

// --- qwen25vl / qwen3vl ---------------------------------------------------------------------

#[test]
fn qwen25vl_round_trip_and_hiding() {
    let native = file("qwen2vl")
        .k(".block_count", Value::U32(1))
        .k(
            ".rope.dimension_sections",
            Value::Array(Array::I32(vec![16, 24, 24, 0])),
        )
        .t("blk.0.attn_norm.weight", &[4]);
    let (o, _) = round_trip(&native, "qwen25vl", &["qwen25vl"]);
    assert_eq!(
        kv(&o, "qwen25vl.rope.mrope_section"),
        Some(Value::Array(Array::I32(vec![16, 24, 24])))
    );
    let src = file("qwen25vl")
        .t("blk.0.attn_norm.weight", &[4])
        .t("v.blk.0.x", &[4])
        .t("mm.0.weight", &[4])
        .bytes();
    let v = run(&qwen::QWEN25VL, &src).unwrap();
    assert_eq!(v.tensors().len(), 1);
    assert_eq!(v.arch, "qwen2vl");
}

#[test]
fn qwen3vl_round_trip_and_refusal() {
    for arch in ["qwen3vl", "qwen3vlmoe"] {
        let native = file(arch)
            .k(
                ".rope.dimension_sections",
                Value::Array(Array::I32(vec![24, 20, 20, 0])),
            )
            .k(".n_deepstack_layers", Value::U32(3))
            .t("blk.0.attn_norm.weight", &[4]);
        let (o, _) = round_trip(&native, arch, &["qwen3vl"]);
        assert_eq!(kv(&o, &format!("{arch}.rope.dimension_sections")), None);
        let other = file(arch)
            .k(
                ".rope.dimension_sections",
                Value::Array(Array::I32(vec![16, 24, 24, 0])),
            )
            .bytes();
        assert!(ollama(&other, arch, arch).is_err());
    }
    let src = file("qwen3vlmoe").t("v.x", &[4]).t("blk.0.a", &[4]).bytes();
    let v = run(&qwen::QWEN3VL, &src).unwrap();
    assert_eq!(v.get("qwen3vlmoe.n_deepstack_layers"), Some(&Value::U32(0)));
    assert_eq!(v.tensors().len(), 1);
}

// --- laguna ---------------------------------------------------------------------------------

#[test]
fn laguna_round_trip_and_unmarkable_file() {
    let native = file("laguna")
        .k(".rope.dimension_count_swa", Value::U32(64))
        .k(".rope.freq_base_swa", Value::F32(10_000.0))
        .t("blk.0.attn_gate.weight", &[4, 4])
        .t("blk.1.attn_gate.weight", &[4, 4]);
    let (o, _) = round_trip(&native, "laguna", &["laguna"]);
    assert!(names(&o).contains(&"blk.1.attn_g.weight".to_string()));
    assert_eq!(
        kv(&o, "laguna.rope.swa.dimension_count"),
        Some(Value::U32(64))
    );
    let bare = file("laguna").t("blk.0.attn_q.weight", &[4]).bytes();
    assert!(ollama(&bare, "laguna", "laguna").is_err());
    assert!(!detects(&others::LAGUNA, &bare));
}

// --- gptoss ---------------------------------------------------------------------------------

fn gptoss_native() -> Native {
    file("gpt-oss")
        .k("tokenizer.ggml.pre", Value::String("gpt-4o".into()))
        .k(".expert_feed_forward_length", Value::U32(4))
        .k(".rope.scaling.type", Value::String("yarn".into()))
        .t("blk.0.attn_output.weight", &[4, 4])
        .t("blk.0.attn_output.bias", &[4])
        .t("blk.0.attn_sinks.weight", &[2])
        .t("blk.0.post_attention_norm.weight", &[4])
        .t("blk.0.ffn_gate_exps.weight", &[4, 4, 2])
}

#[test]
fn gptoss_round_trip() {
    let (o, d) = round_trip(&gptoss_native(), "gptoss", &["gptoss"]);
    let n = names(&o);
    for want in [
        "blk.0.attn_out.weight",
        "blk.0.attn_out.bias",
        "blk.0.attn_sinks",
        "blk.0.ffn_norm.weight",
    ] {
        assert!(n.contains(&want.to_string()), "{want} in {n:?}");
    }
    assert_eq!(kv(&o, "gptoss.expert_feed_forward_length"), None);
    assert_eq!(
        kv(&d, "tokenizer.ggml.pre"),
        Some(Value::String("gpt-4o".into()))
    );
}

#[test]
fn gptoss_matches_whole_components_unlike_ollama() {
    let src = file("gptoss")
        .t("blk.0.attn_output.weight", &[4, 4])
        .t("blk.1.attn_out.weight", &[4, 4])
        .t("blk.0.attn_sinks.weight", &[2])
        .t("blk.1.attn_sinks", &[2])
        .t("blk.0.ffn_norm_x.weight", &[4])
        .t("blk.0.ffn_gate_exps.weight", &[4, 6, 2])
        .bytes();
    let v = run(&others::GPTOSS, &src).unwrap();
    let n: Vec<&str> = v.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        n,
        [
            "blk.0.attn_output.weight",
            "blk.1.attn_output.weight",
            "blk.0.attn_sinks.weight",
            "blk.1.attn_sinks.weight",
            "blk.0.ffn_norm_x.weight",
            "blk.0.ffn_gate_exps.weight",
        ]
    );
    assert_eq!(
        v.get("gpt-oss.expert_feed_forward_length"),
        Some(&Value::U32(6))
    );
    assert_eq!(v.str("gpt-oss.rope.scaling.type"), Some("yarn"));
    let missing = file("gptoss").t("blk.0.attn_out.weight", &[4]).bytes();
    layout_error(
        run(&others::GPTOSS, &missing).unwrap_err(),
        "blk.0.ffn_gate_exps.weight",
    );
}

// --- lfm2 / olmo3 ---------------------------------------------------------------------------

#[test]
fn lfm2_round_trip_and_feed_forward_length() {
    let native = file("lfm2")
        .k("tokenizer.ggml.pre", Value::String("lfm2".into()))
        .k(".feed_forward_length", Value::U32(6))
        .t("token_embd_norm.weight", &[4])
        .t("blk.0.ffn_gate.weight", &[4, 6]);
    round_trip(&native, "lfm2", &["lfm2"]);
    let src = file("lfm2")
        .k(".feed_forward_length", Value::U32(8))
        .t("output_norm.weight", &[4])
        .t("blk.0.ffn_gate.weight", &[4, 6])
        .bytes();
    let v = run(&others::LFM2, &src).unwrap();
    assert_eq!(v.get("lfm2.feed_forward_length"), Some(&Value::U32(6)));
    assert_eq!(v.str("tokenizer.ggml.pre"), Some("lfm2"));
    let bad = file("lfm2")
        .t("output_norm.weight", &[4])
        .t("blk.0.ffn_gate.weight", &[4, 6, 2])
        .bytes();
    layout_error(
        run(&others::LFM2, &bad).unwrap_err(),
        "blk.0.ffn_gate.weight",
    );
}

#[test]
fn olmo3_round_trip() {
    let native = file("olmo2")
        .k(".block_count", Value::U32(1))
        .k(".attention.sliding_window", Value::U32(4096))
        .t("blk.0.attn_norm.weight", &[4]);
    let (o, d) = round_trip(&native, "olmo3", &["olmo3"]);
    assert_eq!(kv(&o, "olmo3.block_count"), Some(Value::U32(1)));
    assert!(plan_is_header_only(&o));
    assert_eq!(
        kv(&d, "general.architecture"),
        Some(Value::String("olmo2".into()))
    );
}

fn plan_is_header_only(bytes: &[u8]) -> bool {
    plan(&Gguf::from_bytes(bytes).unwrap())
        .unwrap()
        .is_some_and(|p| p.text_is_header_only())
}

// --- mistral3 -------------------------------------------------------------------------------

#[test]
fn mistral3_round_trip_with_and_without_yarn_keys() {
    let native = file("mistral3")
        .k("tokenizer.ggml.pre", Value::String("tekken".into()))
        .k(".rope.scaling.yarn_beta_fast", Value::F32(32.0))
        .k(".rope.scaling.yarn_beta_slow", Value::F32(1.0))
        .k(".rope.scaling.yarn_log_multiplier", Value::F32(1.0))
        .k(".attention.temperature_scale", Value::F32(0.1))
        .t("blk.0.attn_norm.weight", &[4]);
    let (o, _) = round_trip(&native, "mistral3", &["mistral3"]);
    assert_eq!(kv(&o, "mistral3.rope.scaling_beta"), Some(Value::F32(0.1)));
    assert!(plan_is_header_only(&o));
    let plain = file("mistral3").t("blk.0.attn_norm.weight", &[4]);
    let (o, _) = round_trip(&plain, "mistral3", &["mistral3"]);
    assert!(names(&o).iter().any(|n| n.starts_with("mm.")));
    // A set pre-tokenizer is kept.
    let src = file("mistral3")
        .k("tokenizer.ggml.pre", Value::String("other".into()))
        .t("mm.x", &[4])
        .bytes();
    assert_eq!(
        run(&others::MISTRAL3, &src)
            .unwrap()
            .str("tokenizer.ggml.pre"),
        Some("other")
    );
}

// --- glm4moelite ----------------------------------------------------------------------------

fn deepseek2_native() -> Native {
    file("deepseek2")
        .k("tokenizer.ggml.pre", Value::String("glm4".into()))
        .k("tokenizer.ggml.eos_token_id", Value::U32(3))
        .k("tokenizer.ggml.eot_token_id", Value::U32(1))
        .k("tokenizer.ggml.eom_token_id", Value::U32(2))
        .k(".attention.head_count", Value::U32(20))
        .k(".attention.head_count_kv", Value::U32(1))
        .k(".attention.kv_lora_rank", Value::U32(512))
        .k(".rope.dimension_count", Value::U32(64))
        .k(".attention.key_length", Value::U32(576))
        .k(".attention.value_length", Value::U32(512))
        .k(".attention.key_length_mla", Value::U32(256))
        .k(".attention.value_length_mla", Value::U32(256))
        .k(".expert_group_count", Value::U32(1))
        .k(".expert_group_used_count", Value::U32(1))
        .t("blk.0.attn_kv_a_mqa.weight", &[4, 4])
}

#[test]
fn glm4moelite_round_trip() {
    let (o, d) = round_trip(&deepseek2_native(), "glm4moelite", &["glm4moelite"]);
    assert_eq!(
        kv(&o, "glm4moelite.attention.key_length"),
        Some(Value::U32(256))
    );
    assert_eq!(
        kv(&o, "glm4moelite.attention.head_count_kv"),
        Some(Value::U32(20))
    );
    assert_eq!(kv(&o, "tokenizer.ggml.eot_token_id"), None);
    assert_eq!(
        kv(&o, "tokenizer.ggml.eos_token_ids"),
        Some(Value::Array(Array::I32(vec![3, 1, 2])))
    );
    assert_eq!(
        kv(&d, "general.architecture"),
        Some(Value::String("deepseek2".into()))
    );
    let other = deepseek2_native()
        .k(".attention.value_length_mla", Value::U32(128))
        .bytes();
    assert!(ollama(&other, "deepseek2", "glm4moelite").is_err());
}

#[test]
fn glm4moelite_short_eos_list_and_bad_values() {
    let src = file("glm4moelite")
        .k(
            "tokenizer.ggml.eos_token_ids",
            Value::Array(Array::I32(vec![-1, 7])),
        )
        .bytes();
    let v = run(&others::GLM4MOELITE, &src).unwrap();
    // The negative entry is dropped, so 7 is the first and there is no second.
    assert!(v.get("tokenizer.ggml.eot_token_id").is_none());
    assert_eq!(v.get("deepseek2.expert_group_count"), Some(&Value::U32(1)));
    assert!(v.get("deepseek2.attention.key_length_mla").is_none());
    let big = file("glm4moelite")
        .k(".attention.kv_lora_rank", Value::U64(u64::from(u32::MAX)))
        .k(".rope.dimension_count", Value::U32(64))
        .bytes();
    assert!(matches!(
        run(&others::GLM4MOELITE, &big),
        Err(CompatError::Key { .. })
    ));
}

// --- deepseekocr ----------------------------------------------------------------------------

#[test]
fn deepseekocr_round_trip_and_missing_experts() {
    let native = file("deepseek2-ocr")
        .k(".attention.layer_norm_rms_epsilon", Value::F32(1e-6))
        .k(".expert_feed_forward_length", Value::U32(4))
        .k(".expert_shared_count", Value::U32(2))
        .t("blk.1.ffn_down_exps.weight", &[4, 8, 3])
        .t("blk.1.ffn_down_shexp.weight", &[8, 8]);
    let (o, _) = round_trip(&native, "deepseekocr", &["deepseekocr"]);
    for k in ["expert_feed_forward_length", "expert_shared_count"] {
        assert_eq!(kv(&o, &format!("deepseekocr.{k}")), None, "{k}");
    }
    let src = file("deepseekocr")
        .t("blk.1.ffn_down_exps.weight", &[4, 8, 3])
        .t("s.blk.0.x", &[4])
        .t("v.x", &[4])
        .bytes();
    let v = run(&others::DEEPSEEKOCR, &src).unwrap();
    assert_eq!(v.tensors().len(), 1);
    assert!(v.get("deepseek2-ocr.expert_shared_count").is_none());
    let none = file("deepseekocr").t("blk.0.x", &[4]).bytes();
    layout_error(
        run(&others::DEEPSEEKOCR, &none).unwrap_err(),
        "blk.1.ffn_down_exps.weight",
    );
}

// --- nemotron -------------------------------------------------------------------------------

fn nemotron_moe_native(latent: bool) -> Native {
    let n = file("nemotron_h_moe")
        .k(".expert_count", Value::U32(4))
        .k(".expert_used_count", Value::U32(2))
        .t("blk.0.ssm_in.weight", &[4, 4]);
    if latent {
        n.k(".moe_latent_size", Value::U32(6))
            .t("blk.1.ffn_latent_down.weight", &[8, 6])
            .t("blk.1.ffn_latent_up.weight", &[6, 8])
    } else {
        n
    }
}

#[test]
fn nemotron_h_moe_round_trips() {
    let (o, _) = round_trip(
        &nemotron_moe_native(true),
        "nemotron_h_moe",
        &["nemotron_h_moe"],
    );
    assert!(names(&o).contains(&"blk.1.ffn_latent_in.weight".to_string()));
    assert_eq!(kv(&o, "nemotron_h_moe.moe_latent_size"), None);
    let (o, _) = round_trip(
        &nemotron_moe_native(false),
        "nemotron_h_moe",
        &["nemotron_h_moe"],
    );
    assert!(names(&o).iter().any(|n| n.starts_with("mtp.")));
    let (o, _) = round_trip(
        &nemotron_moe_native(true),
        "nemotron_h_omni",
        &["nemotron_h_omni", "nemotron_h_moe"],
    );
    assert_eq!(kv(&o, "nemotron_h_omni.expert_count"), Some(Value::U32(4)));
    let dense = file("nemotron_h").t("blk.0.ssm_in.weight", &[4, 4]);
    round_trip(&dense, "nemotron_h_omni", &["nemotron_h_omni"]);
    // A dense file with experts cannot be told apart: refused.
    let wrong = file("nemotron_h").k(".expert_count", Value::U32(2)).bytes();
    assert!(ollama(&wrong, "nemotron_h", "nemotron_h_omni").is_err());
}

#[test]
fn nemotron_h_omni_keeps_vision_and_audio_keys_out() {
    let src = file("nemotron_h_omni")
        .k(".vision.block_count", Value::U32(2))
        .k(".audio.block_count", Value::U32(2))
        .k(".block_count", Value::U32(1))
        .t("a.x", &[4])
        .t("blk.0.x", &[4])
        .bytes();
    assert!(detects(&others::NEMOTRON_H_OMNI, &src));
    let v = run(&others::NEMOTRON_H_OMNI, &src).unwrap();
    assert_eq!(v.arch, "nemotron_h");
    assert_eq!(v.get("nemotron_h.block_count"), Some(&Value::U32(1)));
    assert!(v.get("nemotron_h.vision.block_count").is_none());
    assert!(v.get("nemotron_h.audio.block_count").is_none());
    assert_eq!(v.tensors().len(), 1);
    let bad = file("nemotron_h_moe")
        .t("blk.0.ffn_latent_in.weight", &[8, 6, 2])
        .bytes();
    layout_error(
        run(&others::NEMOTRON_H_MOE, &bad).unwrap_err(),
        "blk.0.ffn_latent_in.weight",
    );
}

// --- llama4 ---------------------------------------------------------------------------------

#[test]
fn llama4_round_trip() {
    let native = file("llama4").t("blk.0.attn_norm.weight", &[4]);
    let (o, _) = round_trip(&native, "llama4", &["llama4"]);
    assert!(names(&o).iter().any(|n| n.starts_with("mm.")));
    let src = file("llama4")
        .t("v.x", &[4])
        .t("mm.y", &[4])
        .t("z", &[4])
        .bytes();
    assert_eq!(run(&others::LLAMA4, &src).unwrap().tensors().len(), 1);
}

// --- glmocr ---------------------------------------------------------------------------------

fn glm4_native() -> Native {
    file("glm4")
        .k("tokenizer.ggml.pre", Value::String("chatglm-bpe".into()))
        .k(".block_count", Value::U32(2))
        .k(".attention.key_length", Value::U32(64))
        .k(".rope.dimension_count", Value::U32(64))
        .k(
            ".rope.dimension_sections",
            Value::Array(Array::I32(vec![8, 12, 12, 0])),
        )
        .t("blk.0.attn_output.weight", &[4, 4])
        .t("blk.0.post_attention_norm.weight", &[4])
        .t("blk.0.post_ffw_norm.weight", &[4])
        .tt("blk.0.ffn_up.weight", &[32, 8], GgmlType::Q8_0)
        .tt("blk.1.ffn_up.weight", &[4, 6], GgmlType::F16)
}

#[test]
fn glmocr_round_trip() {
    let (o, _) = round_trip(&glm4_native(), "glmocr", &["glmocr"]);
    let t = tensors(&o);
    assert_eq!(t["blk.0.ffn_gate.weight"].0, [32, 4]);
    assert_eq!(t["blk.1.ffn_up.weight"].0, [4, 3]);
    assert!(t.contains_key("blk.0.post_attn_norm.weight"));
    assert!(t.contains_key("blk.0.post_ffn_norm.weight"));
    assert!(t.contains_key("blk.0.attn_out.weight"));
    assert_eq!(
        kv(&o, "glmocr.rope.mrope_section"),
        Some(Value::Array(Array::I32(vec![8, 12, 12])))
    );
}

#[test]
fn glmocr_joins_gate_then_up_and_refuses_mixed_types() {
    let src = file("glmocr")
        .k(".block_count", Value::U32(1))
        .tt("blk.0.ffn_gate.weight", &[4, 2], GgmlType::F16)
        .tt("blk.0.ffn_up.weight", &[4, 2], GgmlType::F16)
        .t("v.x", &[4])
        .bytes();
    let v = run(&others::GLMOCR, &src).unwrap();
    let mut want = src_bytes(&src, "blk.0.ffn_gate.weight");
    want.extend(src_bytes(&src, "blk.0.ffn_up.weight"));
    assert_eq!(data(&v, &src, "blk.0.ffn_up.weight"), want);
    assert_eq!(v.tensor("blk.0.ffn_up.weight").unwrap().dims, [4, 4]);
    assert_eq!(v.tensors().len(), 1);
    assert_eq!(v.arch, "glm4");
    let mixed = file("glmocr")
        .tt("blk.0.ffn_gate.weight", &[32, 2], GgmlType::Q8_0)
        .tt("blk.0.ffn_up.weight", &[32, 2], GgmlType::F16)
        .bytes();
    layout_error(
        run(&others::GLMOCR, &mixed).unwrap_err(),
        "blk.0.ffn_up.weight",
    );
    let shapes = file("glmocr")
        .tt("blk.0.ffn_gate.weight", &[32, 2], GgmlType::F16)
        .tt("blk.0.ffn_up.weight", &[32, 3], GgmlType::F16)
        .bytes();
    layout_error(
        run(&others::GLMOCR, &shapes).unwrap_err(),
        "blk.0.ffn_up.weight",
    );
}

// --- hostile input --------------------------------------------------------------------------

#[test]
fn huge_block_counts_do_not_make_the_loops_run_long() {
    let src = file("glmocr")
        .k(".block_count", Value::U32(u32::MAX))
        .t("blk.0.attn_norm.weight", &[4])
        .bytes();
    let started = std::time::Instant::now();
    run(&others::GLMOCR, &src).unwrap();
    let g4 = file("gemma4")
        .k(".block_count", Value::U32(u32::MAX))
        .t("v.x", &[4])
        .bytes();
    run(&gemma_family::GEMMA4, &g4).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
