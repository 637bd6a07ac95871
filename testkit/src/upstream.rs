//! The upstream reference for the parity tests: llama.cpp's own `simple` example, built on this
//! machine at test time against the very libraries `llama-sys` built, and run on the same model
//! and prompt as the test.
//!
//! Kernels differ between CPUs (AVX2, AVX-512, AMX, repacked or not) and backends, and greedy
//! paths diverge on near-ties, so ids recorded on another machine prove nothing here. What
//! proves parity is upstream's program and ours computing on the same build, the same machine,
//! the same parameters: then ids and text must be identical, with no tolerance.
//!
//! `simple.cpp` comes from the llama-cpp-python sdist (pinned in `vendor/upstream-tools`, the
//! same package `scripts/build-upstream-bench` takes the tools from), which carries the full
//! llama.cpp tree; it uses only `llama.h`, whose API the pinned tree shares. It is compiled
//! unmodified; `upstream/record.cpp` is linked beside it with `-Wl,--wrap` on five llama.cpp
//! functions to record the ids it tokenizes and samples, to load backend modules in
//! `dynamic-backends` builds, and to set the one parameter `simple` has no argument for, its
//! thread count, to [`threads`] (see that file). Compiles go through
//! ccache when it is installed; the binary is cached under `target/upstream-ref/`, keyed by the
//! sources, the flags and the libraries' sizes and times.
//!
//! Every failure panics with the reason and the fix: a parity test never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

/// What the parity harness needs to know of a `llama-sys` build: pass the constants of
/// `llama_sys::build_info` (this crate cannot depend on `llama-sys` itself, which uses it).
#[derive(Debug, Clone, Copy)]
pub struct LlamaBuild {
    /// `build_info::INCLUDE_DIRS`: the folders of `llama.h` and `ggml.h`, tab-separated.
    pub include_dirs: &'static str,
    /// `build_info::LINK_ARGS`: the C++ link line of the build, tab-separated.
    pub link_args: &'static str,
    /// `build_info::CXX`: the C++ compiler that built llama.cpp.
    pub cxx: &'static str,
    /// `build_info::BACKENDS_DIR`: the module folder of a `dynamic-backends` build.
    pub backends_dir: Option<&'static str>,
}

/// The [`LlamaBuild`] of the `llama_sys` crate in scope (the caller must depend on it): one
/// definition for every parity test.
#[macro_export]
macro_rules! llama_build {
    () => {
        $crate::upstream::LlamaBuild {
            include_dirs: llama_sys::build_info::INCLUDE_DIRS,
            link_args: llama_sys::build_info::LINK_ARGS,
            cxx: llama_sys::build_info::CXX,
            backends_dir: llama_sys::build_info::BACKENDS_DIR,
        }
    };
}

/// One greedy run of upstream's `simple`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greedy {
    /// The prompt's token ids (add_special and parse_special on, as `simple` tokenizes).
    pub prompt_tokens: Vec<i32>,
    /// The generated ids, without the end-of-generation id that stopped it, if one did.
    pub tokens: Vec<i32>,
    /// The end-of-generation id that stopped it before `n_predict`, if any.
    pub eog: Option<i32>,
    /// The generated text (the pieces of `tokens`, rendered with special tokens shown).
    pub text: String,
    /// The ggml backends that were registered when the model loaded.
    pub backends: Vec<String>,
}

/// The parameters of one run. `simple` fixes the rest: `n_ctx = n_prompt + n_predict - 1`,
/// `n_batch = n_prompt`, [`threads`] threads, llama.cpp's default context parameters otherwise,
/// and a greedy sampler.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// The GGUF file.
    pub model: &'a Path,
    /// The raw prompt (no chat template).
    pub prompt: &'a str,
    /// Tokens to generate.
    pub n_predict: usize,
    /// Layers to offload (`-ngl`).
    pub gpu_layers: i32,
    /// With `dynamic-backends`: module files to load instead of every module of the build's
    /// folder (one CPU variant, plus a GPU module where wanted).
    pub modules: Vec<PathBuf>,
}

/// The thread count of both sides of a parity check: the machine's cores.
pub fn threads() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u32)
}

/// The context size `simple` gives a prompt of `n_prompt` tokens: what a parity test must use.
pub fn simple_n_ctx(n_prompt: usize, n_predict: usize) -> u32 {
    (n_prompt + n_predict - 1) as u32
}

/// The pinned sdist that carries upstream's tool sources, from `vendor/upstream-tools`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolsSdist {
    /// The registry package (`llama-cpp-python`).
    pub package: String,
    /// Its version.
    pub version: String,
    /// The sha256 of the sdist file, lowercase hex.
    pub sha256: String,
}

/// Parses `vendor/upstream-tools`: the first line that is not a comment,
/// `<package> <version> <sha256>`.
pub fn parse_tools_sdist(text: &str) -> Result<ToolsSdist, String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or("names no package")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        [package, version, sha256]
            if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(ToolsSdist {
                package: package.into(),
                version: version.into(),
                sha256: sha256.to_ascii_lowercase(),
            })
        }
        _ => Err(format!(
            "expected `<package> <version> <sha256>`, found `{line}`"
        )),
    }
}

/// The pinned sdist of `vendor/upstream-tools`.
pub fn tools_sdist() -> ToolsSdist {
    let path = crate::workspace().join("vendor/upstream-tools");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_tools_sdist(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sha256_file(path: &Path) -> String {
    let out = run_checked(
        Command::new("sha256sum").arg(path),
        &format!("hashing {}", path.display()),
        "sha256sum is part of coreutils",
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The cache of upstream downloads: `$OLLAMARS_UPSTREAM_CACHE`, else
/// `${XDG_CACHE_HOME:-~/.cache}/ollamars/upstream` (as `scripts/build-upstream-bench`).
pub fn cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("OLLAMARS_UPSTREAM_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|c| c.join("ollamars/upstream")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/ollamars/upstream")))
        .expect("set OLLAMARS_UPSTREAM_CACHE or HOME to locate the upstream cache")
}

/// Runs `cmd`; panics with its output and `fix` when it cannot run or fails.
pub(crate) fn run_checked(cmd: &mut Command, what: &str, fix: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}; {fix}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\n{}\n{}\n{fix}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out
}

/// Writes `bytes` to `path` through a temp file and a rename, so that concurrent test
/// processes never see half a file.
fn write_atomic(path: &Path, bytes: &[u8]) {
    let dir = path.parent().expect("a file path has a parent");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .unwrap_or_else(|e| panic!("temp file in {}: {e}", dir.display()));
    std::fs::write(tmp.path(), bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    tmp.persist(path)
        .unwrap_or_else(|e| panic!("rename into {}: {e}", path.display()));
}

/// Upstream's `examples/simple/simple.cpp`, extracted once from the pinned sdist (downloaded
/// with pip when it is not cached).
pub fn simple_source() -> PathBuf {
    let pin = tools_sdist();
    let (package, version) = (&pin.package, &pin.version);
    let cache = cache_dir();
    let source = cache.join(format!("simple-{version}-{}.cpp", &pin.sha256[..12]));
    if source.is_file() {
        return source;
    }
    let dist = package.replace('-', "_");
    let sdist = cache.join(format!("{dist}-{version}.tar.gz"));
    let fix = "the parity tests need python3 with pip and access to the package index (Debian: apt-get install \
               python3-pip), or the sdist placed in the upstream cache";
    if !sdist.is_file() {
        std::fs::create_dir_all(&cache)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", cache.display()));
        run_checked(
            Command::new("python3")
                .args(["-m", "pip", "download", "--quiet", "--no-deps"])
                .args(["--no-binary", ":all:", "--disable-pip-version-check", "-d"])
                .arg(&cache)
                .arg(format!("{package}=={version}")),
            &format!("downloading the {package} {version} sdist (upstream's tool sources)"),
            fix,
        );
    }
    let got = sha256_file(&sdist);
    assert_eq!(
        got,
        pin.sha256,
        "{} does not have the sha256 that vendor/upstream-tools pins: delete it so that it is downloaded again, \
         or update the pin if the package was deliberately changed",
        sdist.display()
    );
    let member = format!("{dist}-{version}/vendor/llama.cpp/examples/simple/simple.cpp");
    let out = run_checked(
        Command::new("tar").arg("-xzOf").arg(&sdist).arg(&member),
        &format!("extracting {member} from {}", sdist.display()),
        "delete the sdist from the upstream cache so that it is downloaded again",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("llama_sampler_sample"),
        "{member} in {} is not upstream's simple example",
        sdist.display()
    );
    write_atomic(&source, &out.stdout);
    source
}

fn split_tabs(s: &str) -> Vec<String> {
    s.split('\t')
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

/// A fingerprint of the libraries a link line names (path, size, modification time), so that a
/// rebuilt llama.cpp rebuilds the reference.
fn libraries_fingerprint(link_args: &[String]) -> String {
    let mut out = String::new();
    for dir in link_args.iter().filter_map(|a| a.strip_prefix("-L")) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                (n.starts_with("libllama") || n.starts_with("libggml"))
                    && (n.ends_with(".a") || n.contains(".so"))
            })
            .collect();
        files.sort_by_key(|e| e.file_name());
        for e in files {
            let meta = e.metadata().ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let mtime = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push_str(&format!("{}:{len}:{mtime}\n", e.path().display()));
        }
    }
    out
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The path of upstream's `simple` built against `build`, compiling it when the cached one is
/// out of date.
///
/// # Panics
/// When it cannot be built, with the compiler's output and the fix.
pub fn simple_binary(build: &LlamaBuild) -> PathBuf {
    // One build at a time per test process; across processes the rename keeps it whole.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());

    let source = simple_source();
    let record = crate::workspace().join("testkit/upstream/record.cpp");
    let includes = split_tabs(build.include_dirs);
    let link = split_tabs(build.link_args);
    let wraps = [
        "llama_tokenize",
        "llama_sampler_sample",
        "llama_vocab_is_eog",
        "llama_backend_init",
        "llama_init_from_model",
    ];

    let mut key = Vec::new();
    for f in [&source, &record] {
        key.extend(std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display())));
    }
    key.extend(format!("{}\n{includes:?}\n{link:?}\n{wraps:?}\n", build.cxx).bytes());
    key.extend(libraries_fingerprint(&link).bytes());
    let dir = crate::workspace()
        .join("target/upstream-ref")
        .join(format!("{:016x}", fnv1a(&key)));
    let exe = dir.join("simple");
    if exe.is_file() {
        return exe;
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));

    let ccache = ["ccache", "sccache"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let fix = "install a C++ compiler (Debian: apt-get install g++) and ccache; the reference is upstream's \
               simple.cpp compiled against the libraries llama-sys built";
    let mut objects = Vec::new();
    for (src, obj) in [(&source, "simple.o"), (&record, "record.o")] {
        let obj = dir.join(obj);
        let mut cmd = match ccache {
            Some(c) => {
                let mut cmd = Command::new(c);
                cmd.arg(build.cxx);
                cmd
            }
            None => Command::new(build.cxx),
        };
        cmd.args(["-std=c++17", "-O2", "-c"])
            .args(includes.iter().map(|i| format!("-I{i}")))
            .arg(src)
            .arg("-o")
            .arg(&obj);
        run_checked(&mut cmd, &format!("compiling {}", src.display()), fix);
        objects.push(obj);
    }
    let tmp = dir.join(format!("simple.tmp{}", std::process::id()));
    let mut cmd = Command::new(build.cxx);
    cmd.args(&objects)
        .arg("-o")
        .arg(&tmp)
        .arg(format!(
            "-Wl,{}",
            wraps.map(|w| format!("--wrap={w}")).join(",")
        ))
        .args(&link);
    run_checked(
        &mut cmd,
        "linking upstream's simple against llama-sys's libraries",
        fix,
    );
    std::fs::rename(&tmp, &exe).unwrap_or_else(|e| panic!("rename into {}: {e}", exe.display()));
    exe
}

/// Runs upstream's `simple` greedily on `run` and returns what it tokenized and generated.
///
/// `extra_env` goes to the process as is (e.g. `GGML_VK_VISIBLE_DEVICES`).
///
/// # Panics
/// When it cannot be built or run, or its output is not what `simple` prints.
pub fn greedy(build: &LlamaBuild, run: &Run<'_>, extra_env: &[(&str, &str)]) -> Greedy {
    let exe = simple_binary(build);
    let mut cmd = Command::new(&exe);
    cmd.arg("-m")
        .arg(run.model)
        .args(["-n", &run.n_predict.to_string()])
        .args(["-ngl", &run.gpu_layers.to_string()])
        .arg(run.prompt);
    cmd.env_remove("OLLAMARS_REF_MODULE")
        .env_remove("OLLAMARS_REF_BACKENDS_DIR")
        .env("OLLAMARS_REF_THREADS", threads().to_string());
    if !run.modules.is_empty() {
        let list: Vec<String> = run
            .modules
            .iter()
            .map(|m| m.display().to_string())
            .collect();
        cmd.env("OLLAMARS_REF_MODULE", list.join(":"));
    } else if let Some(dir) = build.backends_dir {
        cmd.env("OLLAMARS_REF_BACKENDS_DIR", dir);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = run_checked(
        &mut cmd,
        &format!("upstream's simple on {}", run.model.display()),
        "see its output above: the reference must run for the parity test to mean anything",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut prompt_tokens = None;
    let mut sampled = Vec::new();
    let mut eog = None;
    let mut backends = Vec::new();
    let ids = |rest: &str| -> Vec<i32> {
        rest.split_whitespace()
            .map(|t| {
                t.parse()
                    .unwrap_or_else(|_| panic!("bad id `{t}` in simple's output"))
            })
            .collect()
    };
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("ollamars-ref ") else {
            continue;
        };
        if let Some(r) = rest.strip_prefix("prompt") {
            prompt_tokens.get_or_insert_with(|| ids(r));
        } else if let Some(r) = rest.strip_prefix("token") {
            sampled.extend(ids(r));
        } else if let Some(r) = rest.strip_prefix("eog") {
            eog = ids(r).first().copied();
        } else if let Some(r) = rest.strip_prefix("backend ") {
            backends.push(r.trim().to_string());
        }
    }
    let prompt_tokens = prompt_tokens.unwrap_or_else(|| {
        panic!("upstream's simple printed no prompt tokens: is record.cpp linked in?\n{stderr}")
    });
    if let Some(e) = eog {
        assert_eq!(
            sampled.last(),
            Some(&e),
            "the eog id is the last sampled id"
        );
        sampled.pop();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (_, generated) = stdout
        .split_once('\x1e')
        .unwrap_or_else(|| panic!("no generation marker in simple's output: {stdout:?}"));
    let text = generated
        .strip_suffix('\n')
        .unwrap_or(generated)
        .to_string();
    Greedy {
        prompt_tokens,
        tokens: sampled,
        eog,
        text,
        backends,
    }
}

/// What this machine's CPU is, for the test log: the model name and the SIMD flags that decide
/// which kernels llama.cpp picks.
pub fn cpu_summary() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let flags: Vec<&str> = info
        .lines()
        .find_map(|l| l.strip_prefix("flags").and_then(|r| r.split_once(':')))
        .map(|(_, f)| f.split_whitespace().collect())
        .unwrap_or_default();
    let wanted = [
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vnni",
        "avx512_vnni",
        "avx512_bf16",
        "avx512vbmi",
        "avx_vnni",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
    ];
    let have: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| flags.contains(w))
        .collect();
    format!("{model} [{}]", have.join(" "))
}

/// Compares a run of ours with upstream's: prompt ids, generated ids and text must be identical.
/// Prints both first, so that a failure shows the whole picture.
///
/// # Panics
/// On any difference, naming the first differing position.
pub fn assert_same(what: &str, ours: &Greedy, upstream: &Greedy) {
    eprintln!(
        "{what} on {}:\n  upstream {:?} {:?}\n  ours     {:?} {:?}",
        cpu_summary(),
        upstream.tokens,
        upstream.text,
        ours.tokens,
        ours.text
    );
    assert_eq!(
        ours.prompt_tokens, upstream.prompt_tokens,
        "{what}: the prompt tokenizes differently from upstream"
    );
    if ours.tokens != upstream.tokens {
        let at = ours
            .tokens
            .iter()
            .zip(&upstream.tokens)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.tokens.len().min(upstream.tokens.len()));
        panic!(
            "{what}: greedy ids differ from upstream's simple (same build, same machine) at position {at}: \
             ours {:?}, upstream {:?}",
            ours.tokens.get(at),
            upstream.tokens.get(at)
        );
    }
    assert_eq!(
        ours.eog, upstream.eog,
        "{what}: the generation ended differently"
    );
    assert_eq!(
        ours.text, upstream.text,
        "{what}: the text differs from upstream"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tokens: &[i32], text: &str) -> Greedy {
        Greedy {
            prompt_tokens: vec![1, 2, 3],
            tokens: tokens.to_vec(),
            eog: None,
            text: text.into(),
            backends: Vec::new(),
        }
    }

    #[test]
    fn identical_runs_pass() {
        assert_same("same", &run(&[4, 5, 6], "abc"), &run(&[4, 5, 6], "abc"));
    }

    #[test]
    #[should_panic(expected = "at position 1")]
    fn one_different_id_fails_and_says_where() {
        assert_same("ids", &run(&[4, 5, 6], "abc"), &run(&[4, 7, 6], "abc"));
    }

    #[test]
    #[should_panic(expected = "at position 2")]
    fn a_shorter_run_fails() {
        assert_same("short", &run(&[4, 5], "ab"), &run(&[4, 5, 6], "abc"));
    }

    #[test]
    #[should_panic(expected = "text differs")]
    fn different_text_fails() {
        assert_same("text", &run(&[4, 5, 6], "abc"), &run(&[4, 5, 6], "abd"));
    }

    #[test]
    #[should_panic(expected = "tokenizes differently")]
    fn different_prompt_tokens_fail() {
        let mut other = run(&[4], "a");
        other.prompt_tokens = vec![1, 2];
        assert_same("prompt", &run(&[4], "a"), &other);
    }

    #[test]
    fn the_pin_file_parses_and_bad_ones_are_refused() {
        let pin = tools_sdist();
        assert_eq!(pin.package, "llama-cpp-python");
        assert_eq!(pin.sha256.len(), 64);
        assert!(parse_tools_sdist("# only a comment\n").is_err());
        assert!(parse_tools_sdist("pkg 1.0\n").is_err());
        assert!(parse_tools_sdist("pkg 1.0 nothex\n").is_err());
        let ok = parse_tools_sdist(&format!("# c\n\npkg 1.0 {}\n", "A".repeat(64))).unwrap();
        assert_eq!(ok.sha256, "a".repeat(64));
    }
}
