//! The `ollamars` binary: a thin `main` over the `ollamars` library.

/// Build metadata embedded by `build.rs`.
const BUILD: ollamars::version::BuildMeta = ollamars::version::BuildMeta {
    version: env!("CARGO_PKG_VERSION"),
    llama_cpp: env!("OLLAMARS_LLAMA_CPP_PIN"),
    backends: env!("OLLAMARS_BACKENDS"),
    modules: env!("OLLAMARS_MODULES"),
};

fn main() -> std::process::ExitCode {
    // The hidden runner subcommand skips the CLI (and its async runtime) entirely.
    if std::env::args_os().nth(1).is_some_and(|a| a == "runner") {
        return ollamars::runner::main();
    }
    ollamars::cli::main(BUILD)
}
