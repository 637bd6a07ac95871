//! The `ollamars` command line, with Ollama's commands, flags and output. Like Ollama's CLI it
//! talks to a running server over HTTP (`OLLAMA_HOST`).

mod attach;
mod create;
mod display;
mod history;
mod input;
mod ps;
mod pull;
mod repl;
mod run;
mod show;
mod timing;
mod wrap;

pub use run::RunArgs;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

use crate::api::{CopyRequest, ModelRequest};
use crate::client::{Client, ClientError};
use crate::config::{Config, ConfigError};
use crate::format::{human_bytes, human_time};

/// An error for the user: printed as `Error: <message>`, exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the server or the connection.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An environment variable with a value that does not parse.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else, already worded for the user.
    #[error("{0}")]
    Message(String),
}

/// Large language model runner (Ollama-compatible).
#[derive(Debug, Parser)]
#[command(
    name = "ollamars",
    disable_version_flag = true,
    after_help = crate::config::client_vars_help()
)]
pub struct Cli {
    /// Show version information.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start ollamars (serves the API on OLLAMA_HOST, models in OLLAMA_MODELS).
    #[command(alias = "start", after_help = crate::config::server_vars_help())]
    Serve,
    /// Create a model from a Modelfile.
    Create {
        /// Name of the model to create.
        model: String,
        /// Name of the Modelfile.
        #[arg(short = 'f', long = "file", default_value = "Modelfile")]
        file: String,
        /// Quantize the model to this level (e.g. q4_K_M).
        #[arg(short = 'q', long = "quantize")]
        quantize: Option<String>,
        /// Copy local model files into the store even where they could be linked.
        #[arg(long)]
        copy: bool,
    },
    /// Show information for a model.
    Show {
        /// The model.
        model: String,
        /// Show license of a model.
        #[arg(long)]
        license: bool,
        /// Show Modelfile of a model.
        #[arg(long)]
        modelfile: bool,
        /// Show parameters of a model.
        #[arg(long)]
        parameters: bool,
        /// Show template of a model.
        #[arg(long)]
        template: bool,
        /// Show system message of a model.
        #[arg(long)]
        system: bool,
        /// Show detailed model information.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Run a model: answer a prompt, or chat interactively.
    Run(RunArgs),
    /// Pull a model from a registry.
    Pull {
        /// The model (`[host/][namespace/]model[:tag]`).
        model: String,
        /// Use an insecure registry (plain http).
        #[arg(long)]
        insecure: bool,
    },
    /// Push a model to a registry.
    Push {
        /// The model (`[host/][namespace/]model[:tag]`).
        model: String,
        /// Use an insecure registry (plain http).
        #[arg(long)]
        insecure: bool,
    },
    /// Stop a running model (unload it now).
    Stop {
        /// The model.
        model: String,
    },
    /// List running models.
    Ps {
        /// Only models whose name starts with this.
        prefix: Option<String>,
    },
    /// List models.
    #[command(alias = "ls")]
    List {
        /// Only models whose name starts with this.
        prefix: Option<String>,
    },
    /// Copy a model.
    Cp {
        /// Source model.
        source: String,
        /// Destination model.
        destination: String,
    },
    /// Remove a model.
    Rm {
        /// Models to remove.
        #[arg(required = true)]
        models: Vec<String>,
    },
    /// Print a shell completion script (e.g. `source <(ollamars completion bash)`).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The completion script of `shell` for this command line, for the program called `bin_name`.
pub fn completion_script(shell: clap_complete::Shell, bin_name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), bin_name, &mut out);
    out
}

/// Parses the arguments and runs the command; returns the process exit code.
pub fn main(build: crate::version::BuildMeta) -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, build)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn usage() -> Result<(), CliError> {
    let name = crate::version::program_name();
    println!("Usage: {name} [command]\n\nRun '{name} --help' for the commands.");
    Ok(())
}

fn completion(shell: clap_complete::Shell) -> Result<(), CliError> {
    let script = completion_script(shell, crate::version::program_name());
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| CliError::Message(format!("cannot write the script: {e}")))
}

/// Runs a parsed command line. The environment is read first, once: the server's variables for
/// `serve` ([`Config::for_server`]), the client's for the rest ([`Config::for_client`]); the
/// usage line and `completion` need none.
///
/// # Errors
/// [`CliError`] with a message for the user, [`CliError::Config`] for a variable that does not
/// parse.
pub async fn run(cli: Cli, build: crate::version::BuildMeta) -> Result<(), CliError> {
    match cli.command {
        None if !cli.version => return usage(),
        Some(Command::Completion { shell }) if !cli.version => return completion(shell),
        _ => {}
    }
    let config = match cli.command {
        Some(Command::Serve) => Config::for_server()?,
        _ => Config::for_client()?,
    };
    let client = Client::from_config(&config);
    if cli.version {
        return version(&client, &config, build).await;
    }
    match cli.command {
        None => usage(),
        Some(Command::Completion { shell }) => completion(shell),
        Some(Command::Serve) => serve(build, &config).await,
        Some(Command::Create {
            model,
            file,
            quantize,
            copy,
        }) => create::run(&client, &config, &model, &file, quantize.as_deref(), copy).await,
        Some(Command::Show {
            model,
            license,
            modelfile,
            parameters,
            template,
            system,
            verbose,
        }) => {
            show::run(
                &client,
                &model,
                show::Which {
                    license,
                    modelfile,
                    parameters,
                    template,
                    system,
                },
                verbose,
            )
            .await
        }
        Some(Command::Run(args)) => run::run(&client, &config, args).await,
        Some(Command::Pull { model, insecure }) => {
            pull::transfer(&client, pull::Direction::Pull, &model, insecure).await
        }
        Some(Command::Push { model, insecure }) => {
            pull::transfer(&client, pull::Direction::Push, &model, insecure).await
        }
        Some(Command::Stop { model }) => ps::stop(&client, &model).await,
        Some(Command::Ps { prefix }) => ps::ps(&client, prefix.as_deref()).await,
        Some(Command::List { prefix }) => list(&client, prefix.as_deref()).await,
        Some(Command::Cp {
            source,
            destination,
        }) => {
            let req = CopyRequest {
                source: source.clone(),
                destination: destination.clone(),
            };
            client.copy(&req).await?;
            println!("copied '{source}' to '{destination}'");
            Ok(())
        }
        Some(Command::Rm { models }) => {
            for m in models {
                // Unload first, as Ollama does; a model that is not loaded (or a server that
                // cannot unload) does not stop the delete.
                if let Err(e) = ps::unload(&client, &m).await
                    && !matches!(e.status(), Some(404 | 405))
                    && !matches!(e, ClientError::Connect(_))
                {
                    eprintln!("Warning: unable to stop model '{m}': {e}");
                }
                client.delete(&ModelRequest::new(&m)).await?;
                println!("deleted '{m}'");
            }
            Ok(())
        }
    }
}

/// `ollamars serve`: the API on `OLLAMA_HOST` over the store in `OLLAMA_MODELS`, until
/// SIGINT or SIGTERM.
async fn serve(build: crate::version::BuildMeta, config: &Config) -> Result<(), CliError> {
    crate::config::init_logging(config.log_level);
    // The backend modules first: a release without a CPU module this CPU can run stops here,
    // with what is missing, instead of failing at the first model load.
    let backends =
        crate::backends::init(config.cpu_variant.as_deref()).map_err(CliError::Message)?;
    backends.log_modules(build.modules);
    let host = &config.host;
    let addr = host
        .bind_addr()
        .map_err(|e| CliError::Message(format!("cannot use OLLAMA_HOST {}: {e}", host.host)))?;
    let root = crate::store::models_dir(config).map_err(|e| CliError::Message(e.to_string()))?;
    crate::store::Store::new(&root).create_dirs().map_err(|e| {
        CliError::Message(format!(
            "cannot create the model store {}: {e}",
            root.display()
        ))
    })?;
    // Ollama's key, for the registry's token challenge: created on first run.
    match config.ollama_home() {
        Some(dir) => match crate::registry::ensure_key(&dir) {
            Ok(public) => tracing::debug!("registry key {}: {public}", dir.display()),
            Err(e) => {
                tracing::warn!("cannot create the registry key in {}: {e}", dir.display())
            }
        },
        None => tracing::warn!("HOME is not set: no registry key"),
    }
    let store = crate::store::Store::new(&root);
    if !config.noprune {
        let grace = std::time::Duration::from_secs(3600);
        if let Err(e) = store.prune(grace) {
            eprintln!("Warning: pruning the model store failed: {e}");
        }
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::Message(format!("listen tcp {addr}: {e} (is another server running? set OLLAMA_HOST to use another address)"))
    })?;
    eprintln!(
        "Listening on {} (version {}; {}), models in {}",
        listener.local_addr().map_or(addr, |a| a),
        crate::version::VERSION,
        backends.summary(),
        root.display()
    );
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return ctrl_c.await.unwrap_or(()),
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    crate::server::serve_until(
        listener,
        crate::server::ServerState::for_binary(store, config),
        shutdown,
    )
    .await
    .map_err(|e| CliError::Message(format!("server error: {e}")))
}

/// `ollamars --version`: the server's version, and the client's where they differ or no server answers.
async fn version(
    client: &Client,
    config: &Config,
    build: crate::version::BuildMeta,
) -> Result<(), CliError> {
    let mine = build.version;
    let name = crate::version::program_name();
    match client.version().await {
        Ok(v) => {
            let v = v.version;
            println!("{name} version is {v}");
            if v != mine {
                eprintln!("Warning: client version is {mine}");
            }
        }
        Err(_) => {
            eprintln!("Warning: could not connect to a running ollamars instance");
            eprintln!("Warning: client version is {mine}");
        }
    }
    // This binary's engine: which CPU variant and GPU backends it loads on this machine.
    let backends =
        crate::backends::init(config.cpu_variant.as_deref()).map_err(CliError::Message)?;
    println!("{}", build.version_line(name, &backends.summary()));
    Ok(())
}

/// Left-aligned columns separated by at least four spaces, like Ollama's tables.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (c, cell) in r.iter().enumerate() {
            out.push_str(cell);
            out.push_str(&" ".repeat(widths[c] - cell.chars().count() + 4));
        }
        out.push('\n');
    }
    out
}

async fn list(client: &Client, prefix: Option<&str>) -> Result<(), CliError> {
    let resp = client.list().await?;
    let now = chrono::Utc::now();
    let mut rows = vec![vec![
        "NAME".to_string(),
        "ID".into(),
        "SIZE".into(),
        "MODIFIED".into(),
    ]];
    for m in &resp.models {
        if prefix.is_some_and(|p| !m.name.starts_with(p)) {
            continue;
        }
        let id: String = m.digest.chars().take(12).collect();
        let size = human_bytes(m.size);
        let modified = chrono::DateTime::parse_from_rfc3339(&m.modified_at)
            .ok()
            .map_or_else(String::new, |t| {
                human_time(t.with_timezone(&chrono::Utc), now)
            });
        rows.push(vec![m.name.clone(), id, size, modified]);
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(table(&rows).as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help_of(args: &[&str]) -> String {
        match Cli::command().try_get_matches_from(args) {
            Err(e) => e.render().to_string(),
            Ok(_) => panic!("{args:?} parsed"),
        }
    }

    #[test]
    fn called_ollama_the_help_says_ollama() {
        assert!(help_of(&["/usr/local/bin/ollama", "--help"]).contains("Usage: ollama"));
        assert!(help_of(&["ollamars", "--help"]).contains("Usage: ollamars"));
        assert!(help_of(&["ollama", "serve", "--help"]).contains("Usage: ollama serve"));
    }

    #[test]
    fn serve_help_lists_the_environment() {
        let help = help_of(&["ollamars", "serve", "--help"]);
        assert!(help.contains("Environment Variables:"), "{help}");
        for v in crate::config::vars_of(crate::config::Side::Server) {
            assert!(help.contains(v.name), "{} missing from:\n{help}", v.name);
        }
        // Each with its type and default.
        assert!(help.contains("OLLAMA_KV_CACHE_TYPE"), "{help}");
        assert!(
            help.contains("f16|q8_0|q4_0") && help.contains("(default: 512)"),
            "{help}"
        );
    }

    #[test]
    fn help_lists_the_client_environment() {
        let help = help_of(&["ollamars", "--help"]);
        assert!(help.contains("Environment Variables:"), "{help}");
        for v in crate::config::vars_of(crate::config::Side::Client) {
            assert!(help.contains(v.name), "{} missing from:\n{help}", v.name);
        }
        assert!(!help.contains("OLLAMA_NUM_PARALLEL"), "{help}");
    }

    #[test]
    fn run_flags_fill_run_args() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Some(Command::Run(a))) => a,
            other => panic!("{args:?}: {other:?}"),
        };
        let a = parse(&[
            "ollamars",
            "run",
            "m",
            "why",
            "so",
            "--think",
            "--keepalive",
            "5m",
            "--truncate=false",
            "--dimensions",
            "8",
            "--verbose",
            "--hidethinking",
        ]);
        assert_eq!(a.model, "m");
        assert_eq!(a.prompt, ["why", "so"]);
        assert_eq!(a.think.as_deref(), Some("true"));
        assert_eq!(a.keepalive.as_deref(), Some("5m"));
        assert_eq!(a.truncate, Some(false));
        assert_eq!(a.dimensions, Some(8));
        assert!(a.verbose && a.hidethinking && !a.insecure && !a.nowordwrap);
        let a = parse(&[
            "ollamars",
            "run",
            "m",
            "--think=low",
            "--truncate",
            "--format",
            "json",
        ]);
        assert_eq!(a.think.as_deref(), Some("low"));
        assert_eq!(a.truncate, Some(true));
        assert_eq!(a.format.as_deref(), Some("json"));
        assert!(a.prompt.is_empty() && a.keepalive.is_none() && a.dimensions.is_none());
        // `--think VALUE` needs the `=`: a following word is the prompt.
        let a = parse(&["ollamars", "run", "m", "--think", "high"]);
        assert_eq!(
            (a.think.as_deref(), &a.prompt[..]),
            (Some("true"), &["high".to_string()][..])
        );
        assert!(Cli::try_parse_from(["ollamars", "run"]).is_err());
        assert!(Cli::try_parse_from(["ollamars", "run", "m", "--dimensions", "x"]).is_err());
    }

    #[test]
    fn completions_are_non_empty_and_name_the_commands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let script = String::from_utf8(completion_script(shell, "ollama")).unwrap();
            assert!(
                script.contains("ollama") && script.contains("serve") && script.contains("pull"),
                "{shell:?}: {script}"
            );
        }
        assert!(Cli::try_parse_from(["ollamars", "completion", "bash"]).is_ok());
        assert!(Cli::try_parse_from(["ollamars", "completion", "cmd"]).is_err());
    }
}
