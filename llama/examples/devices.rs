//! Lists the devices ggml found and says whether this build's GPU backend has one.
//!
//! `cargo run -p llama --features cuda --example devices`
//!
//! Exits with status 1 and one line (`built with CUDA but no CUDA device found`) when a GPU
//! backend is compiled in but none of its devices exists: `scripts/check-backend cuda` runs it
//! before the token check, so that a missing device is reported as such.

use std::process::ExitCode;

fn main() -> ExitCode {
    let info = llama::build_info();
    println!("llama.cpp {}, backends {}", info.llama_cpp, info.backends);
    for d in llama::devices() {
        println!(
            "{}: {} ({:?}, {} of {} MiB free)",
            d.name,
            d.description,
            d.kind,
            d.memory_free >> 20,
            d.memory_total >> 20
        );
    }
    match llama::missing_gpu() {
        Some(why) => {
            eprintln!("{why}: models would run on the CPU");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}
