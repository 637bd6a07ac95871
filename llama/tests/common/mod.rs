//! Shared test helpers: the real test models (fetched by `scripts/fetch-models`) and the
//! upstream reference ids.
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

pub fn reference() -> serde_json::Value {
    testkit::greedy_reference()
}

/// The upstream reference flavour matching this build and CPU.
pub fn flavour() -> String {
    if llama_sys_backend("vulkan") {
        return "vulkan-lavapipe".into();
    }
    testkit::cpu_flavour(&llama::system_info())
}

fn llama_sys_backend(name: &str) -> bool {
    llama::build_info().backends.split(',').any(|b| b == name)
}
