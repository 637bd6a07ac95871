//! ggml backend modules, for builds with feature `dynamic-backends`: every backend is a shared
//! library (`libggml-cpu-zen4.so`, `libggml-vulkan.so`, …) loaded at run time, and the CPU
//! backend comes in one module per x86 instruction-set level.
//!
//! [`load_modules`] scans one folder itself rather than leaving it to ggml, so that it can say
//! what became of every file: the CPU variant with the highest `ggml_backend_score()` is loaded
//! (or the one asked for), every other backend module is loaded if this system supports it, and
//! each skipped file gets a [`SkipReason`]. The result stays available through
//! [`loaded_modules`] for version lines and logs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::DeviceKind;
use crate::error::BackendError;
use crate::ffi;

/// How [`load_modules`] chooses the CPU module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleOptions {
    /// Load this CPU variant (`zen4`, `haswell`, `x64`, …: the part after `libggml-cpu-`)
    /// instead of the best one this CPU supports. It is an error when that module is absent or
    /// this CPU cannot run it.
    pub cpu_variant: Option<String>,
}

/// One device of a loaded backend module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleDevice {
    /// ggml's device name (`CPU`, `Vulkan0`).
    pub name: String,
    /// The device's description (the CPU or GPU model).
    pub description: String,
    /// What kind of device it is.
    pub kind: DeviceKind,
}

/// A backend module registered with ggml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModule {
    /// The module file.
    pub path: PathBuf,
    /// ggml's registry name of the backend (`CPU`, `Vulkan`, `CUDA`, `RPC`).
    pub backend: String,
    /// For a CPU module, its variant (`zen4`); `None` for other backends.
    pub cpu_variant: Option<String>,
    /// The module's `ggml_backend_score()`, when it has one.
    pub score: Option<i32>,
    /// The devices it brought.
    pub devices: Vec<ModuleDevice>,
}

impl LoadedModule {
    /// Whether any of its devices is a GPU (discrete or integrated).
    pub fn has_gpu(&self) -> bool {
        self.devices
            .iter()
            .any(|d| matches!(d.kind, DeviceKind::Gpu | DeviceKind::IntegratedGpu))
    }
}

/// Why a module file was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The dynamic loader refused the file (not a shared library, another architecture, a
    /// missing dependency such as a GPU driver); the loader's message.
    CannotOpen(String),
    /// A shared library, but not a ggml backend module.
    NotABackend,
    /// A CPU module without `ggml_backend_score`, so it cannot be ranked.
    NoScore,
    /// The module says this system cannot run it (score 0). For CPU variants, the instruction
    /// sets this CPU lacks (empty when they are not known).
    Unsupported {
        /// Instruction sets the module needs that this CPU lacks, e.g. `AVX512_BF16`.
        missing: Vec<String>,
    },
    /// Another CPU variant ranks higher on this CPU and was loaded.
    Outranked {
        /// The variant loaded instead.
        chosen: String,
    },
    /// A specific CPU variant was asked for ([`ModuleOptions::cpu_variant`]).
    NotRequested {
        /// The variant asked for.
        requested: String,
    },
    /// ggml refused to register it (incompatible API version, failed initialisation); its log
    /// (target `llama_cpp`) says which.
    Refused,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::CannotOpen(m) => write!(f, "cannot be opened: {m}"),
            SkipReason::NotABackend => {
                write!(f, "not a ggml backend module (no ggml_backend_init)")
            }
            SkipReason::NoScore => write!(f, "a CPU module without ggml_backend_score"),
            SkipReason::Unsupported { missing } if missing.is_empty() => {
                write!(f, "not supported on this system")
            }
            SkipReason::Unsupported { missing } => write!(
                f,
                "not supported by this CPU, which lacks {}",
                missing.join(", ")
            ),
            SkipReason::Outranked { chosen } => {
                write!(f, "CPU variant {chosen} ranks higher on this CPU")
            }
            SkipReason::NotRequested { requested } => {
                write!(f, "CPU variant {requested} was asked for")
            }
            SkipReason::Refused => write!(
                f,
                "ggml refused to register it (see the llama_cpp log lines before this one)"
            ),
        }
    }
}

/// What became of one module file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleOutcome {
    /// Registered with ggml.
    Loaded(LoadedModule),
    /// Not loaded, and why.
    Skipped(SkipReason),
}

/// One module file of the folder and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleReport {
    /// The file.
    pub path: PathBuf,
    /// The module's name from its file name: `cpu-zen4`, `vulkan`.
    pub name: String,
    /// Loaded or skipped.
    pub outcome: ModuleOutcome,
}

impl fmt::Display for ModuleReport {
    /// `cpu-zen4: loaded (CPU, score 2015)` or `cpu-sapphirerapids: skipped: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            ModuleOutcome::Loaded(m) => {
                write!(f, "{}: loaded ({}", self.name, m.backend)?;
                if let Some(s) = m.score {
                    write!(f, ", score {s}")?;
                }
                match m.devices.len() {
                    0 => write!(f, ", no devices")?,
                    1 => {}
                    n => write!(f, ", {n} devices")?,
                }
                write!(f, ") from {}", self.path.display())
            }
            ModuleOutcome::Skipped(r) => {
                write!(f, "{}: skipped {}: {r}", self.name, self.path.display())
            }
        }
    }
}

/// Every module file of one folder and what became of it ([`load_modules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The folder the modules came from.
    pub dir: PathBuf,
    /// Every `libggml-*` module file there, in file-name order.
    pub modules: Vec<ModuleReport>,
}

impl LoadReport {
    /// The loaded modules.
    pub fn loaded(&self) -> impl Iterator<Item = &LoadedModule> {
        self.modules.iter().filter_map(|m| match &m.outcome {
            ModuleOutcome::Loaded(l) => Some(l),
            ModuleOutcome::Skipped(_) => None,
        })
    }

    /// The CPU variant loaded (`zen4`).
    pub fn cpu_variant(&self) -> Option<&str> {
        self.loaded().find_map(|m| m.cpu_variant.as_deref())
    }

    /// Module names (`vulkan`, `cuda`) of the loaded backends that brought a GPU.
    pub fn gpu_backends(&self) -> Vec<&str> {
        self.named_loaded(|m| m.cpu_variant.is_none() && m.has_gpu())
    }

    /// Module names of the loaded non-CPU backends without a GPU (`rpc`, `blas`, or a GPU
    /// backend that found no device).
    pub fn other_backends(&self) -> Vec<&str> {
        self.named_loaded(|m| m.cpu_variant.is_none() && !m.has_gpu())
    }

    fn named_loaded(&self, keep: impl Fn(&LoadedModule) -> bool) -> Vec<&str> {
        self.modules
            .iter()
            .filter(|r| matches!(&r.outcome, ModuleOutcome::Loaded(m) if keep(m)))
            .map(|r| r.name.as_str())
            .collect()
    }
}

/// File-name prefix and suffix of ggml backend modules on this platform.
fn module_affixes() -> (String, &'static str) {
    (
        format!("{}ggml-", std::env::consts::DLL_PREFIX),
        std::env::consts::DLL_SUFFIX,
    )
}

/// The module name of a file (`libggml-cpu-zen4.so` → `cpu-zen4`), or `None` when the file is
/// not a backend module (`libggml-base.so`, `libggml.so`, `libllama.so`, versioned names).
pub fn module_name(file_name: &str) -> Option<&str> {
    let (prefix, suffix) = module_affixes();
    let name = file_name.strip_prefix(&prefix)?.strip_suffix(suffix)?;
    (!name.is_empty() && name != "base").then_some(name)
}

/// The CPU variant of a module name (`cpu-zen4` → `zen4`; a single `cpu` module → `default`).
pub fn cpu_variant_of(module: &str) -> Option<&str> {
    match module {
        "cpu" => Some("default"),
        m => m.strip_prefix("cpu-"),
    }
}

/// The backend module files in `dir`, in file-name order.
///
/// # Errors
/// When `dir` cannot be read.
pub fn module_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .filter(|e| e.file_name().to_str().and_then(module_name).is_some())
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// The first folder of `candidates` that holds at least one backend module.
pub fn find_module_dir(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates
        .iter()
        .find(|d| module_files(d).is_ok_and(|f| !f.is_empty()))
        .cloned()
}

/// Where modules are looked for when the application does not say: the executable's folder,
/// then the folder the build put them in (`llama_sys::build_info::BACKENDS_DIR`).
pub fn default_module_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(dir);
    }
    if let Some(d) = llama_sys::build_info::BACKENDS_DIR {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

// ---------------------------------------------------------------------------------------------
// CPU instruction sets

/// The instruction sets (as `/proc/cpuinfo` names them, space-separated) each x86-64 CPU
/// variant of ggml is built for, from ggml's CMake variant list. `x64` is baseline x86-64.
const X86_VARIANTS: &[(&str, &str)] = &[
    ("x64", ""),
    ("sse42", "sse4_2"),
    ("sandybridge", "sse4_2 avx"),
    ("ivybridge", "sse4_2 avx f16c"),
    ("piledriver", "sse4_2 avx f16c fma"),
    ("haswell", "sse4_2 avx f16c fma avx2 bmi2"),
    (
        "skylakex",
        "sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd avx512vl avx512dq avx512bw",
    ),
    (
        "cannonlake",
        "sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi",
    ),
    (
        "cascadelake",
        "sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512_vnni",
    ),
    (
        "icelake",
        "sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni",
    ),
    (
        "cooperlake",
        "sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512_vnni avx512_bf16",
    ),
    (
        "zen4",
        "sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16",
    ),
    ("alderlake", "sse4_2 avx f16c fma avx2 bmi2 avx_vnni"),
    (
        "sapphirerapids",
        "sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16 amx_tile amx_int8",
    ),
];

/// The instruction sets an x86-64 CPU variant needs (`/proc/cpuinfo` names), when known.
pub fn cpu_variant_needs(variant: &str) -> Option<Vec<&'static str>> {
    X86_VARIANTS
        .iter()
        .find(|(v, _)| *v == variant)
        .map(|(_, needs)| needs.split_whitespace().collect())
}

/// This CPU's feature flags as `/proc/cpuinfo` lists them (empty where that file is absent).
pub fn cpu_flags() -> Vec<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("flags"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, f)| f.split_whitespace().map(str::to_string).collect())
        })
        .unwrap_or_default()
}

/// The instruction sets `variant` needs that a CPU with `flags` lacks, as users know them
/// (`SSE4.2`, `AVX512_BF16`); empty when the variant or the flags are unknown.
pub fn missing_for_variant(variant: &str, flags: &[String]) -> Vec<String> {
    let Some(needs) = cpu_variant_needs(variant) else {
        return Vec::new();
    };
    if flags.is_empty() {
        return Vec::new();
    }
    needs
        .iter()
        .filter(|n| !flags.iter().any(|f| f == *n))
        .map(|n| match *n {
            "sse4_2" => "SSE4.2".to_string(),
            n => n.to_ascii_uppercase(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Choosing and loading

/// A module file after probing: its name, and its score or why it cannot be used.
#[derive(Debug, Clone)]
struct Probed {
    path: PathBuf,
    name: String,
    /// `Ok(score)` for a usable module (`None`: no score function), else why not.
    state: Result<Option<i32>, SkipReason>,
}

fn probe(path: &Path, flags: &[String]) -> Probed {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(module_name)
        .unwrap_or("?")
        .to_string();
    let variant = cpu_variant_of(&name);
    let state = match ffi::probe_module(path) {
        ffi::ModuleProbe::CannotOpen(m) => {
            // dlerror names the file first; the report names it already.
            let m = m
                .strip_prefix(&format!("{}: ", path.display()))
                .map_or(m.clone(), str::to_string);
            Err(SkipReason::CannotOpen(m))
        }
        ffi::ModuleProbe::NoInit => Err(SkipReason::NotABackend),
        ffi::ModuleProbe::Module { score: None } if variant.is_some() => Err(SkipReason::NoScore),
        ffi::ModuleProbe::Module { score: Some(0) } => Err(SkipReason::Unsupported {
            missing: variant.map_or_else(Vec::new, |v| missing_for_variant(v, flags)),
        }),
        ffi::ModuleProbe::Module { score } => Ok(score),
    };
    Probed {
        path: path.to_path_buf(),
        name,
        state,
    }
}

/// The CPU modules to try, best first, or the error when there is none: the pure part of
/// [`load_modules`].
fn rank_cpu(
    dir: &Path,
    probed: &[Probed],
    opts: &ModuleOptions,
    flags: &[String],
) -> Result<Vec<usize>, BackendError> {
    let cpu: Vec<usize> = (0..probed.len())
        .filter(|&i| cpu_variant_of(&probed[i].name).is_some())
        .collect();
    if let Some(want) = &opts.cpu_variant {
        let Some(&i) = cpu
            .iter()
            .find(|&&i| cpu_variant_of(&probed[i].name) == Some(want.as_str()))
        else {
            return Err(BackendError::VariantAbsent {
                variant: want.clone(),
                dir: dir.to_path_buf(),
                available: cpu
                    .iter()
                    .filter_map(|&i| cpu_variant_of(&probed[i].name).map(str::to_string))
                    .collect(),
            });
        };
        return match &probed[i].state {
            Ok(_) => Ok(vec![i]),
            Err(reason) => Err(BackendError::VariantUnusable {
                variant: want.clone(),
                reason: reason.clone(),
            }),
        };
    }
    let mut usable: Vec<usize> = cpu
        .iter()
        .copied()
        .filter(|&i| probed[i].state.is_ok())
        .collect();
    // Highest score first; ties in file-name order.
    usable.sort_by_key(|&i| std::cmp::Reverse(probed[i].state.clone().ok().flatten()));
    if usable.is_empty() {
        return Err(no_cpu_error(dir, probed, &cpu, flags));
    }
    Ok(usable)
}

fn no_cpu_error(dir: &Path, probed: &[Probed], cpu: &[usize], flags: &[String]) -> BackendError {
    if cpu.is_empty() {
        return BackendError::NoCpuModule {
            dir: dir.to_path_buf(),
            detail: "there is no libggml-cpu module there".to_string(),
        };
    }
    // The variant that needs the least, among those this CPU cannot run: what it lacks is
    // what this CPU is missing to run any of them.
    let lowest = cpu
        .iter()
        .filter_map(|&i| {
            let v = cpu_variant_of(&probed[i].name)?;
            let needs = cpu_variant_needs(v)?;
            matches!(probed[i].state, Err(SkipReason::Unsupported { .. })).then_some((needs, v))
        })
        .min_by_key(|(needs, _)| needs.len());
    let detail = match lowest {
        Some((_, v)) if !missing_for_variant(v, flags).is_empty() => format!(
            "this CPU lacks {}, which {v}, the lowest CPU variant there, needs",
            missing_for_variant(v, flags).join(", ")
        ),
        _ => cpu
            .iter()
            .map(|&i| {
                let reason = match &probed[i].state {
                    Err(r) => r.to_string(),
                    Ok(_) => "refused".to_string(),
                };
                format!("{}: {reason}", probed[i].name)
            })
            .collect::<Vec<_>>()
            .join("; "),
    };
    BackendError::NoCpuModule {
        dir: dir.to_path_buf(),
        detail,
    }
}

fn register(path: &Path, score: Option<i32>, variant: Option<&str>) -> Option<LoadedModule> {
    let c = path_cstring(path).ok()?;
    let reg = ffi::register_module(&c)?;
    Some(LoadedModule {
        path: path.to_path_buf(),
        backend: reg.name,
        cpu_variant: variant.map(str::to_string),
        score,
        devices: reg
            .devices
            .into_iter()
            .map(|(name, description, kind)| ModuleDevice {
                name,
                description,
                kind: DeviceKind::from_raw(kind),
            })
            .collect(),
    })
}

fn path_cstring(path: &Path) -> Result<std::ffi::CString, BackendError> {
    path.to_str()
        .and_then(|s| std::ffi::CString::new(s).ok())
        .ok_or_else(|| BackendError::BadPath(path.to_path_buf()))
}

enum State {
    NotLoaded,
    Loaded(&'static LoadReport),
    Failed,
}

static STATE: Mutex<State> = Mutex::new(State::NotLoaded);

/// Loads the backend modules of `dir`: the best CPU variant for this CPU (or
/// [`ModuleOptions::cpu_variant`]) and every other backend this system supports. Call it once,
/// before the first model or [`Backend`](super::Backend); without it, the first `Backend`
/// loads from [`default_module_dirs`].
///
/// Modules that cannot be used are skipped and reported, not errors: the call fails only when
/// no CPU module can be loaded, or the variant asked for is absent or unusable.
///
/// # Errors
/// [`BackendError`]: not a `dynamic-backends` build, modules already loaded, `dir` unreadable,
/// no usable CPU module (with the instruction sets this CPU lacks), or the requested variant
/// absent or unsupported.
pub fn load_modules(dir: &Path, opts: &ModuleOptions) -> Result<&'static LoadReport, BackendError> {
    if !cfg!(feature = "dynamic-backends") {
        return Err(BackendError::NotDynamic);
    }
    ffi::install_log_router();
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if !matches!(*state, State::NotLoaded) {
        return Err(BackendError::AlreadyLoaded);
    }
    let result = load_now(dir, opts);
    *state = match &result {
        Ok(r) => State::Loaded(r),
        Err(_) => State::Failed,
    };
    result
}

fn load_now(dir: &Path, opts: &ModuleOptions) -> Result<&'static LoadReport, BackendError> {
    let files = module_files(dir).map_err(|e| BackendError::Io {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let flags = cpu_flags();
    let probed: Vec<Probed> = files.iter().map(|p| probe(p, &flags)).collect();
    let order = rank_cpu(dir, &probed, opts, &flags)?;

    let mut outcomes: Vec<Option<ModuleOutcome>> = vec![None; probed.len()];
    // Other backends first, so that GPUs come first in ggml's device list.
    for (i, p) in probed.iter().enumerate() {
        if cpu_variant_of(&p.name).is_some() {
            continue;
        }
        outcomes[i] = Some(match &p.state {
            Err(r) => ModuleOutcome::Skipped(r.clone()),
            Ok(score) => register(&p.path, *score, None).map_or(
                ModuleOutcome::Skipped(SkipReason::Refused),
                ModuleOutcome::Loaded,
            ),
        });
    }
    let mut chosen: Option<String> = None;
    for &i in &order {
        let p = &probed[i];
        let variant = cpu_variant_of(&p.name);
        if chosen.is_some() {
            break;
        }
        outcomes[i] = Some(
            match register(&p.path, p.state.clone().ok().flatten(), variant) {
                Some(m) => {
                    chosen = variant.map(str::to_string);
                    ModuleOutcome::Loaded(m)
                }
                None => ModuleOutcome::Skipped(SkipReason::Refused),
            },
        );
    }
    let Some(chosen) = chosen else {
        return Err(BackendError::NoCpuModule {
            dir: dir.to_path_buf(),
            detail: "ggml refused every CPU module this CPU supports (see the llama_cpp log)"
                .to_string(),
        });
    };
    let modules = probed
        .into_iter()
        .zip(outcomes)
        .map(|(p, outcome)| {
            let outcome = outcome.unwrap_or_else(|| {
                ModuleOutcome::Skipped(match p.state {
                    Err(r) => r,
                    Ok(_) => match &opts.cpu_variant {
                        Some(v) => SkipReason::NotRequested {
                            requested: v.clone(),
                        },
                        None => SkipReason::Outranked {
                            chosen: chosen.clone(),
                        },
                    },
                })
            });
            ModuleReport {
                path: p.path,
                name: p.name,
                outcome,
            }
        })
        .collect();
    Ok(Box::leak(Box::new(LoadReport {
        dir: dir.to_path_buf(),
        modules,
    })))
}

/// What [`load_modules`] (or the default load of the first [`Backend`](super::Backend))
/// loaded; `None` before that, after a failed load, and in builds without `dynamic-backends`.
pub fn loaded_modules() -> Option<&'static LoadReport> {
    match *STATE.lock().unwrap_or_else(|e| e.into_inner()) {
        State::Loaded(r) => Some(r),
        _ => None,
    }
}

/// Loads one module file and registers it with ggml, whatever its kind. For a CPU module this
/// adds a CPU backend: use it only in processes that load no other.
///
/// # Errors
/// [`BackendError::Module`] with why the file cannot be used, or [`BackendError::NotDynamic`].
pub fn load_module(path: &Path) -> Result<LoadedModule, BackendError> {
    if !cfg!(feature = "dynamic-backends") {
        return Err(BackendError::NotDynamic);
    }
    ffi::install_log_router();
    let p = probe(path, &cpu_flags());
    let module_err = |reason| BackendError::Module {
        path: path.to_path_buf(),
        reason,
    };
    let score = p.state.map_err(module_err)?;
    register(path, score, cpu_variant_of(&p.name)).ok_or(module_err(SkipReason::Refused))
}

/// The first `Backend` of a `dynamic-backends` build: load from the default folders unless the
/// application did. Called with the backend count's lock held, so it never takes that lock.
pub(crate) fn ensure_modules_loaded() {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if !matches!(*state, State::NotLoaded) {
        return;
    }
    let dirs = default_module_dirs();
    let Some(dir) = find_module_dir(&dirs) else {
        tracing::error!(
            "no ggml backend modules in {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        *state = State::Failed;
        return;
    };
    match load_now(&dir, &ModuleOptions::default()) {
        Ok(r) => {
            for m in &r.modules {
                tracing::debug!("backend module {m}");
            }
            *state = State::Loaded(r);
        }
        Err(e) => {
            tracing::error!("{e}");
            *state = State::Failed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probed(name: &str, state: Result<Option<i32>, SkipReason>) -> Probed {
        Probed {
            path: PathBuf::from(format!("/m/libggml-{name}.so")),
            name: name.to_string(),
            state,
        }
    }

    fn flags(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn module_names() {
        if cfg!(target_os = "linux") {
            assert_eq!(module_name("libggml-cpu-zen4.so"), Some("cpu-zen4"));
            assert_eq!(module_name("libggml-vulkan.so"), Some("vulkan"));
            assert_eq!(module_name("libggml-base.so"), None);
            assert_eq!(module_name("libggml.so"), None);
            assert_eq!(module_name("libggml-base.so.0"), None);
            assert_eq!(module_name("libllama.so"), None);
        }
        assert_eq!(cpu_variant_of("cpu-haswell"), Some("haswell"));
        assert_eq!(cpu_variant_of("vulkan"), None);
    }

    #[test]
    fn every_variant_needs_what_its_base_needs() {
        let needs = |v| cpu_variant_needs(v).unwrap();
        assert!(needs("x64").is_empty());
        for v in [
            "zen4",
            "icelake",
            "cooperlake",
            "sapphirerapids",
            "cannonlake",
        ] {
            assert!(
                needs("skylakex").iter().all(|n| needs(v).contains(n)),
                "{v}"
            );
        }
        assert!(needs("sapphirerapids").contains(&"amx_int8"));
        assert!(needs("alderlake").contains(&"avx_vnni"));
    }

    #[test]
    fn missing_instruction_sets() {
        let zen4_cpu = flags(
            "fpu sse4_2 avx f16c fma avx2 bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16",
        );
        assert!(missing_for_variant("zen4", &zen4_cpu).is_empty());
        assert_eq!(
            missing_for_variant("sapphirerapids", &zen4_cpu),
            ["AMX_TILE", "AMX_INT8"]
        );
        assert_eq!(missing_for_variant("sse42", &flags("fpu sse2")), ["SSE4.2"]);
        assert!(missing_for_variant("bogus", &zen4_cpu).is_empty());
    }

    #[test]
    fn best_score_wins_and_forced_variant() {
        let dir = Path::new("/m");
        let p = vec![
            probed("cpu-haswell", Ok(Some(63))),
            probed(
                "cpu-sapphirerapids",
                Err(SkipReason::Unsupported { missing: vec![] }),
            ),
            probed("cpu-x64", Ok(Some(1))),
            probed("cpu-zen4", Ok(Some(2015))),
            probed("vulkan", Ok(None)),
        ];
        let none = ModuleOptions::default();
        assert_eq!(rank_cpu(dir, &p, &none, &[]).unwrap(), [3, 0, 2]);
        let force = |v: &str| ModuleOptions {
            cpu_variant: Some(v.to_string()),
        };
        assert_eq!(rank_cpu(dir, &p, &force("x64"), &[]).unwrap(), [2]);
        let e = rank_cpu(dir, &p, &force("icelake"), &[]).unwrap_err();
        assert!(
            e.to_string().contains("icelake")
                && e.to_string().contains("haswell, sapphirerapids, x64, zen4"),
            "{e}"
        );
        let e = rank_cpu(dir, &p, &force("sapphirerapids"), &[]).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn no_cpu_module_names_the_missing_instruction_set() {
        let dir = Path::new("/m");
        let old_cpu = flags("fpu sse2");
        let p = vec![
            probed(
                "cpu-haswell",
                Err(SkipReason::Unsupported {
                    missing: missing_for_variant("haswell", &old_cpu),
                }),
            ),
            probed(
                "cpu-sse42",
                Err(SkipReason::Unsupported {
                    missing: missing_for_variant("sse42", &old_cpu),
                }),
            ),
            probed(
                "cpu-bogus",
                Err(SkipReason::CannotOpen("invalid ELF header".into())),
            ),
        ];
        let e = rank_cpu(dir, &p, &ModuleOptions::default(), &old_cpu).unwrap_err();
        assert!(e.to_string().contains("lacks SSE4.2, which sse42"), "{e}");
        let e = rank_cpu(dir, &p[2..], &ModuleOptions::default(), &old_cpu).unwrap_err();
        assert!(e.to_string().contains("invalid ELF header"), "{e}");
        let e = rank_cpu(dir, &[], &ModuleOptions::default(), &old_cpu).unwrap_err();
        assert!(e.to_string().contains("no libggml-cpu module"), "{e}");
    }
}
