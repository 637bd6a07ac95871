//! ollamars: Ollama's CLI, model store, Modelfiles, registry client and REST API, on the
//! `llama` crate. This is the application library; the `ollamars` binary is a thin `main` over it.
#![forbid(unsafe_code)]

/// Version and build metadata of this ollamars, as printed by `ollamars --version`.
pub mod version {
    /// This ollamars' version.
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");

    /// What the binary was built with (embedded by the root package's build script).
    #[derive(Debug, Clone, Copy)]
    pub struct BuildMeta {
        /// The binary's version.
        pub version: &'static str,
        /// The llama.cpp pin, e.g. `llama-cpp-sys-2 0.1.161`.
        pub llama_cpp: &'static str,
        /// Enabled backends, e.g. `cpu,vulkan`.
        pub backends: &'static str,
    }

    impl BuildMeta {
        /// The engine line: `llama.cpp llama-cpp-sys-2 0.1.161; backends cpu; cpu native`.
        pub fn engine_line(&self) -> String {
            format!(
                "llama.cpp {}; backends {}; cpu {}",
                self.llama_cpp,
                self.backends,
                llama::build_info().cpu
            )
        }
    }
}

pub mod cli;
pub mod client;
pub mod env;
pub mod format;

pub mod create;
pub mod gguf;
pub mod grammar;
pub mod modelfile;
pub mod models;
pub mod name;
pub mod registry;
pub mod runner;
pub mod server;
pub mod store;
pub mod template;
