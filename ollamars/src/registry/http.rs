//! The HTTP side of the registry client: one [`Session`] per pull or push, which adds the
//! registry's credentials to requests bound for the registry's own origin and answers `401`
//! challenges; bounded body reads; retries with exponential backoff; manual redirects.
//!
//! # Where credentials go (the auth host rule)
//!
//! The client never follows redirects by itself (`redirect::Policy::none()`). A request carries an
//! `Authorization` header only when its URL has the registry's origin (scheme, host and port).
//! A token request carries credentials only to the realm the registry declared in its challenge:
//! Ollama's ed25519 signature only to a realm on the registry's own origin, Basic credentials for
//! the registry (Docker token flow) to the declared realm. A redirect target on another origin (a
//! CDN) gets no `Authorization` at all. An `https` registry's realm must be `https`.

use super::auth::{Challenge, Key, token_query};
use super::{RegistryConfig, RegistryError};
use futures::StreamExt as _;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, Url};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Builds the shared HTTP client: no redirects followed, no transparent decompression (the
/// crate is built without reqwest's decoders, and `Accept-Encoding: identity` asks servers not to
/// compress), Ollama-shaped `User-Agent`.
pub(crate) fn client(config: &RegistryConfig) -> Result<reqwest::Client, RegistryError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(config.user_agent.clone())
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| RegistryError::Transport(e.to_string()))
}

/// Whether two URLs have the same origin: scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Maps a reqwest error to a (retryable) transport error.
pub(crate) fn transport(e: &reqwest::Error) -> RegistryError {
    // reqwest's own text is terse ("error sending request"); the cause chain says what failed.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    if e.is_connect() && text.contains("dns error") {
        return RegistryError::Unreachable(text);
    }
    RegistryError::Transport(text)
}

/// Rejects a response whose body is encoded (`gzip`, …): it is never decoded, so a compressed
/// body cannot inflate past the read limits.
pub(crate) fn check_encoding(resp: &Response) -> Result<(), RegistryError> {
    match resp.headers().get(header::CONTENT_ENCODING) {
        None => Ok(()),
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"identity") => Ok(()),
        Some(v) => Err(RegistryError::ContentEncoding(
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(40)
                .collect(),
        )),
    }
}

/// Reads a body of at most `limit` bytes; a larger one (by `Content-Length` or by what arrives)
/// fails as soon as the limit is passed. Each chunk must arrive within `stall`.
pub(crate) async fn read_bounded(
    resp: Response,
    limit: usize,
    what: &'static str,
    stall: Duration,
) -> Result<Vec<u8>, RegistryError> {
    check_encoding(&resp)?;
    let too_large = || RegistryError::BodyTooLarge { what, limit };
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    loop {
        let chunk = tokio::time::timeout(stall, stream.next())
            .await
            .map_err(|_| RegistryError::Stalled)?;
        match chunk {
            None => return Ok(body),
            Some(Err(e)) => return Err(transport(&e)),
            Some(Ok(c)) => {
                if body.len() + c.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&c);
            }
        }
    }
}

/// Up to `limit` bytes of an error body as text (the rest is not read).
pub(crate) async fn error_text(resp: Response, limit: usize, stall: Duration) -> String {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while body.len() < limit {
        match tokio::time::timeout(stall, stream.next()).await {
            Ok(Some(Ok(c))) => {
                let take = c.len().min(limit - body.len());
                body.extend_from_slice(&c[..take]);
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).trim().to_string()
}

/// The error for a response of status ≥ 400: `file does not exist` for 404, else
/// `<code>: <body>` with a bounded body.
pub(crate) async fn status_error(resp: Response, config: &RegistryConfig) -> RegistryError {
    let code = resp.status().as_u16();
    if code == 404 {
        return RegistryError::NotFound;
    }
    let body = error_text(resp, config.max_error_bytes, config.stall_timeout).await;
    RegistryError::Status { code, body }
}

/// Runs `f` until it succeeds, fails with an error that is not retryable, or has been tried
/// `max_tries` times, sleeping `retry_base × 2^n` between tries.
pub(crate) async fn retrying<T, F, Fut>(
    config: &RegistryConfig,
    mut f: F,
) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let mut tries = 0u32;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                tries += 1;
                if !e.is_retryable() || tries >= config.max_tries.max(1) {
                    return Err(e);
                }
                tokio::time::sleep(backoff(config, tries)).await;
            }
        }
    }
}

/// The delay after the `tries`-th failed try: `retry_base × 2^(tries-1)`.
pub(crate) fn backoff(config: &RegistryConfig, tries: u32) -> Duration {
    config
        .retry_base
        .saturating_mul(1u32 << tries.saturating_sub(1).min(16))
}

/// Resolves a `Location` (or `Docker-Upload-Location`) header against the URL it answered.
pub(crate) fn location(resp: &Response, names: &[header::HeaderName]) -> Option<Url> {
    let value = names
        .iter()
        .find_map(|n| resp.headers().get(n))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())?;
    let url = resp.url().join(value).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(url)
}

/// A request builder for [`Session::send`]: it adds headers and a body to a prepared request,
/// and is called again for each try.
pub(crate) type Build<'a> = &'a (dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync);

/// One pull or push against one registry: its origin, its host name (for credentials) and the
/// `Authorization` value earned by the last challenge.
#[derive(Debug)]
pub(crate) struct Session {
    client: reqwest::Client,
    config: Arc<RegistryConfig>,
    /// `<scheme>://<host>/`.
    pub(crate) base: Url,
    /// The registry host as named (`host[:port]`), the key of its credentials.
    host: String,
    /// The `Authorization` value for requests to `base`'s origin; set by a challenge, shared by
    /// every request of the session (short critical sections, never held across `.await`).
    auth: Mutex<Option<String>>,
}

impl Session {
    /// A session for the registry at `base` named `host`.
    pub(crate) fn new(
        client: reqwest::Client,
        config: Arc<RegistryConfig>,
        base: Url,
        host: &str,
    ) -> Session {
        Session {
            client,
            config,
            base,
            host: host.to_string(),
            auth: Mutex::new(None),
        }
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// `base` joined with `path` (which starts with `/v2/`).
    pub(crate) fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|e| RegistryError::Protocol(format!("bad registry URL: {e}")))
    }

    fn auth_value(&self) -> Option<String> {
        self.auth.lock().ok().and_then(|a| a.clone())
    }

    fn set_auth(&self, value: String) {
        if let Ok(mut a) = self.auth.lock() {
            *a = Some(value);
        }
    }

    /// Waits for a response's headers, at most `response_timeout`.
    async fn timed_send(&self, rb: RequestBuilder) -> Result<Response, RegistryError> {
        match tokio::time::timeout(self.config.response_timeout, rb.send()).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(transport(&e)),
            Err(_) => Err(RegistryError::Transport(
                "timed out waiting for the registry".into(),
            )),
        }
    }

    /// Sends `method url`, with the session's credentials when `url` is on the registry's origin.
    /// A `401` from the registry is answered once (see the module docs); a second `401` is
    /// [`RegistryError::Unauthorized`]. Any other status is returned as is.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &Url,
        build: Build<'_>,
    ) -> Result<Response, RegistryError> {
        let to_registry = same_origin(url, &self.base);
        let mut challenged = false;
        loop {
            let mut rb = self.client.request(method.clone(), url.clone());
            if to_registry && let Some(a) = self.auth_value() {
                rb = rb.header(header::AUTHORIZATION, a);
            }
            let resp = self.timed_send(build(rb)).await?;
            if resp.status().as_u16() != 401 || !to_registry {
                return Ok(resp);
            }
            if challenged {
                return Err(RegistryError::Unauthorized);
            }
            challenged = true;
            let challenge = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse)
                .ok_or(RegistryError::Unauthorized)?;
            drop(resp);
            self.answer(challenge).await?;
        }
    }

    /// Earns an `Authorization` value for a challenge.
    async fn answer(&self, challenge: Challenge) -> Result<(), RegistryError> {
        let creds = self.config.credentials.get(&self.host).cloned();
        match challenge {
            Challenge::Basic => {
                let c = creds.ok_or(RegistryError::Unauthorized)?;
                self.set_auth(c.header_value());
                Ok(())
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let realm = self
                    .base
                    .join(&realm)
                    .map_err(|_| RegistryError::Auth("invalid realm URL".into()))?;
                if !matches!(realm.scheme(), "http" | "https") {
                    return Err(RegistryError::Auth("the realm must be http(s)".into()));
                }
                if self.base.scheme() == "https" && realm.scheme() != "https" {
                    return Err(RegistryError::Auth(
                        "an https registry declared an http realm".into(),
                    ));
                }
                let own_origin = same_origin(&realm, &self.base);
                // Ollama's signed flow: only to the registry's own origin, only without Basic
                // credentials configured, and only with a key.
                let key = if own_origin && creds.is_none() {
                    self.config
                        .key_path
                        .as_deref()
                        .filter(|p| p.exists())
                        .map(Key::load)
                        .transpose()?
                } else {
                    None
                };
                let query = token_query(service.as_deref(), scope.as_deref(), key.is_some());
                let sep = if realm.query().is_some() { '&' } else { '?' };
                let url = Url::parse(&format!("{realm}{sep}{query}"))
                    .map_err(|_| RegistryError::Auth("invalid realm URL".into()))?;
                let mut rb = self.client.get(url.clone());
                if let Some(k) = &key {
                    rb = rb.header(header::AUTHORIZATION, k.sign_token_request(url.as_str())?);
                } else if let Some(c) = creds
                    .as_ref()
                    .or_else(|| self.config.credentials.get(&host_port(&realm)))
                {
                    rb = rb.header(header::AUTHORIZATION, c.header_value());
                }
                let resp = self.timed_send(rb).await?;
                if !resp.status().is_success() {
                    let code = resp.status().as_u16();
                    let body =
                        error_text(resp, self.config.max_error_bytes, self.config.stall_timeout)
                            .await;
                    return Err(RegistryError::Auth(format!(
                        "token request failed: {code}: {body}"
                    )));
                }
                let body = read_bounded(
                    resp,
                    self.config.max_token_bytes,
                    "token response",
                    self.config.stall_timeout,
                )
                .await?;
                let token = parse_token(&body)?;
                self.set_auth(format!("Bearer {token}"));
                Ok(())
            }
        }
    }
}

/// `host[:port]` of a URL, as credentials are keyed.
fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// The token of a token response: `token` (Ollama, Docker) or `access_token` (OAuth style).
fn parse_token(body: &[u8]) -> Result<String, RegistryError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| RegistryError::Auth("the token response is not JSON".into()))?;
    let token = ["token", "access_token"]
        .iter()
        .find_map(|k| v.get(k).and_then(|t| t.as_str()).filter(|t| !t.is_empty()))
        .ok_or_else(|| RegistryError::Auth("the token response has no token".into()))?;
    // The token becomes a header value: printable ASCII only.
    if !token.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(RegistryError::Auth(
            "the token has invalid characters".into(),
        ));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let a = Url::parse("https://h.example/v2/").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("https://h.example:443/x").unwrap()
        ));
        assert!(!same_origin(&a, &Url::parse("http://h.example/x").unwrap()));
        assert!(!same_origin(
            &a,
            &Url::parse("https://h.example:444/x").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://cdn.h.example/x").unwrap()
        ));
    }

    #[test]
    fn tokens() {
        assert_eq!(parse_token(br#"{"token":"abc"}"#).unwrap(), "abc");
        assert_eq!(parse_token(br#"{"access_token":"xyz"}"#).unwrap(), "xyz");
        assert!(parse_token(br#"{"token":"a\nb"}"#).is_err());
        assert!(parse_token(b"{}").is_err());
        assert!(parse_token(b"<html>").is_err());
    }

    #[tokio::test]
    async fn realms_that_would_leak_are_refused_before_any_request() {
        let config = Arc::new(RegistryConfig::default());
        let s = Session::new(
            client(&config).unwrap(),
            config,
            Url::parse("https://127.0.0.1:9/").unwrap(),
            "127.0.0.1:9",
        );
        for realm in ["http://127.0.0.1:9/token", "file:///etc/passwd", "ftp://x/"] {
            let e = s
                .answer(Challenge::Bearer {
                    realm: realm.into(),
                    service: None,
                    scope: None,
                })
                .await
                .unwrap_err();
            assert!(matches!(e, RegistryError::Auth(_)), "{realm}: {e}");
        }
        // Basic without credentials for the host: nothing to send.
        assert!(matches!(
            s.answer(Challenge::Basic).await,
            Err(RegistryError::Unauthorized)
        ));
    }

    #[test]
    fn backoff_doubles() {
        let c = RegistryConfig::default();
        assert_eq!(backoff(&c, 1), Duration::from_secs(1));
        assert_eq!(backoff(&c, 3), Duration::from_secs(4));
    }
}
