//! `bench-report`: turns the results JSON written by `scripts/bench` into `BENCHMARKS.md`
//! (tables of medians, min..max, ratios against the upstream baseline, targets) and PNG plots.
//!
//! ```text
//! bench-report --results bench/results.json --md BENCHMARKS.md --plots bench/plots [--notes bench/NOTES.md]
//! ```
//!
//! Text in the plots needs a TrueType font, read at run time: `$BENCH_FONT`, else DejaVu Sans
//! (Debian: `apt-get install fonts-dejavu-core`). Nothing here needs a system library to build.

mod plot;
mod stats;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use stats::Summary;

/// The results file, as `scripts/bench` writes it.
#[derive(Deserialize)]
struct Results {
    meta: Value,
    bandwidth: Option<Bandwidth>,
    results: Vec<Row>,
    #[serde(default)]
    notes: Vec<String>,
}

/// STREAM-style bandwidth samples (GB/s, best of each run).
#[derive(Deserialize)]
struct Bandwidth {
    threads: u32,
    array_mib: u32,
    triad_gbs: Vec<f64>,
    read_gbs: Vec<f64>,
}

/// One measure of one model: samples per series (same index = same interleaved rep).
#[derive(Deserialize)]
struct Row {
    section: String,
    model: String,
    metric: String,
    unit: String,
    better: String,
    baseline: Option<String>,
    series: serde_json::Map<String, Value>,
    target: Option<Target>,
    x: Option<u32>,
    note: Option<String>,
    #[serde(default)]
    bound: bool,
}

/// A target for the series named in `check`, against the baseline.
#[derive(Deserialize)]
struct Target {
    min_ratio: Option<f64>,
    /// For lower-is-better series: candidate / baseline at most this.
    max_ratio: Option<f64>,
    max_diff: Option<f64>,
    check: Vec<String>,
}

impl Row {
    fn series(&self) -> Vec<(String, Vec<f64>)> {
        self.series
            .iter()
            .map(|(k, v)| {
                let xs = v
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default();
                (k.clone(), xs)
            })
            .collect()
    }

    fn get(&self, name: &str) -> Vec<f64> {
        self.series()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }
}

/// Command-line arguments.
struct Args {
    results: PathBuf,
    md: PathBuf,
    plots: PathBuf,
    notes: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let (mut results, mut md, mut plots, mut notes) = (None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        match k.as_str() {
            "--results" => results = Some(PathBuf::from(v)),
            "--md" => md = Some(PathBuf::from(v)),
            "--plots" => plots = Some(PathBuf::from(v)),
            "--notes" => notes = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    let usage = "usage: bench-report --results R.json --md OUT.md --plots DIR [--notes NOTES.md]";
    Ok(Args {
        results: results.ok_or(usage)?,
        md: md.ok_or(usage)?,
        plots: plots.ok_or(usage)?,
        notes,
    })
}

fn main() {
    if let Err(e) = run() {
        eprintln!("bench-report: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let text = std::fs::read_to_string(&args.results)
        .map_err(|e| format!("cannot read {}: {e}", args.results.display()))?;
    let res: Results = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a results file: {e}", args.results.display()))?;
    let notes = match &args.notes {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        ),
        None => None,
    };
    std::fs::create_dir_all(&args.plots)
        .map_err(|e| format!("cannot create {}: {e}", args.plots.display()))?;
    plot::load_font()?;
    let pngs = plot::all(&res, &args.plots)?;
    let md = markdown(&res, notes.as_deref(), &args.md, &args.plots, &pngs);
    std::fs::write(&args.md, &md)
        .map_err(|e| format!("cannot write {}: {e}", args.md.display()))?;
    print!("{}", summary_table(&res));
    println!(
        "bench-report: wrote {} and {} plots in {}",
        args.md.display(),
        pngs.len(),
        args.plots.display()
    );
    Ok(())
}

/// The model's label from the meta block (falls back to the key).
fn label(res: &Results, key: &str) -> String {
    res.meta["models"][key]["label"]
        .as_str()
        .unwrap_or(key)
        .to_string()
}

/// tokens/s upper bound of decode: triad bandwidth / model file size.
fn bound(res: &Results, key: &str) -> Option<f64> {
    let bw = res.bandwidth.as_ref()?;
    let bytes = res.meta["models"][key]["bytes"].as_f64()?;
    Some(Summary::of(&bw.triad_gbs)?.median * 1e9 / bytes)
}

/// The verdict for one checked series: (shown comparison, target text, met?).
fn verdict(row: &Row, name: &str) -> Option<(String, String, Option<bool>)> {
    let t = row.target.as_ref()?;
    let base = row.get(row.baseline.as_deref()?);
    let cand = row.get(name);
    if let Some(min) = t.min_ratio {
        let tt = format!("≥ {min:.2}×");
        return Some(match stats::paired_ratio(&cand, &base) {
            Some(r) => (format!("{r:.3}×"), tt, Some(r >= min)),
            None => ("n/a".into(), tt, None),
        });
    }
    if let Some(max) = t.max_ratio {
        let tt = format!("≤ {max:.2}×");
        return Some(match stats::paired_ratio(&cand, &base) {
            Some(r) => (format!("{r:.3}×"), tt, Some(r <= max)),
            None => ("n/a".into(), tt, None),
        });
    }
    if let Some(max) = t.max_diff {
        let tt = format!("≤ +{max} {}", row.unit);
        return Some(match stats::paired_diff(&cand, &base) {
            Some(d) => (format!("{d:+.1} {}", row.unit), tt, Some(d <= max)),
            None => ("n/a".into(), tt, None),
        });
    }
    None
}

fn status(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "meets",
        Some(false) => "**below target**",
        None => "not measured",
    }
}

fn fmt_summary(xs: &[f64]) -> String {
    match Summary::of(xs) {
        Some(s) if s.n == 1 => stats::num(s.median),
        Some(s) => format!(
            "{} ({}..{})",
            stats::num(s.median),
            stats::num(s.min),
            stats::num(s.max)
        ),
        None => "–".into(),
    }
}

/// The summary table: one line per checked series with a target.
fn summary_table(res: &Results) -> String {
    let mut s = String::new();
    s.push_str("| model | measure | baseline | median | candidate | median | vs baseline | target | status |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for row in &res.results {
        let Some(t) = &row.target else { continue };
        let base = row.baseline.clone().unwrap_or_default();
        for name in &t.check {
            let Some((cmp, tt, ok)) = verdict(row, name) else {
                continue;
            };
            let metric = match row.x {
                Some(x) => format!("{} @ {x} streams", row.metric),
                None => row.metric.clone(),
            };
            let cand = row.get(name);
            let shown_status = if cand.is_empty() {
                row.note.clone().unwrap_or_else(|| status(ok).into())
            } else {
                status(ok).into()
            };
            let _ = writeln!(
                s,
                "| {} | {metric} ({}) | {base} | {} | {name} | {} | {cmp} | {tt} | {shown_status} |",
                label(res, &row.model),
                row.unit,
                Summary::of(&row.get(&base)).map_or("–".into(), |x| stats::num(x.median)),
                Summary::of(&cand).map_or("–".into(), |x| stats::num(x.median)),
            );
        }
    }
    s
}

/// A detailed table of every row of a section (rows without `x`).
fn section_table(res: &Results, section: &str) -> String {
    let rows: Vec<&Row> = res
        .results
        .iter()
        .filter(|r| r.section == section && r.x.is_none())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    s.push_str("| model | measure | series | median (min..max) | vs baseline |");
    let with_bound = rows.iter().any(|r| r.bound);
    if with_bound {
        s.push_str(" of tg bound |");
    }
    s.push('\n');
    s.push_str(if with_bound {
        "|---|---|---|---|---|---|\n"
    } else {
        "|---|---|---|---|---|\n"
    });
    for row in rows {
        let base = row.baseline.as_deref().map(|b| row.get(b));
        for (name, xs) in row.series() {
            let cmp = match (&base, row.baseline.as_deref()) {
                (_, Some(b)) if b == name => "baseline".to_string(),
                (Some(bx), Some(_)) if row.better == "higher" => {
                    stats::paired_ratio(&xs, bx).map_or("–".into(), |r| format!("{r:.3}×"))
                }
                (Some(bx), Some(_)) => stats::paired_diff(&xs, bx)
                    .map_or("–".into(), |d| format!("{d:+.1} {}", row.unit)),
                _ => String::new(),
            };
            let shown = if xs.is_empty() {
                row.note.clone().unwrap_or("–".into())
            } else {
                format!("{} {}", fmt_summary(&xs), row.unit)
            };
            let _ = write!(
                s,
                "| {} | {} | {name} | {shown} | {cmp} |",
                label(res, &row.model),
                row.metric
            );
            if with_bound {
                let b = bound(res, &row.model);
                let frac = match (row.bound, b, Summary::of(&xs)) {
                    (true, Some(b), Some(x)) => format!("{:.0} %", 100.0 * x.median / b),
                    _ => String::new(),
                };
                let _ = write!(s, " {frac} |");
            }
            s.push('\n');
        }
    }
    let notes: Vec<String> = res
        .results
        .iter()
        .filter(|r| r.section == section && r.x.is_none())
        .filter_map(|r| {
            r.note
                .as_ref()
                .map(|n| format!("- {} {}: {n}", label(res, &r.model), r.metric))
        })
        .collect();
    if !notes.is_empty() {
        s.push('\n');
        s.push_str(&notes.join("\n"));
        s.push('\n');
    }
    s
}

/// The concurrency table: one line per (model, metric, streams).
fn parallel_table(res: &Results) -> String {
    let mut groups: BTreeMap<(String, String), Vec<&Row>> = BTreeMap::new();
    for r in res.results.iter().filter(|r| r.x.is_some()) {
        groups
            .entry((r.model.clone(), r.metric.clone()))
            .or_default()
            .push(r);
    }
    if groups.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "| model | measure | streams | llama-server median (min..max) | ollamars median (min..max) | ratio |\n|---|---|---|---|---|---|\n",
    );
    for ((model, metric), rows) in groups {
        for r in rows {
            let b = r.get(r.baseline.as_deref().unwrap_or("llama-server"));
            let o = r.get("ollamars");
            let ratio = stats::paired_ratio(&o, &b).map_or("–".into(), |x| format!("{x:.3}×"));
            let _ = writeln!(
                s,
                "| {} | {metric} ({}) | {} | {} | {} | {ratio} |",
                label(res, &model),
                r.unit,
                r.x.unwrap_or(0),
                fmt_summary(&b),
                fmt_summary(&o)
            );
        }
    }
    s
}

/// A path to `target` relative to the folder of `from` (for links in the markdown).
fn relative(from: &Path, target: &Path) -> String {
    let abs = |p: &Path| -> Vec<std::ffi::OsString> {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .components()
            .map(|c| c.as_os_str().to_os_string())
            .collect()
    };
    let f = abs(from.parent().unwrap_or(Path::new(".")));
    let t = abs(target);
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out.to_string_lossy().into_owned()
}

fn markdown(
    res: &Results,
    notes: Option<&str>,
    md: &Path,
    plots: &Path,
    pngs: &[(String, PathBuf)],
) -> String {
    let m = &res.meta;
    let mut s = String::new();
    s.push_str("# Benchmarks: ollamars against upstream llama.cpp\n\n");
    let _ = writeln!(
        s,
        "Generated by `scripts/bench` on {} ({} interleaved reps, {} threads, pp{} / tg{}, run took {} s). \
         Do not edit by hand: analysis goes into `bench/NOTES.md`, then `scripts/bench --report-only` \
         regenerates this file and the plots from `bench/results.json`.\n",
        m["date"].as_str().unwrap_or("?"),
        m["reps"],
        m["threads"],
        m["pp"],
        m["tg"],
        m["duration_s"]
    );
    if m["quick"].as_bool() == Some(true) {
        s.push_str("> **Quick smoke run** (1 rep, short lengths): the numbers only show that the pipeline works.\n\n");
    }
    s.push_str(
        "Medians of the interleaved reps with (min..max). Ratios are medians of per-rep ratios (each rep \
         runs the pair back to back, in alternating order), differences likewise. Every upstream number comes from \
         the same pinned llama.cpp tree with the same CMake flags as `llama-sys` (AMX fix included) unless marked \
         \"AMX off\".\n\n",
    );
    s.push_str("## Summary against the targets\n\n");
    s.push_str(&summary_table(res));
    if !res.notes.is_empty() {
        s.push_str("\nRun notes:\n");
        for n in &res.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    let img = |name: &str| -> String {
        pngs.iter()
            .filter(|(n, _)| n == name)
            .map(|(n, p)| format!("\n![{n}]({})\n", relative(md, p)))
            .collect()
    };
    let _ = plots;
    s.push_str("\n## 1. Prompt processing and generation\n\n");
    s.push_str(
        "llama-bench and the `llama` crate (`llama/examples/bench.rs`): pp = one batch of random tokens, \
         tg = single-token decodes from an empty context, flash attention on. ollamars: `/api/generate` streaming, \
         raw prompts; pp from the runner's `prompt_eval_duration` for a fresh prompt of about the same length, \
         tg = (chunks − 1) / (last chunk − first chunk) as the client sees it.\n\n",
    );
    s.push_str(&section_table(res, "throughput"));
    s.push_str(&img("throughput"));
    s.push_str("\n## 6. Memory bandwidth and the decode bound\n\n");
    if let Some(bw) = &res.bandwidth {
        let _ = writeln!(
            s,
            "`bench/stream.c`, {} threads, 3 × {} MiB arrays, best of 10 per run: triad {} GB/s, read-only {} GB/s. \
             Decode reads about all the weights per token, so tg ≤ triad bandwidth / model file size:\n",
            bw.threads,
            bw.array_mib,
            fmt_summary(&bw.triad_gbs),
            fmt_summary(&bw.read_gbs)
        );
        s.push_str("| model | file size | tg bound (t/s) |\n|---|---|---|\n");
        let models: Vec<&String> = {
            let mut v: Vec<&String> = res.results.iter().map(|r| &r.model).collect();
            v.dedup();
            v
        };
        let mut seen = Vec::new();
        for k in models {
            if seen.contains(&k) {
                continue;
            }
            seen.push(k);
            // Rows of items without a model file of their own (vision) have no bound.
            let Some(bytes) = m["models"][k.as_str()]["bytes"].as_f64() else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {:.1} MB | {} |",
                label(res, k),
                bytes / 1e6,
                bound(res, k).map_or("–".into(), stats::num)
            );
        }
        s.push_str(
            "\nThe \"of tg bound\" column of section 1 is each tg median over this bound.\n",
        );
    } else {
        s.push_str("Not measured in this run.\n");
    }
    s.push_str("\n## 2. Time to first token\n\n");
    s.push_str(
        "ollamars `/api/chat` against llama-server `/v1/chat/completions` (streaming, greedy), each server \
         started afresh per rep. TTFT = request sent → first non-empty content chunk. Cold = process start → first \
         token (start, model load, prefill). Warm = median of several short new prompts on the loaded model. \
         Second turn = the first turn's history plus the answer plus a short question (prefix reuse).\n\n",
    );
    s.push_str(&section_table(res, "ttft"));
    s.push_str(&img("ttft"));
    s.push_str("\n## 3. Concurrent streams\n\n");
    s.push_str(
        "N streams at once, each a raw counting prompt of its own: ollamars `/api/generate` with \
         `OLLAMA_NUM_PARALLEL=N` against llama-server `/completion` with `--parallel N` (2048 context tokens per slot \
         on both). Aggregate = all streams' tokens / wall time of the batch; per-stream figures are the median \
         stream's.\n\n",
    );
    s.push_str(&parallel_table(res));
    s.push_str(&img("parallel"));
    s.push_str("\n## 4. Memory, load time, CLI latency\n\n");
    s.push_str(
        "Peak RSS = VmHWM from /proc after the TTFT workload: ollamars sums `ollamars serve` and its \
         `ollamars runner` child. Load time = process start → ready to answer (llama-server: `/health` answers 200; \
         ollamars: serve answers, plus the `load_duration` of the first request).\n\n",
    );
    s.push_str(&section_table(res, "memory"));
    s.push_str(&img("memory"));
    s.push_str("\n## 5. Pull\n\n");
    s.push_str(
        "A loopback `docker-registry` holds the blobs and manifest that ollamars stored for the model \
         (pushed with the registry v2 monolithic upload). Throughput = bytes of all blobs / wall time: \
         `ollamars pull --insecure` into an empty store against one `curl` fetching the same blobs.\n\n",
    );
    s.push_str(&section_table(res, "pull"));
    s.push_str(&img("pull"));
    if res.results.iter().any(|r| r.section == "vision") {
        s.push_str("\n## 7. Vision\n\n");
        s.push_str(
            "The generated random-weight gemma3 vision model (`scripts/make-vision-model --vision bench`): \
             ollamars `/api/chat` with `images` against llama-server `--mmproj` `/v1/chat/completions` with a \
             data URI, both warm, a new PNG each rep (nothing cached). Image to first token = request sent → first \
             content chunk of a first turn with the image; second turn = that history plus the answer plus a short \
             question about the same image.\n\n",
        );
        s.push_str(&section_table(res, "vision"));
    }
    s.push_str("\n## Analysis\n\n");
    match notes {
        Some(n) => s.push_str(n.trim_end()),
        None => s.push_str("(none yet: write it in `bench/NOTES.md`)"),
    }
    s.push_str("\n\n## Machine and versions\n\n");
    let mach = &m["machine"];
    let _ = writeln!(
        s,
        "- CPU: {} ({} cores online; {}), {} GiB memory; {}, kernel {}; load average {} before, {} after the run",
        mach["cpu"].as_str().unwrap_or("?"),
        mach["cores"],
        mach["simd"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default(),
        mach["memory_gib"],
        mach["os"].as_str().unwrap_or("?"),
        mach["kernel"].as_str().unwrap_or("?"),
        mach["load_before"],
        m["load_after"]
    );
    if let Some(v) = m["versions"].as_object() {
        for (k, val) in v {
            let _ = writeln!(s, "- {k}: {}", val.as_str().unwrap_or("?"));
        }
    }
    if let Some(up) = m["upstream"].as_object() {
        for (amx, p) in up {
            let _ = writeln!(
                s,
                "- upstream (AMX {amx}): ggml/llama/common from `{}`; tools from {} (llama.cpp {} commit `{}`); \
                 C++ flags `{}`; patches: {}",
                p["pinned_tree"].as_str().unwrap_or("?"),
                p["tools_from"].as_str().unwrap_or("?"),
                p["tools_llama_cpp_version"].as_str().unwrap_or("?"),
                p["tools_llama_cpp_commit"].as_str().unwrap_or("?"),
                p["cxx_flags"].as_str().unwrap_or(""),
                p["patches"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; "))
                    .filter(|x| !x.is_empty())
                    .unwrap_or("none".into())
            );
        }
    }
    s.push_str(
        "\n## Reproduce\n\n```sh\nscripts/bench                 # full run: this file, bench/plots/, bench/results.json\n\
         scripts/bench --report-only   # regenerate this file and the plots from bench/results.json\n\
         scripts/bench --quick         # smoke run into target/bench-quick/\n\
         scripts/bench --callgrind     # instructions per token: llama crate vs llama-bench\n```\n",
    );
    s
}
