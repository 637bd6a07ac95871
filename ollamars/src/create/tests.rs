use super::*;
use crate::gguf::{GgmlType, GgufWriter, Value};
use crate::store::ImportMode;

use crate::gguf::testing::{TinyProjector, tiny_llama};

/// A local-store client of `ollama create -f Modelfile` (test helper; the CLI uploads over HTTP):
/// every FROM or ADAPTER argument that names an existing local file (relative paths resolve
/// against `base_dir`, `~` is expanded) is validated as GGUF and imported into the store with
/// `mode` (see [`Store::import_file`]) and becomes a `files`/`adapters` entry; any other FROM is
/// a model name. The result is a request for [`create`].
///
/// # Errors
/// A local file that is not a valid GGUF, a directory (safetensors import is not supported),
/// a missing ADAPTER file, or an import failure.
fn request_from_local_modelfile(
    store: &Store,
    name: &str,
    mf: &Modelfile,
    base_dir: &Path,
    mode: ImportMode,
    quantize: Option<String>,
) -> Result<CreateRequest, CreateError> {
    let import = |arg: &str| -> Result<Option<String>, CreateError> {
        if arg.starts_with('@') {
            return Ok(Some(arg.to_string()));
        }
        let p = local_path(arg, base_dir);
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(_) => return Ok(None),
        };
        if meta.is_dir() {
            return Err(bad(format!(
                "{arg}: importing a directory (safetensors) is not supported; convert it to GGUF"
            )));
        }
        let f = std::fs::File::open(&p)?;
        Gguf::from_seekable(BufReader::new(f)).map_err(gguf_error)?;
        Ok(Some(format!("@{}", store.import_file(&p, mode)?.digest)))
    };
    let mut resolved = mf.clone();
    for f in &mut resolved.from {
        if let Some(r) = import(f)? {
            *f = r;
        }
    }
    for a in &mut resolved.adapters {
        *a = import(a)?.ok_or_else(|| bad(format!("adapter file {a} not found")))?;
    }
    request_from_modelfile(name, &resolved, quantize)
}

/// Creates `name` from a local GGUF file (test helper for `FROM ./model.gguf`): validates it with
/// the GGUF reader, imports it with [`Store::import_file`] (reflink or copy, or a hard link
/// when asked, see [`ImportMode`]), then creates the model with the rest of `req` as if the
/// file had been uploaded.
fn create_from_gguf_path(
    store: &Store,
    path: &Path,
    mode: ImportMode,
    req: &CreateRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<ModelName, CreateError> {
    let f = std::fs::File::open(path)
        .map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
    Gguf::from_seekable(BufReader::new(f)).map_err(gguf_error)?;
    let imported = store.import_file(path, mode)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model.gguf")
        .to_string();
    let mut req = req.clone();
    req.from = None;
    req.modelfile = None;
    req.files = Some(BTreeMap::from([(file_name, imported.digest.to_string())]));
    create(store, &req, progress)
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    Fixture { _dir: dir, store }
}

fn upload(store: &Store, bytes: &[u8]) -> String {
    store.import_blob(bytes).unwrap().0.to_string()
}

fn files(d: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([("model.gguf".to_string(), d.to_string())]))
}

fn run(store: &Store, req: &CreateRequest) -> (Result<ModelName, CreateError>, Vec<String>) {
    let mut statuses = Vec::new();
    let r = create(store, req, &mut |p| statuses.push(p.status));
    (r, statuses)
}

fn err_text(store: &Store, req: &CreateRequest) -> String {
    let (r, statuses) = run(store, req);
    let e = r.expect_err("create should fail");
    assert!(
        statuses.is_empty(),
        "progress before a validation error: {statuses:?}"
    );
    e.to_string()
}

fn layer_text(store: &Store, m: &Manifest, mt: &str) -> Option<String> {
    m.layer(mt)
        .map(|l| String::from_utf8(store.read_blob(&l.digest).unwrap()).unwrap())
}

#[test]
fn creates_from_an_uploaded_gguf_with_every_layer() {
    let f = fixture();
    let d = upload(&f.store, &tiny_llama(GgmlType::F32, 0, None));
    let req = CreateRequest {
        model: Some("Tiny:v1".into()),
        files: files(&d),
        template: Some("{{ .Prompt }}".into()),
        system: Some("be brief".into()),
        license: Some(serde_json::json!(["MIT", "Apache"])),
        parameters: Some(
            serde_json::json!({"temperature": 0.5, "stop": ["a", "b"], "seed": null})
                .as_object()
                .unwrap()
                .clone(),
        ),
        messages: Some(vec![CreateMessage {
            role: "USER".into(),
            content: "hi".into(),
        }]),
        ..CreateRequest::default()
    };
    let (r, statuses) = run(&f.store, &req);
    let name = r.unwrap();
    assert_eq!(name.display_short(), "Tiny:v1");
    assert_eq!(statuses.first().unwrap(), "parsing GGUF");
    assert_eq!(statuses[1], format!("using existing layer {d}"));
    assert_eq!(
        &statuses[statuses.len() - 2..],
        ["writing manifest", "success"]
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| s.starts_with("creating new layer sha256:"))
            .count(),
        6,
        "{statuses:?}"
    );
    let m = f.store.read_manifest(&name).unwrap().manifest;
    let kinds: Vec<&str> = m.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            store::MEDIA_MODEL,
            store::MEDIA_TEMPLATE,
            store::MEDIA_SYSTEM,
            store::MEDIA_LICENSE,
            store::MEDIA_LICENSE,
            store::MEDIA_PARAMS,
            store::MEDIA_MESSAGES
        ]
    );
    assert_eq!(m.layers[0].digest, d);
    assert_eq!(
        layer_text(&f.store, &m, store::MEDIA_SYSTEM).unwrap(),
        "be brief"
    );
    let params: Json =
        serde_json::from_str(&layer_text(&f.store, &m, store::MEDIA_PARAMS).unwrap()).unwrap();
    assert_eq!(
        params,
        serde_json::json!({"temperature": 0.5, "stop": ["a", "b"]})
    );
    let msgs: Json =
        serde_json::from_str(&layer_text(&f.store, &m, store::MEDIA_MESSAGES).unwrap()).unwrap();
    assert_eq!(msgs, serde_json::json!([{"role": "user", "content": "hi"}]));
    let cfg: Config =
        serde_json::from_slice(&f.store.read_blob(&m.config.digest).unwrap()).unwrap();
    assert_eq!(cfg.model_format, "gguf");
    assert_eq!(cfg.model_family, "llama");
    assert_eq!(cfg.file_type, "F32");
    assert_eq!(cfg.context_length, Some(128));
    assert_eq!(
        (cfg.architecture.as_str(), cfg.os.as_str()),
        ("amd64", "linux")
    );
}

#[test]
fn inherits_from_a_model_and_merges_parameters() {
    let f = fixture();
    let d = upload(&f.store, &tiny_llama(GgmlType::F32, 0, None));
    let base = CreateRequest {
        model: Some("base".into()),
        files: files(&d),
        system: Some("old system".into()),
        template: Some("T".into()),
        parameters: Some(
            serde_json::json!({"top_k": 5, "temperature": 1.0})
                .as_object()
                .unwrap()
                .clone(),
        ),
        ..CreateRequest::default()
    };
    run(&f.store, &base).0.unwrap();
    let child = CreateRequest {
        model: Some("child".into()),
        from: Some("BASE".into()),
        system: Some("new system".into()),
        parameters: Some(
            serde_json::json!({"temperature": 0.2})
                .as_object()
                .unwrap()
                .clone(),
        ),
        ..CreateRequest::default()
    };
    let (r, statuses) = run(&f.store, &child);
    let name = r.unwrap();
    assert!(!statuses.contains(&"parsing GGUF".to_string()));
    let m = f.store.read_manifest(&name).unwrap().manifest;
    let model = m.layer(store::MEDIA_MODEL).unwrap();
    assert_eq!(model.digest, d);
    assert_eq!(model.from.as_deref(), Some("base:latest"));
    assert_eq!(
        layer_text(&f.store, &m, store::MEDIA_TEMPLATE).unwrap(),
        "T"
    );
    assert_eq!(
        layer_text(&f.store, &m, store::MEDIA_SYSTEM).unwrap(),
        "new system"
    );
    let params: Json =
        serde_json::from_str(&layer_text(&f.store, &m, store::MEDIA_PARAMS).unwrap()).unwrap();
    assert_eq!(params, serde_json::json!({"temperature": 0.2, "top_k": 5}));
    // A missing parent.
    let missing = CreateRequest {
        model: Some("x".into()),
        from: Some("nope".into()),
        ..CreateRequest::default()
    };
    assert_eq!(err_text(&f.store, &missing), "model 'nope' not found");
}

#[test]
fn validation_errors_have_ollamas_texts_and_write_nothing() {
    let f = fixture();
    let good = upload(&f.store, &tiny_llama(GgmlType::F32, 0, None));
    let junk = upload(&f.store, b"not a gguf at all");
    let q41 = upload(&f.store, &tiny_llama(GgmlType::F32, 3, None));
    let req = |m: &str| CreateRequest {
        model: Some(m.into()),
        ..CreateRequest::default()
    };
    let with_files = |k: &str, v: &str| CreateRequest {
        files: Some(BTreeMap::from([(k.to_string(), v.to_string())])),
        ..req("m")
    };
    assert_eq!(
        err_text(&f.store, &req("m")),
        "neither 'from' or 'files' was specified"
    );
    assert_eq!(
        err_text(
            &f.store,
            &CreateRequest {
                files: files(&good),
                ..req("../x")
            }
        ),
        "invalid model name"
    );
    for k in ["../x", "/etc/passwd", "a/../../b", "a\0b", ".."] {
        let e = err_text(&f.store, &with_files(k, &good));
        assert!(
            e == "file path must be relative" || e == "invalid file name",
            "{k:?}: {e}"
        );
    }
    for v in [
        "sha256:../../x",
        "sha256-..",
        "SHA256:00",
        &good.to_uppercase(),
    ] {
        assert_eq!(
            err_text(&f.store, &with_files("m.gguf", v)),
            "invalid digest format"
        );
    }
    assert_eq!(
        err_text(&f.store, &with_files("m.gguf", &junk)),
        "supplied file was not in GGUF format"
    );
    let two = CreateRequest {
        files: files(&good),
        adapters: Some(BTreeMap::from([
            ("a.gguf".to_string(), good.clone()),
            ("b.gguf".to_string(), good.clone()),
        ])),
        ..req("m")
    };
    assert_eq!(
        err_text(&f.store, &two),
        "only one adapter is currently supported"
    );
    let q = |src: &str, q: &str| CreateRequest {
        files: files(src),
        quantize: Some(q.into()),
        ..req("m")
    };
    assert_eq!(
        err_text(&f.store, &q(&q41, "q8_0")),
        "quantization is only supported for F16, BF16 and F32 models"
    );
    assert_eq!(
        err_text(&f.store, &q(&good, "q3_x")),
        "unsupported quantization type q3_x"
    );
    let t = CreateRequest {
        files: files(&good),
        template: Some("{{ if .System }}x".into()),
        ..req("m")
    };
    let e = err_text(&f.store, &t);
    assert!(
        e.starts_with("template error: template: :1: unexpected EOF"),
        "{e}"
    );
    assert!(f.store.list().unwrap().is_empty());
}

#[test]
fn legacy_modelfile_form() {
    let f = fixture();
    let d = upload(&f.store, &tiny_llama(GgmlType::F32, 0, None));
    let req = CreateRequest {
        name: Some("legacy".into()),
        modelfile: Some(format!("FROM @{d}\nPARAMETER num_ctx 64\nSYSTEM hello\n")),
        ..CreateRequest::default()
    };
    let name = run(&f.store, &req).0.unwrap();
    let m = f.store.read_manifest(&name).unwrap().manifest;
    assert_eq!(m.layer(store::MEDIA_MODEL).unwrap().digest, d);
    assert_eq!(
        layer_text(&f.store, &m, store::MEDIA_SYSTEM).unwrap(),
        "hello"
    );
    // A server-side path is never read: it is a (bad) model name.
    let path = CreateRequest {
        name: Some("p".into()),
        modelfile: Some("FROM /etc/passwd\n".into()),
        ..CreateRequest::default()
    };
    assert_eq!(err_text(&f.store, &path), "invalid model name");
    let bad_mf = CreateRequest {
        name: Some("p".into()),
        modelfile: Some("FROM x\nPARAMETER bogus 1\n".into()),
        ..CreateRequest::default()
    };
    assert_eq!(
        err_text(&f.store, &bad_mf),
        "(line 2): unknown parameter 'bogus'"
    );
}

#[test]
fn autodetects_a_known_template_and_keeps_unknown_jinja() {
    let f = fixture();
    let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    let d = upload(&f.store, &tiny_llama(GgmlType::F32, 0, Some(chatml)));
    let (r, statuses) = run(
        &f.store,
        &CreateRequest {
            model: Some("c".into()),
            files: files(&d),
            ..CreateRequest::default()
        },
    );
    let m = f.store.read_manifest(&r.unwrap()).unwrap().manifest;
    assert!(statuses.contains(&"using autodetected template chatml".to_string()));
    assert!(
        layer_text(&f.store, &m, store::MEDIA_TEMPLATE)
            .unwrap()
            .contains("<|im_start|>")
    );
    let params: Json =
        serde_json::from_str(&layer_text(&f.store, &m, store::MEDIA_PARAMS).unwrap()).unwrap();
    assert_eq!(
        params["stop"],
        serde_json::json!(["<|im_start|>", "<|im_end|>"])
    );

    let odd = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}";
    let d = upload(&f.store, &tiny_llama(GgmlType::F32, 0, Some(odd)));
    let (r, statuses) = run(
        &f.store,
        &CreateRequest {
            model: Some("j".into()),
            files: files(&d),
            ..CreateRequest::default()
        },
    );
    let m = f.store.read_manifest(&r.unwrap()).unwrap().manifest;
    assert!(!statuses.iter().any(|s| s.contains("autodetected")));
    assert!(m.layer(store::MEDIA_TEMPLATE).is_none());
}

fn quantize_case(src_type: GgmlType, file_type: u32, to: &str, want: &str, want_from: &str) {
    let f = fixture();
    let d = upload(&f.store, &tiny_llama(src_type, file_type, None));
    let (r, statuses) = run(
        &f.store,
        &CreateRequest {
            model: Some("q".into()),
            files: files(&d),
            quantize: Some(to.into()),
            ..CreateRequest::default()
        },
    );
    let name = r.unwrap_or_else(|e| panic!("quantize {to}: {e}"));
    assert!(
        statuses.contains(&format!("quantizing {want_from} model to {want}")),
        "{statuses:?}"
    );
    let m = f.store.read_manifest(&name).unwrap().manifest;
    let model = m.layer(store::MEDIA_MODEL).unwrap();
    assert_ne!(model.digest, d);
    let bytes = f.store.read_blob(&model.digest).unwrap();
    assert_eq!(Digest::of(&bytes).to_string(), model.digest, "blob hash");
    let g = Gguf::from_bytes(&bytes).unwrap();
    assert_eq!(g.details().quantization_level, want);
    let cfg: Config =
        serde_json::from_slice(&f.store.read_blob(&m.config.digest).unwrap()).unwrap();
    assert_eq!(cfg.file_type, want);
    // The weight matrices really changed type.
    let t = g
        .tensors()
        .iter()
        .find(|t| t.name == "blk.0.attn_q.weight")
        .unwrap();
    assert_ne!(t.ggml_type, src_type);
}

#[test]
fn quantizes_f32_to_q8_0() {
    quantize_case(GgmlType::F32, 0, "q8_0", "Q8_0", "F32");
}

#[test]
fn quantizes_f16_to_q4_k_m() {
    quantize_case(GgmlType::F16, 1, "q4_K", "Q4_K_M", "F16");
}

#[test]
fn quantizes_f32_to_q4_k_s() {
    quantize_case(GgmlType::F32, 0, "Q4_K_S", "Q4_K_S", "F32");
}

#[test]
fn import_modes() {
    use std::os::unix::fs::MetadataExt;
    let f = fixture();
    let src = f._dir.path().join("model.gguf");
    let bytes = tiny_llama(GgmlType::F32, 0, None);
    std::fs::write(&src, &bytes).unwrap();
    let want = Digest::of(&bytes);
    let src_ino = std::fs::metadata(&src).unwrap().ino();

    let copied = f.store.import_file(&src, ImportMode::Copy).unwrap();
    assert_eq!(
        (copied.digest.clone(), copied.method),
        (want.clone(), store::ImportMethod::Copied)
    );
    let p = f.store.blob_path(want.as_ref()).unwrap();
    assert_ne!(std::fs::metadata(&p).unwrap().ino(), src_ino);
    std::fs::remove_file(&p).unwrap();

    let linked = f.store.import_file(&src, ImportMode::HardLink).unwrap();
    assert_eq!(linked.method, store::ImportMethod::HardLinked);
    assert_eq!(std::fs::metadata(&p).unwrap().ino(), src_ino);
    f.store.verify_blob(want.as_ref()).unwrap();
    // Writing into the original in place changes the linked blob: verify_blob detects it.
    let mut tampered = bytes.clone();
    *tampered.last_mut().unwrap() ^= 1;
    std::fs::write(&src, &tampered).unwrap();
    assert!(matches!(
        f.store.verify_blob(want.as_ref()),
        Err(StoreError::DigestMismatch { .. })
    ));
    std::fs::write(&src, &bytes).unwrap();
    // Deleting the original leaves the blob intact.
    std::fs::remove_file(&src).unwrap();
    assert_eq!(Digest::of(&std::fs::read(&p).unwrap()), want);
    f.store.verify_blob(want.as_ref()).unwrap();
    std::fs::write(&src, &bytes).unwrap();
    std::fs::remove_file(&p).unwrap();

    let src_ino = std::fs::metadata(&src).unwrap().ino();
    let auto = f.store.import_file(&src, ImportMode::Auto).unwrap();
    assert_eq!(auto.digest, want);
    assert_ne!(auto.method, store::ImportMethod::HardLinked);
    if auto.method == store::ImportMethod::Copied {
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), src_ino);
    }
    // Writing into the original in place never changes an Auto import.
    std::fs::write(&src, b"changed").unwrap();
    assert_eq!(Digest::of(&std::fs::read(&p).unwrap()), want);
    f.store.verify_blob(want.as_ref()).unwrap();
    // No temporary files are left in blobs/.
    let names: Vec<String> = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [want.file_name()]);
}

#[test]
fn create_from_a_local_gguf_path() {
    let f = fixture();
    let src = f._dir.path().join("local.gguf");
    std::fs::write(&src, tiny_llama(GgmlType::F32, 0, None)).unwrap();
    let req = CreateRequest {
        model: Some("local".into()),
        system: Some("s".into()),
        ..CreateRequest::default()
    };
    let name = create_from_gguf_path(&f.store, &src, ImportMode::Copy, &req, &mut |_| {}).unwrap();
    assert!(
        f.store
            .read_manifest(&name)
            .unwrap()
            .manifest
            .layer(store::MEDIA_SYSTEM)
            .is_some()
    );
    let bad = f._dir.path().join("bad.gguf");
    std::fs::write(&bad, b"GGUF").unwrap();
    let e = create_from_gguf_path(&f.store, &bad, ImportMode::Auto, &req, &mut |_| {});
    assert!(e.is_err());
    assert_eq!(f.store.list().unwrap().len(), 1);
}

#[test]
fn projector_and_adapter_layers() {
    let f = fixture();
    let s = |x: &str| Value::String(x.into());
    let model = upload(&f.store, &tiny_llama(GgmlType::F32, 0, None));
    let proj = upload(&f.store, &TinyProjector::gemma3(256).to_bytes());
    let lora = upload(
        &f.store,
        &GgufWriter::new()
            .kv("general.architecture", s("llama"))
            .kv("general.type", s("adapter"))
            .kv("adapter.type", s("lora"))
            .tensor_filled("blk.0.attn_q.weight.lora_a", &[16, 2], GgmlType::F32)
            .to_bytes(),
    );
    let req = CreateRequest {
        model: Some("vl".into()),
        files: Some(BTreeMap::from([
            ("a-model.gguf".to_string(), model.clone()),
            ("mmproj.gguf".to_string(), proj.clone()),
        ])),
        adapters: Some(BTreeMap::from([("lora.gguf".to_string(), lora.clone())])),
        ..CreateRequest::default()
    };
    let name = run(&f.store, &req).0.unwrap();
    let m = f.store.read_manifest(&name).unwrap().manifest;
    let got: Vec<(&str, &str)> = m
        .layers
        .iter()
        .map(|l| (l.media_type.as_str(), l.digest.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (store::MEDIA_MODEL, model.as_str()),
            (store::MEDIA_PROJECTOR, proj.as_str()),
            (store::MEDIA_ADAPTER, lora.as_str())
        ]
    );
    let show = crate::models::show(&f.store, &name, false, true).unwrap();
    assert!(show.capabilities.contains(&"vision".to_string()));
    let mf = show.modelfile.as_str();
    assert!(mf.contains(&format!(
        "ADAPTER {}",
        f.store.blob_path(&lora).unwrap().display()
    )));
    // A model GGUF is not an adapter.
    let wrong = CreateRequest {
        model: Some("x".into()),
        files: files(&model),
        adapters: Some(BTreeMap::from([("l.gguf".to_string(), model.clone())])),
        ..CreateRequest::default()
    };
    assert_eq!(
        err_text(&f.store, &wrong),
        "supplied adapter file is not a LoRA adapter GGUF"
    );
}

#[test]
fn local_modelfile_imports_files_and_keeps_names() {
    let f = fixture();
    let dir = f._dir.path().join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = tiny_llama(GgmlType::F32, 0, None);
    std::fs::write(dir.join("m.gguf"), &bytes).unwrap();
    let mf = Modelfile::parse("FROM ./m.gguf\nSYSTEM hi\nPARAMETER top_k 3\n")
        .unwrap()
        .modelfile;
    let req =
        request_from_local_modelfile(&f.store, "loc", &mf, &dir, ImportMode::Auto, None).unwrap();
    let d = Digest::of(&bytes).to_string();
    assert_eq!(req.files.as_ref().unwrap().values().next().unwrap(), &d);
    assert!(f.store.has_blob(&d).unwrap());
    let name = run(&f.store, &req).0.unwrap();
    let m = f.store.read_manifest(&name).unwrap().manifest;
    assert_eq!(m.layer(store::MEDIA_MODEL).unwrap().digest, d);
    // A FROM that is not a local file is a model name.
    let mf = Modelfile::parse("FROM loc\nSYSTEM child\n")
        .unwrap()
        .modelfile;
    let req =
        request_from_local_modelfile(&f.store, "c", &mf, &dir, ImportMode::Auto, None).unwrap();
    assert_eq!(req.from.as_deref(), Some("loc"));
    run(&f.store, &req).0.unwrap();
    // A local file that is not GGUF, and a directory, are refused.
    std::fs::write(dir.join("bad.gguf"), b"nope").unwrap();
    let mf = Modelfile::parse("FROM bad.gguf\n").unwrap().modelfile;
    let e = request_from_local_modelfile(&f.store, "b", &mf, &dir, ImportMode::Auto, None);
    assert_eq!(
        e.unwrap_err().to_string(),
        "supplied file was not in GGUF format"
    );
    let mf = Modelfile::parse("FROM .\n").unwrap().modelfile;
    assert!(
        request_from_local_modelfile(&f.store, "b", &mf, &dir, ImportMode::Auto, None).is_err()
    );
    let mf = Modelfile::parse("FROM loc\nADAPTER ./missing.gguf\n")
        .unwrap()
        .modelfile;
    assert!(
        request_from_local_modelfile(&f.store, "b", &mf, &dir, ImportMode::Auto, None).is_err()
    );
}

/// Metadata that llama.cpp's quantizer asserts on (aborting the process) is refused first;
/// metadata it reports on gives an error; nothing is published, no path is revealed.
#[test]
fn quantize_refuses_metadata_that_would_abort_llama_cpp() {
    let full = tiny_llama(GgmlType::F32, 0, None);
    let g = Gguf::from_bytes(&full).unwrap();
    let variants: Vec<(&str, Option<Value>, bool)> = vec![
        ("llama.block_count", Some(Value::U32(1000)), true),
        ("llama.block_count", Some(Value::U32(0)), true),
        ("llama.block_count", None, true),
        ("llama.embedding_length", Some(Value::U32(7)), false),
        (
            "general.architecture",
            Some(Value::String("nonexistent".into())),
            true,
        ),
        ("llama.expert_count", Some(Value::U32(u32::MAX)), true),
        ("llama.expert_used_count", Some(Value::U32(2)), true),
        ("llama.nextn_predict_layers", Some(Value::U32(2)), true),
        ("llama.expert_group_count", Some(Value::U32(1)), true),
    ];
    for (key, val, client) in variants {
        let f = fixture();
        let mut w = GgufWriter::new();
        for (k, v) in g.metadata() {
            match (k == key, &val) {
                (true, Some(val)) => w = w.kv(k, val.clone()),
                (true, None) => {}
                (false, _) => w = w.kv(k, v.clone()),
            }
        }
        if g.get(key).is_none()
            && let Some(val) = &val
        {
            w = w.kv(key, val.clone());
        }
        for t in g.tensors() {
            let start = (g.data_offset() + t.offset) as usize;
            let data = full[start..start + t.size as usize].to_vec();
            w = w.tensor(&t.name, &t.dims, t.ggml_type, data);
        }
        let d = upload(&f.store, &w.to_bytes());
        let req = CreateRequest {
            model: Some("q".into()),
            files: files(&d),
            quantize: Some("q4_K_M".into()),
            ..CreateRequest::default()
        };
        let e = run(&f.store, &req).0.expect_err(key);
        assert_eq!(e.is_client_error(), client, "{key}: {e}");
        assert!(
            !e.to_string().contains(f._dir.path().to_str().unwrap()),
            "{e}"
        );
        assert!(f.store.list().unwrap().is_empty());
    }
}

fn vl_request(name: &str, model: &str, proj: &str) -> CreateRequest {
    CreateRequest {
        model: Some(name.into()),
        files: Some(BTreeMap::from([
            ("model.gguf".to_string(), model.to_string()),
            ("mmproj.gguf".to_string(), proj.to_string()),
        ])),
        ..CreateRequest::default()
    }
}

#[test]
fn invalid_projectors_are_refused_before_anything_is_written() {
    let f = fixture();
    let model = upload(&f.store, &tiny_llama(GgmlType::F32, 0, None));
    let cases: Vec<(TinyProjector, &str)> = vec![
        (
            TinyProjector::gemma3(256).remove_tensor("v.blk.1.attn_out.weight"),
            "tensor \"v.blk.1.attn_out.weight\" is required",
        ),
        (
            TinyProjector::gemma3(256).set_tensor("v.blk.0.attn_q.weight", &[32, 16]),
            "tensor \"v.blk.0.attn_q.weight\" has shape [32, 16], expected [32, 32]",
        ),
        (
            TinyProjector::gemma3(256).remove_kv("clip.vision.patch_size"),
            "key \"clip.vision.patch_size\" is required",
        ),
        (
            TinyProjector::gemma3(256).set_tensor("v.blk.2.attn_out.weight", &[32, 32]),
            "beyond clip.vision.block_count 2",
        ),
        (
            // The projection must produce the text model's embedding length.
            TinyProjector::gemma3(128),
            "projector output embedding size 128 does not match the model's embedding length 256",
        ),
    ];
    for (p, want) in cases {
        let proj = upload(&f.store, &p.to_bytes());
        let (r, statuses) = run(&f.store, &vl_request("vl", &model, &proj));
        let e = r.expect_err("invalid projector accepted");
        assert!(e.is_client_error(), "{e}");
        assert!(e.to_string().contains(want), "{e} lacks {want}");
        assert!(statuses.is_empty(), "{statuses:?}");
    }
    assert!(f.store.list().unwrap().is_empty());
}

#[test]
fn legacy_llava_projector_gets_its_type_added() {
    let f = fixture();
    let model = upload(&f.store, &tiny_llama(GgmlType::F32, 0, None));
    let legacy = TinyProjector::gemma3(256)
        .remove_kv("clip.projector_type")
        .remove_tensor("mm.input_projection.weight")
        .remove_tensor("mm.soft_emb_norm.weight")
        .set_tensor("mm.0.weight", &[32, 64])
        .set_tensor("mm.2.weight", &[64, 256]);
    let bytes = legacy.to_bytes();
    let proj = upload(&f.store, &bytes);
    let (r, statuses) = run(&f.store, &vl_request("llava", &model, &proj));
    let name = r.unwrap();
    assert!(statuses.contains(&"updating GGUF projector metadata".to_string()));
    let m = f.store.read_manifest(&name).unwrap().manifest;
    let l = m.layer(store::MEDIA_PROJECTOR).unwrap();
    assert_ne!(l.digest, proj);
    let old = Gguf::from_bytes(&bytes).unwrap();
    let new_bytes = f.store.read_blob(&l.digest).unwrap();
    assert_eq!(l.size, new_bytes.len() as u64);
    let new = Gguf::from_bytes(&new_bytes).unwrap();
    assert_eq!(
        new.get("clip.projector_type"),
        Some(&Value::String("mlp".into()))
    );
    assert!(!new.validate_projector().unwrap().needs_default_type);
    assert_eq!(new.metadata().len(), old.metadata().len() + 1);
    // Tensor data is copied unchanged.
    for (a, b) in old.tensors().iter().zip(new.tensors()) {
        assert_eq!((&a.name, &a.dims, a.offset), (&b.name, &b.dims, b.offset));
        let at = |g: &Gguf, raw: &[u8], t: &crate::gguf::TensorInfo| {
            let s = (g.data_offset() + t.offset) as usize;
            raw[s..s + t.size as usize].to_vec()
        };
        assert_eq!(at(&old, &bytes, a), at(&new, &new_bytes, b));
    }
}

#[test]
fn from_a_model_keeps_or_adds_projectors() {
    let f = fixture();
    let model = upload(&f.store, &tiny_llama(GgmlType::F32, 0, None));
    let proj_bytes = TinyProjector::gemma3(256).to_bytes();
    let proj = upload(&f.store, &proj_bytes);
    run(&f.store, &vl_request("vl", &model, &proj)).0.unwrap();

    // FROM a vision model keeps its projector.
    let child = CreateRequest {
        model: Some("child".into()),
        from: Some("vl".into()),
        system: Some("hi".into()),
        ..CreateRequest::default()
    };
    let name = run(&f.store, &child).0.unwrap();
    let sm = f.store.read_manifest(&name).unwrap();
    assert_eq!(
        sm.manifest.layer(store::MEDIA_PROJECTOR).unwrap().digest,
        proj
    );

    // FROM a text model plus a projector file adds it; a second model file is refused.
    run(
        &f.store,
        &CreateRequest {
            model: Some("text".into()),
            files: files(&model),
            ..CreateRequest::default()
        },
    )
    .0
    .unwrap();
    let mf = "FROM text\nFROM @".to_string() + &proj;
    let req = CreateRequest {
        model: Some("text-vl".into()),
        modelfile: Some(mf),
        ..CreateRequest::default()
    };
    let name = run(&f.store, &req).0.unwrap();
    let sm = f.store.read_manifest(&name).unwrap();
    let kinds: Vec<&str> = sm
        .manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    assert_eq!(kinds[..2], [store::MEDIA_MODEL, store::MEDIA_PROJECTOR]);
    let show = crate::models::show(&f.store, &name, false, true).unwrap();
    assert!(show.capabilities.contains(&"vision".to_string()));
    let info = show.projector_info.expect("projector_info");
    assert_eq!(info["clip.projector_type"], "gemma3");
    assert_eq!(info["general.architecture"], "clip");
    assert_eq!(
        info["clip.vision.image_mean"],
        serde_json::json!([0.5, 0.5, 0.5])
    );
    // The modelfile names both blobs in FROM lines and parses back.
    let parsed = Modelfile::parse(&show.modelfile).unwrap().modelfile;
    assert_eq!(
        parsed.from,
        [
            f.store.blob_path(&model).unwrap().display().to_string(),
            f.store.blob_path(&proj).unwrap().display().to_string()
        ]
    );
    // The list size counts the projector layer.
    let listed = crate::models::list(&f.store).unwrap();
    let e = listed
        .models
        .iter()
        .find(|m| m.name == "text-vl:latest")
        .unwrap();
    assert_eq!(e.size, sm.manifest.total_size());
    assert!(e.size > proj_bytes.len() as u64 + f.store.blob_size(&model).unwrap());

    let twice = CreateRequest {
        model: Some("bad".into()),
        modelfile: Some(format!("FROM text\nFROM @{model}")),
        ..CreateRequest::default()
    };
    assert_eq!(
        err_text(&f.store, &twice),
        "FROM must be either a model name or uploaded files"
    );
}
