//! The `ollamars` binary: a thin `main` over the `ollamars` library.

use std::process::ExitCode;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const LLAMA_CPP_PIN: &str = env!("OLLAMARS_LLAMA_CPP_PIN");
const BACKENDS: &str = env!("OLLAMARS_BACKENDS");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v" | "--version" | "version") => {
            println!(
                "{}",
                ollamars::version::long_version(VERSION, LLAMA_CPP_PIN, BACKENDS)
            );
            ExitCode::SUCCESS
        }
        Some("-h" | "--help") | None => {
            println!(
                "Usage: ollamars [--version]\n\nThis build can print its version; the commands arrive with the next issues."
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "Error: unknown command \"{other}\" for \"ollamars\"\nRun 'ollamars --help' for usage."
            );
            ExitCode::from(1)
        }
    }
}
