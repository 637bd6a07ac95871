//! Ollama-layout blobs end to end, on the two real test models: a fixture writer turns the
//! llama.cpp-converted file into the layout Ollama's converter writes (spec §9), a store holds
//! only that blob (manifest and blobs, as Ollama lays them out), and `ollamars serve` must
//! answer exactly as it does for the original file.

use ollamars::compat::View;
use ollamars::compat::fixture::{self, Gemma3};
use ollamars::gguf::{GgmlType, Gguf, Value};
use serde_json::{Value as Json, json};
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod common;

use common::Server;

/// Tests that run models take turns (ggml's threads spin on 2 cores).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn sha256_file(p: &Path) -> String {
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(p).unwrap(), &mut h).unwrap();
    format!("{:x}", h.finalize())
}

/// Writes the Ollama layout of `src` made by `f` to `dest`.
fn ollama_layout(src: &Path, dest: &Path, f: impl FnOnce(&mut View)) {
    let mut v = View::new(&Gguf::open(src).unwrap());
    f(&mut v);
    fixture::write(&v, src, dest).unwrap();
}

/// Puts `gguf` into `store` as Ollama does for `library/<model>:<tag>`: the blob under its
/// digest, a config blob, a manifest (and a `{{ .Prompt }}` template layer, so that requests
/// carry token ids in `context`). Returns the model blob's digest.
fn ollama_store(store: &Path, model: &str, tag: &str, gguf: &Path) -> String {
    let blobs = store.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, u64) {
        let d = format!("{:x}", sha2::Sha256::digest(bytes));
        std::fs::write(blobs.join(format!("sha256-{d}")), bytes).unwrap();
        (d, bytes.len() as u64)
    };
    let digest = sha256_file(gguf);
    let size = std::fs::metadata(gguf).unwrap().len();
    std::fs::copy(gguf, blobs.join(format!("sha256-{digest}"))).unwrap();
    let (tpl, tpl_size) = put(b"{{ .Prompt }}");
    let config = json!({
        "model_format": "gguf",
        "model_family": "x",
        "model_families": ["x"],
        "model_type": "small",
        "file_type": "Q4_K_M",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}"), format!("sha256:{tpl}")]},
    });
    let (cfg, cfg_size) = put(serde_json::to_string(&config).unwrap().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": format!("sha256:{cfg}"), "size": cfg_size},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{digest}"), "size": size},
            {"mediaType": "application/vnd.ollama.image.template", "digest": format!("sha256:{tpl}"), "size": tpl_size},
        ],
    });
    let dir = store
        .join("manifests")
        .join(ollamars::name::DEFAULT_HOST)
        .join("library")
        .join(model);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(tag), serde_json::to_vec(&manifest).unwrap()).unwrap();
    format!("sha256:{digest}")
}

impl Server {
    fn generate(&self, model: &str, prompt: &str) -> Json {
        let (status, v) = self.post(
            "/api/generate",
            &json!({
                "model": model,
                "prompt": prompt,
                "stream": false,
                "options": {"temperature": 0, "num_predict": 16, "seed": 1},
            }),
        );
        assert_eq!(status, 200, "{model}: {v}");
        v
    }

    fn models(&self) -> PathBuf {
        self.dir.join("models")
    }

    fn blob_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.models().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// One model through the server, from the original file (created) and from its Ollama
/// layout (placed in the store as Ollama would have it): identical text and token ids.
fn same_answers(server: &Server, original: &Path, layout: &Path, name: &str, prompts: &[&str]) {
    server.create(
        &format!("{name}-native"),
        &format!("FROM {}\nTEMPLATE {{{{ .Prompt }}}}\n", original.display()),
    );
    ollama_store(&server.models(), name, "latest", layout);
    for p in prompts {
        let a = server.generate(&format!("{name}-native"), p);
        let b = server.generate(name, p);
        assert!(!a["response"].as_str().unwrap().is_empty(), "{a}");
        assert_eq!(a["response"], b["response"], "{name}: {p:?}");
        assert_eq!(a["context"], b["context"], "{name}: token ids of {p:?}");
    }
    // The llama.cpp-layout original matches no marker: it is loaded as it is, nothing derived,
    // its blob byte for byte the file it was created from.
    let digest = sha256_file(original);
    let blob = server
        .models()
        .join("blobs")
        .join(format!("sha256-{digest}"));
    assert_eq!(sha256_file(&blob), digest);
    assert!(
        server
            .blob_names()
            .iter()
            .all(|b| !(b.contains(&digest) && b.contains("-compat-"))),
        "{:?}",
        server.blob_names()
    );
}

#[test]
fn gemma3_ollama_layouts_answer_as_the_original() {
    let _s = serial();
    let original = testkit::model_path(testkit::GEMMA3);
    let server = Server::start("compat-gemma3", &[]);
    let prompts = ["The capital of France is"];
    for (which, name) in [
        (Gemma3::Current, "g3-current"),
        (Gemma3::NoEpsilon, "g3-noeps"),
        (Gemma3::ExtraVocab, "g3-vocab"),
        (Gemma3::Monolithic, "g3-mono"),
    ] {
        let layout = server.dir.join(format!("{name}.gguf"));
        ollama_layout(&original, &layout, |v| fixture::gemma3(v, which));
        let t0 = std::time::Instant::now();
        same_answers(&server, &original, &layout, name, &prompts);
        eprintln!("{name}: first answers in {:?}", t0.elapsed());
        let blobs = server.blob_names();
        let digest = sha256_file(&layout);
        let rec_name = format!("sha256-{digest}-compat-v{}.json", ollamars::compat::VERSION);
        assert!(blobs.contains(&rec_name), "{blobs:?}");
        let rec: Json = serde_json::from_slice(
            &std::fs::read(server.models().join("blobs").join(&rec_name)).unwrap(),
        )
        .unwrap();
        eprintln!("{name}: {rec}");
        assert_eq!(rec["handlers"], json!(["gemma3"]));
        // Everything but the monolithic blob is a header-only rewrite; that one drops tensors.
        assert_eq!(
            rec["text"]["header_only"],
            json!(which != Gemma3::Monolithic),
            "{rec}"
        );
        assert_eq!(
            rec["projector"].is_object(),
            which == Gemma3::Monolithic,
            "{rec}"
        );
        let (status, show) = server.post("/api/show", &json!({"model": name, "verbose": true}));
        assert_eq!(status, 200);
        assert!(
            show["compat"]["summary"]
                .as_str()
                .unwrap()
                .starts_with("gemma3"),
            "{}",
            show["compat"]
        );
        assert!(
            show["compat"]["text_changes"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
        );
        let vision = show["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("vision"));
        assert_eq!(
            vision,
            which == Gemma3::Monolithic,
            "{}",
            show["capabilities"]
        );
    }
    // `create` from the Ollama-layout file itself (a user's own GGUF) works the same way.
    let mono = server.dir.join("g3-mono.gguf");
    server.create(
        "g3-created",
        &format!("FROM {}\nTEMPLATE {{{{ .Prompt }}}}\n", mono.display()),
    );
    let a = server.generate("g3-mono-native", prompts[0]);
    let b = server.generate("g3-created", prompts[0]);
    assert_eq!(a["context"], b["context"]);
    // Deleting the model removes its derived files with its blob.
    let digest = sha256_file(&server.dir.join("g3-vocab.gguf"));
    let out = server.command(&["rm", "g3-vocab"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<String> = server
        .blob_names()
        .into_iter()
        .filter(|b| b.contains(&digest))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn smollm2_ollama_layout_answers_as_the_original_contractions_included() {
    let _s = serial();
    let original = testkit::model_path(testkit::SMOLLM2);
    let server = Server::start("compat-smollm2", &[]);
    let layout = server.dir.join("smollm2-ollama.gguf");
    ollama_layout(&original, &layout, fixture::llama);
    // Without the repair the layout tokenizes differently: the fixture is real (checked in
    // the kill-switch test: `'t` and `'s` are one token each under `smollm`, two under
    // `default`; digits are single tokens either way in this vocabulary).
    let g = Gguf::open(&layout).unwrap();
    assert_eq!(
        g.get("tokenizer.ggml.pre"),
        Some(&Value::String("default".into()))
    );
    same_answers(
        &server,
        &original,
        &layout,
        "smol",
        &[
            "It's true that we don't know what",
            "In 2024 there were 366 days, and in 2025 there were",
        ],
    );
    // A metadata-only fix llama.cpp takes as a load-time override: no derived GGUF, only
    // the record saying so.
    let digest = sha256_file(&layout);
    let derived: Vec<String> = server
        .blob_names()
        .into_iter()
        .filter(|b| b.contains(&digest) && b.contains("-compat-"))
        .collect();
    assert_eq!(
        derived,
        [format!(
            "sha256-{digest}-compat-v{}.json",
            ollamars::compat::VERSION
        )]
    );
    let rec: Json = serde_json::from_slice(
        &std::fs::read(server.models().join("blobs").join(&derived[0])).unwrap(),
    )
    .unwrap();
    assert_eq!(
        rec["overrides"],
        json!([["tokenizer.ggml.pre", {"str": "smollm"}]]),
        "{rec}"
    );
    assert!(rec["text"].is_null(), "{rec}");
    let (_, show) = server.post("/api/show", &json!({"model": "smol"}));
    assert_eq!(
        show["compat"]["handlers"],
        json!(["smollm-pretokenizer"]),
        "{}",
        show["compat"]
    );
}

#[test]
fn the_kill_switch_loads_blobs_as_they_are() {
    let _s = serial();
    let original = testkit::model_path(testkit::SMOLLM2);
    let server = Server::start("compat-off", &[("OLLAMARS_COMPAT", "0")]);
    let layout = server.dir.join("smollm2-ollama.gguf");
    ollama_layout(&original, &layout, fixture::llama);
    server.create(
        "smol-native",
        &format!("FROM {}\nTEMPLATE {{{{ .Prompt }}}}\n", original.display()),
    );
    ollama_store(&server.models(), "smol", "latest", &layout);
    let p = "It's true that we don't know";
    let a = server.generate("smol-native", p);
    let b = server.generate("smol", p);
    // Pre-tokenizer `default` splits `'s` and `'t` in two: other token ids, nothing derived.
    assert_ne!(a["context"], b["context"]);
    assert!(
        server.blob_names().iter().all(|b| !b.contains("-compat-")),
        "{:?}",
        server.blob_names()
    );
    let (_, show) = server.post("/api/show", &json!({"model": "smol"}));
    assert!(show.get("compat").is_none(), "{show}");
}

#[test]
fn a_blob_that_claims_a_layout_it_does_not_have_is_refused_and_the_server_lives() {
    let _s = serial();
    let original = testkit::model_path(testkit::GEMMA3);
    let server = Server::start("compat-bad", &[]);
    let layout = server.dir.join("bad.gguf");
    // Ollama's gemma3 marker, a vision tower whose patch embedding collides with the name the
    // translation renames it to.
    ollama_layout(&original, &layout, |v| {
        fixture::gemma3(v, Gemma3::Monolithic);
        let pe = v.tensor("v.patch_embedding.weight").unwrap().clone();
        v.add_tensor(ollamars::compat::Tensor {
            name: "v.patch_embd.weight".into(),
            ..pe
        });
    });
    ollama_store(&server.models(), "bad", "latest", &layout);
    let before = server.blob_names();
    let (status, v) = server.post(
        "/api/generate",
        &json!({"model": "bad", "prompt": "hi", "stream": false}),
    );
    assert_eq!(status, 500, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("v.patch_embd.weight") && e.contains("does not match its layout"),
        "{e}"
    );
    assert_eq!(
        server.blob_names(),
        before,
        "nothing derived is left behind"
    );
    let (status, _) = server.post("/api/show", &json!({"model": "bad"}));
    assert_eq!(status, 200, "the server is alive");
    let _ = GgmlType::F16;
}

/// Bytes of tensor `name` of the GGUF `g` read from `bytes`.
fn tensor_of<'a>(g: &Gguf, bytes: &'a [u8], name: &str) -> &'a [u8] {
    let t = g.tensors().iter().find(|t| t.name == name).unwrap();
    let at = (g.data_offset() + t.offset) as usize;
    &bytes[at..at + t.size as usize]
}

fn f32_to_f16(b: &[u8]) -> Vec<u8> {
    b.chunks_exact(4)
        .flat_map(|c| {
            half::f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes()
        })
        .collect()
}

/// The project's tiny gemma3 vision model as a native pair (text GGUF, mmproj whose two
/// embeddings hold F16-exact values, as llama.cpp's converter would write them from F16
/// weights) and as Ollama's monolithic blob of the same weights (vision tower and projector
/// inside the text blob, Ollama's tensor names, `gemma3.vision.*` keys, F16 embeddings).
fn gemma3_vision_pair(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use ollamars::compat::{Data, Tensor};
    let vm = testkit::mtmd::vision_model();
    let mbytes = std::fs::read(&vm.mmproj).unwrap();
    let mg = Gguf::from_bytes(&mbytes).unwrap();
    let f16_exact = ["v.patch_embd.weight", "v.position_embd.weight"];
    // The native mmproj, embeddings rounded through F16.
    let mut native = View::new(&mg);
    for n in f16_exact {
        let t = native.tensor(n).unwrap().clone();
        let widened = ollamars::compat::f32_bytes(&ollamars::compat::to_f32(
            GgmlType::F16,
            &f32_to_f16(tensor_of(&mg, &mbytes, n)),
        ));
        native.rewrite(
            n,
            t.dims,
            GgmlType::F32,
            Data::Bytes(widened),
            "round through F16",
        );
    }
    let mmproj = dir.join("mmproj-native.gguf");
    fixture::write(&native, &vm.mmproj, &mmproj).unwrap();
    // The monolithic Ollama blob.
    let tg = Gguf::open(&vm.model).unwrap();
    let mut mono = View::new(&tg);
    let u = |k: &str| mg.get(&format!("clip.vision.{k}")).cloned().unwrap();
    for k in [
        "block_count",
        "embedding_length",
        "feed_forward_length",
        "image_size",
        "patch_size",
        "attention.head_count",
        "attention.layer_norm_epsilon",
    ] {
        mono.set(&format!("gemma3.vision.{k}"), u(k));
    }
    let side = u("image_size").as_u64().unwrap() / u("patch_size").as_u64().unwrap();
    let merge = u("projector.scale_factor").as_u64().unwrap();
    mono.set(
        "gemma3.mm.tokens_per_image",
        Value::U32(((side / merge) * (side / merge)) as u32),
    );
    let ollama_name = |n: &str| -> String {
        let mut s = n.to_string();
        for (native, ollama) in [
            ("v.patch_embd", "v.patch_embedding"),
            ("v.position_embd", "v.position_embedding"),
            ("v.post_ln", "v.post_layernorm"),
            (".ln1", ".layer_norm1"),
            (".ln2", ".layer_norm2"),
            (".attn_out.", ".attn_output."),
            (".ffn_down", ".mlp.fc1"),
            (".ffn_up", ".mlp.fc2"),
            ("mm.input_projection", "mm.mm_input_projection"),
            ("mm.soft_emb_norm", "mm.mm_soft_emb_norm"),
        ] {
            s = s.replacen(native, ollama, 1);
        }
        s
    };
    for t in mg.tensors() {
        let bytes = tensor_of(&mg, &mbytes, &t.name);
        let (ty, data) = if f16_exact.contains(&t.name.as_str()) {
            (GgmlType::F16, f32_to_f16(bytes))
        } else {
            (t.ggml_type, bytes.to_vec())
        };
        mono.add_tensor(Tensor {
            name: ollama_name(&t.name),
            dims: t.dims.clone(),
            ggml_type: ty,
            data: Data::Bytes(data),
        });
    }
    let blob = dir.join("gemma3-vision-ollama.gguf");
    fixture::write(&mono, &vm.model, &blob).unwrap();
    (vm.model.clone(), mmproj, blob)
}

fn png_b64(seed: u32) -> String {
    use base64::Engine as _;
    let img = image::RgbImage::from_fn(96, 80, |x, y| {
        let v =
            |k: u32| ((x * (7 + k + seed) + y * (13 + 2 * k) + seed * 31 * (k + 1)) % 256) as u8;
        image::Rgb([v(0), v(1), v(2)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    base64::engine::general_purpose::STANDARD.encode(out.into_inner())
}

#[test]
fn a_monolithic_vision_blob_gives_the_native_projector_and_the_same_answers() {
    let _s = serial();
    let server = Server::start("compat-vision", &[]);
    let (text, mmproj, blob) = gemma3_vision_pair(&server.dir);
    // The derived projector is the native one: same tensors, byte for byte, and its keys.
    let plan = ollamars::compat::plan(&Gguf::open(&blob).unwrap())
        .unwrap()
        .unwrap();
    let (h, clip) = plan.clip.as_ref().unwrap();
    assert_eq!(*h, "gemma3");
    let derived = server.dir.join("mmproj-derived.gguf");
    fixture::write(clip, &blob, &derived).unwrap();
    let (dg, ng) = (Gguf::open(&derived).unwrap(), Gguf::open(&mmproj).unwrap());
    let (db, nb) = (
        std::fs::read(&derived).unwrap(),
        std::fs::read(&mmproj).unwrap(),
    );
    let mut names: Vec<&str> = ng.tensors().iter().map(|t| t.name.as_str()).collect();
    let mut dnames: Vec<&str> = dg.tensors().iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    dnames.sort_unstable();
    assert_eq!(dnames, names);
    for n in &names {
        assert_eq!(tensor_of(&dg, &db, n), tensor_of(&ng, &nb, n), "{n}");
    }
    for (k, v) in ng.metadata().iter().filter(|(k, _)| k.starts_with("clip.")) {
        assert_eq!(dg.get(k), Some(v), "{k}");
    }
    // Served: the native pair (two layers) and the Ollama blob alone answer alike with an image.
    server.create(
        "vision-native",
        &format!(
            "FROM {}\nFROM {}\nTEMPLATE {{{{ .Prompt }}}}\n",
            text.display(),
            mmproj.display()
        ),
    );
    ollama_store(&server.models(), "vision-mono", "latest", &blob);
    let (_, show) = server.post("/api/show", &json!({"model": "vision-mono"}));
    assert!(
        show["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("vision")),
        "{show}"
    );
    let ask = |m: &str| {
        let (status, v) = server.post(
            "/api/generate",
            &json!({
                "model": m, "prompt": "[img-0] what is this?", "images": [png_b64(3)],
                "stream": false, "options": {"temperature": 0, "num_predict": 16, "seed": 1},
            }),
        );
        assert_eq!(status, 200, "{m}: {v}");
        v
    };
    let a = ask("vision-native");
    let b = ask("vision-mono");
    assert_eq!(a["response"], b["response"]);
    assert_eq!(a["context"], b["context"]);
    assert_eq!(
        a["prompt_eval_count"], b["prompt_eval_count"],
        "image tokens counted alike"
    );
}
