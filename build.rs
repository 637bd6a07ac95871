//! Root build script: embeds the build metadata printed by `ollamars --version`: the crate
//! version, the llama.cpp pin and the enabled backends.

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
}
