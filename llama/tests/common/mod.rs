//! Shared test helpers: the real test models (fetched by `scripts/fetch-models`) and the
//! build facts the upstream reference needs.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, OnceLock};

use llama::{Model, ModelParams};

#[allow(unused_imports)]
pub use testkit::{GEMMA3, SMOLLM2, model_path, workspace};

/// Tests that run a model take this lock: ggml's worker threads spin while they wait, so two
/// models computing at once on a small machine slow each other down many times over.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn smollm2() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        Model::load(model_path(SMOLLM2), ModelParams::default()).expect("SmolLM2 loads")
    })
}

pub fn gemma3() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        Model::load(model_path(GEMMA3), ModelParams::default()).expect("gemma-3 loads")
    })
}

/// What `testkit::upstream` needs to build upstream's reference program against this build.
pub fn llama_build() -> testkit::upstream::LlamaBuild {
    testkit::llama_build!()
}

/// Whether a GPU backend is compiled in (the parity tests then offload every layer).
pub fn gpu_build() -> bool {
    llama_sys::build_info::has_backend("vulkan") || llama_sys::build_info::has_backend("cuda")
}
