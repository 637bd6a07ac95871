//! Build script of `llama-sys`: finds the pinned llama.cpp tree, verifies it, builds it with
//! CMake (static, Release) and generates the raw bindings with bindgen.
//!
//! Every failure that a user can fix ends in one line that says what is wrong and what to do,
//! followed where useful by the tail of the relevant log. See `vendor/README.md` of the
//! workspace for the pin and `README.md` of this crate for the features and environment
//! variables.
//!
//! [`run`] is the list of steps (ARCHITECTURE.md, "llama-sys"); each lives in a module of its
//! own: [`tools`] (1), [`source`] (2, 3), [`cmake`] (4, and the build shared between OUT_DIRs),
//! [`link`] (5, 7) and [`bindings`] (6). This file holds what they share: the features, the
//! target, the tracked environment and the error type.

mod bindings;
mod cmake;
mod link;
mod source;
mod tools;

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

/// Environment variables that change the build: each one reruns this script when it changes and
/// is part of the configuration key (`cmake::config_key`).
const TRACKED_ENV: &[&str] = &[
    "LLAMA_CPP_DIR",
    "LLAMA_SYS_NO_SHARED_BUILD",
    "LLAMA_SYS_PROFILE",
    "LLAMA_SYS_BINDINGS",
    "LLAMA_SYS_CMAKE_ARGS",
    "LLAMA_SYS_AMX_FIX",
    "LLAMA_SYS_NO_CCACHE",
    "LLAMA_SYS_DRY_RUN",
    "LLAMA_CUDA_ARCHITECTURES",
    // CMake's own variable for CMAKE_CUDA_ARCHITECTURES; read after LLAMA_CUDA_ARCHITECTURES
    // (see `tools::cuda_archs` for the order).
    "CUDAARCHS",
    "LLAMA_CUDA_NO_VMM",
    "CUDA_PATH",
    "CUDACXX",
    "VULKAN_SDK",
    "LIBCLANG_PATH",
    "CMAKE",
    "CXX",
    "CC",
    "PATH",
];

fn main() {
    if let Err(f) = run() {
        if !f.details.is_empty() {
            eprintln!("{}", f.details.trim_end());
            eprintln!();
        }
        eprintln!("error: llama-sys: {}", f.line);
        // The same line as a cargo warning, so that it also shows where cargo hides stderr.
        println!("cargo:warning=llama-sys: {}", f.line);
        std::process::exit(1);
    }
}

/// The steps, in order; the first that fails stops the build with its one line.
fn run() -> Result<()> {
    let script = Script::from_env();
    script.rerun_if_changed();

    // 1. Tools, checked before anything long runs.
    let tools = tools::check(&script.features, &script.target)?;

    // 2. The source tree.
    let source = source::resolve(&script.vendor)?;
    source.rerun_if_changed();

    // The folder CMake builds and installs into: this OUT_DIR, or that of another llama-sys
    // build in the same target folder with the same configuration key.
    let key = cmake::config_key(&script, &source);
    let cmake_root = cmake::build_root(&script.out_dir, &key);

    // 3. A build copy, only when the tree needs a patch for this machine.
    let tree = source::build_tree(&source, tools.vulkan.as_ref(), &cmake_root)?;

    // 4. CMake.
    let built = cmake::build(&script, &tools, &tree.dir, &cmake_root, &key)?;

    // 5. Linking (nothing after a dry run, which only configures).
    let lib_dir = built.install_dir.join("lib");
    let link_args = if built.dry_run {
        Vec::new()
    } else {
        link::emit_link(&script.features, &script.target, &lib_dir, &tools)?
    };

    // 6. Bindings.
    let mut headers = vec![tree.dir.join("include"), tree.dir.join("ggml/include")];
    if script.features.mtmd {
        headers.push(tree.dir.join("tools/mtmd"));
    }
    bindings::write_bindings(
        &script.manifest_dir,
        &headers,
        &script.features,
        &script.out_dir.join("bindings.rs"),
    )?;

    // 7. Metadata for dependents (DEP_LLAMA_*) and for this crate's code.
    link::emit_metadata(
        &script.features,
        &source,
        &tree,
        &built,
        &tools.cxx,
        &link_args,
    );
    Ok(())
}

/// What cargo tells this script: its folders, the features and the target.
struct Script {
    manifest_dir: PathBuf,
    out_dir: PathBuf,
    /// The workspace's `vendor/`: the pin and, when materialised, the tree.
    vendor: PathBuf,
    /// This script's own source files (`build/*.rs`), sorted: part of the configuration key.
    sources: Vec<PathBuf>,
    features: Features,
    target: Target,
}

impl Script {
    fn from_env() -> Self {
        let manifest_dir = env_path("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let out_dir = env_path("OUT_DIR").expect("cargo sets OUT_DIR");
        let workspace = manifest_dir
            .parent()
            .expect("llama-sys lives inside the workspace")
            .to_path_buf();
        let mut sources: Vec<PathBuf> = fs::read_dir(manifest_dir.join("build"))
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                    .collect()
            })
            .unwrap_or_default();
        sources.sort();
        Script {
            vendor: workspace.join("vendor"),
            manifest_dir,
            out_dir,
            sources,
            features: Features::from_env(),
            target: Target::from_env(),
        }
    }

    /// What reruns this script: its own files, the pin and [`TRACKED_ENV`] (the tree's entry
    /// points follow in step 2).
    fn rerun_if_changed(&self) {
        let own = [
            self.manifest_dir.join("wrapper.h"),
            self.manifest_dir.join("amx-tilecfg-fix.h"),
        ];
        for f in self.sources.iter().chain(&own) {
            println!("cargo:rerun-if-changed={}", f.display());
        }
        for f in ["pin/Cargo.toml", "pin/Cargo.lock", "llama.cpp.sha256"] {
            println!("cargo:rerun-if-changed={}", self.vendor.join(f).display());
        }
        for v in TRACKED_ENV {
            println!("cargo:rerun-if-env-changed={v}");
        }
    }
}

/// The target being built for (cargo's `CARGO_CFG_TARGET_*`).
struct Target {
    os: String,
    arch: String,
    env: String,
}

impl Target {
    fn from_env() -> Self {
        let var = |v: &str| env::var(v).unwrap_or_default();
        Target {
            os: var("CARGO_CFG_TARGET_OS"),
            arch: var("CARGO_CFG_TARGET_ARCH"),
            env: var("CARGO_CFG_TARGET_ENV"),
        }
    }

    /// An Apple OS, where Metal and Accelerate exist.
    fn apple(&self) -> bool {
        matches!(self.os.as_str(), "macos" | "ios" | "tvos" | "visionos")
    }
}

/// Which optional backends and build modes are on.
#[derive(Debug, Clone, Copy)]
struct Features {
    portable: bool,
    openmp: bool,
    cuda: bool,
    metal: bool,
    vulkan: bool,
    rpc: bool,
    dynamic: bool,
    /// llama.cpp's multimodal library (`tools/mtmd`: mtmd + clip).
    mtmd: bool,
}

impl Features {
    fn from_env() -> Self {
        let on = |f: &str| env::var_os(format!("CARGO_FEATURE_{f}")).is_some();
        Features {
            portable: on("PORTABLE"),
            openmp: on("OPENMP"),
            cuda: on("CUDA"),
            metal: on("METAL"),
            vulkan: on("VULKAN"),
            rpc: on("RPC"),
            dynamic: on("DYNAMIC_BACKENDS"),
            mtmd: on("MTMD"),
        }
    }

    /// Backends compiled in, in ggml's names.
    fn backends(&self) -> Vec<&'static str> {
        let mut b = vec!["cpu"];
        for (on, name) in [
            (self.cuda, "cuda"),
            (self.metal, "metal"),
            (self.vulkan, "vulkan"),
            (self.rpc, "rpc"),
        ] {
            if on {
                b.push(name);
            }
        }
        b
    }
}

/// A fatal, user-fixable build error: one line with the problem and the fix, then details.
struct Failure {
    line: String,
    details: String,
}

type Result<T> = std::result::Result<T, Failure>;

fn fail<T>(line: impl Into<String>) -> Result<T> {
    Err(Failure {
        line: line.into(),
        details: String::new(),
    })
}

fn fail_with<T>(line: impl Into<String>, details: impl Into<String>) -> Result<T> {
    Err(Failure {
        line: line.into(),
        details: details.into(),
    })
}

fn env_path(name: &str) -> Option<PathBuf> {
    env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn env_flag(name: &str) -> Option<bool> {
    env::var(name)
        .ok()
        .map(|v| !matches!(v.trim(), "" | "0" | "false" | "off" | "OFF" | "no"))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
