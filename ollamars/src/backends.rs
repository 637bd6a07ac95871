//! The ggml backend modules of this binary (builds with feature `dynamic-backends`): where they
//! are looked for, which CPU variant is loaded, and the lines that say so.
//!
//! A packaged ollamars is `bin/ollamars` next to `lib/ollamars/`, which holds libllama, libggml,
//! libggml-base and one module per backend and CPU variant. The binary finds the libraries
//! through its rpath (`$ORIGIN/../lib/ollamars`) and the modules here: the first folder of
//! [`module_dirs`] that holds any. `OLLAMARS_CPU_VARIANT` forces one CPU variant.

use std::path::{Path, PathBuf};

use llama::backend::{LoadReport, ModuleOptions, ModuleOutcome, SkipReason};

/// The environment variable that forces one CPU variant (`zen4`, `haswell`, `x64`, …).
pub const CPU_VARIANT_VAR: &str = crate::config::vars::OLLAMARS_CPU_VARIANT.name;

/// The folder of a packaged tree that holds the libraries and modules, relative to the
/// executable's folder.
pub const LIB_DIR: &str = "../lib/ollamars";

/// Where backend modules are looked for, in order: `<exe dir>/../lib/ollamars` (an installed or
/// unpacked release), the executable's folder, then the folder the build put them in (a
/// development build run from `target/`).
pub fn module_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(normalise(&exe_dir.join(LIB_DIR)));
    }
    // The executable's folder, then the build's module folder.
    dirs.extend(llama::backend::default_module_dirs());
    dirs
}

/// `a/bin/../lib/ollamars` → `a/lib/ollamars`, for readable log lines (the executable's path is
/// already free of symlinks).
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The loaded modules: `Some` for `dynamic-backends` builds, `None` for builds whose backends
/// are linked in.
#[derive(Debug, Clone, Copy)]
pub struct Backends {
    /// What was loaded and skipped, for `dynamic-backends` builds.
    pub report: Option<&'static LoadReport>,
}

/// Loads the backend modules once for this process (a no-op for static builds, and on every
/// call after the first, which returns the first call's result), with CPU variant
/// `cpu_variant` (`OLLAMARS_CPU_VARIANT`, [`crate::config::Config::cpu_variant`]) if given,
/// else the best one this CPU can run.
///
/// # Errors
/// A message for the user: no module folder, no CPU module this CPU can run (naming what it
/// lacks), or `OLLAMARS_CPU_VARIANT` naming a variant that is absent or unsupported.
pub fn init(cpu_variant: Option<&str>) -> Result<Backends, String> {
    static ONCE: std::sync::OnceLock<Result<Backends, String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| load(cpu_variant.map(str::to_string)))
        .clone()
}

fn load(forced: Option<String>) -> Result<Backends, String> {
    if !llama::build_info().cpu.contains("variants") {
        if let Some(v) = forced {
            tracing::warn!(
                "{CPU_VARIANT_VAR}={v} is ignored: this build has one CPU backend, linked in"
            );
        }
        return Ok(Backends { report: None });
    }
    let dirs = module_dirs();
    let Some(dir) = llama::backend::find_module_dir(&dirs) else {
        return Err(format!(
            "no ggml backend modules (libggml-cpu-*.so) found in {}: the installation is incomplete, unpack the release again",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let opts = ModuleOptions {
        cpu_variant: forced.clone(),
    };
    match llama::backend::load_modules(&dir, &opts) {
        Ok(report) => Ok(Backends {
            report: Some(report),
        }),
        Err(e) if forced.is_some() => Err(format!("{CPU_VARIANT_VAR}: {e}")),
        Err(e) => Err(e.to_string()),
    }
}

impl Backends {
    /// `cpu variant zen4; gpu backends: none` (or `cpu native; gpu backends: vulkan` for a
    /// static build, from the backends compiled in).
    pub fn summary(&self) -> String {
        match self.report {
            Some(r) => {
                let gpus = r.gpu_backends();
                let mut s = format!(
                    "cpu variant {}; gpu backends: {}",
                    r.cpu_variant().unwrap_or("none"),
                    if gpus.is_empty() {
                        "none".to_string()
                    } else {
                        gpus.join(", ")
                    }
                );
                let other = r.other_backends();
                if !other.is_empty() {
                    s.push_str(&format!("; other backends: {}", other.join(", ")));
                }
                s
            }
            None => {
                let info = llama::build_info();
                let gpus: Vec<&str> = info
                    .backends
                    .split(',')
                    .filter(|b| !b.is_empty() && *b != "cpu")
                    .collect();
                format!(
                    "cpu {}; gpu backends: {}",
                    info.cpu,
                    if gpus.is_empty() {
                        "none".to_string()
                    } else {
                        gpus.join(", ")
                    }
                )
            }
        }
    }

    /// One line per module file (`loaded`, or `skipped` with the reason), then one per module
    /// the build made (`built`, comma-separated names) that is not in the folder. Empty for
    /// static builds.
    pub fn module_lines(&self, built: &str) -> Vec<(bool, String)> {
        let Some(r) = self.report else {
            return Vec::new();
        };
        let mut lines: Vec<(bool, String)> = r
            .modules
            .iter()
            .map(|m| {
                let unexpected = matches!(
                    &m.outcome,
                    ModuleOutcome::Skipped(
                        SkipReason::CannotOpen(_)
                            | SkipReason::NotABackend
                            | SkipReason::NoScore
                            | SkipReason::Refused
                    )
                );
                (unexpected, format!("backend module {m}"))
            })
            .collect();
        for name in built.split(',').filter(|n| !n.is_empty()) {
            if !r.modules.iter().any(|m| m.name == name) {
                lines.push((
                    true,
                    format!(
                        "backend module {name}: skipped: missing from {} (this build made it)",
                        r.dir.display()
                    ),
                ));
            }
        }
        lines
    }

    /// Logs [`Backends::module_lines`]: normal outcomes at INFO, broken or missing files at
    /// WARN.
    pub fn log_modules(&self, built: &str) {
        for (warn, line) in self.module_lines(built) {
            if warn {
                tracing::warn!("{line}");
            } else {
                tracing::info!("{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_components_are_folded() {
        assert_eq!(
            normalise(Path::new("/opt/x/bin/../lib/ollamars")),
            PathBuf::from("/opt/x/lib/ollamars")
        );
    }

    #[test]
    fn static_summary_names_the_cpu_build() {
        let b = Backends { report: None };
        let s = b.summary();
        assert!(s.starts_with("cpu ") && s.contains("gpu backends: "), "{s}");
        assert!(b.module_lines("cpu-x64").is_empty());
    }
}
