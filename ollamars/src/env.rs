//! The one place that reads ollamars' environment variables (Ollama's names and parsing).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

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
