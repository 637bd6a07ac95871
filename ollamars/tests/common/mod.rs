//! Shared helpers of the HTTP integration tests: a server on 127.0.0.1:0 over a fresh store, the
//! real test model, and small GGUFs.
#![allow(dead_code)]

use ollamars::config::Config;
use ollamars::gguf::{GgmlType, GgufWriter, Value};
use ollamars::server::{ServerState, router};
use ollamars::store::Store;
use std::path::{Path, PathBuf};

/// A running server over a store in a temporary directory.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The temporary directory; the store is `<dir>/store/models`.
    pub dir: tempfile::TempDir,
    /// The HTTP client.
    pub client: reqwest::Client,
}

impl TestServer {
    /// Starts a server on an ephemeral port of 127.0.0.1.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store/models");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(ServerState::new(Store::new(&root), &Config::default()));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer {
            base: format!("http://{addr}"),
            dir,
            client: reqwest::Client::new(),
        }
    }

    /// The store root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store/models")
    }

    /// The store.
    pub fn store(&self) -> Store {
        Store::new(self.root())
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON; returns status and body text.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, String) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Sends a request with a JSON body and any method.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, String) {
        let r = self
            .client
            .request(method, self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Uploads a blob; returns its digest and the status.
    pub async fn upload(&self, bytes: Vec<u8>) -> (String, u16) {
        let d = ollamars::store::Digest::of(&bytes).to_string();
        let r = self
            .client
            .post(self.url(&format!("/api/blobs/{d}")))
            .body(bytes)
            .send()
            .await
            .unwrap();
        (d, r.status().as_u16())
    }

    /// The server answers `GET /`.
    pub async fn alive(&self) -> bool {
        match self.client.get(self.url("/")).send().await {
            Ok(r) => r.text().await.unwrap_or_default() == "Ollama is running",
            Err(_) => false,
        }
    }
}

/// The error text of a JSON error body.
pub fn error_of(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"))
        .to_string()
}

/// Every file path under `dir`, relative, sorted (symlinks listed, not followed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// A small valid llama-architecture GGUF.
pub fn small_gguf() -> Vec<u8> {
    GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("general.file_type", Value::U32(0))
        .kv("llama.context_length", Value::U32(64))
        .kv("llama.embedding_length", Value::U32(32))
        .kv("llama.block_count", Value::U32(1))
        .tensor_filled("token_embd.weight", &[32, 8], GgmlType::F32)
        .tensor_filled("output_norm.weight", &[32], GgmlType::F32)
        .to_bytes()
}

/// The SmolLM2 test model.
pub fn smollm2() -> PathBuf {
    testkit::model_path(testkit::SMOLLM2)
}
