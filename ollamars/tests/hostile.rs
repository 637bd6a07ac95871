//! Hostile input over HTTP: malformed GGUFs given to /api/create, and digest or name traversal
//! on every endpoint. Each gets a 4xx, nothing is written outside the store, no model appears,
//! and the server stays up.

mod common;

use common::{TestServer, error_of, files_under, small_gguf};
use ollamars::gguf::{GgmlType, GgufWriter, Value};
use reqwest::Method;
use serde_json::json;

/// Uploads `bytes` and creates a model from them; returns the status and error text.
async fn create_from(s: &TestServer, bytes: Vec<u8>) -> (u16, String) {
    let (d, st) = s.upload(bytes).await;
    assert!(st == 201 || st == 200, "upload: {st}");
    let (st, body) = s
        .post(
            "/api/create",
            json!({"model": "hostile", "files": {"m.gguf": d}, "stream": true}),
        )
        .await;
    (st, error_of(&body))
}

async fn expect_rejected(s: &TestServer, what: &str, bytes: Vec<u8>) {
    let (st, err) = create_from(s, bytes).await;
    assert_eq!(st, 400, "{what}: {err}");
}

async fn assert_clean(s: &TestServer) {
    assert!(s.alive().await, "server down");
    let tags: serde_json::Value = s
        .client
        .get(s.url("/api/tags"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags, json!({"models": []}));
    // Outside the store root nothing at all exists; inside, only well-named blobs.
    let all = files_under(s.dir.path());
    for p in &all {
        let rel = p
            .strip_prefix("store/models/blobs")
            .unwrap_or_else(|_| panic!("file outside the store's blobs: {}", p.display()));
        let name = rel.to_str().unwrap();
        assert!(
            ollamars::store::Digest::parse(name).is_ok(),
            "junk file {name}"
        );
    }
}

#[tokio::test]
async fn truncated_ggufs_are_rejected() {
    let s = TestServer::start().await;
    // Metadata and tensor infos fill most of the first 4 KiB; tensor data follows.
    let tokens: Vec<String> = (0..300).map(|i| format!("tok{i}")).collect();
    let full = GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(ollamars::gguf::Array::String(tokens)),
        )
        .kv("llama.context_length", Value::U32(64))
        .tensor_filled("token_embd.weight", &[32, 8], GgmlType::F32)
        .tensor_filled("output_norm.weight", &[32], GgmlType::F32)
        .to_bytes();
    assert!(full.len() > 4096);
    assert!(ollamars::gguf::Gguf::from_bytes(&full).is_ok());
    // Every offset of the first 4 KiB.
    for cut in 0..4096 {
        let (st, err) = create_from(&s, full[..cut].to_vec()).await;
        assert_eq!(st, 400, "cut at {cut}: {err}");
        if cut < 4 {
            assert_eq!(err, "supplied file was not in GGUF format");
        }
    }
    assert_clean(&s).await;
}

#[tokio::test]
async fn malformed_ggufs_are_rejected() {
    let s = TestServer::start().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("just the magic", b"GGUF".to_vec()),
        (
            "huge tensor count",
            GgufWriter::new().counts_raw(u64::MAX, 0).to_bytes(),
        ),
        (
            "huge kv count",
            GgufWriter::new().counts_raw(0, 1 << 40).to_bytes(),
        ),
        (
            "huge string length",
            GgufWriter::new()
                .kv_raw("k", 8, u64::MAX.to_le_bytes().to_vec())
                .to_bytes(),
        ),
        (
            "huge array length",
            GgufWriter::new()
                .kv_raw(
                    "k",
                    9,
                    [
                        4u32.to_le_bytes().to_vec(),
                        (1u64 << 40).to_le_bytes().to_vec(),
                    ]
                    .concat(),
                )
                .to_bytes(),
        ),
        (
            "unknown value type",
            GgufWriter::new().kv_raw("k", 99, vec![0; 8]).to_bytes(),
        ),
        (
            "bad bool",
            GgufWriter::new().kv_raw("k", 7, vec![2]).to_bytes(),
        ),
        (
            "overflowing dims",
            GgufWriter::new()
                .tensor_raw("t", &[1 << 40, 1 << 40, 1 << 40], 0, 0, vec![0; 64])
                .to_bytes(),
        ),
        (
            "zero dim",
            GgufWriter::new()
                .tensor_raw("t", &[0, 4], 0, 0, vec![0; 64])
                .to_bytes(),
        ),
        (
            "too many dims",
            GgufWriter::new()
                .tensor_raw("t", &[1, 1, 1, 1, 1], 0, 0, vec![0; 64])
                .to_bytes(),
        ),
        (
            "unknown tensor type",
            GgufWriter::new()
                .tensor_raw("t", &[16], 9999, 0, vec![0; 64])
                .to_bytes(),
        ),
        (
            "tensor data past the end (Bleeding Llama)",
            GgufWriter::new()
                .tensor_raw("t", &[16], 0, 0, vec![0; 63])
                .to_bytes(),
        ),
        (
            "tensor offset past the end",
            GgufWriter::new()
                .tensor_raw("t", &[16], 0, 1 << 20, vec![0; 64])
                .to_bytes(),
        ),
        (
            "misaligned offset",
            GgufWriter::new()
                .tensor_raw("t", &[16], 0, 3, vec![0; 96])
                .to_bytes(),
        ),
        (
            "bad alignment",
            GgufWriter::new()
                .kv("general.alignment", Value::U32(3))
                .tensor_filled("t", &[16], GgmlType::F32)
                .to_bytes(),
        ),
        (
            "architecture of the wrong type",
            GgufWriter::new()
                .kv("general.architecture", Value::U32(7))
                .to_bytes(),
        ),
        ("version 1", GgufWriter::new().version(1).to_bytes()),
        (
            "not GGUF",
            b"\x7fELF\x02\x01\x01\x00 definitely not a model".to_vec(),
        ),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        expect_rejected(&s, what, bytes).await;
    }
    // Bleeding Llama also when quantizing: the bounds check comes first.
    let past_end = GgufWriter::new()
        .kv("general.file_type", Value::U32(0))
        .tensor_raw("t", &[256, 4], 0, 0, vec![0; 4095])
        .to_bytes();
    let (d, _) = s.upload(past_end).await;
    let (st, body) = s
        .post(
            "/api/create",
            json!({"model": "q", "files": {"m.gguf": d}, "quantize": "q8_0"}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_clean(&s).await;
}

#[tokio::test]
async fn digest_and_name_traversal_touch_nothing_outside_the_store() {
    let s = TestServer::start().await;
    // Canaries next to and above the store.
    let canaries = [s.dir.path().join("x"), s.dir.path().join("store/x")];
    std::fs::create_dir_all(s.root()).unwrap();
    for c in &canaries {
        std::fs::write(c, b"canary").unwrap();
    }
    let before = files_under(s.dir.path());
    let bad_digests = [
        "sha256:../../x",
        "sha256-..",
        "sha256:..%2F..%2Fx",
        "sha256-..%2F..%2F..%2Fx",
        "..%2F..%2Fx",
        "sha256:%2E%2E%2F%2E%2E%2Fx",
        &format!("sha256:{}", "0".repeat(63)),
        &format!("sha256:{}", "0".repeat(65)),
    ];
    for d in bad_digests {
        let url = s.url(&format!("/api/blobs/{d}"));
        let r = s.client.post(&url).body("x").send().await.unwrap();
        assert!(r.status().is_client_error(), "POST {d}: {}", r.status());
        let r = s.client.head(&url).send().await.unwrap();
        assert!(r.status().is_client_error(), "HEAD {d}: {}", r.status());
        let (st, _) = s
            .post(
                "/api/create",
                json!({"model": "t", "files": {"m.gguf": d}, "adapters": {"a.gguf": d}}),
            )
            .await;
        assert_eq!(st, 400, "create files {d}");
        let (st, _) = s
            .post(
                "/api/create",
                json!({"model": "t", "modelfile": format!("FROM @{d}\n")}),
            )
            .await;
        assert_eq!(st, 400, "create modelfile {d}");
    }
    // A real model to aim at, then names with `..` everywhere.
    let (d, _) = s.upload(small_gguf()).await;
    let (st, _) = s
        .post(
            "/api/create",
            json!({"model": "real", "files": {"m.gguf": d}}),
        )
        .await;
    assert_eq!(st, 200);
    let bad_names = [
        "../x",
        "../../x",
        "..",
        "a/../../x",
        "real/../../../x",
        "../../../../etc/passwd",
        "registry.ollama.ai/../x:latest",
        "real:..",
        "real:../x",
        "/x",
    ];
    for n in bad_names {
        let (st, body) = s.post("/api/show", json!({"model": n})).await;
        assert_eq!(
            (st, error_of(&body)),
            (400, "invalid model name".into()),
            "show {n}"
        );
        let (st, _) = s
            .send(Method::DELETE, "/api/delete", json!({"model": n}))
            .await;
        assert_eq!(st, 400, "delete {n}");
        let (st, _) = s
            .post("/api/copy", json!({"source": "real", "destination": n}))
            .await;
        assert_eq!(st, 400, "copy to {n}");
        let (st, _) = s
            .post("/api/copy", json!({"source": n, "destination": "y"}))
            .await;
        assert_eq!(st, 400, "copy from {n}");
        let (st, _) = s
            .post("/api/create", json!({"model": n, "files": {"m.gguf": d}}))
            .await;
        assert_eq!(st, 400, "create {n}");
        let (st, _) = s
            .post("/api/create", json!({"model": "ok", "from": n}))
            .await;
        assert_eq!(st, 400, "create from {n}");
    }
    // A manifest on disk whose digests point outside the store.
    let evil_dir = s.root().join("manifests/registry.ollama.ai/library/evil");
    std::fs::create_dir_all(&evil_dir).unwrap();
    let evil = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": "sha256:../../../x", "size": 6},
        "layers": [{"mediaType": "application/vnd.ollama.image.model",
                    "digest": "sha256-../../../store/x", "size": 6}]
    });
    std::fs::write(evil_dir.join("latest"), evil.to_string()).unwrap();
    let (st, _) = s.post("/api/show", json!({"model": "evil"})).await;
    assert!(st >= 400, "show evil: {st}");
    let (st, _) = s
        .post("/api/create", json!({"model": "e2", "from": "evil"}))
        .await;
    assert!(st >= 400, "create from evil: {st}");
    let (st, _) = s
        .post("/api/copy", json!({"source": "evil", "destination": "e3"}))
        .await;
    assert!(st >= 400, "copy evil: {st}");
    let (st, _) = s
        .send(Method::DELETE, "/api/delete", json!({"model": "evil"}))
        .await;
    assert!(st == 200 || st == 404, "delete evil: {st}");
    for c in &canaries {
        assert_eq!(std::fs::read(c).unwrap(), b"canary");
    }
    // Outside the store, exactly the files that were there before.
    let outside: Vec<_> = files_under(s.dir.path())
        .into_iter()
        .filter(|p| !p.starts_with("store/models"))
        .collect();
    let before_outside: Vec<_> = before
        .into_iter()
        .filter(|p| !p.starts_with("store/models"))
        .collect();
    assert_eq!(outside, before_outside);
    let (st, _) = s
        .send(Method::DELETE, "/api/delete", json!({"model": "real"}))
        .await;
    assert_eq!(st, 200);
    assert!(s.alive().await);
}
