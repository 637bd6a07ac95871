//! Steps 5 and 7: the link line (cargo directives, and the same line for a C++ compiler driver),
//! the rpaths, and the metadata for dependents (`DEP_LLAMA_*`) and for `build_info`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::cmake::Built;
use crate::source::{BuildTree, Source, SourceKind};
use crate::tools::{self, Cxx, Tools};
use crate::{Features, Result, Target, env_path, fail};

/// The link line, kept twice: as cargo directives (for this crate's dependents) and as the
/// arguments a C++ compiler driver needs to link a program against the same libraries (exported
/// as `build_info::LINK_ARGS`, so that tests can build upstream's own programs against exactly
/// this build).
#[derive(Default)]
struct LinkLine {
    cc_args: Vec<String>,
}

impl LinkLine {
    fn search(&mut self, dir: &Path) {
        println!("cargo:rustc-link-search=native={}", dir.display());
        self.cc_args.push(format!("-L{}", dir.display()));
    }

    fn lib(&mut self, kind: &str, name: &str) {
        println!("cargo:rustc-link-lib={kind}={name}");
        self.cc_args.push(format!("-l{name}"));
    }

    fn framework(&mut self, name: &str) {
        println!("cargo:rustc-link-lib=framework={name}");
        self.cc_args.push("-framework".into());
        self.cc_args.push(name.into());
    }

    fn arg(&mut self, arg: String) {
        println!("cargo:rustc-link-arg={arg}");
        self.cc_args.push(arg);
    }
}

/// Step 5: links the installed libraries in dependency order (llama, ggml, the backends,
/// ggml-base), then the C++ runtime and the backends' system libraries; returns the same line as
/// C++ compiler driver arguments (`build_info::LINK_ARGS`).
pub fn emit_link(
    f: &Features,
    target: &Target,
    lib_dir: &Path,
    tools: &Tools,
) -> Result<Vec<String>> {
    let (os, target_env) = (target.os.as_str(), target.env.as_str());
    let (cxx, cuda) = (&tools.cxx, tools.cuda.as_ref());
    let mut link = LinkLine::default();
    link.search(lib_dir);
    let kind = if f.dynamic { "dylib" } else { "static" };
    // Libraries present, in link order: mtmd and its vendored hash library when built, llama,
    // ggml, the backends, ggml-base last.
    let mut names: Vec<String> = fs::read_dir(lib_dir)
        .or_else(|e| {
            fail(format!(
                "the CMake build installed no libraries in {}: {e}",
                lib_dir.display()
            ))
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let stem = n.strip_prefix("lib").unwrap_or(&n);
            let stem = stem
                .strip_suffix(".a")
                .or_else(|| stem.strip_suffix(".so"))
                .or_else(|| stem.strip_suffix(".dylib"))
                .or_else(|| stem.strip_suffix(".lib"))?;
            (stem.starts_with("ggml") || matches!(stem, "llama" | "mtmd" | "vendor-hash"))
                .then(|| stem.to_string())
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // mtmd (when built) uses llama, ggml and the vendored hash library.
    let rank = |n: &str| match n {
        "mtmd" => 0,
        "vendor-hash" => 1,
        "llama" => 2,
        "ggml" => 3,
        "ggml-base" => 5,
        _ => 4,
    };
    names.sort_by_key(|n| (rank(n), n.clone()));
    if !names.iter().any(|n| n == "llama") {
        return fail(format!(
            "the CMake build produced no llama library in {}: run `cargo clean -p llama-sys` and build again",
            lib_dir.display()
        ));
    }
    for n in &names {
        link.lib(kind, n);
    }
    if f.dynamic {
        // For this crate's own tests and examples; dependents add their own rpath (see README).
        link.arg(format!("-Wl,-rpath,{}", lib_dir.display()));
    }

    // C++ runtime and system libraries.
    if target_env != "msvc" {
        let apple = matches!(os, "macos" | "ios" | "tvos" | "visionos");
        if apple || (cxx.is_clang && os == "freebsd") {
            link.lib("dylib", "c++");
        } else {
            link.lib("dylib", "stdc++");
        }
        if f.openmp {
            let omp = if cxx.is_clang || apple { "omp" } else { "gomp" };
            link.lib("dylib", omp);
        }
        if os == "linux" {
            for l in ["m", "pthread", "dl"] {
                link.lib("dylib", l);
            }
        }
        if apple {
            for fw in ["Foundation", "Accelerate"] {
                link.framework(fw);
            }
            if f.metal {
                for fw in ["Metal", "MetalKit"] {
                    link.framework(fw);
                }
            }
        }
    } else {
        link.lib("dylib", "advapi32");
    }
    if f.vulkan {
        if let Some(sdk) = env_path("VULKAN_SDK") {
            link.search(&sdk.join("lib"));
        }
        link.lib(
            "dylib",
            if target_env == "msvc" {
                "vulkan-1"
            } else {
                "vulkan"
            },
        );
    }
    if let Some(c) = cuda {
        if let Some(root) = &c.root {
            let dirs = tools::cuda_lib_dirs(root);
            for d in &dirs {
                link.search(d);
            }
            // The folder of libcudart, when it is not one the dynamic loader searches anyway
            // (a toolkit from PyPI wheels, /usr/local/cuda): an rpath for this crate's tests,
            // and DEP_LLAMA_CUDA_LIB_DIR so that dependents' binaries can add the same.
            let runtime = dirs
                .iter()
                .filter(|d| !d.ends_with("stubs"))
                .find(|d| d.join("libcudart.so").exists());
            if let Some(d) = runtime
                && os == "linux"
                && !d.starts_with("/usr/lib")
                && !d.starts_with("/lib")
            {
                link.arg(format!("-Wl,-rpath,{}", d.display()));
                println!("cargo:cuda_lib_dir={}", d.display());
            }
        }
        for l in ["cudart", "cublas", "cublasLt"] {
            link.lib("dylib", l);
        }
        if !c.no_vmm {
            link.lib("dylib", "cuda");
        }
    }
    Ok(link.cc_args)
}

/// Step 7: metadata for dependents (`cargo:KEY=VALUE`, which they read as `DEP_LLAMA_KEY`) and
/// for this crate's code (`LLAMA_SYS_*` for `build_info`, the `llama_sys_rpc` cfg).
///
/// `DEP_LLAMA_PIN` and `DEP_LLAMA_BACKENDS` are what the root package's build script embeds for
/// `ollamars --version`; `DEP_LLAMA_LIB_DIR`, `DEP_LLAMA_BACKENDS_DIR` and
/// `DEP_LLAMA_CUDA_LIB_DIR` (from [`emit_link`]) give it its rpath and its module list.
pub fn emit_metadata(
    features: &Features,
    source: &Source,
    tree: &BuildTree,
    built: &Built,
    cxx: &Cxx,
    link_args: &[String],
) {
    let backends = features.backends().join(",");
    let lib_dir = built.install_dir.join("lib");
    let backends_dir = built.install_dir.join("bin");
    let kind = match source.kind {
        SourceKind::Vendored => "vendored",
        SourceKind::CargoPin => "cargo-pin",
        SourceKind::Local => "local",
    };
    let cpu = if features.dynamic {
        "all-variants"
    } else if features.portable {
        "portable"
    } else {
        "native"
    };
    println!("cargo:include={}", tree.dir.join("include").display());
    println!(
        "cargo:ggml_include={}",
        tree.dir.join("ggml/include").display()
    );
    println!("cargo:lib_dir={}", lib_dir.display());
    println!("cargo:src_dir={}", tree.dir.display());
    println!("cargo:backends={backends}");
    println!("cargo:pin={}", source.pin);
    if features.dynamic {
        println!("cargo:backends_dir={}", backends_dir.display());
        println!(
            "cargo:rustc-env=LLAMA_SYS_BACKENDS_DIR={}",
            backends_dir.display()
        );
    }
    println!("cargo:rustc-env=LLAMA_SYS_PIN={}", source.pin);
    println!("cargo:rustc-env=LLAMA_SYS_SOURCE={kind}");
    println!("cargo:rustc-env=LLAMA_SYS_SRC_DIR={}", tree.dir.display());
    println!("cargo:rustc-env=LLAMA_SYS_BACKENDS={backends}");
    println!("cargo:rustc-env=LLAMA_SYS_CPU={cpu}");
    println!(
        "cargo:rustc-env=LLAMA_SYS_AMX_FIX={}",
        if built.amx_fix { "on" } else { "off" }
    );
    println!(
        "cargo:rustc-env=LLAMA_SYS_PATCHES={}",
        tree.patches.join(",")
    );
    println!("cargo:rustc-env=LLAMA_SYS_CXX={}", cxx.path);
    // Tab-separated: paths may contain spaces, never tabs in practice (and never newlines,
    // which a cargo directive cannot carry).
    println!(
        "cargo:rustc-env=LLAMA_SYS_LINK_ARGS={}",
        link_args.join("\t")
    );
    println!("cargo:rustc-env=LLAMA_SYS_LIB_DIR={}", lib_dir.display());
    println!(
        "cargo:rustc-env=LLAMA_SYS_INCLUDE_DIRS={}\t{}",
        tree.dir.join("include").display(),
        tree.dir.join("ggml/include").display()
    );
    println!(
        "cargo:rustc-env=LLAMA_SYS_MTMD={}",
        if features.mtmd { "on" } else { "off" }
    );
    if features.rpc {
        println!("cargo:rustc-cfg=llama_sys_rpc");
    }
    if features.mtmd {
        println!("cargo:mtmd=on");
        println!("cargo:rustc-cfg=llama_sys_mtmd");
    }
    println!("cargo:rustc-check-cfg=cfg(llama_sys_rpc)");
    println!("cargo:rustc-check-cfg=cfg(llama_sys_mtmd)");
}
