//! The model runner: a child process of the same binary (`ollamars runner`) that owns one loaded
//! model and serves completions and embeddings to the server over a framed local connection.

/// Entry point of `ollamars runner` (hidden; started by the server's scheduler).
pub fn main() -> std::process::ExitCode {
    eprintln!("Error: the runner is started by `ollamars serve`, not by hand");
    std::process::ExitCode::FAILURE
}
