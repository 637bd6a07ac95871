//! The multimodal reference: a tiny random-weight vision model made on this machine
//! (`scripts/make-vision-model`), and upstream's own `llama-mtmd-cli` run on it greedily, its
//! sampled ids and its prompt recorded.
//!
//! No small real vision model is at hand, so the tests make one: a gemma3 text model with the
//! SmolLM2 tokenizer and a gemma3 mmproj, seeded, byte-deterministic. What proves ollamars'
//! vision path is upstream's program and ours computing on the same files, the same machine,
//! the same parameters: the generated ids must be identical.
//!
//! The reference is `tools/mtmd/mtmd-cli.cpp` of the pinned tree, compiled unmodified by
//! `scripts/build-upstream-bench --mtmd` with the CMake options of the llama-sys build the test
//! was compiled against (`--cmake-cache`), then linked again here with
//! `upstream/record-mtmd.cpp` and `-Wl,--wrap` on `common_sampler_sample` (each sampled id, its
//! piece, whether it ends the generation) and `mtmd_tokenize_from_parts` (the formatted prompt
//! and the chunks it became). The recording binary is cached under `target/upstream-ref/`,
//! keyed by its inputs.
//!
//! Every failure panics with the reason and the fix: a parity test never skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use crate::upstream::LlamaBuild;

/// The generated vision model: a gemma3 text model and its mmproj.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisionModel {
    /// The text model (`model.gguf`).
    pub model: PathBuf,
    /// The multimodal projector (`mmproj.gguf`).
    pub mmproj: PathBuf,
}

/// The seed [`vision_model`] generates with.
pub const VISION_SEED: u64 = 1;

/// Media tokens one image gives with the generated mmproj (image size 64, patch 8, pooling 2).
pub const TOKENS_PER_IMAGE: usize = 16;

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn file_stamp(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{}:{len}:{mtime}\n", path.display())
}

use crate::upstream::run_checked;

/// Runs `scripts/make-vision-model --out dir --seed seed` with the SmolLM2 tokenizer of the
/// test-model cache, and returns the JSON it prints (paths, sizes, sha256, parameters).
///
/// # Panics
/// When the generator fails, with its output.
pub fn generate_vision_model(dir: &Path, seed: u64) -> serde_json::Value {
    let script = crate::workspace().join("scripts/make-vision-model");
    let tokenizer = crate::model_path(crate::SMOLLM2);
    let out = run_checked(
        Command::new("python3")
            .arg(&script)
            .arg("--out")
            .arg(dir)
            .args(["--seed", &seed.to_string()])
            .arg("--tokenizer-from")
            .arg(&tokenizer),
        "generating the tiny vision model",
        "it needs python3 with venv and pip, and the gguf and numpy packages (installed into \
         ~/.cache/ollamars/py/venv on first use, from the package index)",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("make-vision-model printed no JSON ({e}): {text}"))
}

/// The tiny vision model, generated once into `target/vision-model/<key>/`, keyed by the
/// generator's bytes, the seed and the tokenizer file: a changed generator makes a new one.
/// Generated into a temp folder and renamed into place, so concurrent tests never see half of
/// it.
///
/// # Panics
/// When it cannot be generated (see [`generate_vision_model`]); it never skips.
pub fn vision_model() -> VisionModel {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());

    let script = crate::workspace().join("scripts/make-vision-model");
    let tokenizer = crate::model_path(crate::SMOLLM2);
    let mut key =
        std::fs::read(&script).unwrap_or_else(|e| panic!("read {}: {e}", script.display()));
    key.extend(format!("seed {VISION_SEED}\n{}", file_stamp(&tokenizer)).bytes());
    let root = crate::workspace().join("target/vision-model");
    let dir = root.join(format!("{:016x}", fnv1a(&key)));
    let found = |d: &Path| VisionModel {
        model: d.join("model.gguf"),
        mmproj: d.join("mmproj.gguf"),
    };
    let ready = |m: &VisionModel| m.model.is_file() && m.mmproj.is_file();
    if ready(&found(&dir)) {
        return found(&dir);
    }
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("mkdir {}: {e}", root.display()));
    let tmp = tempfile::Builder::new()
        .prefix(".vision-model")
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("temp folder in {}: {e}", root.display()));
    generate_vision_model(tmp.path(), VISION_SEED);
    let made = tmp.keep();
    if let Err(e) = std::fs::rename(&made, &dir) {
        // Another process may have won the race: its copy is as good as ours.
        let _ = std::fs::remove_dir_all(&made);
        if !ready(&found(&dir)) {
            panic!("rename {} to {}: {e}", made.display(), dir.display());
        }
    }
    found(&dir)
}

/// One single-turn run of upstream's `llama-mtmd-cli`.
#[derive(Debug, Clone)]
pub struct MtmdRun<'a> {
    /// The text model (`-m`).
    pub model: &'a Path,
    /// The projector (`--mmproj`).
    pub mmproj: &'a Path,
    /// The images (`--image` each, in order); mtmd-cli puts one media marker per image before
    /// the prompt when the prompt has none.
    pub images: &'a [&'a Path],
    /// The user message (`-p`).
    pub prompt: &'a str,
    /// Tokens to generate at most (`-n`).
    pub n_predict: usize,
    /// Context size (`-c`).
    pub n_ctx: u32,
    /// Logical batch (`-b`).
    pub n_batch: u32,
    /// Physical batch (`-ub`); gemma3 images need all their tokens in one.
    pub n_ubatch: u32,
    /// Flash attention (`-fa on` / `-fa off`), for the text model and the projector.
    pub flash_attn: bool,
    /// Threads (`-t`).
    pub threads: u32,
    /// Render the chat template with the Jinja engine (`--jinja`) instead of llama.cpp's
    /// built-in template that the GGUF template is detected as (mtmd-cli's default).
    pub jinja: bool,
}

/// One piece of the prompt as mtmd tokenized it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// A text chunk: its token ids.
    Text(Vec<i32>),
    /// An image (or other media) chunk: how many positions of embeddings it fills.
    Media {
        /// The chunk's token count.
        n_tokens: usize,
    },
}

/// What one run of `llama-mtmd-cli` evaluated and generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtmdGreedy {
    /// The generated ids, without the end-of-generation id that stopped it, if one did.
    pub tokens: Vec<i32>,
    /// The end-of-generation id that stopped it before `n_predict`, if any.
    pub eog: Option<i32>,
    /// The generated text: the pieces of `tokens` as mtmd-cli prints them (special tokens
    /// rendered).
    pub text: String,
    /// The formatted chat mtmd-cli evaluated, media markers (`<__media__>`) where the images go.
    pub prompt: String,
    /// Whether the tokenizer was asked to add special tokens (BOS) to the prompt.
    pub add_special: bool,
    /// The chunks the prompt became, in order.
    pub prompt_chunks: Vec<Chunk>,
}

impl MtmdGreedy {
    /// The media chunks' token counts, in order.
    pub fn media_tokens(&self) -> Vec<usize> {
        self.prompt_chunks
            .iter()
            .filter_map(|c| match c {
                Chunk::Media { n_tokens } => Some(*n_tokens),
                Chunk::Text(_) => None,
            })
            .collect()
    }
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if s == "-" {
        return Ok(Vec::new());
    }
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd hex string `{s}`"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("hex `{s}`: {e}")))
        .collect()
}

fn num<T: std::str::FromStr>(s: Option<&str>, line: &str) -> Result<T, String> {
    s.and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("bad field in `{line}`"))
}

/// Parses what `record-mtmd.cpp` wrote (lines starting `ollamars-ref `; others are ignored).
///
/// # Errors
/// When a line is malformed, tokenizing failed, or nothing was recorded.
pub fn parse_record(record: &str) -> Result<MtmdGreedy, String> {
    let mut sampled: Vec<(i32, bool, Vec<u8>)> = Vec::new();
    let mut prompt = Vec::new();
    let mut add_special = None;
    let mut chunks = Vec::new();
    let mut tokenized = false;
    for line in record.lines() {
        let Some(rest) = line.strip_prefix("ollamars-ref ") else {
            continue;
        };
        let mut f = rest.split(' ');
        match f.next() {
            Some("token") => {
                let id = num(f.next(), line)?;
                let eog: u8 = num(f.next(), line)?;
                let piece = unhex(f.next().ok_or_else(|| format!("no piece in `{line}`"))?)?;
                sampled.push((id, eog == 1, piece));
            }
            Some("add_special") => add_special = Some(num::<u8>(f.next(), line)? == 1),
            Some("part") => {
                let hex = match f.next() {
                    Some("text") => f.nth(2),
                    Some("media") => f.next(),
                    _ => None,
                };
                prompt.extend(unhex(hex.ok_or_else(|| format!("bad part `{line}`"))?)?);
            }
            Some("tokenize_result") => {
                let res: i32 = num(f.next(), line)?;
                if res != 0 {
                    return Err(format!("mtmd_tokenize_from_parts returned {res}"));
                }
                tokenized = true;
            }
            Some("chunk") => match f.next() {
                Some("text") => chunks.push(Chunk::Text(
                    f.map(|t| t.parse().map_err(|_| format!("bad id in `{line}`")))
                        .collect::<Result<_, _>>()?,
                )),
                Some("media") => chunks.push(Chunk::Media {
                    n_tokens: num(f.next(), line)?,
                }),
                _ => return Err(format!("bad chunk `{line}`")),
            },
            _ => return Err(format!("unknown record `{line}`")),
        }
    }
    if !tokenized {
        return Err("no prompt was recorded (is record-mtmd.cpp linked in?)".into());
    }
    let mut eog = None;
    let mut tokens = Vec::new();
    let mut text = Vec::new();
    for (id, is_eog, piece) in sampled {
        if is_eog {
            // mtmd-cli stops at the first end-of-generation id and prints nothing of it.
            eog = Some(id);
            break;
        }
        tokens.push(id);
        text.extend(piece);
    }
    Ok(MtmdGreedy {
        tokens,
        eog,
        text: String::from_utf8_lossy(&text).into_owned(),
        prompt: String::from_utf8(prompt).map_err(|e| format!("prompt is not UTF-8: {e}"))?,
        add_special: add_special.ok_or("no add_special recorded")?,
        prompt_chunks: chunks,
    })
}

/// The CMake cache of the llama-sys build `build` describes: its link line's first `-L` is
/// `<root>/lib`, the cache is `<root>/build/CMakeCache.txt`.
///
/// # Panics
/// When the link line names no library folder or the cache is not there.
pub fn llama_sys_cmake_cache(build: &LlamaBuild) -> PathBuf {
    let lib = build
        .link_args
        .split('\t')
        .find_map(|a| a.strip_prefix("-L"))
        .unwrap_or_else(|| {
            panic!(
                "the llama-sys link line names no -L folder: {}",
                build.link_args
            )
        });
    let cache = Path::new(lib)
        .parent()
        .map(|root| root.join("build/CMakeCache.txt"))
        .unwrap_or_default();
    assert!(
        cache.is_file(),
        "no CMakeCache.txt at {} (derived from llama-sys's library folder {lib}): rebuild llama-sys",
        cache.display()
    );
    cache
}

/// The parts of upstream's mtmd build the recording binary is made of.
#[derive(Debug, Clone)]
struct MtmdBuild {
    include_dirs: Vec<String>,
    link_dir: PathBuf,
    link_command: String,
    object: PathBuf,
    libraries: Vec<PathBuf>,
}

/// Builds upstream's `llama-mtmd-cli` with `scripts/build-upstream-bench --mtmd` (cached: a
/// second call costs a CMake configure and a no-op make).
fn upstream_mtmd(build: &LlamaBuild) -> MtmdBuild {
    let cache = llama_sys_cmake_cache(build);
    let script = crate::workspace().join("scripts/build-upstream-bench");
    let out = run_checked(
        Command::new(&script)
            .args(["--mtmd", "--json", "--cmake-cache"])
            .arg(&cache),
        "building upstream's llama-mtmd-cli",
        "see the script's message; it needs cmake, a C++ compiler, python3 with pip (for the tools' \
         sdist) and, to be fast, ccache",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("build-upstream-bench printed no JSON ({e}): {text}"));
    let m = &v["mtmd"];
    let s = |k: &str| {
        m[k].as_str()
            .unwrap_or_else(|| panic!("build-upstream-bench's JSON has no mtmd.{k}: {v}"))
            .to_string()
    };
    let list = |k: &str| -> Vec<String> {
        m[k].as_array()
            .unwrap_or_else(|| panic!("build-upstream-bench's JSON has no mtmd.{k}: {v}"))
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    MtmdBuild {
        include_dirs: list("include_dirs"),
        link_dir: s("link_dir").into(),
        link_command: s("link_command"),
        object: s("object").into(),
        libraries: list("libraries").into_iter().map(PathBuf::from).collect(),
    }
}

/// The mangled name of `common_sampler_sample` as `mtmd-cli.o` refers to it.
fn sample_symbol(object: &Path) -> String {
    let out = run_checked(
        Command::new("nm").arg("-u").arg(object),
        &format!("listing the symbols of {}", object.display()),
        "nm is part of binutils (Debian: apt-get install binutils)",
    );
    let syms: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|s| s.starts_with("_Z21common_sampler_sample"))
        .map(String::from)
        .collect();
    match &syms[..] {
        [one] => one.clone(),
        _ => panic!(
            "expected one reference to common_sampler_sample in {}, found {syms:?}: upstream's mtmd-cli \
             changed, update testkit/upstream/record-mtmd.cpp",
            object.display()
        ),
    }
}

fn shell_quote(s: &str) -> String {
    assert!(!s.contains('\''), "path with a quote: {s}");
    format!("'{s}'")
}

/// The recording `llama-mtmd-cli` for `build`, linked when the cached one is out of date (the
/// upstream build is checked once per process).
///
/// # Panics
/// When it cannot be built, with the compiler's output and the fix.
pub fn mtmd_cli_binary(build: &LlamaBuild) -> PathBuf {
    // Checked once per test process and build: the script's CMake configure costs seconds.
    static DONE: Mutex<Vec<(&'static str, PathBuf)>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, exe)) = done.iter().find(|(k, _)| *k == build.link_args) {
        return exe.clone();
    }
    let exe = link_mtmd_cli(build);
    done.push((build.link_args, exe.clone()));
    exe
}

fn link_mtmd_cli(build: &LlamaBuild) -> PathBuf {
    let mb = upstream_mtmd(build);
    let record = crate::workspace().join("testkit/upstream/record-mtmd.cpp");
    let mut key =
        std::fs::read(&record).unwrap_or_else(|e| panic!("read {}: {e}", record.display()));
    key.extend(
        format!(
            "{}\n{}\n{:?}\n",
            build.cxx, mb.link_command, mb.include_dirs
        )
        .bytes(),
    );
    key.extend(file_stamp(&mb.object).bytes());
    for lib in &mb.libraries {
        key.extend(file_stamp(lib).bytes());
    }
    let dir = crate::workspace()
        .join("target/upstream-ref")
        .join(format!("mtmd-{:016x}", fnv1a(&key)));
    let exe = dir.join("llama-mtmd-cli-record");
    if exe.is_file() {
        return exe;
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let fix = "install a C++ compiler (Debian: apt-get install g++); the reference is upstream's mtmd-cli \
               linked with testkit/upstream/record-mtmd.cpp";

    let symbol = sample_symbol(&mb.object);
    let obj = dir.join("record-mtmd.o");
    let ccache = ["ccache", "sccache"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let mut cmd = match ccache {
        Some(c) => {
            let mut cmd = Command::new(c);
            cmd.arg(build.cxx);
            cmd
        }
        None => Command::new(build.cxx),
    };
    cmd.args(["-std=c++17", "-O2", "-c"])
        .args(mb.include_dirs.iter().map(|i| format!("-I{i}")))
        .arg(format!("-DOLLAMARS_SAMPLE_SYMBOL=\"{symbol}\""))
        .arg(&record)
        .arg("-o")
        .arg(&obj);
    run_checked(&mut cmd, &format!("compiling {}", record.display()), fix);

    // CMake's link step, with the output renamed and the recorder (and the wraps) linked
    // right after mtmd-cli's object, before the libraries.
    let tmp = dir.join(format!("llama-mtmd-cli-record.tmp{}", std::process::id()));
    let words: Vec<&str> = mb.link_command.split(' ').collect();
    let at = words
        .iter()
        .position(|w| *w == "-o")
        .filter(|i| i + 1 < words.len())
        .unwrap_or_else(|| panic!("no `-o <output>` in the link command: {}", mb.link_command));
    let mut line: Vec<String> = words[..at].iter().map(|w| (*w).to_string()).collect();
    line.push("-o".into());
    line.push(shell_quote(&tmp.display().to_string()));
    line.push(shell_quote(&obj.display().to_string()));
    line.push(format!(
        "-Wl,--wrap={symbol},--wrap=mtmd_tokenize_from_parts"
    ));
    line.extend(words[at + 2..].iter().map(|w| (*w).to_string()));
    run_checked(
        Command::new("sh")
            .arg("-c")
            .arg(line.join(" "))
            .current_dir(&mb.link_dir),
        "linking the recording llama-mtmd-cli",
        fix,
    );
    std::fs::rename(&tmp, &exe).unwrap_or_else(|e| panic!("rename into {}: {e}", exe.display()));
    exe
}

/// The command line [`mtmd_greedy`] runs (the binary first), for logs and reports.
pub fn mtmd_command(exe: &Path, run: &MtmdRun<'_>) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("-m").arg(run.model).arg("--mmproj").arg(run.mmproj);
    for image in run.images {
        cmd.arg("--image").arg(image);
    }
    cmd.arg("-p")
        .arg(run.prompt)
        .args(["--temp", "0", "--seed", "42"])
        .args(["-n", &run.n_predict.to_string()])
        .args(["-c", &run.n_ctx.to_string()])
        .args(["-b", &run.n_batch.to_string()])
        .args(["-ub", &run.n_ubatch.to_string()])
        .args(["-fa", if run.flash_attn { "on" } else { "off" }])
        .args(["-t", &run.threads.to_string()])
        .args(["-ngl", "0", "--no-mmproj-offload", "--no-warmup"]);
    if run.jinja {
        cmd.arg("--jinja");
    }
    cmd
}

/// Runs upstream's `llama-mtmd-cli` single-turn and greedily on `run`, and returns what it
/// evaluated and generated. Everything runs on the CPU (`-ngl 0 --no-mmproj-offload`), without
/// warmup (`--no-warmup`, which changes no result), seed 42.
///
/// # Panics
/// When it cannot be built or run, or recorded nothing.
pub fn mtmd_greedy(build: &LlamaBuild, run: &MtmdRun<'_>) -> MtmdGreedy {
    assert!(
        !run.images.is_empty(),
        "mtmd-cli runs single-turn only with an image"
    );
    assert!(
        !run.prompt.is_empty(),
        "mtmd-cli runs single-turn only with a prompt"
    );
    let exe = mtmd_cli_binary(build);
    let dir = tempfile::tempdir().expect("temp folder for the record");
    let record = dir.path().join("record.txt");
    let mut cmd = mtmd_command(&exe, run);
    cmd.env("OLLAMARS_REF_RECORD", &record)
        .stdin(std::process::Stdio::null());
    let out = run_checked(
        &mut cmd,
        "upstream's llama-mtmd-cli",
        "see its output above: the reference must run for the parity test to mean anything",
    );
    let text = std::fs::read_to_string(&record).unwrap_or_else(|e| {
        panic!(
            "mtmd-cli wrote no record at {} ({e}): is record-mtmd.cpp linked in?\n{}",
            record.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    parse_record(&text).unwrap_or_else(|e| {
        panic!(
            "mtmd-cli's record: {e}\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The RGB pixels of test image `pattern` (any number; different numbers give clearly different
/// images: gradients, stripes and a square whose phases and colours follow the number), row by
/// row, `width * height * 3` bytes.
pub fn test_image_pixels(width: u32, height: u32, pattern: u32) -> Vec<u8> {
    let p = pattern.wrapping_mul(2_654_435_761);
    let (a, b, c) = (p & 0xff, (p >> 8) & 0xff, (p >> 16) & 0xff);
    let mut out = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let inside = x > width / 4 + a % 8
                && x < width / 2 + b % 8
                && y > height / 4
                && y < height * 3 / 4;
            let stripe = ((x + y * (1 + c % 3)) / (2 + a % 5)) % 2 == 0;
            let r = (x * 255 / width.max(1) + a) % 256;
            let g = (y * 255 / height.max(1) + b) % 256;
            let bl = if stripe { c } else { 255 - c };
            let px = if inside {
                [255 - r, 255 - g, bl / 2]
            } else {
                [r, g, bl]
            };
            out.extend(px.map(|v| v as u8));
        }
    }
    out
}

/// Writes [`test_image_pixels`] as an 8-bit RGB PNG (through a temp file and a rename).
///
/// # Panics
/// When the file cannot be written.
pub fn write_test_png(path: &Path, width: u32, height: u32, pattern: u32) {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().expect("PNG header");
        w.write_image_data(&test_image_pixels(width, height, pattern))
            .expect("PNG data");
    }
    let dir = path.parent().expect("a file path has a parent");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .unwrap_or_else(|e| panic!("temp file in {}: {e}", dir.display()));
    std::fs::write(tmp.path(), &bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    tmp.persist(path)
        .unwrap_or_else(|e| panic!("rename into {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_images_are_deterministic_and_differ_by_pattern() {
        assert_eq!(test_image_pixels(64, 48, 1), test_image_pixels(64, 48, 1));
        assert_ne!(test_image_pixels(64, 48, 1), test_image_pixels(64, 48, 2));
        assert_eq!(test_image_pixels(64, 48, 3).len(), 64 * 48 * 3);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        write_test_png(&p, 64, 48, 1);
        assert!(std::fs::read(&p).unwrap().starts_with(b"\x89PNG"));
    }

    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_record_parses_into_prompt_chunks_and_ids() {
        let rec = format!(
            "noise\nollamars-ref add_special 1\nollamars-ref part text 0 1 {}\nollamars-ref part media {}\n\
             ollamars-ref part text 0 1 {}\nollamars-ref tokenize_result 0\nollamars-ref chunk text 1 2 3\n\
             ollamars-ref chunk media 16\nollamars-ref chunk text 4\nollamars-ref token 7 0 {}\n\
             ollamars-ref token 8 0 -\nollamars-ref token 2 1 {}\nollamars-ref token 9 0 {}\n",
            hex("<u>\n"),
            hex("<__media__>"),
            hex("hi"),
            hex(" a"),
            hex("<end>"),
            hex("x")
        );
        let g = parse_record(&rec).unwrap();
        assert_eq!(g.prompt, "<u>\n<__media__>hi");
        assert!(g.add_special);
        assert_eq!(
            g.prompt_chunks,
            vec![
                Chunk::Text(vec![1, 2, 3]),
                Chunk::Media { n_tokens: 16 },
                Chunk::Text(vec![4])
            ]
        );
        assert_eq!(g.media_tokens(), vec![16]);
        assert_eq!(g.tokens, vec![7, 8]);
        assert_eq!(g.eog, Some(2));
        assert_eq!(g.text, " a");
    }

    #[test]
    fn bad_records_are_refused() {
        assert!(parse_record("").is_err());
        assert!(
            parse_record("ollamars-ref add_special 0\nollamars-ref tokenize_result -1\n").is_err()
        );
        assert!(parse_record("ollamars-ref token x 0 -\n").is_err());
        assert!(parse_record("ollamars-ref part text 0 1 abc\n").is_err());
        assert!(parse_record("ollamars-ref what\n").is_err());
    }

    #[test]
    fn the_cmake_cache_comes_from_the_library_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("build")).unwrap();
        std::fs::write(dir.path().join("build/CMakeCache.txt"), "x").unwrap();
        let link = format!("-L{}/lib\t-lllama", dir.path().display());
        let build = LlamaBuild {
            include_dirs: "",
            link_args: Box::leak(link.into_boxed_str()),
            cxx: "c++",
            backends_dir: None,
        };
        assert_eq!(
            llama_sys_cmake_cache(&build),
            dir.path().join("build/CMakeCache.txt")
        );
    }
}
