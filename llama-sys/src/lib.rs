//! Raw FFI bindings to upstream [llama.cpp](https://github.com/ggml-org/llama.cpp) and ggml.
//!
//! This crate compiles the pinned llama.cpp tree (or the one named by `LLAMA_CPP_DIR`) with
//! CMake and generates the bindings with bindgen at build time. Everything here is `unsafe` and
//! mirrors the C headers `llama.h`, `ggml.h`, `ggml-backend.h`, `ggml-cpu.h` and `gguf.h`
//! (plus `ggml-rpc.h` with feature `rpc`, and `mtmd.h`/`mtmd-helper.h`, llama.cpp's multimodal
//! library, with feature `mtmd`). Use the `llama` crate for a safe API.
//!
//! - C enums are plain integer constants with their C names (`LLAMA_VOCAB_TYPE_BPE`), never
//!   Rust enums, so a value from a newer llama.cpp can never be undefined behaviour.
//! - Functions that llama.cpp marks deprecated are not bound; [`DEPRECATED_FUNCTIONS`] lists them.
//! - [`build_info`] says how this copy was built: pin, backends, CPU flavour.
//!
//! Features select backends (`cuda`, `metal`, `vulkan`, `rpc`), the CPU flavour (`portable`,
//! `dynamic-backends`) and `openmp`; see the crate README.

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    // The doc comments are upstream's header comments, as bindgen copies them (bare URLs,
    // brackets that are not links): rustdoc's lints judge our docs, not theirs.
    rustdoc::all
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use ffi::*;

/// How this copy of llama.cpp was built, as recorded by the build script.
pub mod build_info {
    /// The pinned upstream tree (`llama-cpp-sys-2 0.1.161`), or `local <path>` for `LLAMA_CPP_DIR`.
    pub const LLAMA_CPP_PIN: &str = env!("LLAMA_SYS_PIN");
    /// Where the source came from: `cargo-pin`, `vendored` or `local`.
    pub const SOURCE: &str = env!("LLAMA_SYS_SOURCE");
    /// The source directory CMake built from (a patched build copy where a patch was needed).
    pub const SOURCE_DIR: &str = env!("LLAMA_SYS_SRC_DIR");
    /// Backends compiled in, comma-separated ggml names: `cpu`, `cuda`, `metal`, `vulkan`, `rpc`.
    pub const BACKENDS: &str = env!("LLAMA_SYS_BACKENDS");
    /// CPU flavour: `native` (GGML_NATIVE), `portable` (Rust target features) or `all-variants`.
    pub const CPU: &str = env!("LLAMA_SYS_CPU");
    /// Whether the GCC AMX tile-config fix (`amx-tilecfg-fix.h`) was force-included: `on`/`off`.
    pub const AMX_FIX: &str = env!("LLAMA_SYS_AMX_FIX");
    /// Patches applied to a build copy of the tree, comma-separated (usually empty).
    pub const PATCHES: &str = env!("LLAMA_SYS_PATCHES");
    /// The C++ compiler that built llama.cpp.
    pub const CXX: &str = env!("LLAMA_SYS_CXX");
    /// The folder holding the installed llama.cpp libraries.
    pub const LIB_DIR: &str = env!("LLAMA_SYS_LIB_DIR");
    /// The include folders of `llama.h` and `ggml.h`, tab-separated.
    pub const INCLUDE_DIRS: &str = env!("LLAMA_SYS_INCLUDE_DIRS");
    /// The arguments a C++ compiler driver needs to link a program against exactly these
    /// libraries (search paths, libraries in order, runtime and system libraries),
    /// tab-separated. The parity tests build upstream's own programs with them.
    pub const LINK_ARGS: &str = env!("LLAMA_SYS_LINK_ARGS");
    /// Whether llama.cpp's multimodal library (mtmd, feature `mtmd`) was built: `on`/`off`.
    pub const MTMD: &str = env!("LLAMA_SYS_MTMD");
    /// With `dynamic-backends`: the folder holding the ggml backend modules.
    pub const BACKENDS_DIR: Option<&str> = option_env!("LLAMA_SYS_BACKENDS_DIR");

    /// Whether a backend (ggml name, e.g. `"vulkan"`) was compiled in.
    pub fn has_backend(name: &str) -> bool {
        BACKENDS.split(',').any(|b| b == name)
    }
}
