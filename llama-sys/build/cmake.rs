//! Step 4: the CMake configuration and build, and the sharing of one complete build between
//! the OUT_DIRs cargo hands out for the same configuration (the configuration key).

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::source::Source;
use crate::tools::{self, Tools};
use crate::{Failure, Features, Result, Script, TRACKED_ENV, env_flag, fail_with, hex, tail};

/// The configuration key of a complete CMake build, in the folder it was installed into.
const KEY_FILE: &str = "llama-sys-build.key";

/// Everything that decides what CMake builds, as text (kept readable, so that two builds that
/// do not share can be compared with diff): the hash of this script (every file of `build/`)
/// and its header, the
/// features, the target, the source tree and every environment variable the script reads.
pub fn config_key(script: &Script, source: &Source) -> String {
    let (f, arch) = (&script.features, &script.target.arch);
    let mut h = Sha256::new();
    let amx_header = script.manifest_dir.join("amx-tilecfg-fix.h");
    for file in script.sources.iter().chain([&amx_header]) {
        h.update(fs::read(file).unwrap_or_default());
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

/// The folder CMake builds and installs into: this OUT_DIR, or that of another llama-sys build in
/// the same target folder with the same configuration `key` (see [`shared_cmake_root`]). Writes
/// this build's key to `OUT_DIR/llama-sys-config.txt` first, for comparing two builds that do
/// not share.
pub fn build_root(out_dir: &Path, key: &str) -> PathBuf {
    let _ = fs::write(out_dir.join("llama-sys-config.txt"), key);
    let cmake_root = shared_cmake_root(out_dir, key).unwrap_or_else(|| out_dir.to_path_buf());
    if cmake_root != out_dir {
        println!(
            "cargo:warning=llama-sys: reusing the identical llama.cpp build in {}",
            cmake_root.display()
        );
    }
    cmake_root
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

/// What step 4 made.
pub struct Built {
    /// The install prefix: `lib/` holds the libraries, `bin/` the backend modules.
    pub install_dir: PathBuf,
    /// Whether `amx-tilecfg-fix.h` was force-included into the C++ sources.
    pub amx_fix: bool,
    /// `LLAMA_SYS_DRY_RUN`: configured only, nothing to link.
    pub dry_run: bool,
}

/// Step 4: configures and builds `src_dir` with CMake in `cmake_root` (every `GGML_*`/`LLAMA_*`
/// option explicit, the AMX fix header for GCC on x86-64, ccache/sccache as launcher) and, after
/// a complete build, writes the configuration `key` there for other llama-sys builds.
pub fn build(
    script: &Script,
    tools: &Tools,
    src_dir: &Path,
    cmake_root: &Path,
    key: &str,
) -> Result<Built> {
    let (features, target, cxx) = (&script.features, &script.target, &tools.cxx);
    let amx_fix = env_flag("LLAMA_SYS_AMX_FIX").unwrap_or(true)
        && target.arch == "x86_64"
        && cxx.is_gcc
        && !features.metal;
    let amx_header = cmake_root.join("amx-tilecfg-fix.h");
    if amx_fix {
        fs::copy(script.manifest_dir.join("amx-tilecfg-fix.h"), &amx_header).map_err(|e| {
            Failure {
                line: format!(
                    "cannot copy the AMX fix header into {}: {e}",
                    cmake_root.display()
                ),
                details: String::new(),
            }
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
        if configured.as_deref() != Some(src_dir) {
            let _ = fs::remove_dir_all(&build_dir);
        }
    }

    let mut cfg = ::cmake::Config::new(src_dir);
    cfg.out_dir(cmake_root);
    let profile = env::var("LLAMA_SYS_PROFILE").unwrap_or_else(|_| "Release".into());
    cfg.profile(&profile)
        .no_default_flags(true)
        .define("CMAKE_POSITION_INDEPENDENT_CODE", "ON")
        .define("CMAKE_MESSAGE_LOG_LEVEL", "NOTICE")
        .define("CMAKE_RULE_MESSAGES", "OFF")
        .define("CMAKE_INSTALL_LIBDIR", "lib");
    let options = cmake_options(
        features,
        &target.arch,
        &target.os,
        cmake_root,
        tools.cuda.as_ref().is_some_and(|c| c.no_vmm),
    );
    for (k, v) in &options {
        cfg.define(k, v);
    }
    if amx_fix {
        cfg.cxxflag(format!("-include {}", amx_header.display()));
    }
    if let Some(cuda) = &tools.cuda {
        cfg.define("CMAKE_CUDA_COMPILER", &cuda.nvcc);
        cfg.define("CMAKE_CUDA_ARCHITECTURES", &cuda.archs);
        if let Some(root) = &cuda.root {
            cfg.define("CUDAToolkit_ROOT", root);
        }
    }
    if let Some(vk) = &tools.vulkan {
        cfg.define("Vulkan_GLSLC_EXECUTABLE", &vk.glslc);
    }
    let launcher = if env_flag("LLAMA_SYS_NO_CCACHE").unwrap_or(false) {
        None
    } else {
        tools::find_compiler_cache()
    };
    if let Some(l) = &launcher {
        cfg.define("CMAKE_C_COMPILER_LAUNCHER", l)
            .define("CMAKE_CXX_COMPILER_LAUNCHER", l);
        if features.cuda {
            cfg.define("CMAKE_CUDA_COMPILER_LAUNCHER", l);
        }
        // Paths under OUT_DIR differ between checkouts; make them relative in ccache's hash.
        if env::var_os("CCACHE_BASEDIR").is_none() {
            cfg.env("CCACHE_BASEDIR", cmake_root);
        }
        cfg.env("CCACHE_NOHASHDIR", "1");
    }
    let extra_args = env::var("LLAMA_SYS_CMAKE_ARGS").unwrap_or_default();
    for arg in extra_args.split_whitespace() {
        cfg.configure_arg(arg);
    }

    report_unset_options(src_dir, &options);

    let dry_run = env_flag("LLAMA_SYS_DRY_RUN").unwrap_or(false);
    let install_dir = if dry_run {
        // Configure only: used by `scripts/check-backend cuda` where a full CUDA build is too long.
        cfg.build_target("help");
        build_with_cmake(&mut cfg, cmake_root)?;
        println!(
            "cargo:warning=llama-sys: LLAMA_SYS_DRY_RUN: configured in {}/build, nothing linked",
            cmake_root.display()
        );
        cmake_root.to_path_buf()
    } else {
        let dir = build_with_cmake(&mut cfg, cmake_root)?;
        if features.mtmd && !features.dynamic {
            install_mtmd_vendor_libs(cmake_root, &dir)?;
        }
        // Only a complete build is offered to other llama-sys builds.
        let _ = fs::write(cmake_root.join(KEY_FILE), key);
        dir
    };
    Ok(Built {
        install_dir,
        amx_fix,
        dry_run,
    })
}

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

    // The multimodal library alone (tools/mtmd without the tools; video needs subprocesses,
    // which stay off).
    set("LLAMA_BUILD_MTMD", on(f.mtmd));

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

/// A static libmtmd needs the static helper libraries of `vendor/` it links privately (only
/// `vendor-hash` is compiled; the others are header-only). mtmd's install rule does not install
/// them, so they are copied beside the other libraries for step 5.
fn install_mtmd_vendor_libs(cmake_root: &Path, install_dir: &Path) -> Result<()> {
    let lib_dir = install_dir.join("lib");
    let file = "libvendor-hash.a";
    let from = cmake_root.join("build/vendor/hash").join(file);
    fs::copy(&from, lib_dir.join(file)).map_err(|e| Failure {
        line: format!(
            "the mtmd build made no {} ({e}): run `cargo clean -p llama-sys` and build again",
            from.display()
        ),
        details: String::new(),
    })?;
    Ok(())
}

/// Runs the cmake crate; on failure, one clear line plus the tail of CMake's logs.
fn build_with_cmake(cfg: &mut ::cmake::Config, out_dir: &Path) -> Result<PathBuf> {
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
