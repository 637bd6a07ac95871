//! The FFI module: the only place in this crate with `unsafe` code and raw pointers.
//!
//! Each handle here owns exactly one llama.cpp object and frees it in `Drop`. The rest of the
//! crate builds the public API from these handles and never sees a raw pointer. Invariants that
//! make the `unsafe` blocks sound are stated on the types and repeated in each `SAFETY` comment.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};

use llama_sys as sys;

pub(crate) use sys::llama_token as RawToken;

// ---------------------------------------------------------------------------------------------
// Backend and logging

static BACKEND_COUNT: Mutex<usize> = Mutex::new(0);

/// Increments the backend reference count; the first reference initialises llama.cpp.
pub(crate) fn backend_acquire() {
    install_log_router();
    let mut n = BACKEND_COUNT.lock().unwrap_or_else(|e| e.into_inner());
    if *n == 0 {
        load_dynamic_backends();
        // SAFETY: llama_backend_init has no preconditions; the mutex serialises it with free.
        unsafe { sys::llama_backend_init() };
    }
    *n += 1;
}

/// Decrements the backend reference count; the last reference frees llama.cpp's global state.
pub(crate) fn backend_release() {
    let mut n = BACKEND_COUNT.lock().unwrap_or_else(|e| e.into_inner());
    *n = n.saturating_sub(1);
    if *n == 0 {
        // SAFETY: no Backend guard is alive (the count is 0), so no model or context is either:
        // every model holds a guard.
        unsafe { sys::llama_backend_free() };
    }
}

/// With `dynamic-backends`, ggml's backends are modules loaded at run time: unless the
/// application loaded them first (`backend::load_modules`), load them now from the default
/// folders (the executable's folder, then the build's module folder).
fn load_dynamic_backends() {
    if cfg!(feature = "dynamic-backends") {
        crate::backend::ensure_modules_loaded();
    }
}

static LOG_ONCE: Once = Once::new();

/// Routes llama.cpp and ggml logs into `tracing`, once per process, before any model exists.
pub(crate) fn install_log_router() {
    LOG_ONCE.call_once(|| {
        // SAFETY: `log_to_tracing` has the C signature ggml expects, never unwinds (it catches
        // everything it calls), and needs no user data. `Once` makes this the only call, as
        // llama_log_set is not thread-safe.
        unsafe { sys::llama_log_set(Some(log_to_tracing), ptr::null_mut()) };
    });
}

thread_local! {
    /// A log line in progress: ggml sends long lines in pieces (level CONT) and ends with '\n'.
    static LOG_LINE: std::cell::RefCell<(sys::ggml_log_level, String)> =
        const { std::cell::RefCell::new((sys::GGML_LOG_LEVEL_NONE, String::new())) };
}

unsafe extern "C" fn log_to_tracing(
    level: sys::ggml_log_level,
    text: *const c_char,
    _: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: ggml passes a NUL-terminated string valid for the duration of this call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let _ = std::panic::catch_unwind(|| {
        LOG_LINE.with(|cell| {
            let Ok(mut line) = cell.try_borrow_mut() else {
                return;
            };
            if level != sys::GGML_LOG_LEVEL_CONT {
                line.0 = level;
            }
            line.1.push_str(&text);
            if line.1.ends_with('\n') {
                let msg = line.1.trim_end();
                match line.0 {
                    // No usable GPU of a compiled-in backend (no driver, no device): kept for
                    // `missing_gpu`, which reports it in its one line, and logged at debug.
                    sys::GGML_LOG_LEVEL_ERROR if msg.contains("failed to initialize") => {
                        *GPU_INIT_ERROR.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(msg.to_string());
                        tracing::debug!(target: "llama_cpp", "{msg}");
                    }
                    sys::GGML_LOG_LEVEL_ERROR => tracing::error!(target: "llama_cpp", "{msg}"),
                    sys::GGML_LOG_LEVEL_WARN => tracing::warn!(target: "llama_cpp", "{msg}"),
                    // Where the model's layers went: its own target, so that a log showing
                    // only llama.cpp's warnings can still show this (`llama_cpp::placement`).
                    sys::GGML_LOG_LEVEL_INFO if is_placement_line(msg) => {
                        tracing::info!(target: "llama_cpp::placement", "{msg}");
                    }
                    sys::GGML_LOG_LEVEL_INFO => tracing::info!(target: "llama_cpp", "{msg}"),
                    _ => tracing::debug!(target: "llama_cpp", "{msg}"),
                }
                line.1.clear();
            }
        });
    });
}

/// The error line of a GPU backend that could not initialise (`ggml_cuda_init: failed to
/// initialize CUDA: ...`), if one was logged.
static GPU_INIT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// The error line a GPU backend logged when it could not initialise, if any.
pub(crate) fn gpu_init_error() -> Option<String> {
    GPU_INIT_ERROR
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// llama.cpp's load-time lines that say which device got the model: `using device CUDA0 (...)`
/// and `offloaded 31/31 layers to GPU`.
fn is_placement_line(msg: &str) -> bool {
    msg.contains("using device ") || (msg.contains("offloaded ") && msg.contains(" layers to GPU"))
}

/// One ggml device as reported by the backend registry.
pub(crate) struct RawDevice {
    pub name: String,
    pub description: String,
    pub kind: u32,
    pub memory_free: usize,
    pub memory_total: usize,
}

pub(crate) fn devices() -> Vec<RawDevice> {
    let mut out = Vec::new();
    // SAFETY: indices are below ggml_backend_dev_count(); device handles are owned by the
    // global registry and live for the process; the name strings are static per device.
    unsafe {
        for i in 0..sys::ggml_backend_dev_count() {
            let dev = sys::ggml_backend_dev_get(i);
            if dev.is_null() {
                continue;
            }
            let (mut free, mut total) = (0usize, 0usize);
            sys::ggml_backend_dev_memory(dev, &mut free, &mut total);
            out.push(RawDevice {
                name: cstr_lossy(sys::ggml_backend_dev_name(dev)),
                description: cstr_lossy(sys::ggml_backend_dev_description(dev)),
                kind: sys::ggml_backend_dev_type(dev),
                memory_free: free,
                memory_total: total,
            });
        }
    }
    out
}

/// Loads every ggml backend module found in `dir` (builds with `dynamic-backends`).
pub(crate) fn load_backends_from(dir: &CStr) {
    // SAFETY: `dir` is a valid NUL-terminated path; ggml copies what it needs.
    unsafe { sys::ggml_backend_load_all_from_path(dir.as_ptr()) };
}

/// What opening a backend module file found, before anything was registered with ggml.
pub(crate) enum ModuleProbe {
    /// The dynamic loader refused the file (not a shared library, wrong architecture, missing
    /// dependency): its message.
    CannotOpen(String),
    /// A shared library without `ggml_backend_init`: not a ggml backend module.
    NoInit,
    /// A backend module, with the value of its `ggml_backend_score` if it exports one (0 means
    /// "not supported on this system").
    Module {
        /// `ggml_backend_score()`, when the module has that function.
        score: Option<i32>,
    },
}

/// Opens a module file on its own (not registered with ggml), asks for its score and closes it.
/// This is what ggml's own loader does before it registers the best CPU variant.
pub(crate) fn probe_module(path: &Path) -> ModuleProbe {
    // SAFETY: opening a shared library runs its initialisers. The files passed here are the
    // `libggml-*` modules of a backend folder, which ggml's own loader opens the same way to
    // read their score; a library that is not one is refused by the loader or found to lack
    // the ggml symbols below, and is closed again.
    let lib = match unsafe { libloading::Library::new(path) } {
        Ok(lib) => lib,
        Err(e) => return ModuleProbe::CannotOpen(e.to_string()),
    };
    type InitFn = unsafe extern "C" fn() -> sys::ggml_backend_reg_t;
    type ScoreFn = unsafe extern "C" fn() -> std::ffi::c_int;
    // SAFETY: ggml-backend-impl.h declares `ggml_backend_reg_t ggml_backend_init(void)` for
    // every backend module; the symbol is only looked up here, never called.
    if unsafe { lib.get::<InitFn>(b"ggml_backend_init\0") }.is_err() {
        return ModuleProbe::NoInit;
    }
    // SAFETY: ggml-backend-impl.h declares `int ggml_backend_score(void)` (no arguments, no
    // side effects: it reads CPUID or the driver); the symbol stays valid while `lib` is open,
    // which it is for the call.
    let score = unsafe { lib.get::<ScoreFn>(b"ggml_backend_score\0") }
        .ok()
        // SAFETY: as above; the function takes no arguments.
        .map(|f| unsafe { (*f)() });
    ModuleProbe::Module { score }
}

/// A backend registered with ggml by [`register_module`].
pub(crate) struct RegisteredModule {
    /// The backend's registry name (`CPU`, `Vulkan`, `CUDA`, `RPC`).
    pub name: String,
    /// Its devices: name, description and ggml device type.
    pub devices: Vec<(String, String, u32)>,
}

/// Registers one backend module with ggml (`ggml_backend_load`). `None` when ggml refused it
/// (its log, routed to `tracing`, says why: score 0, missing `ggml_backend_init`, API version).
pub(crate) fn register_module(path: &CStr) -> Option<RegisteredModule> {
    // SAFETY: `path` is a valid NUL-terminated path; ggml copies it, opens the library and keeps
    // it open for the life of the process when it registers the backend.
    let reg = unsafe { sys::ggml_backend_load(path.as_ptr()) };
    if reg.is_null() {
        return None;
    }
    // SAFETY: `reg` is a non-null registry entry that ggml keeps for the process; its name and
    // device handles are owned by it, and indices stay below its device count.
    unsafe {
        let name = cstr_lossy(sys::ggml_backend_reg_name(reg));
        let mut devices = Vec::new();
        for i in 0..sys::ggml_backend_reg_dev_count(reg) {
            let dev = sys::ggml_backend_reg_dev_get(reg, i);
            if dev.is_null() {
                continue;
            }
            devices.push((
                cstr_lossy(sys::ggml_backend_dev_name(dev)),
                cstr_lossy(sys::ggml_backend_dev_description(dev)),
                sys::ggml_backend_dev_type(dev),
            ));
        }
        Some(RegisteredModule { name, devices })
    }
}

/// The number of ggml devices of any kind.
pub(crate) fn system_info() -> String {
    // SAFETY: returns a pointer to a static buffer, valid until the next call; copied at once.
    unsafe { cstr_lossy(sys::llama_print_system_info()) }
}

/// # Safety
/// `p` must be null or a valid NUL-terminated string.
unsafe fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Model

/// Load-time options in C form, kept alive while llama.cpp reads them.
pub(crate) struct RawModelParams {
    pub n_gpu_layers: i32,
    pub split_mode: u32,
    pub main_gpu: i32,
    pub load_mode: i32,
    pub vocab_only: bool,
    pub check_tensors: bool,
    pub kv_overrides: Vec<sys::llama_model_kv_override>,
}

/// A key/value override, converted from the public type.
pub(crate) enum RawKv<'a> {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(&'a str),
}

/// Builds a `llama_model_kv_override`; `None` when the key or string value is too long.
pub(crate) fn kv_override(key: &str, value: RawKv<'_>) -> Option<sys::llama_model_kv_override> {
    let mut o = sys::llama_model_kv_override::default();
    if key.len() >= o.key.len() || key.as_bytes().contains(&0) {
        return None;
    }
    for (d, s) in o.key.iter_mut().zip(key.as_bytes()) {
        *d = *s as c_char;
    }
    match value {
        RawKv::Int(v) => {
            o.tag = sys::LLAMA_KV_OVERRIDE_TYPE_INT;
            o.__bindgen_anon_1.val_i64 = v;
        }
        RawKv::Float(v) => {
            o.tag = sys::LLAMA_KV_OVERRIDE_TYPE_FLOAT;
            o.__bindgen_anon_1.val_f64 = v;
        }
        RawKv::Bool(v) => {
            o.tag = sys::LLAMA_KV_OVERRIDE_TYPE_BOOL;
            o.__bindgen_anon_1.val_bool = v;
        }
        RawKv::Str(s) => {
            o.tag = sys::LLAMA_KV_OVERRIDE_TYPE_STR;
            let mut buf = [0 as c_char; 128];
            if s.len() >= buf.len() || s.as_bytes().contains(&0) {
                return None;
            }
            for (d, c) in buf.iter_mut().zip(s.as_bytes()) {
                *d = *c as c_char;
            }
            o.__bindgen_anon_1.val_str = buf;
        }
    }
    Some(o)
}

/// Progress callback state: the user's closure and whether it asked to abort.
struct Progress<'a> {
    f: &'a mut dyn FnMut(f32) -> bool,
    aborted: bool,
}

unsafe extern "C" fn progress_trampoline(progress: f32, user: *mut c_void) -> bool {
    // SAFETY: `user` is the `Progress` that `ModelHandle::load` keeps alive on its stack for
    // the whole llama_model_load_from_file call, and llama.cpp calls this on that thread.
    let p = unsafe { &mut *user.cast::<Progress<'_>>() };
    let keep_going =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (p.f)(progress))).unwrap_or(false);
    if !keep_going {
        p.aborted = true;
    }
    keep_going
}

/// An owned `llama_model`. Immutable after load, so shared between threads: llama.cpp reads a
/// model concurrently from several contexts and its vocab functions are thread-safe.
pub(crate) struct ModelHandle {
    ptr: NonNull<sys::llama_model>,
    vocab: NonNull<sys::llama_vocab>,
}

// SAFETY: a loaded llama_model is read-only; llama.cpp supports using one model from several
// contexts on several threads, and every method here takes `&self` and only reads.
unsafe impl Send for ModelHandle {}
// SAFETY: as above: no method mutates the model.
unsafe impl Sync for ModelHandle {}

/// Why llama.cpp did not return a model.
pub(crate) enum LoadFailure {
    Aborted,
    Failed,
}

impl ModelHandle {
    pub(crate) fn load(
        path: &Path,
        params: &RawModelParams,
        progress: Option<&mut dyn FnMut(f32) -> bool>,
    ) -> Result<ModelHandle, LoadFailure> {
        let c_path = path_cstring(path).ok_or(LoadFailure::Failed)?;
        let mut kv = params.kv_overrides.clone();
        if !kv.is_empty() {
            // The list ends with an entry whose key is empty.
            kv.push(sys::llama_model_kv_override::default());
        }
        let mut noop = |_: f32| true;
        let mut state = Progress {
            f: progress.unwrap_or(&mut noop),
            aborted: false,
        };
        // SAFETY: default params are plain data; every pointer set below (kv overrides, the
        // progress state) outlives the load call, which is synchronous.
        let ptr = unsafe {
            let mut p = sys::llama_model_default_params();
            p.n_gpu_layers = params.n_gpu_layers;
            p.split_mode = params.split_mode;
            p.main_gpu = params.main_gpu;
            p.load_mode = params.load_mode;
            p.vocab_only = params.vocab_only;
            p.check_tensors = params.check_tensors;
            if !kv.is_empty() {
                p.kv_overrides = kv.as_ptr();
            }
            p.progress_callback = Some(progress_trampoline);
            p.progress_callback_user_data = (&mut state as *mut Progress<'_>).cast();
            sys::llama_model_load_from_file(c_path.as_ptr(), p)
        };
        let Some(ptr) = NonNull::new(ptr) else {
            return Err(if state.aborted {
                LoadFailure::Aborted
            } else {
                LoadFailure::Failed
            });
        };
        // SAFETY: `ptr` is a live model; the vocab it returns lives as long as the model.
        let vocab = unsafe { sys::llama_model_get_vocab(ptr.as_ptr()) };
        match NonNull::new(vocab.cast_mut()) {
            Some(vocab) => Ok(ModelHandle { ptr, vocab }),
            None => {
                // SAFETY: the model was just created and is not shared yet.
                unsafe { sys::llama_model_free(ptr.as_ptr()) };
                Err(LoadFailure::Failed)
            }
        }
    }

    fn vocab(&self) -> *const sys::llama_vocab {
        self.vocab.as_ptr()
    }

    pub(crate) fn n_ctx_train(&self) -> i32 {
        // SAFETY: the model is live for `&self`.
        unsafe { sys::llama_model_n_ctx_train(self.ptr.as_ptr()) }
    }
    pub(crate) fn n_embd(&self) -> i32 {
        // SAFETY: the model is live for `&self`.
        unsafe { sys::llama_model_n_embd(self.ptr.as_ptr()) }
    }
    pub(crate) fn n_layer(&self) -> i32 {
        // SAFETY: the model is live for `&self`.
        unsafe { sys::llama_model_n_layer(self.ptr.as_ptr()) }
    }
    pub(crate) fn n_head(&self) -> i32 {
        // SAFETY: the model is live for `&self`.
        unsafe { sys::llama_model_n_head(self.ptr.as_ptr()) }
    }
    pub(crate) fn n_head_kv(&self) -> i32 {
        // SAFETY: the model is live for `&self`.
        unsafe { sys::llama_model_n_head_kv(self.ptr.as_ptr()) }
    }
    pub(crate) fn n_params(&self) -> u64 {
        // SAFETY: the model is live for `&self`.
        unsafe { sys::llama_model_n_params(self.ptr.as_ptr()) }
    }
    pub(crate) fn size(&self) -> u64 {
        // SAFETY: the model is live for `&self`.
        unsafe { sys::llama_model_size(self.ptr.as_ptr()) }
    }
    pub(crate) fn has_encoder(&self) -> bool {
        // SAFETY: the model is live for `&self`.
        unsafe { sys::llama_model_has_encoder(self.ptr.as_ptr()) }
    }
    pub(crate) fn has_decoder(&self) -> bool {
        // SAFETY: the model is live for `&self`.
        unsafe { sys::llama_model_has_decoder(self.ptr.as_ptr()) }
    }

    pub(crate) fn description(&self) -> String {
        // SAFETY: the buffer pointer and length describe `buf`; the model is live.
        read_string(|buf, len| unsafe { sys::llama_model_desc(self.ptr.as_ptr(), buf, len) })
    }

    /// The metadata value for `key`, as text.
    pub(crate) fn meta(&self, key: &str) -> Option<String> {
        let key = CString::new(key).ok()?;
        // SAFETY: `key` is NUL-terminated; the buffer pointer and length describe `buf`.
        let n = unsafe {
            sys::llama_model_meta_val_str(self.ptr.as_ptr(), key.as_ptr(), ptr::null_mut(), 0)
        };
        if n < 0 {
            return None;
        }
        // SAFETY: as above.
        Some(read_string(|buf, len| unsafe {
            sys::llama_model_meta_val_str(self.ptr.as_ptr(), key.as_ptr(), buf, len)
        }))
    }

    /// Every metadata entry as (key, value text).
    pub(crate) fn meta_all(&self) -> Vec<(String, String)> {
        // SAFETY: the model is live; indices are below the count; buffers as in `read_string`.
        unsafe {
            let n = sys::llama_model_meta_count(self.ptr.as_ptr());
            (0..n)
                .map(|i| {
                    let k = read_string(|b, l| {
                        sys::llama_model_meta_key_by_index(self.ptr.as_ptr(), i, b, l)
                    });
                    let v = read_string(|b, l| {
                        sys::llama_model_meta_val_str_by_index(self.ptr.as_ptr(), i, b, l)
                    });
                    (k, v)
                })
                .collect()
        }
    }

    /// The GGUF chat template (`tokenizer.chat_template`, or `.name`), if present.
    pub(crate) fn chat_template(&self, name: Option<&str>) -> Option<String> {
        let name = name.map(CString::new).transpose().ok()?;
        // SAFETY: the model is live; the name is NUL-terminated or null; the returned string
        // is owned by the model and copied at once.
        unsafe {
            let p = sys::llama_model_chat_template(
                self.ptr.as_ptr(),
                name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            );
            (!p.is_null()).then(|| cstr_lossy(p))
        }
    }

    // ----- vocab

    pub(crate) fn n_vocab(&self) -> i32 {
        // SAFETY: the vocab is live while the model is.
        unsafe { sys::llama_vocab_n_tokens(self.vocab()) }
    }
    pub(crate) fn vocab_type(&self) -> u32 {
        // SAFETY: the vocab is live while the model is.
        unsafe { sys::llama_vocab_type(self.vocab()) }
    }
    pub(crate) fn special_token(&self, which: SpecialToken) -> RawToken {
        let v = self.vocab();
        // SAFETY: the vocab is live while the model is; these are plain getters.
        unsafe {
            match which {
                SpecialToken::Bos => sys::llama_vocab_bos(v),
                SpecialToken::Eos => sys::llama_vocab_eos(v),
                SpecialToken::Eot => sys::llama_vocab_eot(v),
                SpecialToken::Sep => sys::llama_vocab_sep(v),
                SpecialToken::Nl => sys::llama_vocab_nl(v),
                SpecialToken::Pad => sys::llama_vocab_pad(v),
                SpecialToken::FimPre => sys::llama_vocab_fim_pre(v),
                SpecialToken::FimSuf => sys::llama_vocab_fim_suf(v),
                SpecialToken::FimMid => sys::llama_vocab_fim_mid(v),
            }
        }
    }
    pub(crate) fn add_bos(&self) -> bool {
        // SAFETY: the vocab is live while the model is.
        unsafe { sys::llama_vocab_get_add_bos(self.vocab()) }
    }
    pub(crate) fn add_eos(&self) -> bool {
        // SAFETY: the vocab is live while the model is.
        unsafe { sys::llama_vocab_get_add_eos(self.vocab()) }
    }
    /// Callers check `0 <= token < n_vocab` first.
    pub(crate) fn is_eog(&self, token: RawToken) -> bool {
        debug_assert!(token >= 0 && token < self.n_vocab());
        // SAFETY: the vocab is live; the token is in range (checked by the callers).
        unsafe { sys::llama_vocab_is_eog(self.vocab(), token) }
    }
    /// Callers check `0 <= token < n_vocab` first.
    pub(crate) fn token_attr(&self, token: RawToken) -> u32 {
        debug_assert!(token >= 0 && token < self.n_vocab());
        // SAFETY: the vocab is live; the token is in range (checked by the callers).
        unsafe { sys::llama_vocab_get_attr(self.vocab(), token) }
    }

    /// Tokenizes `text`; `None` when llama.cpp reports an overflow it cannot size.
    pub(crate) fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Option<Vec<RawToken>> {
        let len = i32::try_from(text.len()).ok()?;
        // A first guess that fits most texts; llama.cpp says how many it needs when it does not.
        let mut out: Vec<RawToken> = vec![0; text.len() / 2 + 8];
        for _ in 0..2 {
            let cap = i32::try_from(out.len()).ok()?;
            // SAFETY: `text` points at `len` readable bytes (no NUL needed: the length is
            // given); `out` has `cap` writable tokens; the vocab is live.
            let n = unsafe {
                sys::llama_tokenize(
                    self.vocab(),
                    text.as_ptr().cast(),
                    len,
                    out.as_mut_ptr(),
                    cap,
                    add_special,
                    parse_special,
                )
            };
            if n >= 0 {
                out.truncate(n as usize);
                return Some(out);
            }
            if n == i32::MIN {
                return None;
            }
            out.resize(n.unsigned_abs() as usize, 0);
        }
        None
    }

    /// The bytes of one token (callers check the range first). Grows the buffer once if needed.
    pub(crate) fn token_piece(&self, token: RawToken, special: bool) -> Vec<u8> {
        debug_assert!(token >= 0 && token < self.n_vocab());
        let mut buf = vec![0u8; 32];
        loop {
            let cap = i32::try_from(buf.len()).unwrap_or(i32::MAX);
            // SAFETY: `buf` has `cap` writable bytes; the token is in range; the vocab is live.
            let n = unsafe {
                sys::llama_token_to_piece(
                    self.vocab(),
                    token,
                    buf.as_mut_ptr().cast(),
                    cap,
                    0,
                    special,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return buf;
            }
            let need = n.unsigned_abs() as usize;
            if need <= buf.len() {
                // llama.cpp contradicted itself; return nothing rather than loop.
                return Vec::new();
            }
            buf.resize(need, 0);
        }
    }

    /// Detokenizes `tokens` (callers check every id first).
    pub(crate) fn detokenize(
        &self,
        tokens: &[RawToken],
        remove_special: bool,
        unparse_special: bool,
    ) -> Option<Vec<u8>> {
        let n_tokens = i32::try_from(tokens.len()).ok()?;
        let mut buf = vec![0u8; tokens.len() * 4 + 16];
        for _ in 0..2 {
            let cap = i32::try_from(buf.len()).ok()?;
            // SAFETY: `tokens` has `n_tokens` readable ids (in range, checked by the callers);
            // `buf` has `cap` writable bytes; the vocab is live.
            let n = unsafe {
                sys::llama_detokenize(
                    self.vocab(),
                    tokens.as_ptr(),
                    n_tokens,
                    buf.as_mut_ptr().cast(),
                    cap,
                    remove_special,
                    unparse_special,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return Some(buf);
            }
            if n == i32::MIN {
                return None;
            }
            buf.resize(n.unsigned_abs() as usize, 0);
        }
        None
    }
}

impl Drop for ModelHandle {
    fn drop(&mut self) {
        // SAFETY: every context and adapter holds an `Arc<ModelHandle>`, so none is alive when
        // the last reference drops here.
        unsafe { sys::llama_model_free(self.ptr.as_ptr()) };
    }
}

/// Special tokens of a vocabulary.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SpecialToken {
    Bos,
    Eos,
    Eot,
    Sep,
    Nl,
    Pad,
    FimPre,
    FimSuf,
    FimMid,
}

/// Calls `f(buf, len)` (a llama.cpp "write into buffer, return length" function) with a buffer
/// big enough for the result.
fn read_string(mut f: impl FnMut(*mut c_char, usize) -> i32) -> String {
    let mut buf = vec![0u8; 256];
    for _ in 0..2 {
        let n = f(buf.as_mut_ptr().cast(), buf.len());
        if n < 0 {
            return String::new();
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return String::from_utf8_lossy(&buf).into_owned();
        }
        buf.resize(n + 1, 0);
    }
    String::new()
}

/// One tensor of a model built from metadata: name, ggml type id, dims (trailing 1s dropped).
pub(crate) type RawTensorLayout = (String, u32, Vec<u64>);

/// Records one tensor of a model being built from metadata (`llama_model_init_from_user`)
/// and zeroes its data.
extern "C" fn record_tensor(t: *mut sys::ggml_tensor, ud: *mut c_void) {
    // SAFETY: llama.cpp passes a live tensor of a model it is building on the CPU without
    // extra buffer types, so a non-null `data` is host memory of `ne[3] * nb[3]` bytes (the
    // tensor is contiguous); `ud` is the `Vec` that `tensor_layout` passed, alive and not
    // otherwise borrowed during the call.
    unsafe {
        let t = &*t;
        let out = &mut *ud.cast::<Vec<RawTensorLayout>>();
        let name = CStr::from_ptr(t.name.as_ptr())
            .to_string_lossy()
            .into_owned();
        let n_dims = t.ne.iter().rposition(|&n| n > 1).map_or(1, |i| i + 1);
        let dims = t.ne[..n_dims].iter().map(|&n| n.max(0) as u64).collect();
        out.push((name, t.type_, dims));
        if !t.data.is_null() && t.ne[3] > 0 {
            ptr::write_bytes(t.data.cast::<u8>(), 0, t.nb[3] * t.ne[3] as usize);
        }
    }
}

/// The tensors of the model llama.cpp builds from the metadata-only GGUF at `metadata`, in
/// creation order; `None` when llama.cpp refuses the metadata.
pub(crate) fn tensor_layout(metadata: &Path) -> Option<Vec<RawTensorLayout>> {
    let meta = path_cstring(metadata)?;
    let mut out: Vec<RawTensorLayout> = Vec::new();
    // SAFETY: the path is NUL-terminated and outlives the calls; the gguf context is checked
    // for null and freed after the model built from it; `out` outlives the synchronous build
    // that calls `record_tensor` with it; the model is checked for null before it is freed.
    unsafe {
        let g = sys::gguf_init_from_file(
            meta.as_ptr(),
            sys::gguf_init_params {
                no_alloc: true,
                ctx: ptr::null_mut(),
            },
        );
        if g.is_null() {
            return None;
        }
        let mut p = sys::llama_model_default_params();
        p.n_gpu_layers = 0;
        let m = sys::llama_model_init_from_user(
            g,
            Some(record_tensor),
            (&mut out as *mut Vec<RawTensorLayout>).cast(),
            p,
        );
        let ok = !m.is_null();
        if ok {
            sys::llama_model_free(m);
        }
        sys::gguf_free(g);
        ok.then_some(out)
    }
}

fn path_cstring(path: &Path) -> Option<CString> {
    CString::new(path.to_str()?).ok()
}

// ---------------------------------------------------------------------------------------------
// LoRA adapters

/// An owned `llama_adapter_lora`. It holds its model, so it can never outlive it.
pub(crate) struct LoraHandle {
    ptr: NonNull<sys::llama_adapter_lora>,
    model: Arc<ModelHandle>,
}

// SAFETY: an adapter is read-only after load, like its model.
unsafe impl Send for LoraHandle {}
// SAFETY: as above.
unsafe impl Sync for LoraHandle {}

impl LoraHandle {
    pub(crate) fn load(model: Arc<ModelHandle>, path: &Path) -> Option<LoraHandle> {
        let c_path = path_cstring(path)?;
        // SAFETY: the model is live (held by the Arc); the path is NUL-terminated.
        let ptr = unsafe { sys::llama_adapter_lora_init(model.ptr.as_ptr(), c_path.as_ptr()) };
        NonNull::new(ptr).map(|ptr| LoraHandle { ptr, model })
    }

    pub(crate) fn model(&self) -> &Arc<ModelHandle> {
        &self.model
    }
}

impl Drop for LoraHandle {
    fn drop(&mut self) {
        // SAFETY: contexts that use this adapter hold an Arc to it, so none is alive; the model
        // is still alive because this handle holds it.
        unsafe { sys::llama_adapter_lora_free(self.ptr.as_ptr()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Context

/// Context options in C form.
pub(crate) struct RawContextParams {
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_ubatch: u32,
    pub n_seq_max: u32,
    pub n_threads: i32,
    pub n_threads_batch: i32,
    pub flash_attn: i32,
    pub type_k: u32,
    pub type_v: u32,
    pub embeddings: bool,
    pub pooling: i32,
    pub offload_kqv: bool,
    pub kv_unified: bool,
    pub swa_full: bool,
    pub no_perf: bool,
}

unsafe extern "C" fn abort_trampoline(data: *mut c_void) -> bool {
    // SAFETY: `data` is the `AtomicBool` inside the `Arc` that the ContextHandle keeps alive
    // for as long as the callback is installed.
    let flag = unsafe { &*data.cast::<AtomicBool>() };
    flag.load(Ordering::Relaxed)
}

type ThreadpoolNewFn =
    unsafe extern "C" fn(*mut sys::ggml_threadpool_params) -> sys::ggml_threadpool_t;
type ThreadpoolFreeFn = unsafe extern "C" fn(sys::ggml_threadpool_t);

/// The CPU backend's threadpool constructor and destructor, looked up through the backend
/// registry (so this works when the CPU backend is a module loaded at run time).
fn threadpool_fns() -> Option<(ThreadpoolNewFn, ThreadpoolFreeFn)> {
    static FNS: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    let (new, free) = (*FNS.get_or_init(|| {
        // SAFETY: registry lookups with NUL-terminated names; a null result is checked.
        unsafe {
            let reg = sys::ggml_backend_reg_by_name(c"CPU".as_ptr());
            if reg.is_null() {
                return None;
            }
            let new = sys::ggml_backend_reg_get_proc_address(reg, c"ggml_threadpool_new".as_ptr());
            let free =
                sys::ggml_backend_reg_get_proc_address(reg, c"ggml_threadpool_free".as_ptr());
            (!new.is_null() && !free.is_null()).then_some((new as usize, free as usize))
        }
    }))?;
    // SAFETY: the addresses are the CPU backend's `ggml_threadpool_new`/`ggml_threadpool_free`,
    // whose C signatures these types spell out.
    unsafe {
        Some((
            std::mem::transmute::<usize, ThreadpoolNewFn>(new),
            std::mem::transmute::<usize, ThreadpoolFreeFn>(free),
        ))
    }
}

/// A persistent ggml CPU threadpool. Without one, ggml starts and joins its worker threads for
/// every graph it computes, which costs a measurable share of each generated token.
struct Threadpool {
    ptr: sys::ggml_threadpool_t,
    free: ThreadpoolFreeFn,
}

impl Threadpool {
    fn new(n_threads: i32) -> Option<Threadpool> {
        let (new, free) = threadpool_fns()?;
        // SAFETY: default params for `n_threads` are plain data passed by pointer for the
        // duration of the call; a null result is checked.
        let ptr = unsafe {
            let mut params = sys::ggml_threadpool_params_default(n_threads);
            new(&mut params)
        };
        (!ptr.is_null()).then_some(Threadpool { ptr, free })
    }
}

impl Drop for Threadpool {
    fn drop(&mut self) {
        // SAFETY: the pool was made by the matching constructor; contexts detach it (or are
        // freed) before their pools drop.
        unsafe { (self.free)(self.ptr) };
    }
}

/// An owned `llama_context`, with the model it was made from and its abort flag.
pub(crate) struct ContextHandle {
    ptr: NonNull<sys::llama_context>,
    model: Arc<ModelHandle>,
    abort: Arc<AtomicBool>,
    adapters: Vec<Arc<LoraHandle>>,
    /// Generation and batch threadpools (one when the thread counts are equal).
    pools: Vec<Threadpool>,
}

// SAFETY: a llama_context is not tied to the thread that made it; it must only not be used
// from two threads at once, which `&mut self` on every mutating method (and !Sync) ensures.
unsafe impl Send for ContextHandle {}

/// A batch laid out for llama_decode, borrowed from Rust-owned vectors.
pub(crate) struct BatchView<'a> {
    pub tokens: &'a [RawToken],
    pub pos: &'a [i32],
    pub n_seq: &'a [i32],
    pub seq_ids: &'a [Vec<i32>],
    pub logits: &'a [i8],
}

impl ContextHandle {
    pub(crate) fn new(
        model: Arc<ModelHandle>,
        params: &RawContextParams,
        abort: Arc<AtomicBool>,
    ) -> Option<ContextHandle> {
        // SAFETY: default params are plain data; the abort data pointer points into `abort`,
        // which the handle keeps alive as long as the context.
        let ptr = unsafe {
            let mut p = sys::llama_context_default_params();
            p.n_ctx = params.n_ctx;
            p.n_batch = params.n_batch;
            p.n_ubatch = params.n_ubatch;
            p.n_seq_max = params.n_seq_max;
            p.n_threads = params.n_threads;
            p.n_threads_batch = params.n_threads_batch;
            p.flash_attn_type = params.flash_attn;
            p.type_k = params.type_k;
            p.type_v = params.type_v;
            p.embeddings = params.embeddings;
            p.pooling_type = params.pooling;
            p.offload_kqv = params.offload_kqv;
            p.kv_unified = params.kv_unified;
            p.swa_full = params.swa_full;
            p.no_perf = params.no_perf;
            p.abort_callback = Some(abort_trampoline);
            p.abort_callback_data = Arc::as_ptr(&abort).cast_mut().cast();
            sys::llama_init_from_model(model.ptr.as_ptr(), p)
        };
        let mut handle = NonNull::new(ptr).map(|ptr| ContextHandle {
            ptr,
            model,
            abort,
            adapters: Vec::new(),
            pools: Vec::new(),
        })?;
        handle.attach_threadpools(params.n_threads, params.n_threads_batch);
        Some(handle)
    }

    /// Gives the context persistent threadpools (when the CPU backend offers them).
    fn attach_threadpools(&mut self, n_threads: i32, n_threads_batch: i32) {
        // SAFETY: the context is live and exclusive; it stops using the old pools once
        // detached, before they are dropped below.
        unsafe { sys::llama_detach_threadpool(self.ptr.as_ptr()) };
        self.pools.clear();
        let Some(tp) = Threadpool::new(n_threads) else {
            return;
        };
        let tp_batch = if n_threads_batch == n_threads {
            None
        } else {
            Threadpool::new(n_threads_batch)
        };
        let batch_ptr = tp_batch.as_ref().map_or(tp.ptr, |t| t.ptr);
        // SAFETY: both pools stay alive in `self.pools` until detached or the context is freed.
        unsafe { sys::llama_attach_threadpool(self.ptr.as_ptr(), tp.ptr, batch_ptr) };
        self.pools.push(tp);
        self.pools.extend(tp_batch);
    }

    pub(crate) fn model(&self) -> &Arc<ModelHandle> {
        &self.model
    }

    pub(crate) fn n_ctx(&self) -> u32 {
        // SAFETY: the context is live for `&self`.
        unsafe { sys::llama_n_ctx(self.ptr.as_ptr()) }
    }
    pub(crate) fn n_batch(&self) -> u32 {
        // SAFETY: the context is live for `&self`.
        unsafe { sys::llama_n_batch(self.ptr.as_ptr()) }
    }
    pub(crate) fn n_ubatch(&self) -> u32 {
        // SAFETY: the context is live for `&self`.
        unsafe { sys::llama_n_ubatch(self.ptr.as_ptr()) }
    }
    pub(crate) fn n_seq_max(&self) -> u32 {
        // SAFETY: the context is live for `&self`.
        unsafe { sys::llama_n_seq_max(self.ptr.as_ptr()) }
    }
    pub(crate) fn pooling_type(&self) -> i32 {
        // SAFETY: the context is live for `&self`.
        unsafe { sys::llama_pooling_type(self.ptr.as_ptr()) }
    }

    pub(crate) fn set_threads(&mut self, n_threads: i32, n_threads_batch: i32) {
        // SAFETY: the context is live and not used elsewhere (`&mut self`).
        unsafe { sys::llama_set_n_threads(self.ptr.as_ptr(), n_threads, n_threads_batch) };
        self.attach_threadpools(n_threads, n_threads_batch);
    }

    pub(crate) fn set_embeddings(&mut self, on: bool) {
        // SAFETY: the context is live and not used elsewhere (`&mut self`).
        unsafe { sys::llama_set_embeddings(self.ptr.as_ptr(), on) };
    }

    /// Runs llama_decode; returns its status code. Callers validate the batch first (token ids
    /// in range, sequence ids below n_seq_max, every slice of equal length).
    pub(crate) fn decode(&mut self, b: &BatchView<'_>) -> i32 {
        let n = b.tokens.len();
        assert!(
            b.pos.len() == n && b.n_seq.len() == n && b.seq_ids.len() == n && b.logits.len() == n
        );
        let mut seq_ptrs: Vec<*mut i32> = b.seq_ids.iter().map(|s| s.as_ptr().cast_mut()).collect();
        let batch = sys::llama_batch {
            n_tokens: n as i32,
            token: b.tokens.as_ptr().cast_mut(),
            embd: ptr::null_mut(),
            pos: b.pos.as_ptr().cast_mut(),
            n_seq_id: b.n_seq.as_ptr().cast_mut(),
            seq_id: seq_ptrs.as_mut_ptr(),
            logits: b.logits.as_ptr().cast_mut(),
        };
        // SAFETY: every array holds `n` entries (asserted above) and outlives the call; each
        // `seq_id[i]` points at `n_seq[i]` ids (the callers build them from the same vectors);
        // llama_decode only reads the batch; the context is not used elsewhere (`&mut self`).
        unsafe { sys::llama_decode(self.ptr.as_ptr(), batch) }
    }

    /// Logits of output row `i` of the last decode (callers check that row `i` has logits).
    pub(crate) fn logits_ith(&self, i: i32) -> Option<&[f32]> {
        let n_vocab = self.model.n_vocab() as usize;
        // SAFETY: the context is live; llama.cpp returns null for an invalid index and otherwise
        // a row of n_vocab floats that stays valid until the next decode, which needs `&mut self`.
        unsafe {
            let p = sys::llama_get_logits_ith(self.ptr.as_ptr(), i);
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, n_vocab))
        }
    }

    /// Embedding of output row `i` (no pooling), `n_embd` floats.
    pub(crate) fn embeddings_ith(&self, i: i32) -> Option<&[f32]> {
        let n = self.model.n_embd() as usize;
        // SAFETY: as for `logits_ith`, with rows of n_embd floats.
        unsafe {
            let p = sys::llama_get_embeddings_ith(self.ptr.as_ptr(), i);
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, n))
        }
    }

    /// Pooled embedding of sequence `seq`, `n_embd` floats (rank pooling gives 1 float).
    pub(crate) fn embeddings_seq(&self, seq: i32, len: usize) -> Option<&[f32]> {
        // SAFETY: as for `logits_ith`; the caller passes the row length for the pooling type.
        unsafe {
            let p = sys::llama_get_embeddings_seq(self.ptr.as_ptr(), seq);
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, len))
        }
    }

    fn memory(&self) -> sys::llama_memory_t {
        // SAFETY: the context is live; the memory handle lives as long as the context.
        unsafe { sys::llama_get_memory(self.ptr.as_ptr()) }
    }

    pub(crate) fn memory_clear(&mut self, data: bool) {
        // SAFETY: the memory belongs to this live context, used exclusively (`&mut self`).
        unsafe { sys::llama_memory_clear(self.memory(), data) };
    }
    pub(crate) fn memory_seq_rm(&mut self, seq: i32, p0: i32, p1: i32) -> bool {
        // SAFETY: as for `memory_clear`; llama.cpp range-checks the arguments.
        unsafe { sys::llama_memory_seq_rm(self.memory(), seq, p0, p1) }
    }
    pub(crate) fn memory_seq_cp(&mut self, src: i32, dst: i32, p0: i32, p1: i32) {
        // SAFETY: as for `memory_clear`; callers check the sequence ids.
        unsafe { sys::llama_memory_seq_cp(self.memory(), src, dst, p0, p1) };
    }
    pub(crate) fn memory_seq_keep(&mut self, seq: i32) {
        // SAFETY: as for `memory_clear`; callers check the sequence id.
        unsafe { sys::llama_memory_seq_keep(self.memory(), seq) };
    }
    pub(crate) fn memory_seq_add(&mut self, seq: i32, p0: i32, p1: i32, delta: i32) {
        // SAFETY: as for `memory_clear`; callers check the sequence id.
        unsafe { sys::llama_memory_seq_add(self.memory(), seq, p0, p1, delta) };
    }
    pub(crate) fn memory_seq_div(&mut self, seq: i32, p0: i32, p1: i32, d: i32) {
        // SAFETY: as for `memory_clear`; callers check the sequence id and d > 0.
        unsafe { sys::llama_memory_seq_div(self.memory(), seq, p0, p1, d) };
    }
    pub(crate) fn memory_seq_pos_min(&self, seq: i32) -> i32 {
        // SAFETY: a read of the live context's memory; callers check the sequence id.
        unsafe { sys::llama_memory_seq_pos_min(self.memory(), seq) }
    }
    pub(crate) fn memory_seq_pos_max(&self, seq: i32) -> i32 {
        // SAFETY: a read of the live context's memory; callers check the sequence id.
        unsafe { sys::llama_memory_seq_pos_max(self.memory(), seq) }
    }
    pub(crate) fn memory_can_shift(&self) -> bool {
        // SAFETY: a read of the live context's memory.
        unsafe { sys::llama_memory_can_shift(self.memory()) }
    }

    /// The whole context state (KV cache, logits, RNG) as bytes.
    pub(crate) fn state_get(&mut self) -> Vec<u8> {
        // SAFETY: the context is live and exclusive; the buffer has the size llama.cpp asked for.
        unsafe {
            let n = sys::llama_state_get_size(self.ptr.as_ptr());
            let mut buf = vec![0u8; n];
            let w = sys::llama_state_get_data(self.ptr.as_ptr(), buf.as_mut_ptr(), buf.len());
            buf.truncate(w);
            buf
        }
    }
    /// Restores a state from `state_get`; false when llama.cpp rejects it.
    pub(crate) fn state_set(&mut self, data: &[u8]) -> bool {
        // SAFETY: the context is live and exclusive; llama.cpp reads at most `data.len()` bytes
        // and validates what it reads.
        unsafe {
            sys::llama_state_set_data(self.ptr.as_ptr(), data.as_ptr(), data.len()) == data.len()
        }
    }
    /// One sequence's state as bytes.
    pub(crate) fn seq_state_get(&mut self, seq: i32) -> Vec<u8> {
        // SAFETY: as for `state_get`; callers check the sequence id.
        unsafe {
            let n = sys::llama_state_seq_get_size(self.ptr.as_ptr(), seq);
            let mut buf = vec![0u8; n];
            let w =
                sys::llama_state_seq_get_data(self.ptr.as_ptr(), buf.as_mut_ptr(), buf.len(), seq);
            buf.truncate(w);
            buf
        }
    }
    /// Restores one sequence's state into `seq`; false when llama.cpp rejects it.
    pub(crate) fn seq_state_set(&mut self, data: &[u8], seq: i32) -> bool {
        // SAFETY: as for `state_set`; callers check the sequence id.
        unsafe {
            sys::llama_state_seq_set_data(self.ptr.as_ptr(), data.as_ptr(), data.len(), seq) != 0
        }
    }

    /// Applies LoRA adapters (replacing any set before); false on a llama.cpp error.
    pub(crate) fn set_adapters(&mut self, adapters: &[(Arc<LoraHandle>, f32)]) -> bool {
        let mut ptrs: Vec<*mut sys::llama_adapter_lora> =
            adapters.iter().map(|(a, _)| a.ptr.as_ptr()).collect();
        let mut scales: Vec<f32> = adapters.iter().map(|(_, s)| *s).collect();
        // SAFETY: the arrays hold `n` entries and outlive the call; each adapter belongs to
        // this context's model (callers check) and stays alive as long as the context because
        // the context keeps the Arcs below.
        let rc = unsafe {
            sys::llama_set_adapters_lora(
                self.ptr.as_ptr(),
                ptrs.as_mut_ptr(),
                ptrs.len(),
                scales.as_mut_ptr(),
            )
        };
        if rc == 0 {
            self.adapters = adapters.iter().map(|(a, _)| Arc::clone(a)).collect();
        }
        rc == 0
    }

    pub(crate) fn abort_flag(&self) -> &Arc<AtomicBool> {
        &self.abort
    }
}

impl Drop for ContextHandle {
    fn drop(&mut self) {
        // SAFETY: the context is exclusively owned; its model, adapters and threadpools are
        // still alive because this handle holds them until after the free (fields drop after).
        unsafe { sys::llama_free(self.ptr.as_ptr()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Samplers

/// One sampler stage to add to a chain.
pub(crate) enum Stage<'a> {
    Greedy,
    Dist(u32),
    TopK(i32),
    TopP(f32, usize),
    MinP(f32, usize),
    Typical(f32, usize),
    Temp(f32),
    Penalties {
        n_vocab: i32,
        last_n: i32,
        repeat: f32,
        freq: f32,
        present: f32,
    },
    Mirostat2 {
        seed: u32,
        tau: f32,
        eta: f32,
    },
    Mirostat {
        n_vocab: i32,
        seed: u32,
        tau: f32,
        eta: f32,
    },
    Grammar {
        model: &'a ModelHandle,
        grammar: &'a CStr,
        root: &'a CStr,
    },
    GrammarLazy {
        model: &'a ModelHandle,
        grammar: &'a CStr,
        root: &'a CStr,
        patterns: &'a [CString],
        tokens: &'a [RawToken],
    },
    LogitBias {
        n_vocab: i32,
        bias: &'a [(RawToken, f32)],
    },
}

/// An owned sampler chain.
pub(crate) struct SamplerHandle {
    ptr: NonNull<sys::llama_sampler>,
    /// Reused candidate buffer (n_vocab entries).
    candidates: Vec<sys::llama_token_data>,
}

// SAFETY: a sampler chain is plain state with no thread affinity; `&mut self` on every method
// that touches it keeps it single-threaded.
unsafe impl Send for SamplerHandle {}

impl SamplerHandle {
    pub(crate) fn chain() -> SamplerHandle {
        // SAFETY: default chain params are plain data; the chain is freed in Drop.
        let ptr = unsafe {
            let mut p = sys::llama_sampler_chain_default_params();
            p.no_perf = true;
            sys::llama_sampler_chain_init(p)
        };
        SamplerHandle {
            ptr: NonNull::new(ptr).expect("llama_sampler_chain_init never returns null"),
            candidates: Vec::new(),
        }
    }

    /// Adds a stage; false when llama.cpp refused to create it (an invalid grammar).
    pub(crate) fn add(&mut self, stage: Stage<'_>) -> bool {
        // SAFETY: each init function gets valid arguments: NUL-terminated strings, arrays with
        // their lengths, a live vocab. A null result (bad grammar) is checked before the chain
        // takes ownership of the new stage.
        let s = unsafe {
            match stage {
                Stage::Greedy => sys::llama_sampler_init_greedy(),
                Stage::Dist(seed) => sys::llama_sampler_init_dist(seed),
                Stage::TopK(k) => sys::llama_sampler_init_top_k(k),
                Stage::TopP(p, k) => sys::llama_sampler_init_top_p(p, k),
                Stage::MinP(p, k) => sys::llama_sampler_init_min_p(p, k),
                Stage::Typical(p, k) => sys::llama_sampler_init_typical(p, k),
                Stage::Temp(t) => sys::llama_sampler_init_temp(t),
                Stage::Penalties {
                    n_vocab,
                    last_n,
                    repeat,
                    freq,
                    present,
                } => sys::llama_sampler_init_penalties(n_vocab, last_n, repeat, freq, present),
                Stage::Mirostat2 { seed, tau, eta } => {
                    sys::llama_sampler_init_mirostat_v2(seed, tau, eta)
                }
                Stage::Mirostat {
                    n_vocab,
                    seed,
                    tau,
                    eta,
                } => sys::llama_sampler_init_mirostat(n_vocab, seed, tau, eta, 100),
                Stage::Grammar {
                    model,
                    grammar,
                    root,
                } => {
                    sys::llama_sampler_init_grammar(model.vocab(), grammar.as_ptr(), root.as_ptr())
                }
                Stage::GrammarLazy {
                    model,
                    grammar,
                    root,
                    patterns,
                    tokens,
                } => {
                    let pats: Vec<*const c_char> = patterns.iter().map(|p| p.as_ptr()).collect();
                    sys::llama_sampler_init_grammar_lazy_patterns(
                        model.vocab(),
                        grammar.as_ptr(),
                        root.as_ptr(),
                        pats.as_ptr().cast_mut(),
                        pats.len(),
                        tokens.as_ptr(),
                        tokens.len(),
                    )
                }
                Stage::LogitBias { n_vocab, bias } => {
                    let data: Vec<sys::llama_logit_bias> = bias
                        .iter()
                        .map(|&(token, bias)| sys::llama_logit_bias { token, bias })
                        .collect();
                    sys::llama_sampler_init_logit_bias(n_vocab, data.len() as i32, data.as_ptr())
                }
            }
        };
        if s.is_null() {
            return false;
        }
        // SAFETY: the chain is live; it takes ownership of the non-null stage.
        unsafe { sys::llama_sampler_chain_add(self.ptr.as_ptr(), s) };
        true
    }

    /// Applies the chain to `logits` and returns (chosen token, its logit after the chain),
    /// without accepting it. `None` when no candidate survives.
    pub(crate) fn select(&mut self, logits: &[f32]) -> Option<(RawToken, f32)> {
        self.select_with(None, logits)
    }

    fn select_with(
        &mut self,
        first: Option<&mut SamplerHandle>,
        logits: &[f32],
    ) -> Option<(RawToken, f32)> {
        self.candidates.clear();
        self.candidates.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| sys::llama_token_data {
                    id: i as RawToken,
                    logit: l,
                    p: 0.0,
                }),
        );
        let mut arr = sys::llama_token_data_array {
            data: self.candidates.as_mut_ptr(),
            size: self.candidates.len(),
            selected: -1,
            sorted: false,
        };
        if let Some(first) = first {
            // SAFETY: as below; `first` is a distinct live chain (it is `&mut`, so not `self`).
            unsafe { sys::llama_sampler_apply(first.ptr.as_ptr(), &mut arr) };
        }
        // SAFETY: `arr` describes the live `candidates` buffer; samplers may shrink `size`,
        // reorder entries or point `data` into the same buffer, all within its bounds.
        unsafe { sys::llama_sampler_apply(self.ptr.as_ptr(), &mut arr) };
        if arr.selected < 0 || arr.selected as usize >= arr.size {
            return None;
        }
        // SAFETY: `selected` is within `size` entries starting at `data` (checked above).
        let chosen = unsafe { *arr.data.add(arr.selected as usize) };
        Some((chosen.id, chosen.logit))
    }

    /// Applies this chain to a single candidate, `token` with `logit`, and says whether it
    /// survives (a grammar chain leaves an allowed token's logit finite and sets a ruled-out
    /// one to -inf). Used to check a token chosen without the grammar.
    pub(crate) fn allows(&mut self, token: RawToken, logit: f32) -> bool {
        let mut one = [sys::llama_token_data {
            id: token,
            logit,
            p: 0.0,
        }];
        let mut arr = sys::llama_token_data_array {
            data: one.as_mut_ptr(),
            size: 1,
            selected: -1,
            sorted: false,
        };
        // SAFETY: `arr` describes the one-entry local array; stages may only rewrite entries
        // within its bounds.
        unsafe { sys::llama_sampler_apply(self.ptr.as_ptr(), &mut arr) };
        arr.size == 1 && one[0].logit != f32::NEG_INFINITY && !one[0].logit.is_nan()
    }

    /// Like [`select`](Self::select), but `first` (a grammar chain) is applied to the full
    /// candidate array before this chain: the slow path when the token this chain chose
    /// alone was ruled out by the grammar.
    pub(crate) fn select_after(
        &mut self,
        first: &mut SamplerHandle,
        logits: &[f32],
    ) -> Option<(RawToken, f32)> {
        self.select_with(Some(first), logits)
    }

    /// Tells every stage which token was chosen (grammar state, penalties history).
    pub(crate) fn accept(&mut self, token: RawToken) {
        // SAFETY: the chain is live and exclusive; callers pass a token that was chosen with a
        // finite logit and, on a grammar chain, that the grammar allowed.
        unsafe { sys::llama_sampler_accept(self.ptr.as_ptr(), token) };
    }

    pub(crate) fn reset(&mut self) {
        // SAFETY: the chain is live and exclusive.
        unsafe { sys::llama_sampler_reset(self.ptr.as_ptr()) };
    }
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        // SAFETY: the chain owns its stages and is exclusively owned here.
        unsafe { sys::llama_sampler_free(self.ptr.as_ptr()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Built-in chat templates and quantization

/// Renders messages with llama.cpp's built-in (non-Jinja) template `name`; `None` when the
/// template is unknown to llama.cpp.
pub(crate) fn chat_apply_builtin(
    name: &str,
    messages: &[(String, String)],
    add_assistant: bool,
) -> Option<String> {
    let tmpl = CString::new(name).ok()?;
    let owned: Vec<(CString, CString)> = messages
        .iter()
        .map(|(r, c)| {
            Some((
                CString::new(r.as_str()).ok()?,
                CString::new(c.as_str()).ok()?,
            ))
        })
        .collect::<Option<_>>()?;
    let msgs: Vec<sys::llama_chat_message> = owned
        .iter()
        .map(|(r, c)| sys::llama_chat_message {
            role: r.as_ptr(),
            content: c.as_ptr(),
        })
        .collect();
    let total: usize = messages.iter().map(|(r, c)| r.len() + c.len()).sum();
    let mut buf = vec![0u8; total * 2 + 256];
    for _ in 0..2 {
        let cap = i32::try_from(buf.len()).ok()?;
        // SAFETY: `msgs` points at NUL-terminated strings kept alive by `owned`; `buf` has
        // `cap` writable bytes.
        let n = unsafe {
            sys::llama_chat_apply_template(
                tmpl.as_ptr(),
                msgs.as_ptr(),
                msgs.len(),
                add_assistant,
                buf.as_mut_ptr().cast(),
                cap,
            )
        };
        if n < 0 {
            return None;
        }
        let n = n as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        buf.resize(n, 0);
    }
    None
}

/// Quantizes a GGUF file with llama.cpp; returns its status (0 = success).
pub(crate) fn quantize(input: &Path, output: &Path, ftype: u32, threads: i32) -> Option<u32> {
    let (i, o) = (path_cstring(input)?, path_cstring(output)?);
    // SAFETY: both paths are NUL-terminated; the params struct is plain data passed by pointer
    // for the duration of the call.
    unsafe {
        let mut p = sys::llama_model_quantize_default_params();
        p.ftype = ftype;
        p.nthread = threads;
        Some(sys::llama_model_quantize(i.as_ptr(), o.as_ptr(), &p))
    }
}

/// The most sequences a context supports.
pub(crate) fn max_parallel_sequences() -> usize {
    // SAFETY: a constant getter with no preconditions.
    unsafe { sys::llama_max_parallel_sequences() }
}

// ---------------------------------------------------------------------------------------------
// Multimodal (mtmd): projector context, bitmaps, input chunks

/// Parameters for [`MtmdHandle::init`], plain data.
#[cfg(feature = "mtmd")]
#[derive(Debug, Clone)]
pub(crate) struct RawMtmdParams {
    pub use_gpu: bool,
    pub n_threads: i32,
    pub flash_attn: i32,
    pub warmup: bool,
    pub print_timings: bool,
    pub image_min_tokens: i32,
    pub image_max_tokens: i32,
}

/// An owned `mtmd_context`. It holds the text model it was made for (mtmd keeps a pointer to
/// it), so it can never outlive it. Encoding mutates the context: `&mut self`, and the handle
/// is Send but not Sync.
#[cfg(feature = "mtmd")]
pub(crate) struct MtmdHandle {
    ptr: NonNull<sys::mtmd_context>,
    model: Arc<ModelHandle>,
}

// SAFETY: an mtmd_context is not tied to the thread that made it; it must only not be used from
// two threads at once, which `&mut self` on the mutating methods and !Sync ensure.
#[cfg(feature = "mtmd")]
unsafe impl Send for MtmdHandle {}

/// Why an mtmd call failed: its status code.
#[cfg(feature = "mtmd")]
pub(crate) struct MtmdStatus(pub i32);

#[cfg(feature = "mtmd")]
impl MtmdHandle {
    /// Loads the projector at `path` for `model`; None when mtmd refuses it (it logs why).
    pub(crate) fn init(
        path: &Path,
        model: Arc<ModelHandle>,
        p: &RawMtmdParams,
    ) -> Option<MtmdHandle> {
        let c_path = path_cstring(path)?;
        // SAFETY: the default params are plain data; the path outlives the call; the model is
        // live (held by `model`, which the handle keeps); mtmd_init_from_file catches C++
        // exceptions and returns null on failure.
        let ptr = unsafe {
            let mut params = sys::mtmd_context_params_default();
            params.use_gpu = p.use_gpu;
            params.n_threads = p.n_threads;
            params.flash_attn_type = p.flash_attn;
            params.warmup = p.warmup;
            params.print_timings = p.print_timings;
            if p.image_min_tokens > 0 {
                params.image_min_tokens = p.image_min_tokens;
            }
            if p.image_max_tokens > 0 {
                params.image_max_tokens = p.image_max_tokens;
            }
            sys::mtmd_init_from_file(c_path.as_ptr(), model.ptr.as_ptr(), params)
        };
        NonNull::new(ptr).map(|ptr| MtmdHandle { ptr, model })
    }

    pub(crate) fn supports_vision(&self) -> bool {
        // SAFETY: the context is live for `&self`; the call only reads it.
        unsafe { sys::mtmd_support_vision(self.ptr.as_ptr()) }
    }

    pub(crate) fn supports_audio(&self) -> bool {
        // SAFETY: as above.
        unsafe { sys::mtmd_support_audio(self.ptr.as_ptr()) }
    }

    /// The audio sample rate in Hz, or a negative value without audio support.
    pub(crate) fn audio_sample_rate(&self) -> i32 {
        // SAFETY: as above.
        unsafe { sys::mtmd_get_audio_sample_rate(self.ptr.as_ptr()) }
    }

    pub(crate) fn uses_mrope(&self) -> bool {
        // SAFETY: as above.
        unsafe { sys::mtmd_decode_use_mrope(self.ptr.as_ptr()) }
    }

    /// The media marker the tokenizer replaces with media (`<__media__>` unless configured).
    pub(crate) fn marker(&self) -> String {
        // SAFETY: as above; mtmd returns a NUL-terminated string it owns (or null).
        unsafe {
            let p = sys::mtmd_get_marker(self.ptr.as_ptr());
            if p.is_null() {
                CStr::from_ptr(sys::mtmd_default_marker())
                    .to_string_lossy()
                    .into_owned()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// The text model's input embedding width (what each media token is).
    pub(crate) fn n_embd_inp(&self) -> usize {
        // SAFETY: the model is live (held by `self.model`).
        let n = unsafe { sys::llama_model_n_embd_inp(self.model.ptr.as_ptr()) };
        usize::try_from(n).unwrap_or(0)
    }

    /// Splits `text` (with markers) and `bitmaps` into owned chunks.
    pub(crate) fn tokenize(
        &self,
        text: &CStr,
        bitmaps: &[&BitmapHandle],
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<ChunkHandle>, MtmdStatus> {
        // SAFETY: mtmd_input_chunks_init allocates an empty list (never null in practice; a
        // null is treated as failure below).
        let chunks = unsafe { sys::mtmd_input_chunks_init() };
        let Some(chunks) = NonNull::new(chunks) else {
            return Err(MtmdStatus(-1));
        };
        let input = sys::mtmd_input_text {
            text: text.as_ptr(),
            text_len: text.to_bytes().len(),
            add_special,
            parse_special,
        };
        let ptrs: Vec<*const sys::mtmd_bitmap> = bitmaps
            .iter()
            .map(|b| b.ptr.as_ptr().cast_const())
            .collect();
        // SAFETY: the context, the text and every bitmap are live for the call; `ptrs` holds
        // `ptrs.len()` valid pointers; mtmd_tokenize catches C++ exceptions (status 2) and
        // checks the marker count against the bitmaps (status 1).
        let rc = unsafe {
            sys::mtmd_tokenize(
                self.ptr.as_ptr(),
                chunks.as_ptr(),
                &input,
                ptrs.as_ptr(),
                ptrs.len(),
            )
        };
        let result = if rc == 0 {
            // SAFETY: `chunks` is the live list just filled; each index is below its size; the
            // copies are owned by the returned handles and independent of the list.
            unsafe {
                let n = sys::mtmd_input_chunks_size(chunks.as_ptr());
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    let c = sys::mtmd_input_chunks_get(chunks.as_ptr(), i);
                    match NonNull::new(sys::mtmd_input_chunk_copy(c)) {
                        Some(ptr) => out.push(ChunkHandle { ptr }),
                        None => {
                            out.clear();
                            break;
                        }
                    }
                }
                if out.len() == n {
                    Ok(out)
                } else {
                    Err(MtmdStatus(-1))
                }
            }
        } else {
            Err(MtmdStatus(rc))
        };
        // SAFETY: the list is owned here and no longer used (the chunks were copied).
        unsafe { sys::mtmd_input_chunks_free(chunks.as_ptr()) };
        result
    }

    /// Encodes a media chunk and copies its embeddings (`n_tokens × n_embd_inp` floats).
    pub(crate) fn encode(&mut self, chunk: &ChunkHandle) -> Result<Vec<f32>, MtmdStatus> {
        let n = chunk.n_tokens() * self.n_embd_inp();
        if chunk.kind() == sys::MTMD_INPUT_CHUNK_TYPE_TEXT || n == 0 {
            return Err(MtmdStatus(-1));
        }
        // SAFETY: the context and the chunk are live; the context is not used elsewhere
        // (`&mut self`); mtmd_encode_chunk catches C++ exceptions.
        let rc = unsafe { sys::mtmd_encode_chunk(self.ptr.as_ptr(), chunk.ptr.as_ptr()) };
        if rc != 0 {
            return Err(MtmdStatus(rc));
        }
        // SAFETY: after a successful encode the output buffer holds the chunk's embeddings,
        // n_tokens rows of n_embd_inp floats, valid until the next encode (`&mut self`).
        unsafe {
            let p = sys::mtmd_get_output_embd(self.ptr.as_ptr());
            if p.is_null() {
                return Err(MtmdStatus(-1));
            }
            Ok(std::slice::from_raw_parts(p, n).to_vec())
        }
    }

    /// Decodes a media chunk's embeddings into `ctx` for `seq` from position `n_past`, in
    /// batches of `n_batch`; returns the position after it.
    pub(crate) fn decode(
        &mut self,
        ctx: &mut ContextHandle,
        chunk: &ChunkHandle,
        embd: &mut [f32],
        n_past: i32,
        seq: i32,
        n_batch: i32,
    ) -> Result<i32, MtmdStatus> {
        let want = chunk.n_tokens() * self.n_embd_inp();
        if chunk.kind() == sys::MTMD_INPUT_CHUNK_TYPE_TEXT
            || want == 0
            || embd.len() != want
            || n_batch <= 0
            || !Arc::ptr_eq(ctx.model(), &self.model)
        {
            return Err(MtmdStatus(-1));
        }
        let mut new_n_past = n_past;
        // SAFETY: context, chunk and mtmd context are live and used by this thread only
        // (`&mut` on both handles); `embd` holds the chunk's n_tokens × n_embd_inp floats
        // (checked above) and is only read; the chunk is a media chunk and n_batch > 0 (the
        // helper's asserts); the context was made from the projector's own text model.
        let rc = unsafe {
            sys::mtmd_helper_decode_image_chunk(
                self.ptr.as_ptr(),
                ctx.ptr.as_ptr(),
                chunk.ptr.as_ptr(),
                embd.as_mut_ptr(),
                n_past,
                seq,
                n_batch,
                &mut new_n_past,
                None,
                ptr::null_mut(),
            )
        };
        if rc == 0 {
            Ok(new_n_past)
        } else {
            Err(MtmdStatus(rc))
        }
    }
}

#[cfg(feature = "mtmd")]
impl Drop for MtmdHandle {
    fn drop(&mut self) {
        // SAFETY: the handle owns the context and drops it once; the model outlives this call
        // (the Arc field is dropped after it).
        unsafe { sys::mtmd_free(self.ptr.as_ptr()) };
    }
}

/// An owned `mtmd_bitmap` (RGB pixels or audio samples). Immutable once made, so shared.
#[cfg(feature = "mtmd")]
pub(crate) struct BitmapHandle {
    ptr: NonNull<sys::mtmd_bitmap>,
}

// SAFETY: a bitmap is plain owned data; after construction (and `set_id`, which takes `&mut`)
// it is only read.
#[cfg(feature = "mtmd")]
unsafe impl Send for BitmapHandle {}
// SAFETY: as above: shared access only reads.
#[cfg(feature = "mtmd")]
unsafe impl Sync for BitmapHandle {}

#[cfg(feature = "mtmd")]
impl BitmapHandle {
    /// A bitmap of `nx × ny` RGB pixels; callers check `rgb.len() == nx * ny * 3` and nonzero
    /// dimensions.
    pub(crate) fn from_rgb(nx: u32, ny: u32, rgb: &[u8]) -> Option<BitmapHandle> {
        let want = (nx as usize).checked_mul(ny as usize)?.checked_mul(3)?;
        if nx == 0 || ny == 0 || rgb.len() != want {
            return None;
        }
        // SAFETY: `rgb` holds exactly nx*ny*3 bytes (checked), which mtmd copies.
        let ptr = unsafe { sys::mtmd_bitmap_init(nx, ny, rgb.as_ptr()) };
        NonNull::new(ptr).map(|ptr| BitmapHandle { ptr })
    }

    /// An audio bitmap of PCM samples (mono f32 at the projector's sample rate).
    pub(crate) fn from_audio(samples: &[f32]) -> Option<BitmapHandle> {
        if samples.is_empty() {
            return None;
        }
        // SAFETY: `samples` holds `samples.len()` floats, which mtmd copies.
        let ptr = unsafe { sys::mtmd_bitmap_init_from_audio(samples.len(), samples.as_ptr()) };
        NonNull::new(ptr).map(|ptr| BitmapHandle { ptr })
    }

    pub(crate) fn nx(&self) -> u32 {
        // SAFETY: the bitmap is live for `&self`.
        unsafe { sys::mtmd_bitmap_get_nx(self.ptr.as_ptr()) }
    }

    pub(crate) fn ny(&self) -> u32 {
        // SAFETY: as above.
        unsafe { sys::mtmd_bitmap_get_ny(self.ptr.as_ptr()) }
    }

    pub(crate) fn is_audio(&self) -> bool {
        // SAFETY: as above.
        unsafe { sys::mtmd_bitmap_is_audio(self.ptr.as_ptr()) }
    }

    /// Sets the id mtmd copies into the chunks made from this bitmap (a content hash).
    pub(crate) fn set_id(&mut self, id: &CStr) {
        // SAFETY: the bitmap is live and not shared (`&mut self`); mtmd copies the string.
        unsafe { sys::mtmd_bitmap_set_id(self.ptr.as_ptr(), id.as_ptr()) };
    }
}

#[cfg(feature = "mtmd")]
impl Drop for BitmapHandle {
    fn drop(&mut self) {
        // SAFETY: the handle owns the bitmap and drops it once.
        unsafe { sys::mtmd_bitmap_free(self.ptr.as_ptr()) };
    }
}

/// An owned copy of one `mtmd_input_chunk` (text tokens, or a preprocessed image/audio).
#[cfg(feature = "mtmd")]
pub(crate) struct ChunkHandle {
    ptr: NonNull<sys::mtmd_input_chunk>,
}

// SAFETY: a chunk copy is plain owned data, never mutated after creation.
#[cfg(feature = "mtmd")]
unsafe impl Send for ChunkHandle {}
// SAFETY: as above: shared access only reads.
#[cfg(feature = "mtmd")]
unsafe impl Sync for ChunkHandle {}

#[cfg(feature = "mtmd")]
impl ChunkHandle {
    /// `MTMD_INPUT_CHUNK_TYPE_*`.
    pub(crate) fn kind(&self) -> u32 {
        // SAFETY: the chunk is live for `&self`.
        unsafe { sys::mtmd_input_chunk_get_type(self.ptr.as_ptr()) }
    }

    pub(crate) fn n_tokens(&self) -> usize {
        // SAFETY: as above.
        unsafe { sys::mtmd_input_chunk_get_n_tokens(self.ptr.as_ptr()) }
    }

    pub(crate) fn n_pos(&self) -> i32 {
        // SAFETY: as above.
        unsafe { sys::mtmd_input_chunk_get_n_pos(self.ptr.as_ptr()) }
    }

    /// The text tokens (empty for media chunks).
    pub(crate) fn text_tokens(&self) -> Vec<RawToken> {
        let mut n = 0usize;
        // SAFETY: the chunk is live; mtmd returns null for media chunks, otherwise `n` tokens
        // owned by the chunk, copied out before `&self` ends.
        unsafe {
            let p = sys::mtmd_input_chunk_get_tokens_text(self.ptr.as_ptr(), &mut n);
            if p.is_null() || n == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p, n).to_vec()
            }
        }
    }

    /// The media id (the bitmap's id), if any.
    pub(crate) fn id(&self) -> Option<String> {
        // SAFETY: the chunk is live; mtmd returns null or a NUL-terminated string it owns.
        unsafe {
            let p = sys::mtmd_input_chunk_get_id(self.ptr.as_ptr());
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    }
}

#[cfg(feature = "mtmd")]
impl Drop for ChunkHandle {
    fn drop(&mut self) {
        // SAFETY: the handle owns the copy and drops it once.
        unsafe { sys::mtmd_input_chunk_free(self.ptr.as_ptr()) };
    }
}
