//! Build script of `llama-sys`: finds the pinned llama.cpp tree, verifies it, builds it with
//! CMake (static, Release) and generates the raw bindings with bindgen.
//!
//! Every failure that a user can fix ends in one line that says what is wrong and what to do,
//! followed where useful by the tail of the relevant log. See `../vendor/README.md` for the pin
//! and `README.md` of this crate for the features and environment variables.

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Environment variables that change the build (each one reruns this script when it changes).
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

/// CUDA architectures nvcc knows (compute capabilities), for validating LLAMA_CUDA_ARCHITECTURES.
const CUDA_ARCHS: &[&str] = &[
    "50", "52", "53", "60", "61", "62", "70", "72", "75", "80", "86", "87", "88", "89", "90",
    "100", "101", "103", "110", "120", "121",
];

/// Default CUDA architectures: Turing to Hopper, what a CUDA 12/13 toolkit builds quickly.
const CUDA_ARCHS_DEFAULT: &str = "75;80;86;89;90";

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

/// Where the llama.cpp source comes from.
#[derive(Debug, Clone)]
enum SourceKind {
    /// `vendor/llama.cpp/`, materialised by `scripts/vendor-llama-cpp`.
    Vendored,
    /// The `llama.cpp/` folder of the pinned crate in cargo's registry cache.
    CargoPin,
    /// `LLAMA_CPP_DIR`: a local checkout, used as is and never patched.
    Local,
}

struct Source {
    kind: SourceKind,
    dir: PathBuf,
    /// `name version` of the pin, or `local <path>`.
    pin: String,
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

fn run() -> Result<()> {
    let manifest_dir = env_path("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = env_path("OUT_DIR").expect("cargo sets OUT_DIR");
    let workspace = manifest_dir
        .parent()
        .expect("llama-sys lives inside the workspace")
        .to_path_buf();
    let vendor = workspace.join("vendor");

    for f in ["build.rs", "wrapper.h", "amx-tilecfg-fix.h"] {
        println!("cargo:rerun-if-changed={}", manifest_dir.join(f).display());
    }
    for f in ["pin/Cargo.toml", "pin/Cargo.lock", "llama.cpp.sha256"] {
        println!("cargo:rerun-if-changed={}", vendor.join(f).display());
    }
    for v in TRACKED_ENV {
        println!("cargo:rerun-if-env-changed={v}");
    }

    let features = Features::from_env();
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let apple = matches!(target_os.as_str(), "macos" | "ios" | "tvos" | "visionos");

    // 1. Tools, checked before anything long runs.
    check_cmake()?;
    let cxx = check_cxx(&target_env)?;
    if features.metal && !apple {
        return fail(format!(
            "feature `metal` needs an Apple target, but the target OS is `{target_os}`: \
             build without `--features metal` (use `vulkan` or `cuda` for GPUs here)"
        ));
    }
    let vulkan = if features.vulkan {
        Some(check_vulkan()?)
    } else {
        None
    };
    let cuda = if features.cuda {
        Some(check_cuda()?)
    } else {
        None
    };

    // 2. The source tree.
    let source = resolve_source(&vendor)?;
    println!(
        "cargo:rerun-if-changed={}",
        source.dir.join("include/llama.h").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        source.dir.join("CMakeLists.txt").display()
    );

    // The folder CMake builds and installs into: this OUT_DIR, or that of another llama-sys
    // build in the same target folder with the same configuration (see `shared_cmake_root`).
    let key = config_key(&manifest_dir, &features, &source, &target_arch);
    let _ = fs::write(out_dir.join("llama-sys-config.txt"), &key);
    let cmake_root = shared_cmake_root(&out_dir, &key).unwrap_or_else(|| out_dir.clone());
    if cmake_root != out_dir {
        println!(
            "cargo:warning=llama-sys: reusing the identical llama.cpp build in {}",
            cmake_root.display()
        );
    }

    // 3. A build copy, only when the tree needs a patch for this machine.
    let mut patches = Vec::new();
    let src_dir = match &vulkan {
        Some(vk) if !vk.has_layer_settings => {
            if matches!(source.kind, SourceKind::Local) {
                return fail(format!(
                    "the Vulkan headers in {} lack VK_EXT_layer_settings, which this llama.cpp needs, \
                     and LLAMA_CPP_DIR trees are never patched: install Vulkan-Headers >= 1.3.261 \
                     (or the LunarG SDK and set VULKAN_SDK), or build the pinned tree instead",
                    vk.include_dir.display()
                ));
            }
            let copy = cmake_root.join("llama.cpp-patched");
            // Made once per build folder: a fresh copy would give every source a new mtime,
            // and make would then rebuild everything.
            let stamp = copy.join(".llama-sys-copy-of");
            let want = format!("{}\n{}\n", source.pin, source.dir.display());
            if fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
                make_build_copy(&source.dir, &copy)?;
                patch_vulkan_layer_settings(&copy)?;
                fs::write(&stamp, &want)
                    .or_else(|e| fail(format!("cannot write {}: {e}", stamp.display())))?;
            }
            patches.push("vulkan-layer-settings-guard");
            println!(
                "cargo:warning=llama-sys: the Vulkan headers in {} predate VK_EXT_layer_settings; \
                 building a copy of llama.cpp with the `vulkan-layer-settings-guard` patch \
                 (validation-layer settings are skipped; see llama-sys/README.md)",
                vk.include_dir.display()
            );
            copy
        }
        _ => source.dir.clone(),
    };

    // 4. CMake.
    let amx_fix = env_flag("LLAMA_SYS_AMX_FIX").unwrap_or(true)
        && target_arch == "x86_64"
        && cxx.is_gcc
        && !features.metal;
    let amx_header = cmake_root.join("amx-tilecfg-fix.h");
    if amx_fix {
        fs::copy(manifest_dir.join("amx-tilecfg-fix.h"), &amx_header).map_err(|e| Failure {
            line: format!(
                "cannot copy the AMX fix header into {}: {e}",
                cmake_root.display()
            ),
            details: String::new(),
        })?;
    }

    // A build directory configured from another source tree (after switching between the
    // cargo copy, vendor/ and LLAMA_CPP_DIR) makes CMake refuse to run: start it afresh.
    let build_dir = cmake_root.join("build");
    if let Ok(cache) = fs::read_to_string(build_dir.join("CMakeCache.txt")) {
        let configured = cache
            .lines()
            .find_map(|l| l.strip_prefix("CMAKE_HOME_DIRECTORY:INTERNAL="))
            .map(PathBuf::from);
        if configured.as_deref() != Some(src_dir.as_path()) {
            let _ = fs::remove_dir_all(&build_dir);
        }
    }

    let mut cfg = cmake::Config::new(&src_dir);
    cfg.out_dir(&cmake_root);
    let profile = env::var("LLAMA_SYS_PROFILE").unwrap_or_else(|_| "Release".into());
    cfg.profile(&profile)
        .no_default_flags(true)
        .define("CMAKE_POSITION_INDEPENDENT_CODE", "ON")
        .define("CMAKE_MESSAGE_LOG_LEVEL", "NOTICE")
        .define("CMAKE_RULE_MESSAGES", "OFF")
        .define("CMAKE_INSTALL_LIBDIR", "lib");
    let options = cmake_options(
        &features,
        &target_arch,
        &target_os,
        &cmake_root,
        cuda.as_ref().is_some_and(|c| c.no_vmm),
    );
    for (k, v) in &options {
        cfg.define(k, v);
    }
    if amx_fix {
        cfg.cxxflag(format!("-include {}", amx_header.display()));
    }
    if let Some(cuda) = &cuda {
        cfg.define("CMAKE_CUDA_COMPILER", &cuda.nvcc);
        cfg.define("CMAKE_CUDA_ARCHITECTURES", &cuda.archs);
        if let Some(root) = &cuda.root {
            cfg.define("CUDAToolkit_ROOT", root);
        }
    }
    if let Some(vk) = &vulkan {
        cfg.define("Vulkan_GLSLC_EXECUTABLE", &vk.glslc);
    }
    let launcher = if env_flag("LLAMA_SYS_NO_CCACHE").unwrap_or(false) {
        None
    } else {
        find_compiler_cache()
    };
    if let Some(l) = &launcher {
        cfg.define("CMAKE_C_COMPILER_LAUNCHER", l)
            .define("CMAKE_CXX_COMPILER_LAUNCHER", l);
        if features.cuda {
            cfg.define("CMAKE_CUDA_COMPILER_LAUNCHER", l);
        }
        // Paths under OUT_DIR differ between checkouts; make them relative in ccache's hash.
        if env::var_os("CCACHE_BASEDIR").is_none() {
            cfg.env("CCACHE_BASEDIR", &cmake_root);
        }
        cfg.env("CCACHE_NOHASHDIR", "1");
    }
    let extra_args = env::var("LLAMA_SYS_CMAKE_ARGS").unwrap_or_default();
    for arg in extra_args.split_whitespace() {
        cfg.configure_arg(arg);
    }

    report_unset_options(&src_dir, &options);

    let dry_run = env_flag("LLAMA_SYS_DRY_RUN").unwrap_or(false);
    let install_dir = if dry_run {
        // Configure only: used by `scripts/check-backend cuda` where a full CUDA build is too long.
        cfg.build_target("help");
        build_with_cmake(&mut cfg, &cmake_root)?;
        println!(
            "cargo:warning=llama-sys: LLAMA_SYS_DRY_RUN: configured in {}/build, nothing linked",
            cmake_root.display()
        );
        cmake_root.clone()
    } else {
        let dir = build_with_cmake(&mut cfg, &cmake_root)?;
        // Only a complete build is offered to other llama-sys builds.
        let _ = fs::write(cmake_root.join(KEY_FILE), &key);
        dir
    };

    // 5. Linking.
    let lib_dir = install_dir.join("lib");
    let link_args = if dry_run {
        Vec::new()
    } else {
        emit_link(
            &features,
            &lib_dir,
            &target_os,
            &target_env,
            &cxx,
            cuda.as_ref(),
        )?
    };

    // 6. Bindings.
    let bindings = out_dir.join("bindings.rs");
    let headers = [src_dir.join("include"), src_dir.join("ggml/include")];
    write_bindings(&manifest_dir, &headers, &features, &bindings)?;

    // 7. Metadata for dependents (DEP_LLAMA_*) and for this crate's code.
    let backends = features.backends().join(",");
    let backends_dir = install_dir.join("bin");
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
    println!("cargo:include={}", src_dir.join("include").display());
    println!(
        "cargo:ggml_include={}",
        src_dir.join("ggml/include").display()
    );
    println!("cargo:lib_dir={}", lib_dir.display());
    println!("cargo:src_dir={}", src_dir.display());
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
    println!("cargo:rustc-env=LLAMA_SYS_SRC_DIR={}", src_dir.display());
    println!("cargo:rustc-env=LLAMA_SYS_BACKENDS={backends}");
    println!("cargo:rustc-env=LLAMA_SYS_CPU={cpu}");
    println!(
        "cargo:rustc-env=LLAMA_SYS_AMX_FIX={}",
        if amx_fix { "on" } else { "off" }
    );
    println!("cargo:rustc-env=LLAMA_SYS_PATCHES={}", patches.join(","));
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
        src_dir.join("include").display(),
        src_dir.join("ggml/include").display()
    );
    if features.rpc {
        println!("cargo:rustc-cfg=llama_sys_rpc");
    }
    println!("cargo:rustc-check-cfg=cfg(llama_sys_rpc)");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sharing one CMake build between llama-sys builds

/// The configuration key of a complete CMake build, in the folder it was installed into.
const KEY_FILE: &str = "llama-sys-build.key";

/// Everything that decides what CMake builds, as text (kept readable, so that two builds that
/// do not share can be compared with diff): the hash of this script and its header, the
/// features, the target, the source tree and every environment variable the script reads.
fn config_key(manifest_dir: &Path, f: &Features, source: &Source, arch: &str) -> String {
    let mut h = Sha256::new();
    for file in ["build.rs", "amx-tilecfg-fix.h"] {
        h.update(fs::read(manifest_dir.join(file)).unwrap_or_default());
    }
    let mut key = format!(
        "script-sha256={}\nfeatures={f:?}\narch={arch}\nsource={} {}\n",
        hex(&h.finalize()),
        source.pin,
        source.dir.display()
    );
    for var in [
        "TARGET",
        "HOST",
        "CARGO_CFG_TARGET_FEATURE",
        "CFLAGS",
        "CXXFLAGS",
        "CUDAFLAGS",
        "CMAKE_GENERATOR",
        "CMAKE_TOOLCHAIN_FILE",
    ]
    .iter()
    .chain(TRACKED_ENV)
    {
        let value = env::var_os(var).unwrap_or_default();
        let _ = writeln!(key, "{var}={}", value.to_string_lossy());
    }
    key
}

/// Cargo gives llama-sys a new OUT_DIR whenever the dependency graph around it differs (a build
/// of the whole binary and one of llama-sys's tests can differ in a build dependency's feature),
/// even when llama.cpp's configuration is the same: a CUDA or Vulkan build would then be made
/// twice. This returns the OUT_DIR of a complete build with the same key in the same target
/// folder, if there is one, so that CMake builds (incrementally) in that folder instead. Cargo
/// runs one build at a time per target folder, so two scripts never build there at once.
fn shared_cmake_root(out_dir: &Path, key: &str) -> Option<PathBuf> {
    if env_flag("LLAMA_SYS_NO_SHARED_BUILD").unwrap_or(false) {
        return None;
    }
    // This folder's own complete build wins.
    if fs::read_to_string(out_dir.join(KEY_FILE)).ok().as_deref() == Some(key) {
        return None;
    }
    let builds = out_dir.parent()?.parent()?;
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(builds)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("llama-sys-"))
        .map(|e| e.path().join("out"))
        .filter(|o| o != out_dir && o.join("lib").is_dir())
        .filter_map(|o| {
            let k = o.join(KEY_FILE);
            let modified = fs::metadata(&k).and_then(|m| m.modified()).ok()?;
            (fs::read_to_string(&k).ok()? == key).then_some((modified, o))
        })
        .collect();
    // The newest match.
    found.sort();
    found.pop().map(|(_, o)| o)
}

// ---------------------------------------------------------------------------------------------
// Tools

fn tool_version(program: &Path, arg: &str) -> Option<String> {
    let out = Command::new(program).arg(arg).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// Finds an executable on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn check_cmake() -> Result<PathBuf> {
    let cmake = env_path("CMAKE").unwrap_or_else(|| PathBuf::from("cmake"));
    let Some(version) = tool_version(&cmake, "--version") else {
        return fail(format!(
            "`{}` not found: install CMake >= 3.14 (Debian/Ubuntu: apt-get install cmake; macOS: brew install cmake) \
             or set CMAKE=/path/to/cmake",
            cmake.display()
        ));
    };
    let version = version.lines().next().unwrap_or("").to_string();
    let numbers: Vec<u32> = version
        .split_whitespace()
        .last()
        .unwrap_or("")
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    if numbers.len() >= 2 && (numbers[0], numbers[1]) < (3, 14) {
        return fail(format!(
            "{version} is too old: llama.cpp needs CMake >= 3.14; install a newer cmake"
        ));
    }
    Ok(cmake)
}

struct Cxx {
    path: String,
    is_gcc: bool,
    is_clang: bool,
}

fn check_cxx(target_env: &str) -> Result<Cxx> {
    if target_env == "msvc" {
        return Ok(Cxx {
            path: "cl.exe".into(),
            is_gcc: false,
            is_clang: false,
        });
    }
    let candidates: Vec<PathBuf> = match env_path("CXX") {
        Some(c) => vec![c],
        None => ["c++", "g++", "clang++"]
            .iter()
            .filter_map(|n| which(n))
            .collect(),
    };
    for c in candidates {
        if let Some(v) = tool_version(&c, "--version") {
            let lower = v.to_lowercase();
            let is_clang = lower.contains("clang");
            let is_gcc = !is_clang && lower.contains("free software foundation");
            return Ok(Cxx {
                path: c.display().to_string(),
                is_gcc,
                is_clang,
            });
        }
    }
    fail(
        "no C++ compiler found: install one (Debian/Ubuntu: apt-get install g++; macOS: xcode-select --install) \
         or set CXX=/path/to/c++",
    )
}

struct Vulkan {
    glslc: PathBuf,
    include_dir: PathBuf,
    has_layer_settings: bool,
}

fn check_vulkan() -> Result<Vulkan> {
    let sdk = env_path("VULKAN_SDK");
    let glslc = sdk
        .as_ref()
        .map(|s| s.join("bin/glslc"))
        .filter(|p| p.is_file())
        .or_else(|| which("glslc"));
    let Some(glslc) = glslc else {
        return fail(
            "feature `vulkan` needs `glslc` (the GLSL to SPIR-V compiler): install it (Debian/Ubuntu: apt-get install glslc) \
             or the LunarG Vulkan SDK and set VULKAN_SDK",
        );
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(s) = &sdk {
        dirs.push(s.join("include"));
    }
    dirs.extend([
        PathBuf::from("/usr/include"),
        PathBuf::from("/usr/local/include"),
    ]);
    let Some(include_dir) = dirs
        .iter()
        .find(|d| d.join("vulkan/vulkan.hpp").is_file())
        .cloned()
    else {
        return fail(
            "feature `vulkan` needs the Vulkan headers and loader (vulkan/vulkan.hpp): install them \
             (Debian/Ubuntu: apt-get install libvulkan-dev) or the LunarG Vulkan SDK and set VULKAN_SDK",
        );
    };
    let spirv = dirs
        .iter()
        .any(|d| d.join("spirv/unified1/spirv.hpp").is_file())
        || [
            "/usr/share/cmake/SPIRV-Headers",
            "/usr/lib/cmake/SPIRV-Headers",
            "/usr/local/share/cmake/SPIRV-Headers",
        ]
        .iter()
        .any(|d| Path::new(d).is_dir());
    if !spirv {
        return fail(
            "feature `vulkan` needs SPIRV-Headers (spirv/unified1/spirv.hpp): install them \
             (Debian/Ubuntu: apt-get install spirv-headers) or the LunarG Vulkan SDK and set VULKAN_SDK",
        );
    }
    let core = fs::read_to_string(include_dir.join("vulkan/vulkan_core.h")).unwrap_or_default();
    let has_layer_settings = core.contains("VK_EXT_layer_settings");
    Ok(Vulkan {
        glslc,
        include_dir,
        has_layer_settings,
    })
}

struct Cuda {
    nvcc: PathBuf,
    root: Option<PathBuf>,
    archs: String,
    no_vmm: bool,
}

fn check_cuda() -> Result<Cuda> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(c) = env_path("CUDACXX") {
        candidates.push(c);
    }
    if let Some(p) = env_path("CUDA_PATH") {
        candidates.push(p.join("bin/nvcc"));
    }
    if let Some(p) = which("nvcc") {
        candidates.push(p);
    }
    candidates.push(PathBuf::from("/usr/local/cuda/bin/nvcc"));
    let Some(nvcc) = candidates
        .into_iter()
        .find(|p| tool_version(p, "--version").is_some())
    else {
        return fail(
            "feature `cuda` needs nvcc: install the CUDA toolkit and put nvcc on PATH, \
             or set CUDACXX=/path/to/nvcc (or CUDA_PATH to the toolkit root)",
        );
    };
    let root = nvcc.parent().and_then(Path::parent).map(Path::to_path_buf);
    let archs = env::var("LLAMA_CUDA_ARCHITECTURES")
        .or_else(|_| env::var("CUDAARCHS"))
        .unwrap_or_else(|_| CUDA_ARCHS_DEFAULT.to_string());
    validate_cuda_archs(&archs)?;
    let no_vmm = env_flag("LLAMA_CUDA_NO_VMM").unwrap_or(false);
    if let Some(root) = &root {
        check_cuda_libs(root, no_vmm)?;
    }
    Ok(Cuda {
        nvcc,
        root,
        archs,
        no_vmm,
    })
}

/// Toolkit folders that may hold the CUDA libraries, relative to the toolkit root.
const CUDA_LIB_SUBDIRS: &[&str] = &[
    "lib64",
    "lib",
    "targets/x86_64-linux/lib",
    "targets/sbsa-linux/lib",
    "lib/x64",
];

/// The toolkit folders under `root` that exist, then their `stubs/` folders.
fn cuda_lib_dirs(root: &Path) -> Vec<PathBuf> {
    let dirs: Vec<PathBuf> = CUDA_LIB_SUBDIRS
        .iter()
        .map(|s| root.join(s))
        .filter(|d| d.is_dir())
        .collect();
    let stubs = dirs.iter().map(|d| d.join("stubs")).filter(|d| d.is_dir());
    dirs.iter().cloned().chain(stubs).collect()
}

/// Checks, before the long build, that the linker will find the CUDA libraries by their plain
/// names: the PyPI wheels ship only versioned sonames (`libcudart.so.13`), and no `libcuda.so`
/// at all (the driver's library, linked only for ggml's VMM memory pool).
fn check_cuda_libs(root: &Path, no_vmm: bool) -> Result<()> {
    let dirs = cuda_lib_dirs(root);
    for lib in ["cudart", "cublas", "cublasLt"] {
        let plain = format!("lib{lib}.so");
        if dirs.iter().any(|d| d.join(&plain).exists()) {
            continue;
        }
        let versioned = dirs.iter().find_map(|d| {
            fs::read_dir(d).ok()?.flatten().find_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&format!("{plain}.")).then(|| d.join(n))
            })
        });
        if let Some(v) = versioned {
            return fail(format!(
                "the CUDA toolkit at {} has {} but no {plain}, which CMake and the linker look for \
                 (the PyPI wheels ship versioned names only): create the link \
                 (ln -s {} {}) or use scripts/check-backend cuda, which does",
                root.display(),
                v.display(),
                v.file_name().unwrap_or_default().to_string_lossy(),
                v.with_file_name(&plain).display()
            ));
        }
    }
    if !no_vmm {
        let mut search = dirs;
        search.extend(
            [
                "/usr/lib/x86_64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/usr/lib64",
                "/usr/lib",
                "/usr/local/cuda/lib64/stubs",
            ]
            .iter()
            .map(PathBuf::from),
        );
        if let Some(lp) = env::var_os("LIBRARY_PATH") {
            search.extend(env::split_paths(&lp));
        }
        if !search.iter().any(|d| d.join("libcuda.so").exists()) {
            return fail(format!(
                "feature `cuda` links libcuda.so (the NVIDIA driver's library, for ggml's VMM memory pool), but none \
                 is found in the toolkit at {} (lib64/stubs) or the system: set LLAMA_CUDA_NO_VMM=1 (ggml then \
                 needs no libcuda at link time; the PyPI toolkit wheels ship none), or install the driver or the \
                 toolkit's stubs",
                root.display()
            ));
        }
    }
    Ok(())
}

/// Accepts `native`, `all`, `all-major`, or a `;`/`,`-separated list of compute capabilities
/// with an optional `a`/`f` suffix and `-real`/`-virtual`.
fn validate_cuda_archs(archs: &str) -> Result<()> {
    let archs = archs.trim();
    if matches!(archs, "native" | "all" | "all-major") {
        return Ok(());
    }
    for a in archs
        .split([';', ','])
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let base = a.trim_end_matches("-real").trim_end_matches("-virtual");
        let num = base.trim_end_matches(['a', 'f']);
        if !CUDA_ARCHS.contains(&num) {
            return fail(format!(
                "unknown CUDA architecture `{a}` in LLAMA_CUDA_ARCHITECTURES=\"{archs}\": use compute capabilities \
                 such as \"80;86;89\" (known: {}), optionally with -real/-virtual, or native/all/all-major",
                CUDA_ARCHS.join(", ")
            ));
        }
    }
    Ok(())
}

fn find_compiler_cache() -> Option<PathBuf> {
    ["sccache", "ccache"].iter().find_map(|n| which(n))
}

// ---------------------------------------------------------------------------------------------
// Source

fn resolve_source(vendor: &Path) -> Result<Source> {
    if let Some(dir) = env_path("LLAMA_CPP_DIR") {
        let dir = dir.canonicalize().or_else(|e| {
            fail(format!("LLAMA_CPP_DIR={} does not exist ({e}): point it at a llama.cpp checkout, or unset it to use the pinned tree", dir.display()))
        })?;
        for f in [
            "CMakeLists.txt",
            "include/llama.h",
            "ggml/include/ggml.h",
            "ggml/CMakeLists.txt",
        ] {
            if !dir.join(f).is_file() {
                return fail(format!(
                    "LLAMA_CPP_DIR={} is not a llama.cpp source tree (no {f}): point it at the root of a llama.cpp \
                     checkout (the folder with CMakeLists.txt, include/ and ggml/), or unset it",
                    dir.display()
                ));
            }
        }
        let pin = format!("local {}", dir.display());
        return Ok(Source {
            kind: SourceKind::Local,
            dir,
            pin,
        });
    }

    let (want_sum, pin) = read_pin_sum(vendor)?;
    let vendored = vendor.join("llama.cpp");
    let (kind, dir) = if vendored.join("include/llama.h").is_file() {
        (SourceKind::Vendored, vendored)
    } else {
        let (crate_pin, dir) = locate_pinned_crate(vendor)?;
        if crate_pin != pin {
            return fail(format!(
                "vendor/llama.cpp.sha256 is for `{pin}` but vendor/pin/Cargo.toml pins `{crate_pin}`: \
                 run scripts/vendor-llama-cpp --update"
            ));
        }
        (SourceKind::CargoPin, dir)
    };
    let got = tree_sha256(&dir).map_err(|e| Failure {
        line: format!("cannot read the llama.cpp tree at {}: {e}", dir.display()),
        details: String::new(),
    })?;
    if got != want_sum {
        let fix = match kind {
            SourceKind::Vendored => {
                "run scripts/vendor-llama-cpp to materialise it again".to_string()
            }
            _ => format!(
                "delete {} and build again so that cargo downloads it afresh",
                dir.parent().unwrap_or(&dir).display()
            ),
        };
        return fail(format!(
            "checksum mismatch: the llama.cpp tree at {} hashes to {got}, but vendor/llama.cpp.sha256 pins {want_sum}; \
             the tree is corrupted or modified: {fix}",
            dir.display()
        ));
    }
    Ok(Source { kind, dir, pin })
}

/// Reads `vendor/llama.cpp.sha256`: `<sha256>  <crate> <version>`.
fn read_pin_sum(vendor: &Path) -> Result<(String, String)> {
    let path = vendor.join("llama.cpp.sha256");
    let text = fs::read_to_string(&path).or_else(|e| {
        fail(format!(
            "cannot read {} ({e}): the checkout is incomplete; restore it with git",
            path.display()
        ))
    })?;
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(sum), Some(name), Some(version)) if sum.len() == 64 => {
            Ok((sum.to_string(), format!("{name} {version}")))
        }
        _ => fail(format!(
            "{} is malformed: run scripts/vendor-llama-cpp --update",
            path.display()
        )),
    }
}

/// Asks cargo where the pinned crate is, downloading it if needed, and returns
/// (`name version`, path of its `llama.cpp/` folder).
fn locate_pinned_crate(vendor: &Path) -> Result<(String, PathBuf)> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = vendor.join("pin/Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--manifest-path",
    ])
    .arg(&manifest);
    if env_flag("CARGO_NET_OFFLINE").unwrap_or(false) {
        cmd.arg("--offline");
    }
    // Do not let the outer build's target dir or flags leak into the nested cargo.
    cmd.env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let out = cmd.output().or_else(|e| {
        fail(format!(
            "cannot run cargo to resolve the llama.cpp pin: {e}"
        ))
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return fail_with(
            "cargo could not fetch the pinned llama.cpp tree (see above): check the network (it downloads the pinned \
             crate once), run scripts/vendor-llama-cpp, or set LLAMA_CPP_DIR to a local llama.cpp checkout",
            tail(&stderr, 20),
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).or_else(|e| {
        fail(format!(
            "cargo metadata printed something that is not JSON: {e}"
        ))
    })?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let dep_name = packages
        .iter()
        .find(|p| p["name"] == "llama-cpp-pin")
        .and_then(|p| p["dependencies"][0]["name"].as_str())
        .map(str::to_string);
    let found = dep_name.and_then(|d| packages.iter().find(|p| p["name"] == d.as_str()));
    let Some(pkg) = found else {
        return fail("vendor/pin/Cargo.toml names no carrier crate: restore it with git");
    };
    let manifest_path = PathBuf::from(pkg["manifest_path"].as_str().unwrap_or_default());
    let dir = manifest_path
        .parent()
        .map(|p| p.join("llama.cpp"))
        .unwrap_or_default();
    let pin = format!(
        "{} {}",
        pkg["name"].as_str().unwrap_or("?"),
        pkg["version"].as_str().unwrap_or("?")
    );
    if !dir.join("include/llama.h").is_file() {
        return fail(format!(
            "the pinned crate {pin} has no llama.cpp/ tree at {}",
            dir.display()
        ));
    }
    Ok((pin, dir))
}

/// sha256 over a tree, equal to
/// `find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum` run inside it.
fn tree_sha256(root: &Path) -> std::io::Result<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ty = entry.file_type()?;
            let rel = format!("{rel}/{name}");
            if ty.is_dir() {
                walk(&entry.path(), &rel, out)?;
            } else if ty.is_file() {
                out.push((rel, entry.path()));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(root, ".", &mut files)?;
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut manifest = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for (rel, path) in files {
        let mut h = Sha256::new();
        let mut f = fs::File::open(&path)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        manifest.update(format!("{}  {rel}\n", hex(&h.finalize())).as_bytes());
    }
    Ok(hex(&manifest.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn make_build_copy(from: &Path, to: &Path) -> Result<()> {
    fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            let dest = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_dir(&entry.path(), &dest)?;
            } else {
                fs::copy(entry.path(), &dest)?;
            }
        }
        Ok(())
    }
    let tmp = to.with_extension("tmp");
    let _ = fs::remove_dir_all(&tmp);
    copy_dir(from, &tmp)
        .and_then(|_| {
            let _ = fs::remove_dir_all(to);
            fs::rename(&tmp, to)
        })
        .or_else(|e| {
            fail(format!(
                "cannot make a build copy of llama.cpp in {}: {e}",
                to.display()
            ))
        })
}

/// Guards the use of `VK_EXT_layer_settings` types in ggml-vulkan.cpp with
/// `#ifdef VK_EXT_layer_settings`, for Vulkan headers older than 1.3.261 (Debian 12 has 1.3.239).
/// With older headers the instance is created without validation-layer settings; nothing else
/// changes. Applied only to a build copy of the pinned tree.
fn patch_vulkan_layer_settings(tree: &Path) -> Result<()> {
    let path = tree.join("ggml/src/ggml-vulkan/ggml-vulkan.cpp");
    let text = fs::read_to_string(&path)
        .or_else(|e| fail(format!("cannot read {} to patch it: {e}", path.display())))?;
    let start = "    std::vector<vk::LayerSettingEXT> settings = {";
    let end_marker = "vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions, &layer_setting_info);";
    let (Some(s), Some(e)) = (text.find(start), text.find(end_marker)) else {
        return fail(
            "the vulkan-layer-settings-guard patch does not apply to this llama.cpp tree: \
             install Vulkan-Headers >= 1.3.261 (or the LunarG SDK and set VULKAN_SDK) instead",
        );
    };
    let e = e + end_marker.len();
    let original = &text[s..e];
    let replacement = format!(
        "#ifdef VK_EXT_layer_settings /* ollamars: guard for Vulkan headers < 1.3.261 */\n{original}\n#else\n    \
         (void) enable_best_practice;\n    \
         vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{{}}, &app_info, layers, extensions);\n#endif"
    );
    let patched = format!("{}{}{}", &text[..s], replacement, &text[e..]);
    fs::write(&path, patched).or_else(|e| fail(format!("cannot write {}: {e}", path.display())))
}

// ---------------------------------------------------------------------------------------------
// CMake

/// Every GGML_* and LLAMA_* option this build decides, each set explicitly.
fn cmake_options(
    f: &Features,
    arch: &str,
    os: &str,
    out_dir: &Path,
    cuda_no_vmm: bool,
) -> Vec<(String, String)> {
    let on = |b: bool| if b { "ON" } else { "OFF" }.to_string();
    let mut o: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| o.push((k.to_string(), v));

    // What is built.
    set("BUILD_SHARED_LIBS", on(f.dynamic));
    for k in [
        "LLAMA_BUILD_TESTS",
        "LLAMA_BUILD_EXAMPLES",
        "LLAMA_BUILD_TOOLS",
        "LLAMA_BUILD_SERVER",
        "LLAMA_BUILD_APP",
        "LLAMA_BUILD_COMMON",
        "LLAMA_BUILD_MTMD",
        "LLAMA_BUILD_UI",
        "LLAMA_BUILD_HTML",
        "LLAMA_USE_PREBUILT_UI",
        "LLAMA_OPENSSL",
        "LLAMA_LLGUIDANCE",
        "LLAMA_USE_SYSTEM_GGML",
        "LLAMA_TESTS_INSTALL",
        "LLAMA_TOOLS_INSTALL",
        "LLAMA_SUBPROCESS",
        "LLAMA_BUILD_IS_DEV",
        "LLAMA_ALL_WARNINGS",
        "LLAMA_ALL_WARNINGS_3RD_PARTY",
        "LLAMA_FATAL_WARNINGS",
        "LLAMA_SANITIZE_THREAD",
        "LLAMA_SANITIZE_ADDRESS",
        "LLAMA_SANITIZE_UNDEFINED",
        "LLAMA_WASM_MEM64",
        "LLAMA_WASM_SINGLE_FILE",
        "GGML_BUILD_TESTS",
        "GGML_BUILD_EXAMPLES",
        "GGML_ALL_WARNINGS",
        "GGML_ALL_WARNINGS_3RD_PARTY",
        "GGML_FATAL_WARNINGS",
        "GGML_GPROF",
        "GGML_SANITIZE_THREAD",
        "GGML_SANITIZE_ADDRESS",
        "GGML_SANITIZE_UNDEFINED",
        "GGML_LTO",
        "GGML_STATIC",
        "GGML_WASM_SINGLE_FILE",
        // ccache is wired by this script (CMAKE_*_COMPILER_LAUNCHER), not by ggml.
        "GGML_CCACHE",
    ] {
        set(k, on(false));
    }

    // CPU.
    let native = !f.portable && !f.dynamic;
    let feats: BTreeSet<String> = env::var("CARGO_CFG_TARGET_FEATURE")
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect();
    let has = |t: &str| !native && !f.dynamic && feats.contains(t);
    set("GGML_CPU", on(true));
    set("GGML_NATIVE", on(native));
    set("GGML_CPU_ALL_VARIANTS", on(f.dynamic));
    set("GGML_BACKEND_DL", on(f.dynamic));
    if f.dynamic {
        set(
            "GGML_BACKEND_DIR",
            out_dir.join("bin").display().to_string(),
        );
    }
    set("GGML_CPU_REPACK", on(true));
    set("GGML_CPU_HBM", on(false));
    set("GGML_CPU_KLEIDIAI", on(false));
    set("GGML_LLAMAFILE", on(true));
    set("GGML_OPENMP", on(f.openmp));
    set("GGML_OPENMP_FETCH", on(false));
    set("GGML_SCHED_NO_REALLOC", on(false));
    for (opt, feat) in [
        ("GGML_SSE42", "sse4.2"),
        ("GGML_AVX", "avx"),
        ("GGML_AVX2", "avx2"),
        ("GGML_FMA", "fma"),
        ("GGML_F16C", "f16c"),
        ("GGML_BMI2", "bmi2"),
        ("GGML_AVX_VNNI", "avxvnni"),
        ("GGML_AVX512", "avx512f"),
        ("GGML_AVX512_VBMI", "avx512vbmi"),
        ("GGML_AVX512_VNNI", "avx512vnni"),
        ("GGML_AVX512_BF16", "avx512bf16"),
        ("GGML_AMX_TILE", "amx-tile"),
        ("GGML_AMX_INT8", "amx-int8"),
        ("GGML_AMX_BF16", "amx-bf16"),
    ] {
        set(opt, on(arch == "x86_64" && has(feat)));
    }
    // Other architectures' switches: off unless native detection turns them on by itself.
    for k in [
        "GGML_LASX",
        "GGML_LSX",
        "GGML_RVV",
        "GGML_RV_ZFH",
        "GGML_RV_ZVFH",
        "GGML_RV_ZICBOP",
        "GGML_RV_ZIHINTPAUSE",
        "GGML_RV_ZVFBFWMA",
        "GGML_XTHEADVECTOR",
        "GGML_VXE",
    ] {
        set(
            k,
            on(native && matches!(arch, "loongarch64" | "riscv64" | "s390x")),
        );
    }

    // BLAS and Apple.
    let apple = matches!(os, "macos" | "ios" | "tvos" | "visionos");
    set("GGML_BLAS", on(false));
    set("GGML_ACCELERATE", on(apple));

    // GPU and other backends.
    set("GGML_CUDA", on(f.cuda));
    set("GGML_CUDA_NCCL", on(false));
    set("GGML_CUDA_NO_VMM", on(cuda_no_vmm));
    set("GGML_CUDA_FA", on(true));
    set("GGML_CUDA_FA_ALL_QUANTS", on(false));
    set("GGML_CUDA_GRAPHS", on(f.cuda));
    set("GGML_CUDA_FORCE_MMQ", on(false));
    set("GGML_CUDA_FORCE_CUBLAS", on(false));
    set("GGML_CUDA_NO_PEER_COPY", on(false));
    set("GGML_METAL", on(f.metal));
    set("GGML_METAL_EMBED_LIBRARY", on(f.metal));
    set("GGML_METAL_NDEBUG", on(f.metal));
    set("GGML_METAL_SHADER_DEBUG", on(false));
    set("GGML_VULKAN", on(f.vulkan));
    for k in [
        "GGML_VULKAN_CHECK_RESULTS",
        "GGML_VULKAN_DEBUG",
        "GGML_VULKAN_MEMORY_DEBUG",
        "GGML_VULKAN_SHADER_DEBUG_INFO",
        "GGML_VULKAN_VALIDATE",
        "GGML_VULKAN_RUN_TESTS",
    ] {
        set(k, on(false));
    }
    set("GGML_RPC", on(f.rpc));
    for k in [
        "GGML_HIP",
        "GGML_HIP_GRAPHS",
        "GGML_HIP_NO_VMM",
        "GGML_HIP_RCCL",
        "GGML_HIP_MMQ_MFMA",
        "GGML_HIP_EXPORT_METRICS",
        "GGML_MUSA",
        "GGML_MUSA_GRAPHS",
        "GGML_MUSA_MUDNN_COPY",
        "GGML_SYCL",
        "GGML_SYCL_F16",
        "GGML_SYCL_GRAPH",
        "GGML_SYCL_DNN",
        "GGML_SYCL_HOST_MEM_FALLBACK",
        "GGML_SYCL_SUPPORT_LEVEL_ZERO_API",
        "GGML_OPENCL",
        "GGML_OPENCL_PROFILING",
        "GGML_OPENCL_EMBED_KERNELS",
        "GGML_OPENCL_USE_ADRENO_KERNELS",
        "GGML_WEBGPU",
        "GGML_WEBGPU_DEBUG",
        "GGML_WEBGPU_CPU_PROFILE",
        "GGML_WEBGPU_GPU_PROFILE",
        "GGML_WEBGPU_JSPI",
        "GGML_ZDNN",
        "GGML_ZENDNN",
        "GGML_OPENVINO",
        "GGML_HEXAGON",
        "GGML_VIRTGPU",
        "GGML_VIRTGPU_BACKEND",
        "GGML_ET",
        "GGML_ET_SYSEMU",
    ] {
        set(k, on(false));
    }
    o
}

/// Warns about GGML_/LLAMA_ options of the tree that this script does not set (a newer
/// LLAMA_CPP_DIR, for example), so that a new default never slips in unnoticed.
fn report_unset_options(src: &Path, options: &[(String, String)]) {
    let known: BTreeSet<&str> = options.iter().map(|(k, _)| k.as_str()).collect();
    let mut unset = BTreeSet::new();
    for file in ["CMakeLists.txt", "ggml/CMakeLists.txt"] {
        let text = fs::read_to_string(src.join(file)).unwrap_or_default();
        for line in text.lines() {
            let line = line.trim_start();
            if let Some(rest) = line.strip_prefix("option(") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if (name.starts_with("GGML_") || name.starts_with("LLAMA_"))
                    && !known.contains(name.as_str())
                {
                    unset.insert(name);
                }
            }
        }
    }
    if !unset.is_empty() {
        println!(
            "cargo:warning=llama-sys: this llama.cpp has options llama-sys does not set, left at their defaults: {}",
            unset.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
}

/// Runs the cmake crate; on failure, one clear line plus the tail of CMake's logs.
fn build_with_cmake(cfg: &mut cmake::Config, out_dir: &Path) -> Result<PathBuf> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cfg.build()));
    match result {
        Ok(dir) => Ok(dir),
        Err(_) => {
            let build = out_dir.join("build");
            let mut details = String::new();
            for log in [
                "CMakeFiles/CMakeConfigureLog.yaml",
                "CMakeFiles/CMakeError.log",
            ] {
                if let Ok(text) = fs::read_to_string(build.join(log)) {
                    let _ = writeln!(
                        details,
                        "--- tail of {}:\n{}",
                        build.join(log).display(),
                        tail(&text, 30)
                    );
                }
            }
            let configured = build.join("CMakeCache.txt").is_file()
                && build.join("Makefile").is_file()
                || build.join("build.ninja").is_file();
            let stage = if configured {
                "compiling llama.cpp"
            } else {
                "configuring llama.cpp with CMake"
            };
            fail_with(
                format!(
                    "{stage} failed (the compiler or CMake error is in the output above; build dir {}): \
                     fix that error, or run `cargo clean -p llama-sys` after changing toolchains",
                    build.display()
                ),
                details,
            )
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Linking

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

fn emit_link(
    f: &Features,
    lib_dir: &Path,
    os: &str,
    target_env: &str,
    cxx: &Cxx,
    cuda: Option<&Cuda>,
) -> Result<Vec<String>> {
    let mut link = LinkLine::default();
    link.search(lib_dir);
    let kind = if f.dynamic { "dylib" } else { "static" };
    // Libraries present, in link order: llama, ggml, the backends, ggml-base last.
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
            (stem.starts_with("ggml") || stem == "llama").then(|| stem.to_string())
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rank = |n: &str| match n {
        "llama" => 0,
        "ggml" => 1,
        "ggml-base" => 3,
        _ => 2,
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
            let dirs = cuda_lib_dirs(root);
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

// ---------------------------------------------------------------------------------------------
// Bindings

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
    h.update(format!("rpc={} build.rs={}", f.rpc, env!("CARGO_PKG_VERSION")).as_bytes());
    hex(&h.finalize())
}

fn write_bindings(
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
