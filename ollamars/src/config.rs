//! Configuration: the one place that reads environment variables, with Ollama's names and
//! parsing.
//!
//! [`VARS`] is the table of every `OLLAMA_*`/`OLLAMARS_*` variable ollamars reads: who reads it
//! ([`Side`]), its type ([`Kind`]), its default and what it does. `ollamars serve --help` prints
//! the server's part of it and `ollamars --help` the client's. [`Config`] is the table parsed,
//! once, when the binary starts: [`Config::for_server`] for `ollamars serve` and its runners,
//! [`Config::for_client`] for every other command. The result is handed down to whoever needs
//! it (the server state, the scheduler, the CORS guard, the registry client, the store, the
//! backend loader, the CLI); nothing else reads the environment. Each entry point parses only
//! the variables of its own side, so a bad server-only value never stops `ollamars list`; in a
//! client's `Config` the server-only fields keep their defaults. Tests build a `Config` from a
//! list of variables with [`Config::from_vars`] instead of changing the process environment.
//!
//! Values are read as Ollama reads them: surrounding spaces and quotes are stripped and an empty
//! value means unset. Where Ollama falls back to the default with a warning, a value that does
//! not parse is an error here ([`ConfigError`], naming the variable, the value and what is
//! accepted) that stops the program at start-up. Booleans keep Ollama's leniency: unset, `0`,
//! `f`, `false`, `no` and `off` (any case) are false and any other value is true. (Ollama's
//! `strconv.ParseBool` would read `no` and `off` as true, being unparsable; that is the one
//! deliberate difference.)
//!
//! Variables of other programs that ollamars reads are here too: `HOME`/`USERPROFILE` (the home
//! directory, [`home_dir`], [`Config::ollama_home`], [`expand_home`]), `COLUMNS` (the client's
//! word wrap) and `HOSTNAME`/`COMPUTERNAME` ([`hostname`], for the Host-header guard).

use crate::api::KeepAlive;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which part of ollamars reads a variable, or which part a [`Config`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `ollamars serve` and the runners it starts.
    Server,
    /// The commands that talk to a server (`run`, `list`, `create`, …).
    Client,
    /// Both.
    Both,
}

impl Side {
    /// Whether a variable read by `self` is read when configuring `side`.
    pub fn includes(self, side: Side) -> bool {
        self == Side::Both || side == Side::Both || self == side
    }
}

/// The type of a variable's value: how it is parsed and what an error says is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `[scheme://]host[:port][/path]` ([`Host`]).
    Host,
    /// A file or directory (any bytes).
    Path,
    /// A Go duration (`30s`, `5m`, `1h30m`) or a whole number of seconds; negative: forever.
    Duration,
    /// A whole number, 0 or more.
    Count,
    /// A lenient boolean (see the module documentation).
    Bool,
    /// `auto`, or a lenient boolean.
    BoolOrAuto,
    /// A [`KvCacheType`].
    KvCacheType,
    /// A comma-separated list.
    List,
    /// Free text.
    Text,
    /// A boolean, or `2` for more.
    Level,
}

impl Kind {
    /// The short name `--help` shows.
    pub const fn label(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::Path => "path",
            Kind::Duration => "duration",
            Kind::Count => "number",
            Kind::Bool => "bool",
            Kind::BoolOrAuto => "bool|auto",
            Kind::KvCacheType => "f16|q8_0|q4_0",
            Kind::List => "list",
            Kind::Text => "text",
            Kind::Level => "bool|2",
        }
    }

    /// What a value of this kind must look like, for [`ConfigError`].
    pub const fn expected(self) -> &'static str {
        match self {
            Kind::Host => "[scheme://]host[:port][/path] with a port from 0 to 65535",
            Kind::Duration => {
                "a duration such as 30s, 5m or 1h30m, or a whole number of seconds (negative: forever)"
            }
            Kind::Count => "a whole number",
            Kind::KvCacheType => "f16, q8_0 or q4_0",
            Kind::Path => "a path",
            Kind::Bool | Kind::BoolOrAuto | Kind::List | Kind::Text | Kind::Level => "UTF-8 text",
        }
    }
}

/// One environment variable: its name, who reads it, its type, its default and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// Who reads it.
    pub side: Side,
    /// The type of its value.
    pub kind: Kind,
    /// Its default, as a user would write it (`""`: unset, no default). Parsed like a value
    /// (except `OLLAMA_MODELS`', which is the home directory's), so the default is written here
    /// and nowhere else.
    pub default: &'static str,
    /// What it does, in one line (with any deliberate difference from Ollama).
    pub meaning: &'static str,
}

/// The variables of [`VARS`] one by one, for the code that names them.
pub mod vars {
    use super::{EnvVar, Kind, KvCacheType, Side};

    /// Where the server listens and the client connects.
    pub const OLLAMA_HOST: EnvVar = EnvVar {
        name: "OLLAMA_HOST",
        side: Side::Both,
        kind: Kind::Host,
        default: "127.0.0.1:11434",
        meaning: "IP address and port the server listens on and the client connects to ([scheme://]host[:port][/path])",
    };
    /// The model store.
    pub const OLLAMA_MODELS: EnvVar = EnvVar {
        name: "OLLAMA_MODELS",
        side: Side::Both,
        kind: Kind::Path,
        default: "~/.ollama/models",
        meaning: "the model store (Ollama's layout: blobs/ and manifests/); `create` links local files into it",
    };
    /// The default `keep_alive`.
    pub const OLLAMA_KEEP_ALIVE: EnvVar = EnvVar {
        name: "OLLAMA_KEEP_ALIVE",
        side: Side::Server,
        kind: Kind::Duration,
        default: "5m",
        meaning: "how long a model stays loaded after its last request (a duration, or seconds; negative: forever)",
    };
    /// The load timeout.
    pub const OLLAMA_LOAD_TIMEOUT: EnvVar = EnvVar {
        name: "OLLAMA_LOAD_TIMEOUT",
        side: Side::Server,
        kind: Kind::Duration,
        default: "5m",
        meaning: "how long a model load may take before the runner is killed (0 or negative: no limit)",
    };
    /// The most models loaded at once.
    pub const OLLAMA_MAX_LOADED_MODELS: EnvVar = EnvVar {
        name: "OLLAMA_MAX_LOADED_MODELS",
        side: Side::Server,
        kind: Kind::Count,
        default: "3",
        meaning: "how many models may be loaded at once (0: the default)",
    };
    /// Slots per runner.
    pub const OLLAMA_NUM_PARALLEL: EnvVar = EnvVar {
        name: "OLLAMA_NUM_PARALLEL",
        side: Side::Server,
        kind: Kind::Count,
        default: "1",
        meaning: "parallel requests per model, each with its own num_ctx slot (0 counts as 1, over 256 as 256)",
    };
    /// The queue limit.
    pub const OLLAMA_MAX_QUEUE: EnvVar = EnvVar {
        name: "OLLAMA_MAX_QUEUE",
        side: Side::Server,
        kind: Kind::Count,
        default: "512",
        meaning: "requests that may wait for a slot before the server answers 503",
    };
    /// The default `num_ctx`.
    pub const OLLAMA_CONTEXT_LENGTH: EnvVar = EnvVar {
        name: "OLLAMA_CONTEXT_LENGTH",
        side: Side::Server,
        kind: Kind::Count,
        default: "4096",
        meaning: "context length of a model when neither Modelfile nor request sets num_ctx (0: the default)",
    };
    /// Flash attention.
    pub const OLLAMA_FLASH_ATTENTION: EnvVar = EnvVar {
        name: "OLLAMA_FLASH_ATTENTION",
        side: Side::Server,
        kind: Kind::BoolOrAuto,
        default: "auto",
        meaning: "flash attention: 1 on, 0 off; unset or auto: llama.cpp decides per model (Ollama reads auto as on)",
    };
    /// The KV cache type.
    pub const OLLAMA_KV_CACHE_TYPE: EnvVar = EnvVar {
        name: "OLLAMA_KV_CACHE_TYPE",
        side: Side::Server,
        kind: Kind::KvCacheType,
        default: KvCacheType::DEFAULT.as_str(),
        meaning: "KV cache quantization: f16, q8_0 or q4_0 (another value is an error; Ollama uses f16)",
    };
    /// Extra CORS origins.
    pub const OLLAMA_ORIGINS: EnvVar = EnvVar {
        name: "OLLAMA_ORIGINS",
        side: Side::Server,
        kind: Kind::List,
        default: "",
        meaning: "extra allowed CORS origins, comma separated (* wildcards)",
    };
    /// No blob pruning.
    pub const OLLAMA_NOPRUNE: EnvVar = EnvVar {
        name: "OLLAMA_NOPRUNE",
        side: Side::Server,
        kind: Kind::Bool,
        default: "false",
        meaning: "keep unused blobs: no pruning at start-up, after a pull or a delete (0, false, no, off: prune)",
    };
    /// Debug logging.
    pub const OLLAMA_DEBUG: EnvVar = EnvVar {
        name: "OLLAMA_DEBUG",
        side: Side::Server,
        kind: Kind::Level,
        default: "false",
        meaning: "debug logging, llama.cpp's included (2: trace)",
    };
    /// Registry credentials.
    pub const OLLAMARS_REGISTRY_AUTH: EnvVar = EnvVar {
        name: "OLLAMARS_REGISTRY_AUTH",
        side: Side::Server,
        kind: Kind::Text,
        default: "",
        meaning: "registry credentials: host[:port]=user:password[,...] (else ~/.ollama/credentials.json)",
    };
    /// A forced CPU backend variant.
    pub const OLLAMARS_CPU_VARIANT: EnvVar = EnvVar {
        name: "OLLAMARS_CPU_VARIANT",
        side: Side::Both,
        kind: Kind::Text,
        default: "",
        meaning: "load this CPU backend variant (zen4, haswell, x64, ...) instead of the best one (release builds)",
    };
    /// Another runner program.
    pub const OLLAMARS_RUNNER_EXE: EnvVar = EnvVar {
        name: "OLLAMARS_RUNNER_EXE",
        side: Side::Server,
        kind: Kind::Path,
        default: "",
        meaning: "program to start as the model runner instead of this binary (a wrapper)",
    };
    /// The Ollama-layout translation.
    pub const OLLAMARS_COMPAT: EnvVar = EnvVar {
        name: "OLLAMARS_COMPAT",
        side: Side::Server,
        kind: Kind::Bool,
        default: "true",
        meaning: "translate Ollama-layout GGUFs for llama.cpp on first load (0, false, no, off: load every blob as it is)",
    };
    /// No REPL history.
    pub const OLLAMA_NOHISTORY: EnvVar = EnvVar {
        name: "OLLAMA_NOHISTORY",
        side: Side::Client,
        kind: Kind::Bool,
        default: "false",
        meaning: "interactive sessions add nothing to ~/.ollama/history",
    };
}

/// Every environment variable ollamars reads, server's and client's: the one table that
/// `--help` prints, that [`Config`] parses and that a unit test checks against the sources.
pub const VARS: &[EnvVar] = &[
    vars::OLLAMA_HOST,
    vars::OLLAMA_MODELS,
    vars::OLLAMA_KEEP_ALIVE,
    vars::OLLAMA_LOAD_TIMEOUT,
    vars::OLLAMA_MAX_LOADED_MODELS,
    vars::OLLAMA_NUM_PARALLEL,
    vars::OLLAMA_MAX_QUEUE,
    vars::OLLAMA_CONTEXT_LENGTH,
    vars::OLLAMA_FLASH_ATTENTION,
    vars::OLLAMA_KV_CACHE_TYPE,
    vars::OLLAMA_ORIGINS,
    vars::OLLAMA_NOPRUNE,
    vars::OLLAMA_DEBUG,
    vars::OLLAMARS_REGISTRY_AUTH,
    vars::OLLAMARS_CPU_VARIANT,
    vars::OLLAMARS_RUNNER_EXE,
    vars::OLLAMARS_COMPAT,
    vars::OLLAMA_NOHISTORY,
];

/// The variables of [`VARS`] read when configuring `side`.
pub fn vars_of(side: Side) -> impl Iterator<Item = &'static EnvVar> {
    VARS.iter().filter(move |v| v.side.includes(side))
}

fn vars_help(side: Side) -> String {
    let width = vars_of(side).map(|v| v.name.len()).max().unwrap_or(0);
    let kind_width = vars_of(side)
        .map(|v| v.kind.label().len())
        .max()
        .unwrap_or(0);
    let mut out = String::from("Environment Variables:\n");
    for v in vars_of(side) {
        let default = if v.default.is_empty() {
            String::new()
        } else {
            format!(" (default: {})", v.default)
        };
        out.push_str(&format!(
            "      {:<width$}   {:<kind_width$}   {}{default}\n",
            v.name,
            v.kind.label(),
            v.meaning
        ));
    }
    out
}

/// The server's variables of [`VARS`] as the `Environment Variables:` block of `serve --help`.
pub fn server_vars_help() -> String {
    vars_help(Side::Server)
}

/// The client's variables of [`VARS`] as the `Environment Variables:` block of `--help`.
pub fn client_vars_help() -> String {
    vars_help(Side::Client)
}

/// A variable whose value does not parse: a start-up error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is not valid: expected {expected}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// Its value (after Ollama's trimming; invalid UTF-8 replaced).
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

impl ConfigError {
    fn new(var: &EnvVar, value: impl Into<String>) -> ConfigError {
        ConfigError {
            var: var.name,
            value: value.into(),
            expected: var.kind.expected(),
        }
    }
}

/// The KV cache's element type (`OLLAMA_KV_CACHE_TYPE`): the types Ollama documents, all of
/// which llama.cpp accepts. Serialized as the variable's lowercase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvCacheType {
    /// 16-bit floats.
    #[serde(rename = "f16")]
    F16,
    /// 8-bit quantized (needs flash attention for V).
    #[serde(rename = "q8_0")]
    Q8_0,
    /// 4-bit quantized (needs flash attention for V).
    #[serde(rename = "q4_0")]
    Q4_0,
}

impl KvCacheType {
    /// The default, as in Ollama.
    pub const DEFAULT: KvCacheType = KvCacheType::F16;

    /// Every type.
    pub const ALL: [KvCacheType; 3] = [KvCacheType::F16, KvCacheType::Q8_0, KvCacheType::Q4_0];

    /// The name: `f16`, `q8_0` or `q4_0`.
    pub const fn as_str(self) -> &'static str {
        match self {
            KvCacheType::F16 => "f16",
            KvCacheType::Q8_0 => "q8_0",
            KvCacheType::Q4_0 => "q4_0",
        }
    }

    /// Parses a name, in any case (`None` for anything else).
    pub fn parse(s: &str) -> Option<KvCacheType> {
        KvCacheType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl Default for KvCacheType {
    fn default() -> Self {
        KvCacheType::DEFAULT
    }
}

impl std::fmt::Display for KvCacheType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value that `Debug` does not show (credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The configuration of one ollamars process: [`VARS`] parsed (see the module documentation).
#[derive(Debug, Clone)]
pub struct Config {
    /// `OLLAMA_HOST`.
    pub host: Host,
    /// The home directory (`HOME`, else `USERPROFILE`).
    pub home: Option<PathBuf>,
    /// The model store: `OLLAMA_MODELS`, else `~/.ollama/models` (`None`: neither is known).
    pub models: Option<PathBuf>,
    /// `OLLAMARS_CPU_VARIANT`.
    pub cpu_variant: Option<String>,
    /// `OLLAMA_KEEP_ALIVE`: the `keep_alive` of a request that has none.
    pub keep_alive: KeepAlive,
    /// `OLLAMA_LOAD_TIMEOUT` (`None`: no limit).
    pub load_timeout: Option<Duration>,
    /// `OLLAMA_MAX_LOADED_MODELS` (never 0).
    pub max_loaded_models: usize,
    /// `OLLAMA_NUM_PARALLEL`, 1 to 256.
    pub num_parallel: u32,
    /// `OLLAMA_MAX_QUEUE`.
    pub max_queue: usize,
    /// `OLLAMA_CONTEXT_LENGTH` (never 0).
    pub context_length: u32,
    /// `OLLAMA_FLASH_ATTENTION` (`None`: automatic).
    pub flash_attention: Option<bool>,
    /// `OLLAMA_KV_CACHE_TYPE`.
    pub kv_cache_type: KvCacheType,
    /// `OLLAMA_ORIGINS`, split (the guard adds them to its defaults).
    pub origins: Vec<String>,
    /// `OLLAMA_NOPRUNE`.
    pub noprune: bool,
    /// `OLLAMA_DEBUG` as a log level: INFO, DEBUG or TRACE.
    pub log_level: tracing::Level,
    /// `OLLAMARS_REGISTRY_AUTH`, unparsed (the registry client reads it).
    pub registry_auth: Option<Secret>,
    /// `OLLAMARS_RUNNER_EXE`.
    pub runner_exe: Option<PathBuf>,
    /// `OLLAMARS_COMPAT`: translate Ollama-layout blobs (`crate::compat`).
    pub compat: bool,
    /// `OLLAMA_NOHISTORY`.
    pub nohistory: bool,
    /// `COLUMNS`, when it is a number (else the client asks the terminal).
    pub columns: Option<usize>,
}

impl Default for Config {
    /// Every variable at its default, and no home directory.
    fn default() -> Self {
        Config::from_lookup(Side::Both, &|_| None)
            .expect("the defaults of config::VARS parse (a unit test checks it)")
    }
}

impl Config {
    /// The configuration of `ollamars serve` (and of its runners) from the process environment:
    /// the server's variables checked, the client's at their defaults.
    ///
    /// # Errors
    /// A variable of the server's whose value does not parse (the first one found).
    pub fn for_server() -> Result<Config, ConfigError> {
        Config::from_lookup(Side::Server, &|name| std::env::var_os(name))
    }

    /// The configuration of a client command from the process environment: the client's
    /// variables (and the shared ones) checked, the server's not read at all.
    ///
    /// # Errors
    /// A variable of the client's whose value does not parse (the first one found).
    pub fn for_client() -> Result<Config, ConfigError> {
        Config::from_lookup(Side::Client, &|name| std::env::var_os(name))
    }

    /// The configuration for `side` from `vars` alone (the process environment is not read):
    /// for tests.
    ///
    /// # Errors
    /// A variable read for `side` whose value does not parse (the first one found).
    pub fn from_vars<I, K, V>(side: Side, vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<OsString>,
    {
        let map: std::collections::HashMap<String, OsString> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Config::from_lookup(side, &|name| map.get(name).cloned())
    }

    fn from_lookup(
        side: Side,
        lookup: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Config, ConfigError> {
        use vars::*;
        let env = Env { side, lookup };
        let home = home_from(lookup);
        let models = match env.os(&OLLAMA_MODELS) {
            Some(p) => Some(PathBuf::from(p)),
            None => ollama_home_of(home.as_deref()).map(|h| h.join("models")),
        };
        let load_timeout = match env.parse(&OLLAMA_LOAD_TIMEOUT, parse_duration)? {
            KeepAlive::For(d) if !d.is_zero() => Some(d),
            _ => None,
        };
        let columns = if Side::Client.includes(side) {
            lookup("COLUMNS")
                .and_then(|c| c.into_string().ok())
                .and_then(|c| clean(&c).parse().ok())
        } else {
            None
        };
        Ok(Config {
            host: env.parse(&OLLAMA_HOST, Host::parse_strict)?,
            home,
            models,
            cpu_variant: env.text(&OLLAMARS_CPU_VARIANT)?,
            keep_alive: env.parse(&OLLAMA_KEEP_ALIVE, parse_duration)?,
            load_timeout,
            max_loaded_models: saturating_usize(env.nonzero(&OLLAMA_MAX_LOADED_MODELS)?),
            num_parallel: env.parse(&OLLAMA_NUM_PARALLEL, parse_count)?.clamp(1, 256) as u32,
            max_queue: saturating_usize(env.parse(&OLLAMA_MAX_QUEUE, parse_count)?),
            context_length: env
                .nonzero(&OLLAMA_CONTEXT_LENGTH)?
                .min(u64::from(u32::MAX)) as u32,
            flash_attention: env.parse(&OLLAMA_FLASH_ATTENTION, |s| {
                Some((!s.eq_ignore_ascii_case("auto")).then(|| parse_bool(s)))
            })?,
            kv_cache_type: env.parse(&OLLAMA_KV_CACHE_TYPE, KvCacheType::parse)?,
            origins: split_list(env.text(&OLLAMA_ORIGINS)?.as_deref()),
            noprune: env.parse(&OLLAMA_NOPRUNE, |s| Some(parse_bool(s)))?,
            log_level: env.parse(&OLLAMA_DEBUG, |s| Some(parse_level(s)))?,
            registry_auth: env.text(&OLLAMARS_REGISTRY_AUTH)?.map(Secret),
            runner_exe: env.os(&OLLAMARS_RUNNER_EXE).map(PathBuf::from),
            compat: env.parse(&OLLAMARS_COMPAT, |s| Some(parse_bool(s)))?,
            nohistory: env.parse(&OLLAMA_NOHISTORY, |s| Some(parse_bool(s)))?,
            columns,
        })
    }

    /// `~/.ollama`: Ollama's directory for its key, credentials, history and (by default) the
    /// model store. `None` without a home directory. The one place that names it.
    pub fn ollama_home(&self) -> Option<PathBuf> {
        ollama_home_of(self.home.as_deref())
    }

    /// The model store ([`Config::models`]).
    pub fn models_dir(&self) -> Option<&Path> {
        self.models.as_deref()
    }
}

fn ollama_home_of(home: Option<&Path>) -> Option<PathBuf> {
    home.map(|h| h.join(".ollama"))
}

fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The variables as one side sees them.
struct Env<'a> {
    side: Side,
    lookup: &'a dyn Fn(&str) -> Option<OsString>,
}

impl Env<'_> {
    /// `v`'s raw value: `None` when unset, empty, or not read on this side.
    fn raw(&self, v: &EnvVar) -> Option<OsString> {
        if !v.side.includes(self.side) {
            return None;
        }
        (self.lookup)(v.name).filter(|s| !s.is_empty())
    }

    /// `v`'s value, trimmed as Ollama does (`None`: unset or empty).
    ///
    /// # Errors
    /// When it is not UTF-8.
    fn text(&self, v: &EnvVar) -> Result<Option<String>, ConfigError> {
        let Some(raw) = self.raw(v) else {
            return Ok(None);
        };
        let s = raw.into_string().map_err(|raw| ConfigError {
            var: v.name,
            value: raw.to_string_lossy().into_owned(),
            expected: "UTF-8 text",
        })?;
        let s = clean(&s);
        Ok((!s.is_empty()).then(|| s.to_string()))
    }

    /// A path: any bytes, trimmed as text when it is UTF-8.
    fn os(&self, v: &EnvVar) -> Option<OsString> {
        let raw = self.raw(v)?;
        match raw.into_string() {
            Ok(s) => {
                let s = clean(&s);
                (!s.is_empty()).then(|| s.into())
            }
            Err(raw) => Some(raw),
        }
    }

    /// `v`'s value (else its default) through `parse`.
    ///
    /// # Errors
    /// When `parse` refuses it.
    fn parse<T>(&self, v: &EnvVar, parse: impl Fn(&str) -> Option<T>) -> Result<T, ConfigError> {
        let s = self.text(v)?.unwrap_or_else(|| v.default.to_string());
        parse(&s).ok_or_else(|| ConfigError::new(v, s))
    }

    /// A count where 0 means the default.
    fn nonzero(&self, v: &EnvVar) -> Result<u64, ConfigError> {
        match self.parse(v, parse_count)? {
            0 => Ok(parse_count(v.default).unwrap_or(0)),
            n => Ok(n),
        }
    }
}

/// Strips surrounding spaces and quotes, as Ollama's `envconfig.Var`.
fn clean(s: &str) -> &str {
    s.trim().trim_matches(|c| c == '"' || c == '\'').trim()
}

fn parse_count(s: &str) -> Option<u64> {
    s.parse().ok()
}

fn parse_duration(s: &str) -> Option<KeepAlive> {
    KeepAlive::from_env_value(s).ok()
}

/// A lenient boolean: `0`, `f`, `false`, `no`, `off` (any case) are false, anything else true.
fn parse_bool(s: &str) -> bool {
    !matches!(
        s.to_ascii_lowercase().as_str(),
        "0" | "f" | "false" | "no" | "off"
    )
}

/// `OLLAMA_DEBUG`: `2` is TRACE, another true value DEBUG, a false one INFO.
fn parse_level(s: &str) -> tracing::Level {
    match s {
        "2" => tracing::Level::TRACE,
        _ if parse_bool(s) => tracing::Level::DEBUG,
        _ => tracing::Level::INFO,
    }
}

/// A comma-separated list: items trimmed, empty ones dropped.
pub fn split_list(s: Option<&str>) -> Vec<String> {
    s.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn home_from(lookup: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    ["HOME", "USERPROFILE"]
        .into_iter()
        .find_map(|name| lookup(name).filter(|h| !h.is_empty()))
        .map(PathBuf::from)
}

/// The home directory of this process: `HOME`, else `USERPROFILE` (`None`: neither is set).
pub fn home_dir() -> Option<PathBuf> {
    home_from(&|name| std::env::var_os(name))
}

/// `~` and `~/…` with the home directory ([`home_dir`]) in their place; any other path, or any
/// path when there is no home directory, as it is.
pub fn expand_home(p: &str) -> PathBuf {
    expand_home_in(p, home_dir().as_deref())
}

fn expand_home_in(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        (None, Some(h)) if p == "~" => h.to_path_buf(),
        _ => PathBuf::from(p),
    }
}

/// This machine's name, lowercase: `/proc/sys/kernel/hostname`, else `HOSTNAME`, else
/// `COMPUTERNAME` (empty when none says).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
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
    /// Parses a value of `OLLAMA_HOST` (an empty value gives the default 127.0.0.1:11434); a
    /// port that is not a number from 0 to 65535 is replaced by the default port, as in Ollama.
    pub fn parse(value: &str) -> Host {
        Host::parse_with(value, false).unwrap_or_else(|| Host::parse(""))
    }

    /// As [`Host::parse`], but `None` for a port that is not a number from 0 to 65535 (what
    /// [`Config`] accepts).
    pub fn parse_strict(value: &str) -> Option<Host> {
        Host::parse_with(value, true)
    }

    fn parse_with(value: &str, strict: bool) -> Option<Host> {
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
        let port = |p: &str| match p.parse::<u16>() {
            Ok(p) => Some(p),
            Err(_) if strict => None,
            Err(_) => Some(default_port),
        };
        let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
            // [v6]:port
            match stripped.split_once(']') {
                Some((h, p)) => (
                    h.to_string(),
                    match p.strip_prefix(':') {
                        Some(p) => port(p)?,
                        None => default_port,
                    },
                ),
                None => (stripped.to_string(), default_port),
            }
        } else if hostport.matches(':').count() > 1 {
            (hostport.to_string(), default_port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), port(p)?),
                None => (hostport.to_string(), default_port),
            }
        };
        let host = if host.is_empty() {
            "127.0.0.1".to_string()
        } else {
            host
        };
        Some(Host {
            scheme,
            host,
            port,
            path,
        })
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

/// Sends `tracing` output to stderr at `level` ([`Config::log_level`]). llama.cpp's own
/// messages (target `llama_cpp`) are shown from WARN up unless `OLLAMA_DEBUG` is set, except
/// the lines that say where a model's layers went (`llama_cpp::placement`: device, offloaded
/// layers), which are shown at INFO like Ollama's. Safe to call twice.
pub fn init_logging(level: tracing::Level) {
    use tracing_subscriber::prelude::*;
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

    fn server(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(Side::Server, vars.iter().copied())
    }

    fn client(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(Side::Client, vars.iter().copied())
    }

    #[test]
    fn server_help_lists_every_variable_once() {
        let help = server_vars_help();
        for v in vars_of(Side::Server) {
            assert_eq!(
                help.matches(&format!(" {} ", v.name)).count(),
                1,
                "{}",
                v.name
            );
            assert!(help.contains(v.meaning), "{}", v.name);
        }
        assert!(help.contains("OLLAMA_HOST") && help.contains("(default: 127.0.0.1:11434)"));
        assert!(help.contains("(default: f16)") && help.contains(" f16|q8_0|q4_0 "));
        assert!(!help.contains("OLLAMA_NOHISTORY"), "{help}");
    }

    #[test]
    fn client_help_lists_the_client_variables() {
        let help = client_vars_help();
        for name in ["OLLAMA_HOST", "OLLAMA_MODELS", "OLLAMA_NOHISTORY"] {
            assert_eq!(help.matches(&format!(" {name} ")).count(), 1, "{help}");
        }
        assert!(!help.contains("OLLAMA_NUM_PARALLEL"), "{help}");
    }

    /// Every `"OLLAMA_…"`/`"OLLAMARS_…"` literal in the library's sources (this file's table
    /// included, which names them all) is in the table, so `--help` cannot fall behind the
    /// code.
    #[test]
    fn the_table_covers_every_variable_in_the_sources() {
        fn walk(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, found);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let mut text = std::fs::read_to_string(&p).unwrap();
                    if p.ends_with("config.rs") {
                        // The table, not these tests (whose needle would count as a name).
                        let tests = text.find("#[cfg(test)]").unwrap();
                        text.truncate(tests);
                    }
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
                VARS.iter().any(|v| v.name == name),
                "{name} (read in {file}) is missing from config::VARS"
            );
        }
    }

    #[test]
    fn the_table_has_each_name_once_and_its_defaults_parse() {
        for (i, v) in VARS.iter().enumerate() {
            assert!(
                !VARS[i + 1..].iter().any(|w| w.name == v.name),
                "{}",
                v.name
            );
        }
        // `Default` parses every default; so do both sides.
        let d = Config::default();
        assert_eq!(d.host.client_url(), "http://127.0.0.1:11434");
        assert_eq!(d.keep_alive, KeepAlive::DEFAULT);
        assert_eq!(d.load_timeout, Some(Duration::from_secs(300)));
        assert_eq!(d.max_loaded_models, 3);
        assert_eq!(d.num_parallel, 1);
        assert_eq!(d.max_queue, 512);
        assert_eq!(d.context_length, 4096);
        assert_eq!(d.flash_attention, None);
        assert_eq!(d.kv_cache_type, KvCacheType::F16);
        assert!(d.origins.is_empty() && !d.noprune && !d.nohistory);
        assert_eq!(d.log_level, tracing::Level::INFO);
        assert!(d.home.is_none() && d.models.is_none() && d.ollama_home().is_none());
        assert!(d.registry_auth.is_none() && d.cpu_variant.is_none() && d.runner_exe.is_none());
        assert!(server(&[]).is_ok() && client(&[]).is_ok());
    }

    #[test]
    fn server_variables_are_parsed() {
        let c = server(&[
            ("OLLAMA_HOST", "0.0.0.0:8080"),
            ("OLLAMA_KEEP_ALIVE", "10m"),
            ("OLLAMA_LOAD_TIMEOUT", "0"),
            ("OLLAMA_MAX_LOADED_MODELS", "0"),
            ("OLLAMA_NUM_PARALLEL", " \"4\" "),
            ("OLLAMA_MAX_QUEUE", "16"),
            ("OLLAMA_CONTEXT_LENGTH", "8192"),
            ("OLLAMA_FLASH_ATTENTION", "1"),
            ("OLLAMA_KV_CACHE_TYPE", "Q8_0"),
            ("OLLAMA_ORIGINS", "https://a.example, ,chrome-extension://*"),
            ("OLLAMA_NOPRUNE", "true"),
            ("OLLAMA_DEBUG", "2"),
            ("OLLAMARS_REGISTRY_AUTH", "reg=u:p"),
            ("OLLAMARS_CPU_VARIANT", "haswell"),
            ("OLLAMARS_RUNNER_EXE", "/bin/wrapper"),
        ])
        .unwrap();
        assert_eq!(c.host.port, 8080);
        assert_eq!(c.keep_alive, KeepAlive::For(Duration::from_secs(600)));
        assert_eq!(c.load_timeout, None);
        assert_eq!(c.max_loaded_models, 3);
        assert_eq!(c.num_parallel, 4);
        assert_eq!(c.max_queue, 16);
        assert_eq!(c.context_length, 8192);
        assert_eq!(c.flash_attention, Some(true));
        assert_eq!(c.kv_cache_type, KvCacheType::Q8_0);
        assert_eq!(c.origins, ["https://a.example", "chrome-extension://*"]);
        assert!(c.noprune);
        assert_eq!(c.log_level, tracing::Level::TRACE);
        assert_eq!(c.registry_auth.as_ref().unwrap().expose(), "reg=u:p");
        assert!(
            !format!("{c:?}").contains("u:p"),
            "the password is not logged"
        );
        assert_eq!(c.cpu_variant.as_deref(), Some("haswell"));
        assert_eq!(c.runner_exe, Some(PathBuf::from("/bin/wrapper")));

        let c = server(&[
            ("OLLAMA_NUM_PARALLEL", "0"),
            ("OLLAMA_LOAD_TIMEOUT", "-1"),
            ("OLLAMA_KEEP_ALIVE", "-1"),
            ("OLLAMA_FLASH_ATTENTION", "auto"),
            ("OLLAMA_CONTEXT_LENGTH", "0"),
            ("OLLAMA_DEBUG", "1"),
        ])
        .unwrap();
        assert_eq!(c.num_parallel, 1);
        assert_eq!(c.load_timeout, None);
        assert_eq!(c.keep_alive, KeepAlive::Forever);
        assert_eq!(c.flash_attention, None);
        assert_eq!(c.context_length, 4096);
        assert_eq!(c.log_level, tracing::Level::DEBUG);
        let c = server(&[
            ("OLLAMA_NUM_PARALLEL", "1000"),
            ("OLLAMA_FLASH_ATTENTION", "0"),
        ]);
        let c = c.unwrap();
        assert_eq!((c.num_parallel, c.flash_attention), (256, Some(false)));
    }

    #[test]
    fn booleans_are_lenient_as_in_ollama() {
        for (value, want) in [
            ("1", true),
            ("true", true),
            ("yes", true),
            ("anything", true),
            ("0", false),
            ("false", false),
            ("FALSE", false),
            ("f", false),
            ("no", false),
            ("off", false),
            ("", false),
            ("  ", false),
        ] {
            let c = server(&[("OLLAMA_NOPRUNE", value)]).unwrap();
            assert_eq!(c.noprune, want, "OLLAMA_NOPRUNE={value:?}");
            let c = client(&[("OLLAMA_NOHISTORY", value)]).unwrap();
            assert_eq!(c.nohistory, want, "OLLAMA_NOHISTORY={value:?}");
        }
    }

    #[test]
    fn invalid_values_are_errors_that_say_what_is_accepted() {
        let e = server(&[("OLLAMA_NUM_PARALLEL", "abc")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OLLAMA_NUM_PARALLEL=\"abc\" is not valid: expected a whole number"
        );
        let e = server(&[("OLLAMA_KV_CACHE_TYPE", "bogus")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OLLAMA_KV_CACHE_TYPE=\"bogus\" is not valid: expected f16, q8_0 or q4_0"
        );
        for (name, value) in [
            ("OLLAMA_HOST", "localhost:abc"),
            ("OLLAMA_HOST", "[::1]:70000"),
            ("OLLAMA_KEEP_ALIVE", "5 minutes"),
            ("OLLAMA_LOAD_TIMEOUT", "soon"),
            ("OLLAMA_MAX_LOADED_MODELS", "-1"),
            ("OLLAMA_MAX_QUEUE", "1.5"),
            ("OLLAMA_CONTEXT_LENGTH", "4k"),
            ("OLLAMA_NUM_PARALLEL", "99999999999999999999999"),
        ] {
            let e = server(&[(name, value)]).unwrap_err();
            assert_eq!((e.var, e.value.as_str()), (name, value));
            assert!(e.to_string().contains("is not valid: expected "), "{e}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let bad = OsString::from_vec(vec![b'1', 0xff]);
            let e = Config::from_vars(Side::Server, [("OLLAMA_DEBUG", bad.clone())]).unwrap_err();
            assert_eq!(e.var, "OLLAMA_DEBUG");
            // A path may be any bytes.
            let c = Config::from_vars(Side::Server, [("OLLAMA_MODELS", bad.clone())]).unwrap();
            assert_eq!(c.models, Some(PathBuf::from(bad)));
        }
    }

    #[test]
    fn each_side_checks_only_its_own_variables() {
        let bad_server = [
            ("OLLAMA_NUM_PARALLEL", "abc"),
            ("OLLAMA_KV_CACHE_TYPE", "bogus"),
        ];
        let c = client(&bad_server).unwrap();
        assert_eq!(c.num_parallel, 1, "a client keeps the server's defaults");
        assert!(server(&bad_server).is_err());
        // Shared variables are checked on both sides.
        assert!(client(&[("OLLAMA_HOST", "x:port")]).is_err());
        // Client-only ones are not read by the server.
        let c = server(&[("OLLAMA_NOHISTORY", "1"), ("COLUMNS", "100")]).unwrap();
        assert!(!c.nohistory && c.columns.is_none());
        let c = client(&[("COLUMNS", "100")]).unwrap();
        assert_eq!(c.columns, Some(100));
        // COLUMNS is the shell's: a bad value is not ours to refuse.
        assert_eq!(client(&[("COLUMNS", "wide")]).unwrap().columns, None);
    }

    #[test]
    fn ollama_home_and_the_models_dir() {
        let c = server(&[("HOME", "/home/u")]).unwrap();
        assert_eq!(c.ollama_home(), Some(PathBuf::from("/home/u/.ollama")));
        assert_eq!(c.models_dir(), Some(Path::new("/home/u/.ollama/models")));
        let c = server(&[("USERPROFILE", "C:/Users/u")]).unwrap();
        assert_eq!(c.ollama_home(), Some(PathBuf::from("C:/Users/u/.ollama")));
        let c = client(&[("HOME", "/home/u"), ("OLLAMA_MODELS", "'/srv/models'")]).unwrap();
        assert_eq!(c.models_dir(), Some(Path::new("/srv/models")));
        assert_eq!(c.ollama_home(), Some(PathBuf::from("/home/u/.ollama")));
        assert_eq!(server(&[]).unwrap().models_dir(), None);
    }

    #[test]
    fn tilde_is_the_home_directory() {
        let home = Some(Path::new("/home/u"));
        assert_eq!(
            expand_home_in("~/m/a.gguf", home),
            PathBuf::from("/home/u/m/a.gguf")
        );
        assert_eq!(expand_home_in("~", home), PathBuf::from("/home/u"));
        assert_eq!(expand_home_in("~x/a", home), PathBuf::from("~x/a"));
        assert_eq!(expand_home_in("a/~/b", home), PathBuf::from("a/~/b"));
        assert_eq!(expand_home_in("~/a", None), PathBuf::from("~/a"));
    }

    #[test]
    fn kv_cache_types_serialize_as_their_names() {
        for t in KvCacheType::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<KvCacheType>(&json).unwrap(), t);
            assert_eq!(KvCacheType::parse(&t.to_string().to_uppercase()), Some(t));
        }
        assert!(serde_json::from_str::<KvCacheType>("\"bf16\"").is_err());
        assert_eq!(KvCacheType::parse("f32"), None);
        assert_eq!(
            KvCacheType::default().as_str(),
            vars::OLLAMA_KV_CACHE_TYPE.default
        );
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
        // A bad port: the default for `parse`, as Ollama; `None` for `parse_strict`.
        assert_eq!(h("example.com:abc"), "http://example.com:11434");
        assert_eq!(Host::parse_strict("example.com:abc"), None);
        assert_eq!(
            Host::parse_strict("https://example.com:1234/x"),
            Some(Host::parse("https://example.com:1234/x"))
        );
    }
}
