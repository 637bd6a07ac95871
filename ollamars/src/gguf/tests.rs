use super::*;

fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

/// A small valid model-like file: metadata of every type, a vocab, and a few tensors.
fn sample() -> GgufWriter {
    let tokens: Vec<String> = (0..40).map(|i| format!("tok{i}")).collect();
    GgufWriter::new()
        .kv("general.architecture", s("llama"))
        .kv("general.name", s("tiny"))
        .kv("general.file_type", Value::U32(3))
        .kv("llama.context_length", Value::U32(2048))
        .kv("llama.embedding_length", Value::U64(64))
        .kv("llama.rope.freq_base", Value::F32(10000.0))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5))
        .kv("t.u8", Value::U8(200))
        .kv("t.i8", Value::I8(-5))
        .kv("t.u16", Value::U16(60000))
        .kv("t.i16", Value::I16(-30000))
        .kv("t.i32", Value::I32(-7))
        .kv("t.i64", Value::I64(i64::MIN))
        .kv("t.f64", Value::F64(0.125))
        .kv("t.bool", Value::Bool(true))
        .kv("t.empty", Value::Array(Array::U32(vec![])))
        .kv("t.short", Value::Array(Array::I16(vec![1, -2, 3])))
        .kv("t.bools", Value::Array(Array::Bool(vec![true, false])))
        .kv("t.f64s", Value::Array(Array::F64(vec![1.5; 9])))
        .kv(
            "t.nested",
            Value::Array(Array::Array(vec![
                Array::String(vec!["a".into(), "b".into()]),
                Array::Array(vec![Array::U8(vec![1, 2, 3])]),
                Array::I64(vec![-1]),
            ])),
        )
        .kv("tokenizer.ggml.model", s("gpt2"))
        .kv("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
        .kv(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(vec![0.5; 40])),
        )
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![1; 40])),
        )
        .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(39))
        .kv(
            "tokenizer.chat_template",
            s("{% for m in messages %}{{ m.content }}{% endfor %}"),
        )
        .tensor_filled("token_embd.weight", &[64, 40], GgmlType::Q4_1)
        .tensor_filled("output_norm.weight", &[64], GgmlType::F32)
        .tensor_filled("blk.0.attn_q.weight", &[256, 3], GgmlType::Q4_K)
        .tensor_filled("blk.0.ffn.weight", &[32, 2, 2, 2], GgmlType::Q8_0)
        .tensor_filled("blk.0.bf", &[3, 5], GgmlType::BF16)
}

fn err_of(bytes: &[u8]) -> GgufError {
    match Gguf::from_bytes(bytes) {
        Ok(_) => panic!("hostile GGUF was accepted"),
        Err(e) => e,
    }
}

#[test]
fn round_trip_every_value_type() {
    let w = sample();
    let bytes = w.to_bytes();
    let g = Gguf::from_bytes(&bytes).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    assert_eq!(g.data_offset() % 32, 0);
    assert_eq!(g.metadata().len(), 27);
    assert_eq!(g.get("t.u8"), Some(&Value::U8(200)));
    assert_eq!(g.get("t.i8"), Some(&Value::I8(-5)));
    assert_eq!(g.get("t.u16"), Some(&Value::U16(60000)));
    assert_eq!(g.get("t.i16"), Some(&Value::I16(-30000)));
    assert_eq!(g.get("t.i32"), Some(&Value::I32(-7)));
    assert_eq!(g.get("t.i64"), Some(&Value::I64(i64::MIN)));
    assert_eq!(g.get("t.f64"), Some(&Value::F64(0.125)));
    assert_eq!(g.get("t.bool"), Some(&Value::Bool(true)));
    assert_eq!(g.get("llama.embedding_length"), Some(&Value::U64(64)));
    assert_eq!(
        g.get("t.bools"),
        Some(&Value::Array(Array::Bool(vec![true, false])))
    );
    match g.get("t.nested") {
        Some(Value::Array(Array::Array(v))) => {
            assert_eq!(v.len(), 3);
            assert_eq!(v[1], Array::Array(vec![Array::U8(vec![1, 2, 3])]));
        }
        other => panic!("nested array read as {other:?}"),
    }
    assert_eq!(g.architecture(), Some("llama"));
    let names: Vec<_> = g.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "token_embd.weight",
            "output_norm.weight",
            "blk.0.attn_q.weight",
            "blk.0.ffn.weight",
            "blk.0.bf"
        ]
    );
    let t = &g.tensors()[2];
    assert_eq!(t.dims, vec![256, 3]);
    assert_eq!(t.ggml_type, GgmlType::Q4_K);
    assert_eq!(t.size, 3 * 144);
    assert_eq!(g.tensors()[0].size, 40 * 2 * 20);
    assert_eq!(g.tensors()[3].size, 8 * 34);
    assert_eq!(g.tensors()[4].size, 30);
    // Every tensor's data is where the info says.
    for t in g.tensors() {
        let start = (g.data_offset() + t.offset) as usize;
        assert_eq!(
            bytes[start], 0,
            "{} data starts with the fill pattern",
            t.name
        );
        assert_eq!(bytes[start + 1], 1);
    }
    assert_eq!(g.parameter_count(), 64 * 40 + 64 + 256 * 3 + 32 * 8 + 15);
}

#[test]
fn version_2_and_custom_alignment() {
    let bytes = sample().version(2).alignment(64).to_bytes();
    let g = Gguf::from_bytes(&bytes).unwrap();
    assert_eq!(g.version(), 2);
    assert_eq!(g.alignment(), 64);
    assert_eq!(g.data_offset() % 64, 0);
    assert!(g.tensors().iter().all(|t| t.offset % 64 == 0));
    let one = GgufWriter::new()
        .alignment(1)
        .tensor_filled("a", &[3], GgmlType::I8)
        .to_bytes();
    assert_eq!(Gguf::from_bytes(&one).unwrap().alignment(), 1);
}

#[test]
fn empty_file_with_no_tensors_is_valid() {
    let g = Gguf::from_bytes(&GgufWriter::new().to_bytes()).unwrap();
    assert!(g.tensors().is_empty() && g.metadata().is_empty());
    assert_eq!(g.parameter_count(), 0);
}

#[test]
fn reads_from_a_file_and_a_seekable_reader() {
    let bytes = sample().to_bytes();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    std::fs::write(&p, &bytes).unwrap();
    assert_eq!(Gguf::open(&p).unwrap().tensors().len(), 5);
    let cur = std::io::Cursor::new(bytes.clone());
    assert_eq!(
        Gguf::read(cur, bytes.len() as u64).unwrap().tensors().len(),
        5
    );
    let mut cur = std::io::Cursor::new(bytes.clone());
    cur.set_position(17);
    assert_eq!(
        Gguf::from_seekable(cur).unwrap().file_len(),
        bytes.len() as u64
    );
    let cut = std::io::Cursor::new(bytes[..bytes.len() - 1].to_vec());
    assert!(matches!(
        Gguf::from_seekable(cut),
        Err(GgufError::BadTensor { .. })
    ));
    // A length larger than the stream: the missing bytes are an I/O error, not a panic.
    let short = &bytes[..100];
    assert!(Gguf::read(short, bytes.len() as u64).is_err());
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    // Make the file longer than 4 KiB so the sweep covers header, metadata, infos and data.
    let bytes = sample()
        .kv("t.pad", Value::Array(Array::U8(vec![7; 3000])))
        .tensor_filled("big", &[1024], GgmlType::F32)
        .to_bytes();
    assert!(bytes.len() > 4096 + 1024);
    Gguf::from_bytes(&bytes).unwrap();
    for len in 0..=4096 {
        assert!(
            Gguf::from_bytes(&bytes[..len]).is_err(),
            "truncated at {len} was accepted"
        );
    }
    for len in [bytes.len() / 2, bytes.len() * 99 / 100, bytes.len() - 1] {
        assert!(
            Gguf::from_bytes(&bytes[..len]).is_err(),
            "truncated at {len} was accepted"
        );
    }
}

#[test]
fn header_errors() {
    assert!(matches!(err_of(b""), GgufError::BadMagic));
    assert!(matches!(err_of(b"GGU"), GgufError::BadMagic));
    assert!(matches!(err_of(b"GGML\x03\0\0\0"), GgufError::BadMagic));
    for v in [0, 1, 4, 0x0300_0000] {
        let b = GgufWriter::new().version(v).to_bytes();
        assert!(
            matches!(err_of(&b), GgufError::UnsupportedVersion(x) if x == v),
            "version {v}"
        );
    }
}

#[test]
fn huge_counts_are_rejected_before_allocation() {
    for (nt, nkv) in [
        (1u64 << 63, 0u64),
        (0, 1 << 63),
        (u64::MAX, u64::MAX),
        (0, 1 << 40),
        (1 << 40, 0),
        (MAX_TENSOR_COUNT + 1, 0),
        (1000, 0),
        (0, 1000),
    ] {
        let b = GgufWriter::new().counts_raw(nt, nkv).to_bytes();
        assert!(
            matches!(err_of(&b), GgufError::TooMany { .. }),
            "counts {nt} {nkv}"
        );
    }
}

fn raw_kv(type_id: u32, payload: Vec<u8>) -> Vec<u8> {
    GgufWriter::new().kv_raw("k", type_id, payload).to_bytes()
}

fn le(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn hostile_metadata() {
    // String length 2^64-1 and 2^40, both as a value and as a key.
    for len in [u64::MAX, 1 << 40, MAX_STRING_LEN + 1] {
        let e = err_of(&raw_kv(8, len.to_le_bytes().to_vec()));
        assert!(
            matches!(
                e,
                GgufError::StringTooLong { .. } | GgufError::Truncated { .. }
            ),
            "{e}"
        );
    }
    let mut b = GgufWriter::new().counts_raw(0, 1).to_bytes();
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    b.extend_from_slice(&[0; 16]);
    assert!(matches!(err_of(&b), GgufError::StringTooLong { .. }));
    // String length just past the end.
    assert!(matches!(
        err_of(&raw_kv(8, le(&[&5u64.to_le_bytes(), b"abcd"]))),
        GgufError::Truncated { .. }
    ));
    // Array counts 2^40, u64::MAX, and just over what remains.
    for (elem, count) in [(0u32, 1u64 << 40), (8, u64::MAX), (4, 2), (9, 1 << 62)] {
        let e = err_of(&raw_kv(
            9,
            le(&[&elem.to_le_bytes(), &count.to_le_bytes(), &[0u8; 4]]),
        ));
        assert!(
            matches!(e, GgufError::TooMany { .. }),
            "elem {elem} count {count}: {e}"
        );
    }
    // Unknown value types, top level and as array elements.
    for t in [13u32, 100, u32::MAX] {
        assert!(
            matches!(err_of(&raw_kv(t, vec![0; 8])), GgufError::UnknownValueType { type_id, .. } if type_id == t)
        );
        let e = err_of(&raw_kv(
            9,
            le(&[&t.to_le_bytes(), &1u64.to_le_bytes(), &[0u8; 8]]),
        ));
        assert!(matches!(e, GgufError::UnknownValueType { .. }), "{e}");
    }
    // Bool other than 0/1.
    assert!(matches!(
        err_of(&raw_kv(7, vec![2])),
        GgufError::InvalidBool { .. }
    ));
    // Arrays nested too deeply.
    let mut deep = Array::U8(vec![1]);
    for _ in 0..MAX_ARRAY_DEPTH {
        deep = Array::Array(vec![deep]);
    }
    let b = GgufWriter::new().kv("d", Value::Array(deep)).to_bytes();
    assert!(matches!(err_of(&b), GgufError::TooDeep { .. }));
    // Duplicate key.
    let b = GgufWriter::new()
        .kv("a", Value::U8(1))
        .kv("a", Value::U8(2))
        .to_bytes();
    assert!(matches!(err_of(&b), GgufError::DuplicateKey(k) if k == "a"));
    // Well-known keys with the wrong type.
    for (k, v) in [
        ("general.architecture", Value::U32(1)),
        ("general.file_type", s("Q4_0")),
        ("general.file_type", Value::I32(-1)),
        ("tokenizer.chat_template", Value::Bool(true)),
        ("tokenizer.ggml.tokens", Value::Array(Array::U8(vec![1]))),
    ] {
        let b = GgufWriter::new().kv(k, v).to_bytes();
        assert!(matches!(err_of(&b), GgufError::BadKey { .. }), "{k}");
    }
}

#[test]
fn hostile_vocab() {
    let toks = || Value::Array(Array::String(vec!["a".into(), "b".into(), "c".into()]));
    let base = || GgufWriter::new().kv("tokenizer.ggml.tokens", toks());
    let cases = [
        (
            "tokenizer.ggml.scores",
            Value::Array(Array::I8(vec![1, 2, 3])),
        ),
        (
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(vec![1.0, 2.0])),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![1; 4])),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(Array::U8(vec![1; 3])),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(3)),
        ("tokenizer.ggml.eos_token_id", Value::I32(-1)),
        ("tokenizer.ggml.merges", Value::Array(Array::U32(vec![1]))),
    ];
    let huge_token = GgufWriter::new()
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(Array::String(vec![
                "a".into(),
                "b".repeat(MAX_TOKEN_LEN + 1),
            ])),
        )
        .to_bytes();
    assert!(matches!(err_of(&huge_token), GgufError::BadKey { .. }));
    for (k, v) in cases {
        let b = base().kv(k, v.clone()).to_bytes();
        assert!(
            matches!(err_of(&b), GgufError::BadKey { .. }),
            "{k} = {v:?}"
        );
    }
    // The same keys with good values pass.
    let ok = base()
        .kv(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(vec![0.0; 3])),
        )
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![1; 3])),
        )
        .kv("tokenizer.ggml.bos_token_id", Value::U32(2))
        .to_bytes();
    Gguf::from_bytes(&ok).unwrap();
}

#[test]
fn hostile_tensor_infos() {
    let one = |dims: &[u64], type_id: u32| {
        GgufWriter::new()
            .tensor_raw("t", dims, type_id, 0, vec![0; 64])
            .to_bytes()
    };
    let bad = |b: Vec<u8>, why: &str| {
        let e = err_of(&b);
        assert!(matches!(e, GgufError::BadTensor { .. }), "{why}: {e}");
    };
    bad(one(&[1, 1, 1, 1, 1], 0), "5 dims");
    bad(one(&[], 0), "0 dims");
    bad(one(&[0], 0), "zero dim");
    bad(one(&[4, 0], 0), "zero second dim");
    bad(one(&[u64::MAX], 0), "dim -1");
    bad(one(&[1 << 63], 0), "dim 2^63");
    let m = i32::MAX as u64;
    bad(one(&[m, m, m, m], 0), "product overflow");
    bad(one(&[1 << 32, 1 << 31], 0), "product past i64");
    bad(one(&[1 << 62], 0), "byte size overflow (F32)");
    bad(one(&[16], 2), "row not a multiple of the Q4_0 block");
    bad(one(&[300], 12), "row not a multiple of the Q4_K block");
    for t in [4, 5, 31, 36, 40, 1000, u32::MAX] {
        bad(one(&[16], t), "unknown or removed ggml type");
    }
    // n_dims itself huge.
    let mut b = GgufWriter::new().counts_raw(1, 0).to_bytes();
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b't');
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&[0; 64]);
    bad(b, "n_dims 2^32-1");
    // Duplicate name.
    let b = GgufWriter::new()
        .tensor_filled("a", &[8], GgmlType::F32)
        .tensor_filled("a", &[8], GgmlType::F32)
        .to_bytes();
    bad(b, "duplicate name");
}

#[test]
fn tensor_data_bounds() {
    // 16 F32 = 64 bytes, placed at offset 0 of the data section.
    let base = |offset: u64, data: usize| {
        GgufWriter::new()
            .tensor_raw("t", &[16], 0, offset, vec![0; data])
            .to_bytes()
    };
    Gguf::from_bytes(&base(0, 64)).unwrap();
    // Last tensor ends exactly one byte past EOF.
    let b = base(0, 64);
    assert!(matches!(
        err_of(&b[..b.len() - 1]),
        GgufError::BadTensor { .. }
    ));
    // Offsets past the end, unaligned, and overflowing.
    for off in [32, 64, 1 << 40, u64::MAX - 31, u64::MAX - 63] {
        let e = err_of(&base(off, 64));
        assert!(
            matches!(e, GgufError::BadTensor { .. }),
            "offset {off}: {e}"
        );
    }
    assert!(matches!(err_of(&base(4, 128)), GgufError::BadTensor { .. }));
    // Overlapping tensors.
    let b = GgufWriter::new()
        .tensor_raw("a", &[16], 0, 0, vec![0; 64])
        .tensor_raw("b", &[16], 0, 32, vec![0; 64])
        .to_bytes();
    assert!(
        matches!(err_of(&b), GgufError::BadTensor { reason, .. } if reason.contains("overlap"))
    );
    // Sizes whose sum would overflow u64 are rejected per tensor, never summed unchecked.
    let b = GgufWriter::new()
        .tensor_raw("a", &[1 << 60], 24, 0, vec![])
        .tensor_raw("b", &[1 << 60], 24, 1 << 61, vec![])
        .to_bytes();
    assert!(matches!(err_of(&b), GgufError::BadTensor { .. }));
}

#[test]
fn hostile_alignment() {
    for a in [0u32, 3, 48, 1 << 31, MAX_ALIGNMENT * 2] {
        let b = GgufWriter::new()
            .kv("general.alignment", Value::U32(a))
            .to_bytes();
        let e = err_of(&b);
        assert!(
            matches!(&e, GgufError::BadKey { key, .. } if key == "general.alignment"),
            "{a}: {e}"
        );
    }
    for v in [Value::I32(32), s("32"), Value::U64(32), Value::U16(32)] {
        let b = GgufWriter::new()
            .kv("general.alignment", v.clone())
            .to_bytes();
        assert!(matches!(err_of(&b), GgufError::BadKey { .. }), "{v:?}");
    }
}

#[test]
fn model_info_details_and_capabilities() {
    let g = Gguf::from_bytes(&sample().to_bytes()).unwrap();
    let info = g.model_info(false);
    assert!(!info.contains_key("general.name"));
    assert!(!info.contains_key("tokenizer.chat_template"));
    assert_eq!(info["general.architecture"], "llama");
    assert_eq!(info["llama.context_length"], 2048);
    assert_eq!(info["t.i64"], i64::MIN);
    assert_eq!(info["t.bool"], true);
    // The f32 1e-5 is reported as the decimal 1e-5, not as its widened binary value.
    assert_eq!(
        info["llama.attention.layer_norm_rms_epsilon"].as_f64(),
        Some(1e-5)
    );
    assert_eq!(info["llama.rope.freq_base"], 10000.0);
    assert_eq!(info["t.short"], serde_json::json!([1, -2, 3]));
    assert_eq!(
        info["t.nested"],
        serde_json::json!([["a", "b"], [[1, 2, 3]], [-1]])
    );
    assert_eq!(info["tokenizer.ggml.tokens"], serde_json::json!([]));
    assert_eq!(info["t.f64s"], serde_json::json!([]));
    assert_eq!(info["general.parameter_count"], g.parameter_count());
    let verbose = g.model_info(true);
    assert_eq!(
        verbose["tokenizer.ggml.tokens"].as_array().unwrap().len(),
        40
    );
    assert_eq!(verbose["tokenizer.ggml.tokens"][39], "tok39");

    let ts = g.tensors_json();
    assert_eq!(ts.as_array().unwrap().len(), 5);
    assert_eq!(
        ts[2],
        serde_json::json!({"name": "blk.0.attn_q.weight", "type": "Q4_K", "shape": [256, 3]})
    );

    let d = g.details();
    assert_eq!(d.format, "gguf");
    assert_eq!(d.family, "llama");
    assert_eq!(d.families, vec!["llama".to_string()]);
    assert_eq!(d.quantization_level, "Q4_1");
    assert_eq!(d.parameter_size, human_number(g.parameter_count()));

    use Capability::*;
    assert_eq!(
        g.capabilities(None, Modalities::default()),
        vec![Completion]
    );
    let tools_jinja = GgufWriter::new()
        .kv("general.architecture", s("qwen3"))
        .kv(
            "tokenizer.chat_template",
            s("{% if tools %}<tool_call>{% endif %}<think>\n</think>"),
        )
        .kv("qwen3.vision.block_count", Value::U32(2))
        .kv("qwen3.audio.block_count", Value::U32(2))
        .to_bytes();
    let t = Gguf::from_bytes(&tools_jinja).unwrap();
    assert_eq!(
        t.capabilities(None, Modalities::default()),
        vec![Completion, Tools, Thinking, Vision, Audio]
    );
    let go = "{{ if .Tools }}x{{ end }}{{ .Suffix }}{{ range .Messages }}{{ .Thinking }}{{ end }}";
    assert_eq!(
        g.capabilities(
            Some(go),
            Modalities {
                vision: true,
                audio: false
            }
        ),
        vec![Completion, Tools, Insert, Thinking, Vision]
    );
    let embed = GgufWriter::new()
        .kv("general.architecture", s("bert"))
        .kv("bert.pooling_type", Value::U32(1))
        .to_bytes();
    assert_eq!(
        Gguf::from_bytes(&embed)
            .unwrap()
            .capabilities(None, Modalities::default()),
        vec![Embedding]
    );
    let gptoss = GgufWriter::new()
        .kv("general.architecture", s("gptoss"))
        .to_bytes();
    assert_eq!(
        Gguf::from_bytes(&gptoss)
            .unwrap()
            .capabilities(None, Modalities::default()),
        vec![Completion, Thinking]
    );
    let unknown = GgufWriter::new()
        .kv("general.file_type", Value::U32(5))
        .to_bytes();
    assert_eq!(
        Gguf::from_bytes(&unknown)
            .unwrap()
            .details()
            .quantization_level,
        "unknown"
    );
}

#[test]
fn human_numbers_like_ollama() {
    for (n, want) in [
        (0u64, "0"),
        (999, "999"),
        (1_000, "1K"),
        (1_600, "2K"),
        (22_566_000, "22.57M"),
        (134_515_008, "134.52M"),
        (268_098_176, "268.10M"),
        (1_000_000, "1M"),
        (7_000_000_000, "7B"),
        (8_030_261_248, "8.0B"),
        (70_553_706_496, "70.6B"),
        (1_000_000_000_000, "1000B"),
    ] {
        assert_eq!(human_number(n), want, "{n}");
    }
}

/// Tensors of a real file are laid out back to back (each aligned), which checks the block-size
/// table for every type the file uses.
fn check_layout(g: &Gguf) {
    let mut ts: Vec<_> = g.tensors().iter().collect();
    ts.sort_by_key(|t| t.offset);
    let a = u64::from(g.alignment());
    let mut expect = 0;
    for t in &ts {
        assert_eq!(
            t.offset, expect,
            "{} ({}) is not right after the previous tensor",
            t.name, t.ggml_type
        );
        expect = (t.offset + t.size).next_multiple_of(a);
    }
    let end = g.data_offset() + ts.last().map_or(0, |t| t.offset + t.size);
    assert!(
        g.file_len() - end < a,
        "{} bytes after the last tensor",
        g.file_len() - end
    );
}

#[test]
fn real_smollm2() {
    let p = testkit::model_path(testkit::SMOLLM2);
    let g = Gguf::open(&p).unwrap();
    check_layout(&g);
    let d = g.details();
    assert_eq!(d.family, "llama");
    assert_eq!(d.parameter_size, "134.52M");
    assert_eq!(d.quantization_level, "Q4_1");
    assert!(g.chat_template().is_some_and(|t| t.contains("im_start")));
    let info = g.model_info(false);
    assert_eq!(info["general.architecture"], "llama");
    assert!(info["llama.context_length"].as_u64().unwrap() >= 2048);
    assert_eq!(info["llama.embedding_length"], 576);
    // Its chat template mentions neither tools nor <think>.
    assert_eq!(
        g.capabilities(None, Modalities::default()),
        vec![Capability::Completion]
    );
    // Truncating the real file is caught, cheaply, without reading the data.
    let f = std::fs::File::open(&p).unwrap();
    assert!(matches!(
        Gguf::read(f, g.file_len() - 1),
        Err(GgufError::BadTensor { .. })
    ));
}

#[test]
fn real_gemma3() {
    let p = testkit::model_path(testkit::GEMMA3);
    let g = Gguf::open(&p).unwrap();
    check_layout(&g);
    let d = g.details();
    assert_eq!(d.family, "gemma3");
    assert_eq!(d.parameter_size, "268.10M");
    assert_eq!(d.quantization_level, "Q4_K_M");
    assert!(g.chat_template().is_none());
    assert_eq!(
        g.capabilities(None, Modalities::default()),
        vec![Capability::Completion]
    );
    assert_eq!(g.model_info(false)["general.architecture"], "gemma3");
}

/// A deterministic, stable-toolchain stand-in for the fuzz target: thousands of mutations of a
/// valid file (byte flips, extreme integers written over fields, cuts) must each give `Ok` or
/// `Err`, never a panic, and anything accepted must still satisfy the bounds invariants.
#[test]
fn mutated_files_never_panic() {
    let base = sample().to_bytes();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let extremes: [u64; 8] = [
        0,
        1,
        3,
        0x7fff_ffff,
        0xffff_ffff,
        1 << 40,
        i64::MAX as u64,
        u64::MAX,
    ];
    let (mut ok, mut err) = (0, 0);
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % b.len() as u64) as usize;
            match next() % 4 {
                0 => b[at] ^= 1 << (next() % 8),
                1 => {
                    let v = extremes[(next() % 8) as usize].to_le_bytes();
                    let w = if next() % 2 == 0 { 8 } else { 4 };
                    let end = (at + w).min(b.len());
                    b[at..end].copy_from_slice(&v[..end - at]);
                }
                2 => b.truncate(at),
                _ => b[at] = next() as u8,
            }
            if b.is_empty() {
                break;
            }
        }
        match Gguf::from_bytes(&b) {
            Ok(g) => {
                ok += 1;
                for t in g.tensors() {
                    assert!(g.data_offset() + t.offset + t.size <= b.len() as u64);
                }
                let _ = (
                    g.model_info(true),
                    g.details(),
                    g.capabilities(None, Modalities::default()),
                );
            }
            Err(_) => err += 1,
        }
    }
    // Both outcomes occur, so the mutations reach past the first check.
    assert!(ok > 100 && err > 100, "ok {ok}, err {err}");
}

mod projector {
    use super::super::testing::{PROJ_BLOCKS, PROJ_EMBD, TinyProjector};
    use super::super::*;

    fn err(p: &TinyProjector) -> String {
        let g = Gguf::from_bytes(&p.to_bytes()).expect("valid GGUF");
        g.validate_projector()
            .expect_err("invalid projector accepted")
            .to_string()
    }

    #[test]
    fn a_valid_gemma3_projector_passes() {
        let g = Gguf::from_bytes(&TinyProjector::gemma3(640).to_bytes()).unwrap();
        assert!(g.is_projector());
        let s = g.validate_projector().unwrap();
        assert_eq!(s.vision_type.as_deref(), Some("gemma3"));
        assert_eq!(s.output_embedding, Some(640));
        assert!(!s.needs_default_type);
        assert_eq!(
            g.projector_modalities(),
            Modalities {
                vision: true,
                audio: false
            }
        );
        // A text model is not a projector.
        let t =
            Gguf::from_bytes(&super::super::testing::tiny_llama(GgmlType::F32, 0, None)).unwrap();
        assert!(!t.is_projector());
        assert_eq!(t.projector_modalities(), Modalities::default());
        assert!(
            t.validate_projector()
                .unwrap_err()
                .to_string()
                .contains("general.architecture")
        );
    }

    #[test]
    fn metadata_errors_name_the_key() {
        let p = || TinyProjector::gemma3(64);
        for key in [
            "clip.vision.embedding_length",
            "clip.vision.block_count",
            "clip.vision.feed_forward_length",
            "clip.vision.attention.head_count",
            "clip.vision.image_size",
            "clip.vision.patch_size",
            "clip.vision.projection_dim",
            "clip.vision.attention.layer_norm_epsilon",
            "clip.vision.image_mean",
        ] {
            let e = err(&p().remove_kv(key));
            assert!(e.contains(&format!("{key:?} is required")), "{key}: {e}");
        }
        let e = err(&p().set_kv("clip.vision.block_count", Value::U64(2)));
        assert!(e.contains("must be a u32"), "{e}");
        let e = err(&p().set_kv("clip.has_vision_encoder", Value::U8(1)));
        assert!(e.contains("must be a bool"), "{e}");
        let e = err(&p().set_kv("clip.has_vision_encoder", Value::Bool(false)));
        assert!(e.contains("no encoder"), "{e}");
        let e = err(&p().set_kv("clip.projector_type", Value::String("nope".into())));
        assert!(e.contains("unknown projector type \"nope\""), "{e}");
        let e = err(&p().set_kv("clip.use_silu", Value::Bool(true)));
        assert!(e.contains("clip.use_gelu"), "{e}");
        let e = err(&p().set_kv("clip.vision.attention.head_count", Value::U32(5)));
        assert!(e.contains("must divide the embedding length 32"), "{e}");
        let e = err(&p().set_kv(
            "clip.vision.image_std",
            Value::Array(Array::F32(vec![1.0; 2])),
        ));
        assert!(e.contains("at least 3"), "{e}");
        let e = err(&p().set_kv(
            "clip.vision.feature_layer",
            Value::Array(Array::I32(vec![0, 7])),
        ));
        assert!(e.contains("layer 7 is beyond block_count 2"), "{e}");
    }

    #[test]
    fn tensor_errors_name_the_tensor_and_the_expected_shape() {
        let p = || TinyProjector::gemma3(64);
        let e = err(&p().remove_tensor("v.patch_embd.weight"));
        assert!(e.contains("\"v.patch_embd.weight\" is required"), "{e}");
        let e = err(&p().set_tensor("v.patch_embd.weight", &[8, 8, 3, PROJ_EMBD]));
        assert!(e.contains("expected [4, 4, 3, 32]"), "{e}");
        let e = err(&p().set_tensor("v.blk.1.attn_out.weight", &[32, 16]));
        assert!(
            e.contains("\"v.blk.1.attn_out.weight\" has shape [32, 16]"),
            "{e}"
        );
        for t in ["attn_q", "attn_k", "attn_v", "ffn_up", "ffn_down"] {
            let name = format!("v.blk.1.{t}.weight");
            let e = err(&p().remove_tensor(&name));
            assert!(e.contains(&format!("{name:?} is required")), "{e}");
        }
        let e = err(&p().set_tensor("v.blk.0.ffn_up.weight", &[32, 48]));
        assert!(e.contains("v.blk.0.ffn_down.weight"), "{e}");
        let e = err(&p().set_tensor("v.blk.0.ln1.weight", &[31]));
        assert!(e.contains("expected [32]"), "{e}");
        let extra = format!("v.blk.{PROJ_BLOCKS}.ffn_up.weight");
        let e = err(&p().set_tensor(&extra, &[32, 64]));
        assert!(e.contains("beyond clip.vision.block_count 2"), "{e}");
        let e = err(&p().remove_tensor("mm.soft_emb_norm.weight"));
        assert!(e.contains("required by projector type \"gemma3\""), "{e}");
        let e = err(&p().set_tensor("mm.input_projection.weight", &[64, 16]));
        assert!(
            e.contains("\"mm.input_projection.weight\" has shape [64, 16]"),
            "{e}"
        );
    }

    #[test]
    fn swapped_ffn_fused_qkv_and_other_types() {
        // Older conversions swap up and down; a fused QKV replaces q/k/v.
        let mut p = TinyProjector::gemma3(64)
            .set_tensor("v.blk.0.ffn_up.weight", &[64, 32])
            .set_tensor("v.blk.0.ffn_down.weight", &[32, 64]);
        for t in ["attn_q", "attn_k", "attn_v"] {
            p = p.remove_tensor(&format!("v.blk.1.{t}.weight"));
        }
        let p = p.set_tensor("v.blk.1.attn_qkv.weight", &[32, 96]);
        Gguf::from_bytes(&p.to_bytes())
            .unwrap()
            .validate_projector()
            .unwrap();
        // Another known type: the blocks are checked, any projection tensor is enough.
        let other = TinyProjector::gemma3(64)
            .set_kv("clip.projector_type", Value::String("idefics3".into()));
        let s = Gguf::from_bytes(&other.to_bytes())
            .unwrap()
            .validate_projector()
            .unwrap();
        assert_eq!(
            (s.vision_type.as_deref(), s.output_embedding),
            (Some("idefics3"), None)
        );
        let bare = other
            .remove_tensor("mm.input_projection.weight")
            .remove_tensor("mm.soft_emb_norm.weight");
        assert!(err(&bare).contains("has no projection tensors"));
    }

    #[test]
    fn audio_encoder_and_rewrite_with_key() {
        let p = TinyProjector::gemma3(64)
            .remove_kv("clip.projector_type")
            .set_kv("clip.vision.projector_type", Value::String("gemma3".into()))
            .set_kv("clip.has_audio_encoder", Value::Bool(true))
            .set_kv("clip.audio.embedding_length", Value::U32(16))
            .set_kv("clip.audio.feed_forward_length", Value::U32(32))
            .set_kv("clip.audio.block_count", Value::U32(1))
            .set_kv("clip.audio.attention.head_count", Value::U32(2))
            .set_kv("clip.audio.attention.layer_norm_epsilon", Value::F32(1e-5))
            .set_kv("clip.audio.projection_dim", Value::U32(64))
            .set_kv("clip.audio.num_mel_bins", Value::U32(80));
        let e = err(&p);
        assert!(
            e.contains("\"clip.projector_type\" is required (or clip.audio.projector_type)"),
            "{e}"
        );
        let p = p.set_kv(
            "clip.audio.projector_type",
            Value::String("ultravox".into()),
        );
        // The audio blocks are still missing.
        let e = err(&p);
        assert!(e.contains("\"a.blk.0.attn_out.weight\" is required"), "{e}");
        let p = p
            .set_tensor("a.blk.0.attn_out.weight", &[16, 16])
            .set_tensor("a.blk.0.ffn_up.weight", &[16, 32])
            .set_tensor("a.blk.0.ffn_down.weight", &[32, 16]);
        let bytes = p.to_bytes();
        let g = Gguf::from_bytes(&bytes).unwrap();
        let s = g.validate_projector().unwrap();
        assert_eq!(
            s.modalities,
            Modalities {
                vision: true,
                audio: true
            }
        );
        let caps = Gguf::from_bytes(&super::super::testing::tiny_llama(GgmlType::F32, 0, None))
            .unwrap()
            .capabilities(None, s.modalities);
        assert_eq!(
            caps,
            vec![
                Capability::Completion,
                Capability::Vision,
                Capability::Audio
            ]
        );

        // write_with_key: a valid GGUF with the key added and the same tensors.
        let mut out = Vec::new();
        let n = g
            .write_with_key(
                std::io::Cursor::new(&bytes),
                "clip.extra",
                &Value::U32(7),
                &mut out,
            )
            .unwrap();
        assert_eq!(n, out.len() as u64);
        let h = Gguf::from_bytes(&out).unwrap();
        assert_eq!(h.get("clip.extra"), Some(&Value::U32(7)));
        assert_eq!(h.tensors(), g.tensors());
        assert_eq!(
            &out[h.data_offset() as usize..],
            &bytes[g.data_offset() as usize..]
        );
        assert!(matches!(
            g.write_with_key(
                std::io::Cursor::new(&bytes),
                "general.name",
                &Value::U8(1),
                Vec::new()
            ),
            Err(GgufError::DuplicateKey(_))
        ));
    }
}
