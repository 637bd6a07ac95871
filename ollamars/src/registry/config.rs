//! [`RegistryConfig`]: the process-wide tunables of pull and push, and the registry
//! [`Credentials`] (beyond Ollama, which has no Basic auth).
//!
//! # Credentials
//!
//! Basic credentials for a registry come from, in this order (the first one naming a host wins):
//!
//! 1. `OLLAMARS_REGISTRY_AUTH`: `host=user:password[,host=user:password…]`, where `host` is the
//!    registry's `host[:port]` exactly as written in model names. The password may contain `:`
//!    (only the first `:` separates it) but not `,`.
//! 2. `~/.ollama/credentials.json`, in the shape of a Docker `config.json`:
//!    `{"auths":{"host[:port]":{"username":"…","password":"…"}}}` or
//!    `{"auths":{"host[:port]":{"auth":"<base64 of user:password>"}}}`. Keys may also be URLs
//!    (`https://host/v1/`); their scheme and path are ignored.
//!
//! They are used when a registry answers `401` with `WWW-Authenticate: Basic`, and as the Basic
//! credentials of the Docker token flow (`Bearer realm=…` on another host). They are only ever sent
//! to that registry or to the token realm it declares.

use base64::Engine as _;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// The user name.
    pub username: String,
    /// The password (or an access token used as one).
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl BasicCredentials {
    /// The value of an `Authorization` header: `Basic <base64(user:password)>`.
    pub fn header_value(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Basic credentials by registry `host[:port]` (see the module docs for where they come from).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    by_host: BTreeMap<String, BasicCredentials>,
}

/// Strips a URL's scheme and path from a credentials key and lowercases it.
fn normalize_host(key: &str) -> String {
    let key = key.trim();
    let key = key.split_once("://").map_or(key, |(_, rest)| rest);
    let key = key.split('/').next().unwrap_or_default();
    key.to_ascii_lowercase()
}

impl Credentials {
    /// No credentials.
    pub fn new() -> Credentials {
        Credentials::default()
    }

    /// Adds (or replaces) the credentials of `host` (`host[:port]`).
    pub fn insert(&mut self, host: &str, username: &str, password: &str) {
        self.by_host.insert(
            normalize_host(host),
            BasicCredentials {
                username: username.to_string(),
                password: password.to_string(),
            },
        );
    }

    /// Whether no host has credentials.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// The credentials of `host` (`host[:port]`): an exact match first, then the same host name
    /// without a port.
    pub fn get(&self, host: &str) -> Option<&BasicCredentials> {
        let host = normalize_host(host);
        self.by_host.get(&host).or_else(|| {
            let bare = host.rsplit_once(':').map(|(h, _)| h)?;
            self.by_host.get(bare)
        })
    }

    /// Parses the value of `OLLAMARS_REGISTRY_AUTH`: `host=user:password[,host=user:password…]`.
    /// Malformed entries are skipped.
    pub fn from_env_value(value: &str) -> Credentials {
        let mut c = Credentials::new();
        for entry in value.split(',') {
            let Some((host, userpass)) = entry.split_once('=') else {
                continue;
            };
            let Some((user, pass)) = userpass.split_once(':') else {
                continue;
            };
            if !host.trim().is_empty() {
                c.insert(host, user.trim(), pass);
            }
        }
        c
    }

    /// Parses a Docker-style credentials file (see the module docs). Entries without a usable
    /// user name and password are skipped; an unparsable file gives no credentials.
    pub fn from_json(bytes: &[u8]) -> Credentials {
        let mut c = Credentials::new();
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            return c;
        };
        let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
            return c;
        };
        for (host, entry) in auths {
            let user = entry.get("username").and_then(|u| u.as_str());
            let pass = entry.get("password").and_then(|p| p.as_str());
            if let (Some(u), Some(p)) = (user, pass) {
                c.insert(host, u, p);
                continue;
            }
            let decoded = entry
                .get("auth")
                .and_then(|a| a.as_str())
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if let Some((u, p)) = decoded.as_deref().and_then(|s| s.split_once(':')) {
                c.insert(host, u, p);
            }
        }
        c
    }

    /// Adds every entry of `other` whose host has no credentials yet.
    pub fn merge_missing(&mut self, other: Credentials) {
        for (h, v) in other.by_host {
            self.by_host.entry(h).or_insert(v);
        }
    }
}

/// Process-wide configuration of [`super::Registry`]. [`RegistryConfig::default`] has Ollama's
/// tunables and no key or credentials; [`RegistryConfig::from_config`] adds what the
/// configuration says.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Ollama's ed25519 key (OpenSSH format) for the token challenge, normally
    /// `~/.ollama/id_ed25519`. `None` or a missing file: requests are made without a signature.
    pub key_path: Option<PathBuf>,
    /// Basic credentials by registry host.
    pub credentials: Credentials,
    /// Whether a pull removes the layers its previous manifest no longer references
    /// (`OLLAMA_NOPRUNE` unset).
    pub prune: bool,
    /// The number of parts a blob is split into before clamping (Ollama: 16).
    pub target_parts: u64,
    /// The smallest part, in bytes (Ollama: 100 MB).
    pub min_part_size: u64,
    /// The largest part, in bytes (Ollama: 1000 MB).
    pub max_part_size: u64,
    /// How many parts of one blob download at once (Ollama: 16).
    pub max_parallel_parts: usize,
    /// A part that receives nothing for this long is restarted (Ollama: 30 s).
    pub stall_timeout: Duration,
    /// Tries per request or part before giving up (Ollama: 6).
    pub max_tries: u32,
    /// Delay before the second try; doubled for each further one (Ollama: 1 s).
    pub retry_base: Duration,
    /// The longest wait for a response's headers.
    pub response_timeout: Duration,
    /// How often a waiting pull or push reports progress (Ollama: about 60 ms).
    pub progress_interval: Duration,
    /// How often a downloading part saves its state file.
    pub checkpoint_interval: Duration,
    /// The largest manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// The largest token response accepted, in bytes.
    pub max_token_bytes: usize,
    /// How much of an error body is kept for the error message, in bytes.
    pub max_error_bytes: usize,
    /// The most layers a manifest may have.
    pub max_layers: usize,
    /// The `User-Agent` header.
    pub user_agent: String,
}

/// The `User-Agent`: Ollama's shape (so registries treat us like Ollama) plus our own version.
fn default_user_agent() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "ollama/0.12.0 ({arch} {}) ollamars/{}",
        std::env::consts::OS,
        crate::version::VERSION
    )
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            key_path: None,
            credentials: Credentials::new(),
            prune: true,
            target_parts: 16,
            min_part_size: 100_000_000,
            max_part_size: 1_000_000_000,
            max_parallel_parts: 16,
            stall_timeout: Duration::from_secs(30),
            max_tries: 6,
            retry_base: Duration::from_secs(1),
            response_timeout: Duration::from_secs(60),
            progress_interval: Duration::from_millis(60),
            checkpoint_interval: Duration::from_secs(1),
            max_manifest_bytes: 4 << 20,
            max_token_bytes: 64 << 10,
            max_error_bytes: 4 << 10,
            max_layers: 1000,
            user_agent: default_user_agent(),
        }
    }
}

impl RegistryConfig {
    /// The defaults plus `config`: the key `~/.ollama/id_ed25519`, credentials from
    /// `OLLAMARS_REGISTRY_AUTH` and `~/.ollama/credentials.json` (an unreadable file is ignored
    /// with a warning), and `OLLAMA_NOPRUNE`. Proxies (`HTTPS_PROXY`, `NO_PROXY`) are read by the
    /// HTTP client itself.
    pub fn from_config(config: &crate::config::Config) -> RegistryConfig {
        let mut c = RegistryConfig::default();
        let home = config.ollama_home();
        c.key_path = home.as_ref().map(|h| h.join("id_ed25519"));
        if let Some(v) = &config.registry_auth {
            c.credentials = Credentials::from_env_value(v.expose());
        }
        if let Some(path) = home.map(|h| h.join("credentials.json")) {
            match std::fs::read(&path) {
                Ok(bytes) => c.credentials.merge_missing(Credentials::from_json(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot read the registry credentials file: {e}"),
            }
        }
        c.prune = !config.noprune;
        c
    }

    /// The part size for a blob of `total` bytes: `total / target_parts`, clamped to
    /// `[min_part_size, max_part_size]` (and at least 1).
    pub fn part_size(&self, total: u64) -> u64 {
        let max = self.max_part_size.max(1);
        let min = self.min_part_size.clamp(1, max);
        (total / self.target_parts.max(1)).clamp(min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_value_parses_hosts_and_passwords_with_colons() {
        let c = Credentials::from_env_value("reg.example:5000=alice:pa:ss, other=bob:x,junk");
        assert_eq!(c.get("reg.example:5000").unwrap().password, "pa:ss");
        assert_eq!(c.get("other:443").unwrap().username, "bob");
        assert!(c.get("reg.example").is_none());
    }

    #[test]
    fn json_accepts_both_docker_shapes() {
        let auth = base64::engine::general_purpose::STANDARD.encode("carol:secret");
        let j = format!(
            r#"{{"auths":{{"https://a.example/v1/":{{"auth":"{auth}"}},"b.example:1":{{"username":"u","password":"p"}}}}}}"#
        );
        let c = Credentials::from_json(j.as_bytes());
        assert_eq!(c.get("a.example").unwrap().username, "carol");
        assert_eq!(c.get("b.example:1").unwrap().password, "p");
        assert!(Credentials::from_json(b"not json").is_empty());
    }

    #[test]
    fn part_size_is_clamped() {
        let c = RegistryConfig::default();
        assert_eq!(c.part_size(1), 100_000_000);
        assert_eq!(c.part_size(160_000_000_000), 1_000_000_000);
        assert_eq!(c.part_size(3_200_000_000), 200_000_000);
    }
}
