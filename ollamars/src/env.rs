//! The one place that reads ollamars' environment variables (Ollama's names and parsing).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// One environment variable the server reads: its name, its default and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// Its default, as a user would write it (`""`: unset, no default).
    pub default: &'static str,
    /// What it does, in one line.
    pub meaning: &'static str,
}

/// Every environment variable `ollamars serve` (and the runners it starts) reads: the one
/// table that `serve --help` prints and that a configuration layer can build on.
pub const SERVER_VARS: &[EnvVar] = &[
    EnvVar {
        name: "OLLAMA_HOST",
        default: "127.0.0.1:11434",
        meaning: "IP address and port the server listens on ([scheme://]host[:port])",
    },
    EnvVar {
        name: "OLLAMA_MODELS",
        default: "~/.ollama/models",
        meaning: "the model store (Ollama's layout: blobs/ and manifests/)",
    },
    EnvVar {
        name: "OLLAMA_KEEP_ALIVE",
        default: "5m",
        meaning: "how long a model stays loaded after its last request (a duration, or seconds; negative: forever)",
    },
    EnvVar {
        name: "OLLAMA_LOAD_TIMEOUT",
        default: "5m",
        meaning: "how long a model load may take before the runner is killed (0: no limit)",
    },
    EnvVar {
        name: "OLLAMA_MAX_LOADED_MODELS",
        default: "3",
        meaning: "how many models may be loaded at once (0: the default)",
    },
    EnvVar {
        name: "OLLAMA_NUM_PARALLEL",
        default: "1",
        meaning: "parallel requests per model (each gets its own num_ctx slot)",
    },
    EnvVar {
        name: "OLLAMA_MAX_QUEUE",
        default: "512",
        meaning: "requests that may wait for a slot before the server answers 503",
    },
    EnvVar {
        name: "OLLAMA_CONTEXT_LENGTH",
        default: "4096",
        meaning: "context length of a model when neither Modelfile nor request sets num_ctx",
    },
    EnvVar {
        name: "OLLAMA_FLASH_ATTENTION",
        default: "auto",
        meaning: "flash attention: 1 on, 0 off, unset: llama.cpp decides per model",
    },
    EnvVar {
        name: "OLLAMA_KV_CACHE_TYPE",
        default: "f16",
        meaning: "KV cache quantization: f16, q8_0 or q4_0",
    },
    EnvVar {
        name: "OLLAMA_ORIGINS",
        default: "",
        meaning: "extra allowed CORS origins, comma separated (* wildcards)",
    },
    EnvVar {
        name: "OLLAMA_NOPRUNE",
        default: "false",
        meaning: "do not remove unused blobs and stale partial downloads at start-up",
    },
    EnvVar {
        name: "OLLAMA_DEBUG",
        default: "false",
        meaning: "debug logging, llama.cpp's included (2: trace)",
    },
    EnvVar {
        name: "OLLAMARS_REGISTRY_AUTH",
        default: "",
        meaning: "registry credentials: host[:port]=user:password[,...] (else ~/.ollama/credentials.json)",
    },
    EnvVar {
        name: "OLLAMARS_CPU_VARIANT",
        default: "",
        meaning: "load this CPU backend variant (zen4, haswell, x64, ...) instead of the best one (release builds)",
    },
    EnvVar {
        name: "OLLAMARS_RUNNER_EXE",
        default: "",
        meaning: "program to start as the model runner instead of this binary (a wrapper)",
    },
];

/// [`SERVER_VARS`] as the `Environment Variables:` block of `serve --help`.
pub fn server_vars_help() -> String {
    let width = SERVER_VARS.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from("Environment Variables:\n");
    for v in SERVER_VARS {
        let default = if v.default.is_empty() {
            String::new()
        } else {
            format!(" (default: {})", v.default)
        };
        out.push_str(&format!(
            "      {:<width$}   {}{default}\n",
            v.name, v.meaning
        ));
    }
    out
}

/// Reads a variable the way Ollama does: surrounding spaces and quotes are stripped; empty
/// means unset.
pub fn var(name: &str) -> Option<String> {
    let v = std::env::var(name).ok()?;
    let v = v
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .trim()
        .to_string();
    (!v.is_empty()).then_some(v)
}

/// A boolean variable: unset is `false`; `0`, `false`, `f`, `no`, `off` are false; anything
/// else that is set (even unparsable) is true, as in Ollama.
pub fn flag(name: &str) -> bool {
    var(name).is_some_and(|v| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "0" | "false" | "f" | "no" | "off"
        )
    })
}

/// `OLLAMA_HOST` parsed: `[scheme://]host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// A path prefix (usually empty).
    pub path: String,
}

impl Host {
    /// Parses a value of `OLLAMA_HOST` (an empty value gives the default 127.0.0.1:11434).
    pub fn parse(value: &str) -> Host {
        let value = value.trim();
        let (scheme, rest, explicit_scheme) = match value.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r, true),
            None if value == "ollama.com" => ("https".to_string(), value, true),
            None => ("http".to_string(), value, false),
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/').to_string()),
            None => (rest, String::new()),
        };
        let default_port = match (explicit_scheme, scheme.as_str()) {
            (true, "https") => 443,
            (true, "http") => 80,
            _ => 11434,
        };
        let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
            // [v6]:port
            match stripped.split_once(']') {
                Some((h, p)) => (
                    h.to_string(),
                    p.strip_prefix(':')
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(default_port),
                ),
                None => (stripped.to_string(), default_port),
            }
        } else if hostport.matches(':').count() > 1 {
            (hostport.to_string(), default_port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().unwrap_or(default_port)),
                None => (hostport.to_string(), default_port),
            }
        };
        let host = if host.is_empty() {
            "127.0.0.1".to_string()
        } else {
            host
        };
        Host {
            scheme,
            host,
            port,
            path,
        }
    }

    /// From the environment.
    pub fn from_env() -> Host {
        Host::parse(&var("OLLAMA_HOST").unwrap_or_default())
    }

    /// The URL a client uses: `0.0.0.0`/`::` become loopback.
    pub fn client_url(&self) -> String {
        let host = match self.host.as_str() {
            "0.0.0.0" => "127.0.0.1".to_string(),
            "::" => "[::1]".to_string(),
            h if h.contains(':') => format!("[{h}]"),
            h => h.to_string(),
        };
        format!("{}://{}:{}{}", self.scheme, host, self.port, self.path)
    }

    /// The address a server binds.
    ///
    /// # Errors
    /// When the host name does not resolve.
    pub fn bind_addr(&self) -> std::io::Result<SocketAddr> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        if self.host == "localhost" {
            return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port));
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("cannot resolve {}", self.host),
                )
            })
    }
}

/// Log level from `OLLAMA_DEBUG`: unset or false → INFO, `2` → TRACE, anything else true → DEBUG.
pub fn log_level() -> tracing::Level {
    match var("OLLAMA_DEBUG").as_deref() {
        Some("2") => tracing::Level::TRACE,
        _ if flag("OLLAMA_DEBUG") => tracing::Level::DEBUG,
        _ => tracing::Level::INFO,
    }
}

/// Sends `tracing` output to stderr at [`log_level`]. llama.cpp's own messages (target
/// `llama_cpp`) are shown from WARN up unless `OLLAMA_DEBUG` is set, except the lines that say
/// where a model's layers went (`llama_cpp::placement`: device, offloaded layers), which are
/// shown at INFO like Ollama's. Safe to call twice.
pub fn init_logging() {
    use tracing_subscriber::prelude::*;
    let level = log_level();
    let llama = if level == tracing::Level::INFO {
        tracing::Level::WARN
    } else {
        level
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("llama_cpp", llama)
        .with_target("llama_cpp::placement", level);
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_help_lists_every_variable_once() {
        let help = server_vars_help();
        for v in SERVER_VARS {
            assert_eq!(
                help.matches(&format!(" {} ", v.name)).count(),
                1,
                "{}",
                v.name
            );
        }
        assert!(help.contains("OLLAMA_HOST") && help.contains("(default: 127.0.0.1:11434)"));
    }

    /// Every `"OLLAMA_…"`/`"OLLAMARS_…"` literal in the library's sources is in the table (or
    /// is one the client alone reads), so `serve --help` cannot fall behind the code.
    #[test]
    fn the_table_covers_every_variable_in_the_sources() {
        const CLIENT_ONLY: &[&str] = &["OLLAMA_NOHISTORY"];
        fn walk(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, found);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("env.rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for (i, _) in text.match_indices("\"OLLAMA") {
                        let name: String = text[i + 1..]
                            .chars()
                            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                            .collect();
                        if text[i + 1 + name.len()..].starts_with('"') {
                            found.push((name, p.display().to_string()));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.len() > 10, "{found:?}");
        for (name, file) in found {
            assert!(
                CLIENT_ONLY.contains(&name.as_str()) || SERVER_VARS.iter().any(|v| v.name == name),
                "{name} (read in {file}) is missing from env::SERVER_VARS"
            );
        }
    }

    #[test]
    fn ollama_host_forms() {
        let h = |s: &str| Host::parse(s).client_url();
        assert_eq!(h(""), "http://127.0.0.1:11434");
        assert_eq!(h("0.0.0.0"), "http://127.0.0.1:11434");
        assert_eq!(h("0.0.0.0:8080"), "http://127.0.0.1:8080");
        assert_eq!(h(":9000"), "http://127.0.0.1:9000");
        assert_eq!(h("example.com"), "http://example.com:11434");
        assert_eq!(h("http://example.com"), "http://example.com:80");
        assert_eq!(h("https://example.com"), "https://example.com:443");
        assert_eq!(
            h("https://example.com:1234/ollama/"),
            "https://example.com:1234/ollama"
        );
        assert_eq!(h("ollama.com"), "https://ollama.com:443");
        assert_eq!(h("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(h("::"), "http://[::1]:11434");
        assert_eq!(
            Host::parse("127.0.0.1:11500").bind_addr().unwrap().port(),
            11500
        );
    }
}
