//! Step 6: the raw bindings, generated with bindgen from `wrapper.h` (or taken from a
//! pregenerated `LLAMA_SYS_BINDINGS` made from the same headers and features).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Features, Result, env_path, fail, hex};

/// Functions the headers mark deprecated (`DEPRECATED(...)`, `GGML_DEPRECATED(...)`): blocked, so
/// that no upper layer can call them.
fn deprecated_functions(headers: &[PathBuf]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in headers {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(text) = fs::read_to_string(e.path()) else {
                continue;
            };
            for (i, _) in text.match_indices("DEPRECATED(") {
                // The deprecated declaration runs to the next `;`: take the identifier before its first `(`.
                let rest = &text[i + "DEPRECATED(".len()..];
                let Some(end) = rest.find(';') else { continue };
                let decl = &rest[..end];
                if decl.trim_start().starts_with('#') || !decl.contains('(') {
                    continue;
                }
                let before_paren = &decl[..decl.find('(').unwrap_or(0)];
                let ident: String = before_paren
                    .trim_end()
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                if ident.starts_with("llama_")
                    || ident.starts_with("ggml_")
                    || ident.starts_with("gguf_")
                {
                    names.insert(ident);
                }
            }
        }
    }
    names
}

fn headers_digest(headers: &[PathBuf], f: &Features) -> String {
    let mut h = Sha256::new();
    for dir in headers {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for p in files {
            if let Ok(bytes) = fs::read(&p) {
                h.update(p.file_name().unwrap_or_default().as_encoded_bytes());
                h.update(&bytes);
            }
        }
    }
    // `build.rs=` is a label from before the script became `build/`: unchanged, so that
    // pregenerated LLAMA_SYS_BINDINGS files stay valid.
    h.update(format!("rpc={} build.rs={}", f.rpc, env!("CARGO_PKG_VERSION")).as_bytes());
    if f.mtmd {
        h.update(b" mtmd=on");
    }
    hex(&h.finalize())
}

/// Writes the bindings of `headers` to `dest`: allowlisted `llama_*`, `gguf_*` and the ggml
/// backend/device API, C enums as integer constants, deprecated functions block-listed (and
/// listed in `DEPRECATED_FUNCTIONS`). The first line stamps the headers' digest.
pub fn write_bindings(
    manifest_dir: &Path,
    headers: &[PathBuf],
    f: &Features,
    dest: &Path,
) -> Result<()> {
    let digest = headers_digest(headers, f);
    let stamp = format!("// llama-sys bindings; headers-sha256={digest}\n");
    let deprecated = deprecated_functions(headers);

    if let Some(pre) = env_path("LLAMA_SYS_BINDINGS") {
        let text = fs::read_to_string(&pre)
            .or_else(|e| fail(format!("LLAMA_SYS_BINDINGS={} cannot be read ({e}): point it at a bindings.rs made by this llama-sys, or unset it", pre.display())))?;
        if !text.starts_with(&stamp) {
            return fail(format!(
                "LLAMA_SYS_BINDINGS={} was generated from other headers or features (want {stamp:?}): \
                 regenerate it on a machine with libclang (it is OUT_DIR/bindings.rs of a llama-sys build), or unset it",
                pre.display()
            ));
        }
        return fs::write(dest, text)
            .or_else(|e| fail(format!("cannot write {}: {e}", dest.display())));
    }

    let mut b = bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").display().to_string())
        .clang_args(headers.iter().map(|h| format!("-I{}", h.display())))
        .allowlist_function("llama_.*")
        .allowlist_function("gguf_.*")
        .allowlist_function("ggml_backend_(dev|reg|buft|load|unload|cpu|rpc)_.*")
        .allowlist_function("ggml_backend_(load_all|load_all_from_path|load|unload|init_best|init_by_name|init_by_type|free|name|get_device)")
        .allowlist_function("ggml_(log_set|type_name|type_size|blck_size|is_quantized|time_init|time_us|numa_init|cpu_init|print_system_info|version|commit|threadpool_params_default)")
        .allowlist_type("llama_.*")
        .allowlist_type("gguf_.*")
        .allowlist_type("ggml_(type|log_level|log_callback|abort_callback|numa_strategy|backend_dev_type|backend_dev_caps|backend_dev_props|ftype|threadpool_params|threadpool_t)")
        .allowlist_var("LLAMA_.*")
        .allowlist_var("GGML_.*")
        .allowlist_var("GGUF_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(false)
        .generate_comments(true)
        .size_t_is_usize(true)
        .use_core();
    if f.rpc {
        b = b
            .clang_arg("-DLLAMA_SYS_RPC")
            .allowlist_function("ggml_backend_rpc_.*");
    }
    if f.mtmd {
        b = b
            .clang_arg("-DLLAMA_SYS_MTMD")
            .allowlist_function("mtmd_.*")
            .allowlist_type("mtmd_.*")
            .allowlist_var("MTMD_.*");
    }
    for name in &deprecated {
        b = b.blocklist_function(name);
    }

    let generated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.generate()));
    let bindings = match generated {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return fail(format!(
                "bindgen could not parse the llama.cpp headers: {e}"
            ));
        }
        Err(_) => {
            return fail(
                "bindgen could not load libclang (see the panic above): install it (Debian/Ubuntu: apt-get install \
                 libclang-dev; macOS: brew install llvm and set LIBCLANG_PATH=$(brew --prefix llvm)/lib), set \
                 LIBCLANG_PATH to the folder with libclang.so, or set LLAMA_SYS_BINDINGS to a pregenerated bindings.rs",
            );
        }
    };
    let mut text = stamp;
    let _ = writeln!(
        text,
        "/// Functions that llama.cpp marks deprecated; they are not bound.\npub const DEPRECATED_FUNCTIONS: &[&str] = &[{}];",
        deprecated
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    text.push_str(&bindings.to_string());
    fs::write(dest, text).or_else(|e| fail(format!("cannot write {}: {e}", dest.display())))
}
