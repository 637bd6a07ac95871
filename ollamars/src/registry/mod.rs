//! The registry client: `pull` and `push` of models over Ollama's registry protocol (spec §6),
//! which is the Docker/OCI distribution API with Ollama's media types.
//!
//! - [`Registry::pull`] fetches a manifest (raw bytes kept, so its digest is the registry's),
//!   downloads each missing blob in verified, resumable parts shared between concurrent pulls, and
//!   writes the manifest last. Nothing enters the store before its sha256 is checked.
//! - [`Registry::push`] uploads missing blobs (or mounts them), then the manifest.
//! - Beyond Ollama: blobs served directly with `200`/`206` (standard registries) as well as by
//!   redirect (Ollama's CDN flow), OCI manifests, Basic auth and Docker token realms on another host
//!   (see [`config`] for credentials).
//!
//! Credentials go only where they belong: an `Authorization` header only to the registry's own
//! origin (scheme, host, port), Ollama's ed25519 signature only to a token realm on that origin,
//! the registry's Basic credentials only to the registry or the realm it declares. Redirects are
//! followed by hand, and a redirect target on another origin (a CDN) gets no `Authorization`.
//!
//! Everything read from a registry is bounded: the manifest ([`RegistryConfig::max_manifest_bytes`],
//! [`RegistryConfig::max_layers`]), token responses, error bodies, and each blob to exactly its
//! declared size. Bodies are never decompressed.

mod auth;
pub mod config;
mod download;
mod http;
mod upload;

pub use auth::ensure_key;
pub use config::{BasicCredentials, Credentials, RegistryConfig};

use crate::name::{ModelName, NameError};
use crate::progress::Progress;
use crate::store::{Digest, MANIFEST_MEDIA_TYPE, Manifest, Store, StoreError};
use download::{Downloads, Job};
use http::{Session, read_bounded, retrying, status_error};
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Url};
use std::sync::Arc;

/// The OCI image manifest media type, accepted beside Docker's.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Called for every progress event, in order (from any task). Cheap to clone.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Per-request options (the `insecure` field of /api/pull and /api/push, CLI `--insecure`).
#[derive(Debug, Clone, Default)]
pub struct TransferOptions {
    /// Talk `http` to the registry instead of `https`.
    pub insecure: bool,
}

/// A pull or push failed. `Display` gives Ollama's texts where Ollama has one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The model name is invalid: `invalid model name`.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// An `http://` name without `insecure`.
    #[error("insecure protocol http")]
    InsecureProtocol,
    /// Fetching the manifest failed: `pull model manifest: <cause>`.
    #[error("pull model manifest: {0}")]
    PullManifest(Box<RegistryError>),
    /// The registry answered 404.
    #[error("file does not exist")]
    NotFound,
    /// The registry answered another status ≥ 400: `<code>: <body>` (body cut at
    /// [`RegistryConfig::max_error_bytes`]).
    #[error("{code}: {body}")]
    Status {
        /// The HTTP status.
        code: u16,
        /// The start of the response body.
        body: String,
    },
    /// Still `401` after answering the challenge, or a challenge that cannot be answered.
    #[error("unauthorized: access denied")]
    Unauthorized,
    /// The token request failed or its realm is not acceptable.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The ed25519 key could not be read, parsed or written.
    #[error("registry key: {0}")]
    Key(String),
    /// A downloaded blob's sha256 is not its digest.
    #[error("digest mismatch, file must be downloaded again: want {want}, got {got}")]
    DigestMismatch {
        /// The digest the manifest names.
        want: String,
        /// The digest of the received bytes.
        got: String,
    },
    /// The manifest does not parse, names an invalid digest or has an unsupported media type.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// The manifest lists more layers than [`RegistryConfig::max_layers`].
    #[error("manifest has {count} layers, more than the limit of {limit}")]
    TooManyLayers {
        /// Layers in the manifest.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A body is larger than its limit.
    #[error("{what} is larger than {limit} bytes")]
    BodyTooLarge {
        /// Which body.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// A body came with a `Content-Encoding` (bodies are never decompressed).
    #[error("unsupported content encoding {0:?}")]
    ContentEncoding(String),
    /// The registry broke the protocol (ranges, lengths, locations).
    #[error("registry protocol error: {0}")]
    Protocol(String),
    /// Nothing arrived for [`RegistryConfig::stall_timeout`], again and again.
    #[error("download stalled")]
    Stalled,
    /// A connection or transport failure.
    #[error("{0}")]
    Transport(String),
    /// The registry's host name does not resolve (offline, or a typo in the name): retrying
    /// would only delay the error.
    #[error("{0}")]
    Unreachable(String),
    /// Push: the local model's manifest cannot be read.
    #[error("couldn't retrieve manifest")]
    LocalManifest(#[source] StoreError),
    /// The disk is full; the partial download was removed.
    #[error("no space left on device")]
    NoSpace,
    /// The transfer was cancelled (its state is kept for a resume).
    #[error("the transfer was cancelled")]
    Cancelled,
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file operation failed.
    #[error("registry I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The error of a download shared with other pulls.
    #[error(transparent)]
    Shared(Arc<RegistryError>),
}

impl RegistryError {
    /// Whether another try may succeed: transport failures, stalls and `5xx`/`408`/`429`.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Transport(_) | RegistryError::Stalled => true,
            RegistryError::Status { code, .. } => *code >= 500 || *code == 408 || *code == 429,
            RegistryError::Shared(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// The registry client. Clone is cheap; all clones share one table of running downloads (one
/// download per digest).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: Arc<RegistryConfig>,
    client: reqwest::Client,
    /// Running downloads by digest, shared by every pull of every clone.
    downloads: Arc<Downloads>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// Emits a status-only progress line.
fn say(progress: &ProgressFn, s: &str) {
    progress(Progress::status(s));
}

/// Parses and checks registry manifest bytes: the layer count, every digest, the media type.
fn check_manifest(raw: &[u8], config: &RegistryConfig) -> Result<Manifest, RegistryError> {
    // Count layers before trusting the rest (a cheap structural look).
    #[derive(serde::Deserialize)]
    struct Count {
        #[serde(default)]
        layers: Vec<serde::de::IgnoredAny>,
    }
    let count: Count =
        serde_json::from_slice(raw).map_err(|e| RegistryError::InvalidManifest(e.to_string()))?;
    if count.layers.len() > config.max_layers {
        return Err(RegistryError::TooManyLayers {
            count: count.layers.len(),
            limit: config.max_layers,
        });
    }
    let m = Store::parse_manifest(raw).map_err(|e| match e {
        StoreError::InvalidManifest(s) => RegistryError::InvalidManifest(s),
        e => RegistryError::Store(e),
    })?;
    // The store also accepts the file form `sha256-…`; a manifest must use `sha256:`.
    if m.digests().any(|d| !d.starts_with("sha256:")) {
        return Err(RegistryError::InvalidManifest(
            "a layer has an invalid digest".into(),
        ));
    }
    if !m.media_type.is_empty()
        && m.media_type != MANIFEST_MEDIA_TYPE
        && m.media_type != OCI_MANIFEST_MEDIA_TYPE
    {
        return Err(RegistryError::InvalidManifest(format!(
            "unsupported media type {:?}",
            m.media_type.chars().take(100).collect::<String>()
        )));
    }
    Ok(m)
}

impl Registry {
    /// A client over `store`.
    pub fn new(store: Store, config: RegistryConfig) -> Result<Registry, RegistryError> {
        let client = http::client(&config)?;
        Ok(Registry {
            inner: Arc::new(Inner {
                store,
                config: Arc::new(config),
                client,
                downloads: Arc::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// A session for `name`'s registry: `https://<host>/`, or `http` with `insecure`; an
    /// `http://` name without `insecure` is refused.
    fn session(&self, name: &ModelName, opts: &TransferOptions) -> Result<Session, RegistryError> {
        let scheme = if opts.insecure {
            "http"
        } else if name.scheme() == "http" {
            return Err(RegistryError::InsecureProtocol);
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{}/", name.host()))
            .map_err(|e| RegistryError::Protocol(format!("bad registry host: {e}")))?;
        Ok(Session::new(
            self.inner.client.clone(),
            self.inner.config.clone(),
            base,
            name.host(),
        ))
    }

    /// GETs the manifest bytes of `name`.
    async fn fetch_manifest(
        &self,
        session: &Session,
        name: &ModelName,
    ) -> Result<Vec<u8>, RegistryError> {
        let config = &self.inner.config;
        let url = manifest_url(session, name)?;
        let accept = format!("{MANIFEST_MEDIA_TYPE}, {OCI_MANIFEST_MEDIA_TYPE}");
        retrying(config, || async {
            let resp = session
                .send(Method::GET, &url, &|rb| rb.header(header::ACCEPT, &accept))
                .await?;
            if !resp.status().is_success() {
                return Err(status_error(resp, config).await);
            }
            read_bounded(
                resp,
                config.max_manifest_bytes,
                "manifest",
                config.stall_timeout,
            )
            .await
        })
        .await
    }

    /// Pull `name` into the store, emitting Ollama's progress sequence (§1.15) through
    /// `progress`, ending with `success`. Dropping the returned future detaches this waiter; a
    /// shared download keeps running until no waiter holds it, then stops (its part state stays
    /// on disk for a resume).
    pub async fn pull(
        &self,
        name: &ModelName,
        opts: &TransferOptions,
        progress: ProgressFn,
    ) -> Result<(), RegistryError> {
        let session = Arc::new(self.session(name, opts)?);
        let store = &self.inner.store;
        let config = &self.inner.config;
        let old = store.read_manifest(name).ok().map(|s| s.manifest);

        say(&progress, "pulling manifest");
        let raw = self
            .fetch_manifest(&session, name)
            .await
            .map_err(|e| RegistryError::PullManifest(Box::new(e)))?;
        let manifest = check_manifest(&raw, config)?;

        let mut layers: Vec<_> = manifest.layers.iter().collect();
        layers.push(&manifest.config);
        for layer in layers {
            let digest = Digest::parse(&layer.digest)?;
            if store.has_blob(digest.as_ref())? {
                progress(Progress {
                    status: format!("pulling {}", &digest.hex()[..12]),
                    digest: Some(digest.to_string()),
                    total: Some(layer.size),
                    completed: Some(layer.size),
                });
                continue;
            }
            if layer.size == 0 {
                download::write_empty(store, &digest)?;
                progress(Progress {
                    status: format!("pulling {}", &digest.hex()[..12]),
                    digest: Some(digest.to_string()),
                    total: Some(0),
                    completed: Some(0),
                });
                continue;
            }
            let url = session.url(&format!(
                "/v2/{}/{}/blobs/{digest}",
                name.namespace(),
                name.model()
            ))?;
            let waiter = self
                .inner
                .downloads
                .join(Job {
                    store: store.clone(),
                    session: session.clone(),
                    url,
                    digest,
                    size: layer.size,
                })
                .await;
            waiter.wait(config.progress_interval, &progress).await?;
        }

        say(&progress, "verifying sha256 digest");
        say(&progress, "writing manifest");
        store.write_manifest_raw(name, &raw)?;

        if let Some(old) = old
            && config.prune
        {
            let now: std::collections::HashSet<&str> = manifest.digests().collect();
            let unused: Vec<Digest> = old
                .digests()
                .filter(|d| !now.contains(d))
                .filter_map(|d| Digest::parse(d).ok())
                .collect();
            if !unused.is_empty() {
                say(&progress, "removing unused layers");
                store.remove_unreferenced(&unused)?;
            }
        }
        say(&progress, "success");
        Ok(())
    }

    /// Push the local model `name` (§6.4), emitting `retrieving manifest`, `pushing <12hex>`
    /// lines, `pushing manifest`, `success`. The manifest is sent byte for byte as stored (Ollama
    /// re-encodes it), so the registry's manifest digest equals the local model's ID.
    pub async fn push(
        &self,
        name: &ModelName,
        opts: &TransferOptions,
        progress: ProgressFn,
    ) -> Result<(), RegistryError> {
        let session = self.session(name, opts)?;
        let store = &self.inner.store;
        let config = &self.inner.config;
        say(&progress, "retrieving manifest");
        let stored = match store.read_manifest(name) {
            Ok(s) => s,
            Err(e) => {
                say(&progress, "couldn't retrieve manifest");
                return Err(RegistryError::LocalManifest(e));
            }
        };
        let mut layers: Vec<_> = stored.manifest.layers.iter().collect();
        layers.push(&stored.manifest.config);
        for layer in layers {
            upload::push_blob(&session, store, name, layer, &progress).await?;
        }

        say(&progress, "pushing manifest");
        let url = manifest_url(&session, name)?;
        let media_type = if stored.manifest.media_type == OCI_MANIFEST_MEDIA_TYPE {
            OCI_MANIFEST_MEDIA_TYPE
        } else {
            MANIFEST_MEDIA_TYPE
        };
        let raw = stored.raw;
        let resp = retrying(config, || async {
            let r = session
                .send(Method::PUT, &url, &|rb| {
                    rb.header(header::CONTENT_TYPE, HeaderValue::from_static(media_type))
                        .body(raw.clone())
                })
                .await?;
            if r.status().is_server_error() {
                return Err(status_error(r, config).await);
            }
            Ok(r)
        })
        .await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, config).await);
        }
        say(&progress, "success");
        Ok(())
    }
}

/// `/v2/<namespace>/<model>/manifests/<tag>` on the session's registry.
fn manifest_url(session: &Session, name: &ModelName) -> Result<Url, RegistryError> {
    session.url(&format!(
        "/v2/{}/{}/manifests/{}",
        name.namespace(),
        name.model(),
        name.tag()
    ))
}
