//! ollamars: Ollama's CLI, model store, Modelfiles, registry client and REST API, on the
//! `llama` crate. This is the application library; the `ollamars` binary is a thin `main` over it.
#![forbid(unsafe_code)]

/// Version and build metadata of this ollamars, as printed by `ollamars --version`.
pub mod version {
    /// The version line: `ollamars version 0.1.0 (llama.cpp llama-cpp-sys-2 0.1.161; backends cpu; cpu native)`.
    pub fn long_version(app_version: &str, pin: &str, backends: &str) -> String {
        let engine = llama::build_info();
        format!(
            "ollamars version {app_version} (llama.cpp {pin}; backends {backends}; cpu {})",
            engine.cpu
        )
    }
}

pub mod create;
pub mod gguf;
pub mod modelfile;
pub mod models;
pub mod name;
pub mod server;
pub mod store;
