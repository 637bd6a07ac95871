//! Step 1: the tools, checked before anything long runs: cmake, the C++ compiler, an Apple
//! target for Metal, glslc + the Vulkan headers + SPIRV-Headers for Vulkan, nvcc + its libraries
//! + the CUDA architectures for CUDA, and the compiler cache used as CMake's launcher.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Features, Result, Target, env_flag, env_path, fail};

/// The tools that the later steps use.
pub struct Tools {
    pub cxx: Cxx,
    pub vulkan: Option<Vulkan>,
    pub cuda: Option<Cuda>,
}

/// Checks every tool the features need, in this order: cmake, the C++ compiler, the Apple
/// target of `metal`, the Vulkan tools of `vulkan`, the CUDA toolkit of `cuda`.
pub fn check(features: &Features, target: &Target) -> Result<Tools> {
    check_cmake()?;
    let cxx = check_cxx(&target.env)?;
    if features.metal && !target.apple() {
        return fail(format!(
            "feature `metal` needs an Apple target, but the target OS is `{}`: \
             build without `--features metal` (use `vulkan` or `cuda` for GPUs here)",
            target.os
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
    Ok(Tools { cxx, vulkan, cuda })
}

/// CUDA architectures nvcc knows (compute capabilities), for validating the chosen architectures.
const CUDA_ARCHS: &[&str] = &[
    "50", "52", "53", "60", "61", "62", "70", "72", "75", "80", "86", "87", "88", "89", "90",
    "100", "101", "103", "110", "120", "121",
];

/// Default CUDA architectures: Turing to Hopper, what a CUDA 12/13 toolkit builds quickly (used
/// when neither `LLAMA_CUDA_ARCHITECTURES` nor `CUDAARCHS` is set; see [`cuda_archs`]).
const CUDA_ARCHS_DEFAULT: &str = "75;80;86;89;90";

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

/// The C++ compiler CMake will pick (`CXX`, else the first of c++, g++, clang++ on PATH).
pub struct Cxx {
    pub path: String,
    pub is_gcc: bool,
    pub is_clang: bool,
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

/// The Vulkan tools and headers; old headers lack `VK_EXT_layer_settings` (see the build copy).
pub struct Vulkan {
    pub glslc: PathBuf,
    pub include_dir: PathBuf,
    pub has_layer_settings: bool,
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

/// The CUDA toolkit, the architectures to build for and whether ggml's VMM pool is off.
pub struct Cuda {
    pub nvcc: PathBuf,
    pub root: Option<PathBuf>,
    pub archs: String,
    pub no_vmm: bool,
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
    let (archs, from) = cuda_archs();
    validate_cuda_archs(&archs, from)?;
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

/// The CUDA architectures to build for, and the variable they came from. The first of these
/// that is set wins (set to the empty string counts as set):
///
/// 1. `LLAMA_CUDA_ARCHITECTURES`, llama-sys's own variable;
/// 2. `CUDAARCHS`, CMake's own: CMake initialises `CMAKE_CUDA_ARCHITECTURES` from it when that
///    is unset, but this script always sets `CMAKE_CUDA_ARCHITECTURES`, so it reads `CUDAARCHS`
///    in CMake's place, with the same meaning;
/// 3. [`CUDA_ARCHS_DEFAULT`].
///
/// The value is validated ([`validate_cuda_archs`]) and passed to CMake as
/// `CMAKE_CUDA_ARCHITECTURES`. A `-DCMAKE_CUDA_ARCHITECTURES=…` in `LLAMA_SYS_CMAKE_ARGS` comes
/// after it on CMake's command line, so it overrides all three, unvalidated. All three
/// variables are in `TRACKED_ENV`: a change reruns the script and changes the configuration key.
fn cuda_archs() -> (String, &'static str) {
    for var in ["LLAMA_CUDA_ARCHITECTURES", "CUDAARCHS"] {
        if let Ok(archs) = env::var(var) {
            return (archs, var);
        }
    }
    (CUDA_ARCHS_DEFAULT.to_string(), "the default")
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
pub fn cuda_lib_dirs(root: &Path) -> Vec<PathBuf> {
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
/// with an optional `a`/`f` suffix and `-real`/`-virtual`. `var` names where `archs` came from.
fn validate_cuda_archs(archs: &str, var: &str) -> Result<()> {
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
                "unknown CUDA architecture `{a}` in {var}=\"{archs}\": use compute capabilities \
                 such as \"80;86;89\" (known: {}), optionally with -real/-virtual, or native/all/all-major",
                CUDA_ARCHS.join(", ")
            ));
        }
    }
    Ok(())
}

/// sccache or ccache, whichever is on PATH first in that order, as CMake's compiler launcher.
pub fn find_compiler_cache() -> Option<PathBuf> {
    ["sccache", "ccache"].iter().find_map(|n| which(n))
}
