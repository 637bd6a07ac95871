//! Parity through raw FFI only: load a real model, tokenize a fixed prompt, decode 32 tokens
//! greedily, and compare ids and text with upstream llama.cpp's own `simple` program run on the
//! same machine, built against the very libraries this crate built (`testkit::upstream`), with
//! the same parameters. No tolerance: on any CPU and backend the two must be identical.
//!
//! With feature `vulkan` (lavapipe in `scripts/check-backend vulkan`) or `cuda`, all layers are
//! offloaded on both sides. With `dynamic-backends`, one more test runs every CPU variant module
//! of the build that this CPU can run, each in a child process (ggml's backend registry is
//! global), loaded directly on both sides.
//!
//! The recorded ids of `tests/data/greedy.json` (other machines, other parameters) are compared
//! too, for information only: a difference there is printed, never a failure.

use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;

use llama_sys::*;
use testkit::upstream::{self, Greedy, LlamaBuild};

const N_PREDICT: usize = 32;
/// The child mode of `every_cpu_variant_matches_upstream`: the module to load.
const CHILD_MODULE: &str = "LLAMA_SYS_TEST_CPU_MODULE";

fn build() -> LlamaBuild {
    testkit::llama_build!()
}

fn gpu_build() -> bool {
    build_info::has_backend("vulkan") || build_info::has_backend("cuda")
}

/// Keeps the test log readable: warnings and errors, plus the lines that show where layers ran.
unsafe extern "C" fn log_filter(
    level: ggml_log_level,
    text: *const c_char,
    _user: *mut std::ffi::c_void,
) {
    // SAFETY: ggml passes a valid NUL-terminated string for the duration of the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let wanted = [
        "offloaded",
        "using device",
        "ggml_vulkan",
        "Vulkan0",
        "CUDA0",
    ];
    if level >= GGML_LOG_LEVEL_WARN || wanted.iter().any(|w| text.contains(w)) {
        eprint!("{text}");
    }
}

/// Every device ggml registered, as `(name (description), type)`.
fn devices() -> Vec<(String, u32)> {
    let mut out = Vec::new();
    // SAFETY: device enumeration after backend init; indices are below the count, and the
    // returned strings are owned by ggml for the life of the process.
    unsafe {
        for i in 0..ggml_backend_dev_count() {
            let dev = ggml_backend_dev_get(i);
            let name = CStr::from_ptr(ggml_backend_dev_name(dev)).to_string_lossy();
            let desc = CStr::from_ptr(ggml_backend_dev_description(dev)).to_string_lossy();
            out.push((format!("{name} ({desc})"), ggml_backend_dev_type(dev)));
        }
    }
    out
}

fn piece(vocab: *const llama_vocab, token: llama_token) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    loop {
        // SAFETY: `vocab` is valid while the model lives; `buf` has `buf.len()` writable bytes.
        // Special tokens are rendered, as `simple` renders them.
        let n = unsafe {
            llama_token_to_piece(
                vocab,
                token,
                buf.as_mut_ptr().cast::<c_char>(),
                buf.len() as i32,
                0,
                true,
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return buf;
        }
        buf.resize((-n) as usize, 0);
    }
}

/// Loads the backends this build needs, once per process (ggml's registry is global): nothing
/// for static builds; with `dynamic-backends` the given module files, or every module of the
/// build's folder. Returns the registry names.
fn load_backends(modules: &[PathBuf]) -> Vec<String> {
    static LOADED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    LOADED.get_or_init(|| load_backends_now(modules)).clone()
}

fn load_backends_now(modules: &[PathBuf]) -> Vec<String> {
    // SAFETY: module loading before any model exists; paths are NUL-terminated copies, and the
    // registry names are static strings owned by ggml.
    unsafe {
        llama_log_set(Some(log_filter), ptr::null_mut());
        if cfg!(feature = "dynamic-backends") {
            if modules.is_empty() {
                let dir = CString::new(
                    build_info::BACKENDS_DIR.expect("dynamic builds record BACKENDS_DIR"),
                )
                .unwrap();
                ggml_backend_load_all_from_path(dir.as_ptr());
            }
            for m in modules {
                let c = CString::new(m.to_str().unwrap()).unwrap();
                assert!(
                    !ggml_backend_load(c.as_ptr()).is_null(),
                    "ggml could not load {}",
                    m.display()
                );
            }
        }
        (0..ggml_backend_reg_count())
            .map(|i| {
                CStr::from_ptr(ggml_backend_reg_name(ggml_backend_reg_get(i)))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

/// Our run, through the raw API, with `simple`'s parameters: tokenize with add_special and
/// parse_special, `n_ctx = n_prompt + n_predict - 1`, `n_batch = n_prompt`, the same thread
/// count, llama.cpp's default context parameters otherwise, a greedy sampler, stop at end of generation.
fn greedy(model_path: &Path, prompt: &str, gpu_layers: i32, modules: &[PathBuf]) -> Greedy {
    let backends = load_backends(modules);
    let c_path = CString::new(model_path.to_str().unwrap()).unwrap();
    let c_prompt = CString::new(prompt).unwrap();
    // SAFETY: the raw llama.cpp call sequence of upstream's `simple` example: every pointer is
    // checked for null before use, buffers are sized as the API requires, and everything is
    // freed in reverse order of creation.
    unsafe {
        llama_backend_init();
        eprintln!("backends {backends:?}, devices {:?}", devices());
        let mut mp = llama_model_default_params();
        mp.n_gpu_layers = gpu_layers;
        let model = llama_model_load_from_file(c_path.as_ptr(), mp);
        assert!(
            !model.is_null(),
            "llama.cpp could not load {}",
            model_path.display()
        );
        let vocab = llama_model_get_vocab(model);

        let n = -llama_tokenize(
            vocab,
            c_prompt.as_ptr(),
            prompt.len() as i32,
            ptr::null_mut(),
            0,
            true,
            true,
        );
        assert!(n > 0, "tokenize size query failed");
        let mut prompt_tokens = vec![0 as llama_token; n as usize];
        let got = llama_tokenize(
            vocab,
            c_prompt.as_ptr(),
            prompt.len() as i32,
            prompt_tokens.as_mut_ptr(),
            n,
            true,
            true,
        );
        assert_eq!(got, n);

        let mut cp = llama_context_default_params();
        cp.n_ctx = upstream::simple_n_ctx(prompt_tokens.len(), N_PREDICT);
        cp.n_batch = prompt_tokens.len() as u32;
        cp.n_threads = upstream::threads() as i32;
        cp.n_threads_batch = upstream::threads() as i32;
        let ctx = llama_init_from_model(model, cp);
        assert!(!ctx.is_null(), "llama_init_from_model failed");
        let sampler = llama_sampler_init_greedy();

        let mut tokens = Vec::new();
        let mut eog = None;
        let mut text = Vec::new();
        let mut batch = llama_batch_get_one(prompt_tokens.as_mut_ptr(), prompt_tokens.len() as i32);
        while tokens.len() < N_PREDICT {
            assert_eq!(llama_decode(ctx, batch), 0, "llama_decode failed");
            let next = llama_sampler_sample(sampler, ctx, -1);
            if llama_vocab_is_eog(vocab, next) {
                eog = Some(next);
                break;
            }
            tokens.push(next);
            text.extend(piece(vocab, next));
            batch = llama_batch_get_one(tokens.last_mut().unwrap(), 1);
        }

        llama_sampler_free(sampler);
        llama_free(ctx);
        llama_model_free(model);
        llama_backend_free();
        Greedy {
            prompt_tokens,
            tokens,
            eog,
            text: String::from_utf8_lossy(&text).into_owned(),
            backends,
        }
    }
}

/// Upstream's `simple` on the same model, prompt and offload (and module files, if any).
fn reference(path: &Path, prompt: &str, gpu_layers: i32, modules: Vec<PathBuf>) -> Greedy {
    let run = upstream::Run {
        model: path,
        prompt,
        n_predict: N_PREDICT,
        gpu_layers,
        modules,
    };
    upstream::greedy(&build(), &run, &[])
}

fn describe_build() -> String {
    format!(
        "llama-sys {} ({}), backends {}, cpu {}, AMX fix {}, patches [{}]",
        build_info::LLAMA_CPP_PIN,
        build_info::SOURCE,
        build_info::BACKENDS,
        build_info::CPU,
        build_info::AMX_FIX,
        build_info::PATCHES
    )
}

/// The recorded table (other machines, n_ctx 2048): printed, never a failure.
fn informative(key: &str, ours: &Greedy) {
    let table = testkit::greedy_reference();
    let m = &table["models"][key];
    for (flavour, rec) in m.as_object().into_iter().flatten() {
        let Some(ids) = rec.get("tokens").and_then(|t| t.as_array()) else {
            continue;
        };
        let ids: Vec<i64> = ids.iter().filter_map(|v| v.as_i64()).collect();
        let same = ids
            .iter()
            .copied()
            .eq(ours.tokens.iter().map(|&t| i64::from(t)));
        eprintln!(
            "informative: recorded `{flavour}` ({}): {}",
            table["recorded_on"][flavour].as_str().unwrap_or("?"),
            if same {
                "same ids"
            } else {
                "different ids (expected across CPUs)"
            }
        );
    }
}

/// One model at a time: the backend is initialised and freed around each run, and two models
/// computing at once on a small machine slow each other down many times over.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn check(model: testkit::TestModel, key: &str, prompt: &str) {
    let _serial = serial();
    let gpu_layers = if gpu_build() { 99 } else { 0 };
    let path = testkit::model_path(model);
    eprintln!("{}", describe_build());
    let ours = greedy(&path, prompt, gpu_layers, &[]);
    if gpu_layers > 0 {
        let gpus = devices()
            .into_iter()
            .filter(|(_, t)| *t != GGML_BACKEND_DEVICE_TYPE_CPU)
            .count();
        assert!(
            gpus > 0,
            "built with GPU backend(s) {} but no GPU device was found, so the model ran on the CPU: run this on a \
             machine with such a device (scripts/check-backend vulkan|cuda)",
            build_info::BACKENDS
        );
    }
    let reference = reference(&path, prompt, gpu_layers, Vec::new());
    eprintln!("upstream backends {:?}", reference.backends);
    upstream::assert_same(key, &ours, &reference);
    informative(key, &ours);
}

#[test]
fn smollm2_greedy_matches_upstream() {
    check(
        testkit::SMOLLM2,
        "SmolLM2-135M-Instruct.Q4_1",
        "The capital of France is",
    );
}

#[test]
fn gemma3_greedy_matches_upstream() {
    check(
        testkit::GEMMA3,
        "gemma-3-270m-q4_k_m",
        "The capital of France is",
    );
}

/// The CPU variant modules of a `dynamic-backends` build (`libggml-cpu-<variant>.so`).
fn cpu_modules() -> Vec<PathBuf> {
    let Some(dir) = build_info::BACKENDS_DIR else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list the module folder {dir}: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libggml-cpu") && n.ends_with(".so"))
        })
        .collect();
    out.sort();
    out
}

/// Whether this CPU can run a variant module: ggml asks the module's own score function.
fn module_supported(module: &Path) -> bool {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "cpu_variant_child", "--ignored", "--nocapture"])
        .env(CHILD_MODULE, module)
        .env("LLAMA_SYS_TEST_PROBE_ONLY", "1")
        .output()
        .expect("re-run the test binary");
    String::from_utf8_lossy(&out.stdout).contains("variant-probe: supported")
        || String::from_utf8_lossy(&out.stderr).contains("variant-probe: supported")
}

/// Each CPU variant this CPU can run, loaded directly on both sides, matches upstream.
#[test]
#[cfg_attr(
    not(feature = "dynamic-backends"),
    ignore = "needs feature dynamic-backends (CPU variant modules)"
)]
fn every_cpu_variant_matches_upstream() {
    let modules = cpu_modules();
    assert!(
        !modules.is_empty(),
        "a dynamic-backends build without CPU variant modules in {:?}",
        build_info::BACKENDS_DIR
    );
    let mut ran = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    for m in &modules {
        let name = m.file_name().unwrap().to_string_lossy().into_owned();
        if !module_supported(m) {
            skipped.push(name);
            continue;
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "cpu_variant_child", "--ignored", "--nocapture"])
            .env(CHILD_MODULE, m)
            .output()
            .expect("re-run the test binary");
        eprintln!(
            "--- {name}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| l.contains("upstream")
                    || l.contains("ours")
                    || l.contains("panicked")
                    || l.contains("differ"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        if out.status.success() {
            ran.push(name);
        } else {
            failed.push(name);
        }
    }
    eprintln!(
        "CPU variants on {}: matched upstream {ran:?}; not supported by this CPU {skipped:?}; failed {failed:?}",
        upstream::cpu_summary()
    );
    assert!(
        failed.is_empty(),
        "variants that differ from upstream: {failed:?}"
    );
    assert!(
        !ran.is_empty(),
        "no CPU variant of this build runs on this CPU"
    );
}

/// Child of `every_cpu_variant_matches_upstream`: one module.
#[test]
#[ignore = "helper: run as a child process by every_cpu_variant_matches_upstream"]
fn cpu_variant_child() {
    let Some(module) = std::env::var_os(CHILD_MODULE).map(PathBuf::from) else {
        return;
    };
    if std::env::var_os("LLAMA_SYS_TEST_PROBE_ONLY").is_some() {
        let c = CString::new(module.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; ggml returns null for a module whose score is 0.
        let reg = unsafe { ggml_backend_load(c.as_ptr()) };
        println!(
            "variant-probe: {}",
            if reg.is_null() {
                "unsupported"
            } else {
                "supported"
            }
        );
        return;
    }
    // SmolLM2 on every variant (14 modules, the slowest without SIMD); gemma-3 too with
    // LLAMA_SYS_TEST_VARIANT_MODELS=all. Both models run on the best variant in the tests above.
    let mut models = vec![(testkit::SMOLLM2, "SmolLM2-135M-Instruct.Q4_1")];
    if std::env::var("LLAMA_SYS_TEST_VARIANT_MODELS").is_ok_and(|v| v == "all") {
        models.push((testkit::GEMMA3, "gemma-3-270m-q4_k_m"));
    }
    for (model, key) in models {
        let path = testkit::model_path(model);
        let prompt = "The capital of France is";
        let ours = greedy(&path, prompt, 0, std::slice::from_ref(&module));
        let reference = reference(&path, prompt, 0, vec![module.clone()]);
        upstream::assert_same(&format!("{key} on {}", module.display()), &ours, &reference);
    }
}
