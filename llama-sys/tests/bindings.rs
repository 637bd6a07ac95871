//! Shape of the generated bindings: deprecated functions are absent, C enums are integer
//! constants, and the functions the upper layers need are present.

use llama_sys::*;

const BINDINGS: &str = include_str!(concat!(env!("OUT_DIR"), "/bindings.rs"));

#[test]
fn deprecated_functions_are_not_bound() {
    assert!(
        DEPRECATED_FUNCTIONS.contains(&"llama_token_is_eog")
            && DEPRECATED_FUNCTIONS.contains(&"llama_load_model_from_file"),
        "the deprecation scan found {DEPRECATED_FUNCTIONS:?}"
    );
    for name in DEPRECATED_FUNCTIONS {
        assert!(
            !BINDINGS.contains(&format!("pub fn {name}(")),
            "deprecated {name} is bound"
        );
    }
    // Their replacements are bound.
    for name in [
        "llama_vocab_is_eog",
        "llama_model_load_from_file",
        "llama_init_from_model",
        "llama_model_free",
    ] {
        assert!(
            BINDINGS.contains(&format!("pub fn {name}(")),
            "{name} is missing"
        );
    }
}

#[test]
fn enums_are_integer_constants() {
    // A C enum is a type alias of an integer, never a Rust enum: any value llama.cpp returns is valid.
    let t: llama_vocab_type = LLAMA_VOCAB_TYPE_BPE;
    let raw: u32 = t;
    assert_eq!(raw, LLAMA_VOCAB_TYPE_BPE);
    assert!(
        !BINDINGS.contains("pub enum "),
        "a C enum became a Rust enum"
    );
}

#[test]
fn build_info_is_consistent() {
    assert!(
        build_info::LLAMA_CPP_PIN.starts_with("llama-cpp-sys-2 ")
            || build_info::LLAMA_CPP_PIN.starts_with("local ")
    );
    assert!(build_info::has_backend("cpu"));
    assert_eq!(build_info::has_backend("vulkan"), cfg!(feature = "vulkan"));
    assert_eq!(build_info::has_backend("cuda"), cfg!(feature = "cuda"));
    assert_eq!(
        build_info::BACKENDS_DIR.is_some(),
        cfg!(feature = "dynamic-backends")
    );
    // With dynamic-backends the CPU backend is a module: load it first.
    #[cfg(feature = "dynamic-backends")]
    // SAFETY: no preconditions.
    unsafe {
        ggml_backend_load_all()
    };
    // SAFETY: llama_print_system_info returns a static NUL-terminated string.
    let info = unsafe { std::ffi::CStr::from_ptr(llama_print_system_info()) }
        .to_string_lossy()
        .into_owned();
    assert!(info.contains("CPU"), "system info: {info}");
}
