//! CORS with `OLLAMA_ORIGINS`, and the Host-header guard against DNS rebinding (spec §1.1).
//!
//! - A request with an `Origin` that is not allowed gets 403. Allowed origins get
//!   `Access-Control-Allow-Origin`; a preflight (`OPTIONS`) from one gets 204.
//! - When the server listens on a loopback address, a request whose `Host` is not local
//!   (localhost, a loopback/private/unspecified IP, this machine's name, or a name ending in
//!   `.localhost`, `.local` or `.internal`) gets 403: a web page on a rebinding domain cannot
//!   reach the API.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

const DEFAULT_ORIGINS: &[&str] = &[
    "http://localhost",
    "https://localhost",
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1",
    "https://127.0.0.1",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://0.0.0.0",
    "https://0.0.0.0",
    "http://0.0.0.0:*",
    "https://0.0.0.0:*",
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
];

const ALLOW_HEADERS: &str = "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, x-stainless-arch, x-stainless-async, x-stainless-custom-poll-interval, x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, x-stainless-poll-helper, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout";

/// The guard's settings.
#[derive(Debug, Default)]
pub struct Guard {
    origins: Vec<String>,
    listener: OnceLock<SocketAddr>,
    hostname: String,
}

impl Guard {
    /// Default origins plus `OLLAMA_ORIGINS` ([`crate::config::Config::origins`]).
    pub fn from_config(config: &crate::config::Config) -> Guard {
        Guard::with_origins(config.origins.iter().cloned())
    }

    /// Default origins plus `extra` (comma separated, `*` wildcards).
    pub fn new(extra: Option<&str>) -> Guard {
        Guard::with_origins(crate::config::split_list(extra))
    }

    fn with_origins(extra: impl IntoIterator<Item = String>) -> Guard {
        let mut origins: Vec<String> = DEFAULT_ORIGINS.iter().map(|s| (*s).to_string()).collect();
        origins.extend(extra);
        Guard {
            origins,
            listener: OnceLock::new(),
            hostname: crate::config::hostname(),
        }
    }

    /// Records the listening address (the Host guard applies only on loopback).
    pub fn set_listener(&self, addr: SocketAddr) {
        let _ = self.listener.set(addr);
    }

    /// Whether `origin` may call the API from a browser.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|p| glob(p, origin))
    }

    /// Whether `host` (the Host header, port included) is local.
    pub fn host_allowed(&self, host: &str) -> bool {
        if !self.listener.get().is_some_and(|a| a.ip().is_loopback()) {
            return true;
        }
        let h = strip_port(host).to_ascii_lowercase();
        if h.is_empty() || h == "localhost" || (!self.hostname.is_empty() && h == self.hostname) {
            return true;
        }
        if [".localhost", ".local", ".internal"]
            .iter()
            .any(|s| h.ends_with(s))
        {
            return true;
        }
        match h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(IpAddr::V4(ip)) => {
                ip.is_loopback() || ip.is_private() || ip.is_unspecified() || ip.is_link_local()
            }
            Ok(IpAddr::V6(ip)) => {
                ip.is_loopback()
                    || ip.is_unspecified()
                    || (ip.segments()[0] & 0xfe00) == 0xfc00
                    || (ip.segments()[0] & 0xffc0) == 0xfe80
                    || ip
                        .to_ipv4_mapped()
                        .is_some_and(|v4| v4.is_loopback() || v4.is_private())
            }
            Err(_) => false,
        }
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Matches `text` against `pattern` where `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern.eq_ignore_ascii_case(text);
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

fn forbidden(msg: &str) -> Response {
    super::error::ApiError::forbidden(msg).into_response()
}

/// The middleware.
pub async fn check(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !g.host_allowed(&host) {
        return forbidden("forbidden: host not allowed");
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let Some(origin) = origin else {
        return next.run(req).await;
    };
    if !g.origin_allowed(&origin) {
        return forbidden("forbidden: origin not allowed");
    }
    let value = HeaderValue::from_str(&origin).unwrap_or(HeaderValue::from_static("null"));
    let mut resp = if req.method() == Method::OPTIONS {
        let mut r = super::error::Done::NoContent.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("43200"),
        );
        r
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_extra_origins() {
        let g = Guard::new(Some("https://example.com, chrome-extension://*"));
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8080",
            "app://anything",
            "vscode-webview://x",
            "https://example.com",
            "chrome-extension://abcdef",
        ] {
            assert!(g.origin_allowed(ok), "{ok}");
        }
        for bad in [
            "https://evil.com",
            "http://localhost.evil.com",
            "https://example.com.evil",
        ] {
            assert!(!g.origin_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn host_guard_only_on_loopback() {
        let g = Guard::new(None);
        g.set_listener("127.0.0.1:11434".parse().unwrap());
        for ok in [
            "localhost:11434",
            "127.0.0.1:11434",
            "[::1]:11434",
            "10.0.0.5",
            "0.0.0.0:11434",
            "box.local",
            "x.internal:80",
            "",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:11434",
            "8.8.8.8",
            "localhost.evil.com",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let open = Guard::new(None);
        open.set_listener("0.0.0.0:11434".parse().unwrap());
        assert!(open.host_allowed("evil.com"));
    }

    #[test]
    fn glob_matches_wildcards() {
        assert!(glob("http://localhost:*", "http://localhost:1"));
        assert!(!glob("http://localhost:*", "http://localhost"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxc"));
    }
}
