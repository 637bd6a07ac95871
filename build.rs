//! Root build script: embeds the build metadata printed by `ollamars --version` (the crate
//! version, the llama.cpp pin, the enabled backends and, for `dynamic-backends`, the modules
//! built) and gives a `dynamic-backends` binary its rpath `$ORIGIN/../lib/ollamars`.
//!
//! The pin and the backends are what llama-sys built, as its build script reports them
//! (`DEP_LLAMA_PIN`, `DEP_LLAMA_BACKENDS`, the same values as `llama_sys::build_info`): this
//! script does not work them out again. Cargo reruns it whenever llama-sys's build script reruns.

use std::env;
use std::fs;
use std::path::PathBuf;

/// Metadata that llama-sys's build script emits as `cargo:KEY=VALUE` for its dependents.
fn llama_sys(key: &str) -> String {
    let var = format!("DEP_LLAMA_{key}");
    env::var(&var).unwrap_or_else(|_| {
        panic!("{var} is not set: llama-sys (links = \"llama\") must be a direct dependency")
    })
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");

    let pin = llama_sys("PIN");
    let backends = llama_sys("BACKENDS");
    // A CUDA runtime outside the loader's default folders (the toolkit from PyPI wheels):
    // the binary finds libcudart and cuBLAS there without LD_LIBRARY_PATH.
    if let Some(dir) = env::var_os("DEP_LLAMA_CUDA_LIB_DIR") {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,-rpath,{}",
            PathBuf::from(dir).display()
        );
    }
    println!("cargo:rustc-env=OLLAMARS_LLAMA_CPP_PIN={pin}");
    println!("cargo:rustc-env=OLLAMARS_BACKENDS={backends}");

    let mut modules = Vec::new();
    if env::var_os("CARGO_FEATURE_DYNAMIC_BACKENDS").is_some() {
        // A release tree is bin/ollamars next to lib/ollamars/ (libllama, libggml, the backend
        // modules): the binary finds the libraries there first, wherever the tree is unpacked.
        // The build's own library folder comes second, so that target/release/ollamars runs
        // as it is during development.
        let origin = match env::var("CARGO_CFG_TARGET_OS").as_deref() {
            Ok("macos" | "ios") => "@executable_path",
            _ => "$ORIGIN",
        };
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{origin}/../lib/ollamars");
        if let Some(lib_dir) = env::var_os("DEP_LLAMA_LIB_DIR") {
            println!(
                "cargo:rustc-link-arg-bins=-Wl,-rpath,{}",
                PathBuf::from(lib_dir).display()
            );
        }
        // The backend modules this build made, so that a release missing one can say so.
        if let Some(dir) = env::var_os("DEP_LLAMA_BACKENDS_DIR") {
            let dir = PathBuf::from(dir);
            println!("cargo:rerun-if-changed={}", dir.display());
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(m) = name
                    .strip_prefix("libggml-")
                    .and_then(|n| n.strip_suffix(".so"))
                    .filter(|m| *m != "base")
                {
                    modules.push(m.to_string());
                }
            }
        }
    }
    modules.sort();
    println!("cargo:rustc-env=OLLAMARS_MODULES={}", modules.join(","));
}
