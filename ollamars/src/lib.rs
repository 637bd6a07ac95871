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
        /// For `dynamic-backends` builds, the backend modules the build made, comma-separated
        /// (`cpu-haswell,cpu-x64,…`), so that a release missing one can say so.
        pub modules: &'static str,
    }

    impl BuildMeta {
        /// The client's version line: `ollamars version 0.1.0 (llama.cpp llama-cpp-sys-2
        /// 0.1.161; cpu variant zen4; gpu backends: none)`, with `backends` from
        /// [`crate::backends::Backends::summary`].
        pub fn version_line(&self, program: &str, backends: &str) -> String {
            format!(
                "{program} version {} (llama.cpp {}; {backends})",
                self.version, self.llama_cpp
            )
        }
    }

    /// The name this binary answers to: `ollama` when it was started through a link or copy of
    /// that name (an Ollama drop-in), else `ollamars`.
    pub fn program_name() -> &'static str {
        program_name_for(std::env::args_os().next().as_deref())
    }

    /// [`program_name`] for a given `argv[0]`.
    pub fn program_name_for(argv0: Option<&std::ffi::OsStr>) -> &'static str {
        let stem = argv0
            .map(std::path::Path::new)
            .and_then(std::path::Path::file_stem)
            .and_then(|s| s.to_str());
        match stem {
            Some("ollama") => "ollama",
            _ => "ollamars",
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn answers_to_ollama() {
            let name = |s: &str| program_name_for(Some(std::ffi::OsStr::new(s)));
            assert_eq!(name("/usr/local/bin/ollama"), "ollama");
            assert_eq!(name("ollama"), "ollama");
            assert_eq!(name("/usr/local/bin/ollamars"), "ollamars");
            assert_eq!(name("./target/release/ollamars"), "ollamars");
            assert_eq!(program_name_for(None), "ollamars");
            let meta = BuildMeta {
                version: "1.2.3",
                llama_cpp: "pin 1",
                backends: "cpu",
                modules: "",
            };
            assert_eq!(
                meta.version_line("ollama", "cpu variant zen4; gpu backends: none"),
                "ollama version 1.2.3 (llama.cpp pin 1; cpu variant zen4; gpu backends: none)"
            );
        }
    }
}

pub mod api;
pub mod backends;
pub mod cli;
pub mod client;
pub mod compat;
pub mod config;
pub mod duration;
pub mod format;
pub mod progress;

pub mod create;
pub mod gguf;
pub mod grammar;
pub mod media;
pub mod modelfile;
pub mod models;
pub mod name;
pub mod registry;
pub mod runner;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod template;
