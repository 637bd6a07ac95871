//! Backend initialisation, devices and backend modules.

mod modules;

use std::path::Path;

pub(crate) use modules::ensure_modules_loaded;
pub use modules::{
    LoadReport, LoadedModule, ModuleDevice, ModuleOptions, ModuleOutcome, ModuleReport, SkipReason,
    cpu_flags, cpu_variant_needs, cpu_variant_of, default_module_dirs, find_module_dir,
    load_module, load_modules, loaded_modules, missing_for_variant, module_files, module_name,
};

use crate::ffi;

/// A reference to llama.cpp's global backend state.
///
/// Initialisation is idempotent and reference-counted: the first `Backend` initialises
/// llama.cpp (and routes its logs into `tracing`), the last one dropped frees it. Every
/// [`Model`](crate::Model) holds one, so users rarely need their own; creating one twice is
/// never an error.
#[derive(Debug)]
pub struct Backend(());

impl Backend {
    /// Initialises llama.cpp if this is the first reference.
    pub fn init() -> Backend {
        ffi::backend_acquire();
        Backend(())
    }
}

impl Clone for Backend {
    fn clone(&self) -> Backend {
        Backend::init()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        ffi::backend_release();
    }
}

/// What kind of device a ggml device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceKind {
    /// The CPU backend.
    Cpu,
    /// A discrete or integrated GPU.
    Gpu,
    /// An integrated GPU sharing host memory.
    IntegratedGpu,
    /// An accelerator used alongside the CPU (e.g. BLAS, AMX).
    Accelerator,
    /// Something newer than this crate.
    Other(u32),
}

impl DeviceKind {
    pub(crate) fn from_raw(kind: u32) -> DeviceKind {
        match kind {
            llama_sys::GGML_BACKEND_DEVICE_TYPE_CPU => DeviceKind::Cpu,
            llama_sys::GGML_BACKEND_DEVICE_TYPE_GPU => DeviceKind::Gpu,
            llama_sys::GGML_BACKEND_DEVICE_TYPE_IGPU => DeviceKind::IntegratedGpu,
            llama_sys::GGML_BACKEND_DEVICE_TYPE_ACCEL => DeviceKind::Accelerator,
            other => DeviceKind::Other(other),
        }
    }
}

/// A device that ggml can run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// ggml's name, e.g. `CPU`, `CUDA0`, `Vulkan0`.
    pub name: String,
    /// A human description, e.g. the GPU's model.
    pub description: String,
    /// The kind of device.
    pub kind: DeviceKind,
    /// Free memory in bytes, as the device reports it.
    pub memory_free: usize,
    /// Total memory in bytes.
    pub memory_total: usize,
}

/// Every device ggml knows, GPUs first in ggml's order.
pub fn devices() -> Vec<Device> {
    let _backend = Backend::init();
    ffi::devices()
        .into_iter()
        .map(|d| Device {
            kind: DeviceKind::from_raw(d.kind),
            name: d.name,
            description: d.description,
            memory_free: d.memory_free,
            memory_total: d.memory_total,
        })
        .collect()
}

/// GPU backends and the prefix of their ggml device names.
const GPU_BACKENDS: &[(&str, &str, &[&str])] = &[
    ("cuda", "CUDA", &["CUDA"]),
    ("vulkan", "Vulkan", &["Vulkan"]),
    ("metal", "Metal", &["Metal", "MTL"]),
];

/// When this build has a GPU backend but ggml found no device of any of them (a CUDA build on a
/// machine without an NVIDIA GPU or driver): one line saying so, e.g. `built with CUDA but no
/// CUDA device found`, followed by the backend's own error in parentheses when it logged one
/// (`ggml_cuda_init: failed to initialize CUDA: ...`; that log line itself goes to `debug`).
/// `None` when a GPU device exists or no GPU backend is compiled in. Models then run on the CPU.
pub fn missing_gpu() -> Option<String> {
    let compiled: Vec<&(&str, &str, &[&str])> = GPU_BACKENDS
        .iter()
        .filter(|(b, _, _)| llama_sys::build_info::has_backend(b))
        .collect();
    if compiled.is_empty() {
        return None;
    }
    let devices = devices();
    let found = compiled.iter().any(|(_, _, prefixes)| {
        devices
            .iter()
            .any(|d| prefixes.iter().any(|p| d.name.starts_with(p)))
    });
    if found {
        return None;
    }
    let names: Vec<&str> = compiled.iter().map(|(_, n, _)| *n).collect();
    let names = names.join(" and ");
    let mut why = format!("built with {names} but no {names} device found");
    if let Some(e) = ffi::gpu_init_error() {
        why.push_str(&format!(" ({e})"));
    }
    Some(why)
}

/// Loads every ggml backend module (`libggml-*.so`) in `dir` through ggml's own loader
/// (`ggml_backend_load_all_from_path`, which reports nothing): for builds with feature
/// `dynamic-backends`, before the first model is loaded. Returns how many devices exist after.
/// [`load_modules`] does the same and says what became of each file.
///
/// # Errors
/// When `dir` is not a directory or its path cannot be passed to C.
pub fn load_backends(dir: &Path) -> std::io::Result<usize> {
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let c = dir
        .to_str()
        .and_then(|s| std::ffi::CString::new(s).ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "path is not UTF-8 or contains NUL",
            )
        })?;
    ffi::install_log_router();
    ffi::load_backends_from(&c);
    Ok(ffi::devices().len())
}

/// llama.cpp's system information line (CPU features, backends).
pub fn system_info() -> String {
    let _backend = Backend::init();
    ffi::system_info()
}
