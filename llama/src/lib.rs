//! Safe Rust over llama.cpp (work in progress: the API lands with the `llama` crate issue).
//!
//! For now this crate only reports how the engine underneath was built.

/// How the llama.cpp engine under this crate was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// The pinned upstream tree, e.g. `llama-cpp-sys-2 0.1.161`, or `local <path>`.
    pub llama_cpp: &'static str,
    /// Backends compiled in, comma-separated (`cpu,vulkan`).
    pub backends: &'static str,
    /// CPU flavour: `native`, `portable` or `all-variants`.
    pub cpu: &'static str,
}

/// Returns how the llama.cpp engine was built.
pub fn build_info() -> BuildInfo {
    BuildInfo {
        llama_cpp: llama_sys::build_info::LLAMA_CPP_PIN,
        backends: llama_sys::build_info::BACKENDS,
        cpu: llama_sys::build_info::CPU,
    }
}
