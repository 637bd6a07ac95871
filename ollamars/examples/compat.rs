//! The Ollama-layout translator from the command line.
//!
//! ```text
//! cargo run -p ollamars --example compat -- fixture gemma3-current|gemma3-noeps|gemma3-vocab|gemma3-mono|llama SRC DEST
//! cargo run -p ollamars --example compat -- translate BLOB
//! ```
//!
//! `fixture` writes the Ollama layout of a llama.cpp-converted GGUF (what Ollama's converter
//! writes, spec §9), for the Python client suite. `translate` copies BLOB into a temporary
//! store, makes its derived files as the server does on first load and prints the record, the
//! time it took and the sizes (run it under `/usr/bin/time -v` for the peak RSS).

use ollamars::compat::fixture::{self, Gemma3};
use ollamars::compat::{View, cache};
use ollamars::gguf::Gguf;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["fixture", kind, src, dest] => make_fixture(kind, Path::new(src), Path::new(dest)),
        ["translate", blob] => translate(Path::new(blob)),
        _ => Err("usage: compat fixture KIND SRC DEST | compat translate BLOB".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn make_fixture(kind: &str, src: &Path, dest: &Path) -> Result<(), String> {
    let g = Gguf::open(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let mut v = View::new(&g);
    match kind {
        "gemma3-current" => fixture::gemma3(&mut v, Gemma3::Current),
        "gemma3-noeps" => fixture::gemma3(&mut v, Gemma3::NoEpsilon),
        "gemma3-vocab" => fixture::gemma3(&mut v, Gemma3::ExtraVocab),
        "gemma3-mono" => fixture::gemma3(&mut v, Gemma3::Monolithic),
        "llama" => fixture::llama(&mut v),
        other => return Err(format!("unknown fixture {other:?}")),
    }
    fixture::write(&v, src, dest).map_err(|e| e.to_string())?;
    Ok(())
}

fn translate(blob: &Path) -> Result<(), String> {
    let dir =
        tempfile::tempdir_in(blob.parent().unwrap_or(Path::new("."))).map_err(|e| e.to_string())?;
    let store = ollamars::store::Store::new(dir.path());
    let f = std::fs::File::open(blob).map_err(|e| e.to_string())?;
    let (digest, size) = store.import_blob(f).map_err(|e| e.to_string())?;
    let t0 = std::time::Instant::now();
    let p = cache::prepare(&store, digest.as_ref()).map_err(|e| e.to_string())?;
    let took = t0.elapsed();
    match &p.record {
        Some(r) => {
            println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
            println!("source {size} bytes; derived in {took:?}: {}", r.summary());
        }
        None => println!("source {size} bytes: no translation needed ({took:?})"),
    }
    Ok(())
}
