//! Root build script: embeds the build metadata printed by `ollamars --version` (the crate
//! version, the llama.cpp pin, the enabled backends and, for `dynamic-backends`, the modules
//! built) and gives a `dynamic-backends` binary its rpath `$ORIGIN/../lib/ollamars`.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let pin_file = root.join("vendor/llama.cpp.sha256");
    println!("cargo:rerun-if-changed={}", pin_file.display());
    println!("cargo:rerun-if-env-changed=LLAMA_CPP_DIR");

    let pin = match env::var("LLAMA_CPP_DIR") {
        Ok(dir) if !dir.is_empty() => format!("local {dir}"),
        _ => fs::read_to_string(&pin_file)
            .ok()
            .and_then(|t| {
                let mut w = t.split_whitespace().skip(1);
                Some(format!("{} {}", w.next()?, w.next()?))
            })
            .unwrap_or_else(|| "unknown".to_string()),
    };
    let mut backends = vec!["cpu"];
    for (feature, name) in [
        ("CUDA", "cuda"),
        ("METAL", "metal"),
        ("VULKAN", "vulkan"),
        ("RPC", "rpc"),
    ] {
        if env::var_os(format!("CARGO_FEATURE_{feature}")).is_some() {
            backends.push(name);
        }
    }
    // A CUDA runtime outside the loader's default folders (the toolkit from PyPI wheels):
    // the binary finds libcudart and cuBLAS there without LD_LIBRARY_PATH.
    if let Some(dir) = env::var_os("DEP_LLAMA_CUDA_LIB_DIR") {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,-rpath,{}",
            PathBuf::from(dir).display()
        );
    }
    println!("cargo:rustc-env=OLLAMARS_LLAMA_CPP_PIN={pin}");
    println!("cargo:rustc-env=OLLAMARS_BACKENDS={}", backends.join(","));

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
