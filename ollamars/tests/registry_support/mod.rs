//! A small fault-injecting registry for the registry client's tests: an axum server on
//! 127.0.0.1:0 that serves manifests and blobs (by range), accepts uploads, hands out tokens, and
//! can misbehave in the ways a hostile or broken registry does. Each listener logs every request
//! it receives with its `Authorization` header, so tests can check where credentials went.
#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures::StreamExt as _;
use futures::stream::{self, BoxStream};
use ollamars::progress::Progress;
use ollamars::registry::{ProgressFn, RegistryConfig};
use ollamars::store::Digest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// One request as a listener saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The `Authorization` header, if any.
    pub auth: Option<String>,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The `Content-Range` header, if any.
    pub content_range: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

/// How the registry protects `/v2/` and uploads.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Open.
    #[default]
    None,
    /// `401 Bearer realm=<realm>` unless `Authorization: Bearer <token>`.
    Bearer {
        /// The realm URL to announce.
        realm: String,
        /// The token to accept.
        token: String,
    },
    /// `401 Basic` unless `Authorization` equals this value.
    Basic(String),
}

/// What `/token` answers.
#[derive(Debug, Clone)]
pub enum TokenReply {
    /// `{"token": …}`.
    Token(String),
    /// `{"access_token": …}`.
    AccessToken(String),
    /// An endless body.
    Endless,
}

/// How the manifest endpoint misbehaves.
#[derive(Debug, Clone)]
pub enum ManifestFault {
    /// Endless chunked body (no Content-Length) of spaces.
    Endless,
    /// `Content-Encoding: gzip` on a small body that inflates to many megabytes.
    GzipBomb,
    /// These bytes instead of the real manifest.
    Raw(Vec<u8>),
    /// This status and body.
    Status(u16, String),
}

/// Per-listener faults. Body faults apply to ranged blob GETs that ask for more than one byte
/// (the client's 1-byte probe that locates the blob is served normally).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Cut the connection after this many bytes of a response…
    pub drop_after: Option<u64>,
    /// …for this many responses.
    pub drop_times: usize,
    /// Stop sending (forever) after this many bytes of a response…
    pub stall_after: Option<u64>,
    /// …for this many responses.
    pub stall_times: usize,
    /// Flip the first byte of every blob body.
    pub corrupt: bool,
    /// Answer blob GETs `200` with an empty body.
    pub empty_body: bool,
    /// Answer ranged GETs `200` with the whole blob.
    pub ignore_range: bool,
    /// Answer with a Content-Range shifted by one byte.
    pub wrong_content_range: bool,
    /// Send no Content-Length (chunked).
    pub no_content_length: bool,
    /// Send a Content-Length one larger than the body.
    pub wrong_content_length: bool,
    /// Send one byte more than asked (with no Content-Length).
    pub extra_bytes: bool,
    /// Redirect blob GETs (307) to `<base>/cdn/<digest>`: another listener's base, or `""` for
    /// this one (a relative Location).
    pub redirect_blobs_to: Option<String>,
    /// Misbehave on the manifest.
    pub manifest: Option<ManifestFault>,
    /// Hold ranged GETs of this digest until the gate opens.
    pub gate: Option<(String, watch::Receiver<bool>)>,
}

/// The shared state of one listener.
#[derive(Debug)]
pub struct Inner {
    /// Blobs by digest.
    pub blobs: Mutex<HashMap<String, Vec<u8>>>,
    /// Manifests by `ns/model:tag`.
    pub manifests: Mutex<HashMap<String, (Vec<u8>, String)>>,
    /// Blobs of another repository on this registry: reachable by a cross-repository mount only.
    pub other_repo: Mutex<HashMap<String, Vec<u8>>>,
    /// Uploads in progress.
    pub uploads: Mutex<HashMap<String, Vec<u8>>>,
    /// Faults.
    pub faults: Mutex<Faults>,
    /// Access control.
    pub auth: Mutex<Auth>,
    /// What `/token` answers.
    pub token: Mutex<TokenReply>,
    /// Every request received.
    pub log: Mutex<Vec<Seen>>,
    /// Blob body bytes handed to the server (counted as they are produced).
    pub blob_bytes: AtomicU64,
    /// Manifest body bytes handed to the server.
    pub manifest_bytes: AtomicU64,
    next_upload: AtomicUsize,
}

/// A fault registry listening on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The bound address.
    pub addr: SocketAddr,
    /// The state.
    pub inner: Arc<Inner>,
}

impl Listener {
    /// Starts a listener on an ephemeral port.
    pub async fn start() -> Listener {
        let inner = Arc::new(Inner {
            blobs: Mutex::default(),
            manifests: Mutex::default(),
            other_repo: Mutex::default(),
            uploads: Mutex::default(),
            faults: Mutex::default(),
            auth: Mutex::default(),
            token: Mutex::new(TokenReply::Token("tok-123".into())),
            log: Mutex::default(),
            blob_bytes: AtomicU64::new(0),
            manifest_bytes: AtomicU64::new(0),
            next_upload: AtomicUsize::new(0),
        });
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(tcp, app).await.unwrap() });
        Listener { addr, inner }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:<port>` (the host part of model names).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The model name `127.0.0.1:<port>/<repo>`.
    pub fn name(&self, repo: &str) -> ollamars::name::ModelName {
        ollamars::name::ModelName::parse(&format!("{}/{repo}", self.host())).unwrap()
    }

    /// Sets the faults.
    pub fn faults(&self, f: Faults) {
        *self.inner.faults.lock().unwrap() = f;
    }

    /// Changes the faults in place.
    pub fn with_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.inner.faults.lock().unwrap());
    }

    /// Sets the access control.
    pub fn auth(&self, a: Auth) {
        *self.inner.auth.lock().unwrap() = a;
    }

    /// Serves `model` as `ns/model:tag`.
    pub fn serve(&self, repo_tag: &str, model: &Model) {
        for (d, b) in &model.blobs {
            self.inner
                .blobs
                .lock()
                .unwrap()
                .insert(d.clone(), b.clone());
        }
        self.inner.manifests.lock().unwrap().insert(
            repo_tag.to_string(),
            (
                model.manifest.clone(),
                "application/vnd.docker.distribution.manifest.v2+json".into(),
            ),
        );
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Seen> {
        self.inner.log.lock().unwrap().clone()
    }

    /// Ranged GETs of a blob that asked for more than one byte.
    pub fn blob_gets(&self, digest: &str) -> Vec<Seen> {
        self.log()
            .into_iter()
            .filter(|s| s.method == "GET" && s.uri.ends_with(digest))
            .filter(|s| s.range.as_deref() != Some("bytes=0-0"))
            .collect()
    }

    /// Every `Authorization` value received.
    pub fn auths(&self) -> Vec<String> {
        self.log().into_iter().filter_map(|s| s.auth).collect()
    }
}

/// A model to serve: its blobs by digest and its manifest bytes.
#[derive(Debug, Clone)]
pub struct Model {
    /// `(digest, bytes)`, config first.
    pub blobs: Vec<(String, Vec<u8>)>,
    /// The manifest JSON.
    pub manifest: Vec<u8>,
}

impl Model {
    /// The digest of the i-th blob (0 is the config).
    pub fn digest(&self, i: usize) -> &str {
        &self.blobs[i].0
    }
}

/// Deterministic bytes that do not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A model whose layers have these sizes (plus a small config blob).
pub fn model(layer_sizes: &[usize], seed: u64) -> Model {
    let config = format!(
        r#"{{"model_format":"gguf","model_family":"llama","architecture":"amd64","os":"linux","seed":{seed}}}"#
    )
    .into_bytes();
    let mut blobs = vec![(Digest::of(&config).to_string(), config)];
    for (i, &n) in layer_sizes.iter().enumerate() {
        let b = noise(n, seed * 100 + i as u64 + 1);
        blobs.push((Digest::of(&b).to_string(), b));
    }
    let manifest = manifest_json(&blobs);
    Model { blobs, manifest }
}

/// A Docker v2 manifest for `(digest, bytes)` blobs, config first.
pub fn manifest_json(blobs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let layer = |(d, b): &(String, Vec<u8>)| serde_json::json!({"mediaType": "application/vnd.ollama.image.model", "digest": d, "size": b.len()});
    let config = &blobs[0];
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config.0, "size": config.1.len()},
        "layers": blobs[1..].iter().map(layer).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// A config for tests: small parts (256–512 KiB), fast retries, short intervals.
pub fn test_config() -> RegistryConfig {
    RegistryConfig {
        min_part_size: 256 << 10,
        max_part_size: 512 << 10,
        retry_base: Duration::from_millis(10),
        stall_timeout: Duration::from_secs(10),
        response_timeout: Duration::from_secs(10),
        progress_interval: Duration::from_millis(20),
        checkpoint_interval: Duration::from_millis(50),
        ..RegistryConfig::default()
    }
}

/// A progress sink that records every line.
pub fn recorder() -> (ProgressFn, Arc<Mutex<Vec<Progress>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    (Arc::new(move |p| l.lock().unwrap().push(p)), lines)
}

/// A gzip member whose deflate stream (fixed Huffman: one literal, then length-258 distance-1
/// copies) inflates to about `inflated` zero bytes. The trailer is not a real CRC: a decoder
/// would have inflated everything before noticing.
pub fn gzip_bomb(inflated: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, v: u32, len: u32) {
            self.acc |= u64::from(v) << self.n;
            self.n += len;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            let rev = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
            self.put(rev, len);
        }
    }
    let mut b = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // final block
    b.put(1, 2); // fixed Huffman
    b.code(0x30, 8); // literal 0
    for _ in 0..inflated / 258 {
        b.code(0xC5, 8); // length 258 (symbol 285)
        b.code(0, 5); // distance 1
    }
    b.code(0, 7); // end of block
    b.put(0, 7);
    b.out.extend_from_slice(&[0, 0, 0, 0]);
    b.out
        .extend_from_slice(&((1 + inflated / 258 * 258) as u32).to_le_bytes());
    b.out
}

fn header(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn reply(status: u16, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

fn set(r: &mut Response, name: &'static str, value: &str) {
    r.headers_mut()
        .insert(name, HeaderValue::from_str(value).unwrap());
}

/// `bytes=a-b` → (a, b).
fn parse_range(r: &str) -> Option<(u64, u64)> {
    let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// `data` in 16 KiB chunks, counted into `counter` as they are produced.
fn counted(data: Vec<u8>, counter: Arc<Inner>) -> ByteStream {
    let chunks: Vec<Bytes> = data.chunks(16 << 10).map(Bytes::copy_from_slice).collect();
    stream::iter(chunks)
        .map(move |c| {
            counter
                .blob_bytes
                .fetch_add(c.len() as u64, Ordering::Relaxed);
            Ok(c)
        })
        .boxed()
}

async fn handle(State(st): State<Arc<Inner>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().to_string();
    let headers = req.headers().clone();
    st.log.lock().unwrap().push(Seen {
        method: method.to_string(),
        uri: uri.clone(),
        auth: header(&headers, header::AUTHORIZATION),
        range: header(&headers, header::RANGE),
        content_range: header(&headers, header::CONTENT_RANGE),
        content_type: header(&headers, header::CONTENT_TYPE),
    });
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    match segs.as_slice() {
        ["token"] => return token(&st),
        ["cdn", digest] => return blob(&st, digest, &headers, &method, true).await,
        _ => {}
    }

    // Access control for the registry API.
    let auth = st.auth.lock().unwrap().clone();
    let given = header(&headers, header::AUTHORIZATION);
    match auth {
        Auth::None => {}
        Auth::Bearer { realm, token } => {
            if given.as_deref() != Some(&format!("Bearer {token}")) {
                let mut r = reply(401, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
                set(
                    &mut r,
                    "www-authenticate",
                    &format!(
                        r#"Bearer realm="{realm}",service="fake",scope="repository:library/tiny:pull,push""#
                    ),
                );
                return r;
            }
        }
        Auth::Basic(want) => {
            if given.as_deref() != Some(want.as_str()) {
                let mut r = reply(401, "");
                set(&mut r, "www-authenticate", r#"Basic realm="fake""#);
                return r;
            }
        }
    }

    match (method.as_str(), segs.as_slice()) {
        ("GET", ["v2", ns, model, "manifests", tag]) => {
            manifest(&st, &format!("{ns}/{model}:{tag}"))
        }
        ("PUT", ["v2", ns, model, "manifests", tag]) => {
            let ct = header(&headers, header::CONTENT_TYPE).unwrap_or_default();
            st.manifests
                .lock()
                .unwrap()
                .insert(format!("{ns}/{model}:{tag}"), (body.to_vec(), ct));
            reply(201, "")
        }
        ("HEAD", ["v2", _, _, "blobs", digest]) => {
            let len = st.blobs.lock().unwrap().get(*digest).map(Vec::len);
            match len {
                Some(n) => {
                    let mut r = reply(200, "");
                    set(&mut r, "content-length", &n.to_string());
                    r
                }
                None => reply(404, ""),
            }
        }
        ("GET", ["v2", _, _, "blobs", digest]) => blob(&st, digest, &headers, &method, false).await,
        ("POST", ["v2", _, _, "blobs", "uploads", ""]) => {
            let params: HashMap<String, String> = query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.replace("%3A", ":").replace("%2F", "/")))
                .collect();
            let mounted = params
                .get("mount")
                .and_then(|d| Some((d.clone(), st.other_repo.lock().unwrap().get(d)?.clone())));
            if let Some((d, bytes)) = mounted
                && params.get("from").map(String::as_str) == Some("library/base")
            {
                st.blobs.lock().unwrap().insert(d, bytes);
                return reply(201, "");
            }
            let id = st.next_upload.fetch_add(1, Ordering::Relaxed).to_string();
            st.uploads.lock().unwrap().insert(id.clone(), Vec::new());
            let mut r = reply(202, "");
            set(&mut r, "location", &format!("/upload/{id}"));
            r
        }
        ("PATCH", ["upload", id]) => {
            let mut uploads = st.uploads.lock().unwrap();
            let Some(data) = uploads.get_mut(*id) else {
                return reply(404, "");
            };
            let want = format!("{}-{}", data.len(), data.len() + body.len() - 1);
            if header(&headers, header::CONTENT_RANGE).as_deref() != Some(&want) {
                return reply(416, "bad range");
            }
            data.extend_from_slice(&body);
            let mut r = reply(202, "");
            set(
                &mut r,
                "location",
                &format!("/upload/{id}?state={}", data.len()),
            );
            r
        }
        ("PUT", ["upload", id]) => {
            let Some(data) = st.uploads.lock().unwrap().remove(*id) else {
                return reply(404, "");
            };
            let digest = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("digest="))
                .map(|d| d.replace("%3A", ":"))
                .unwrap_or_default();
            if Digest::of(&data).to_string() != digest {
                return reply(400, "digest invalid");
            }
            st.blobs.lock().unwrap().insert(digest, data);
            reply(201, "")
        }
        _ => reply(404, "not found"),
    }
}

fn token(st: &Inner) -> Response {
    match st.token.lock().unwrap().clone() {
        TokenReply::Token(t) => reply(200, format!(r#"{{"token":"{t}"}}"#)),
        TokenReply::AccessToken(t) => reply(200, format!(r#"{{"access_token":"{t}"}}"#)),
        TokenReply::Endless => {
            let chunk = Bytes::from(vec![b' '; 64 << 10]);
            let s = stream::iter(std::iter::repeat_n(chunk, 1 << 15)).map(Ok::<_, std::io::Error>);
            reply(200, Body::from_stream(s))
        }
    }
}

fn manifest(st: &Arc<Inner>, key: &str) -> Response {
    let fault = st.faults.lock().unwrap().manifest.clone();
    match fault {
        Some(ManifestFault::Endless) => {
            let chunk = Bytes::from(vec![b' '; 64 << 10]);
            let counter = st.clone();
            // 2 GiB, produced lazily.
            let s = stream::iter(std::iter::repeat_n(chunk, 1 << 15)).map(move |c| {
                counter
                    .manifest_bytes
                    .fetch_add(c.len() as u64, Ordering::Relaxed);
                Ok::<_, std::io::Error>(c)
            });
            return reply(200, Body::from_stream(s));
        }
        Some(ManifestFault::GzipBomb) => {
            let mut r = reply(200, gzip_bomb(64 << 20));
            set(&mut r, "content-encoding", "gzip");
            set(&mut r, "content-type", "application/json");
            return r;
        }
        Some(ManifestFault::Raw(b)) => return reply(200, b),
        Some(ManifestFault::Status(code, body)) => return reply(code, body),
        None => {}
    }
    match st.manifests.lock().unwrap().get(key) {
        Some((raw, ct)) => {
            let mut r = reply(200, raw.clone());
            set(&mut r, "content-type", ct);
            r
        }
        None => reply(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#),
    }
}

async fn blob(
    st: &Arc<Inner>,
    digest: &str,
    h: &HeaderMap,
    method: &Method,
    cdn: bool,
) -> Response {
    let Some(data) = st.blobs.lock().unwrap().get(digest).cloned() else {
        return reply(404, "blob unknown");
    };
    let range = header(h, header::RANGE).and_then(|r| parse_range(&r));
    let probe = range == Some((0, 0));
    let (redirect, gate) = {
        let f = st.faults.lock().unwrap();
        (f.redirect_blobs_to.clone(), f.gate.clone())
    };
    if !cdn && let Some(base) = redirect {
        let mut r = reply(307, "");
        set(&mut r, "location", &format!("{base}/cdn/{digest}"));
        return r;
    }
    if !probe
        && let Some((d, mut open)) = gate
        && d == digest
    {
        let _ = open.wait_for(|o| *o).await;
    }
    let total = data.len() as u64;
    let mut f = if probe {
        Faults::default()
    } else {
        st.faults.lock().unwrap().clone()
    };
    // Count down the one-shot faults.
    if !probe {
        let mut live = st.faults.lock().unwrap();
        if live.drop_times > 0 {
            live.drop_times -= 1;
        } else {
            f.drop_after = None;
        }
        if live.stall_times > 0 {
            live.stall_times -= 1;
        } else {
            f.stall_after = None;
        }
    }
    if f.empty_body {
        let mut r = reply(200, Body::empty());
        set(&mut r, "content-length", "0");
        return r;
    }
    let (status, start, end) = match range {
        Some((a, b)) if !f.ignore_range && a <= b && b < total => (206, a, b),
        _ => (200, 0, total - 1),
    };
    let mut body = data[start as usize..=end as usize].to_vec();
    if f.corrupt && !body.is_empty() {
        body[0] ^= 0xff;
    }
    if f.extra_bytes {
        body.push(0);
    }
    let len = body.len() as u64;
    let mut s: ByteStream = match (f.drop_after, f.stall_after) {
        (Some(n), _) => {
            let cut = body[..(n.min(len)) as usize].to_vec();
            counted(cut, st.clone())
                .chain(stream::once(async {
                    Err(std::io::Error::other("connection dropped"))
                }))
                .boxed()
        }
        (_, Some(n)) => {
            let cut = body[..(n.min(len)) as usize].to_vec();
            counted(cut, st.clone()).chain(stream::pending()).boxed()
        }
        _ => counted(body, st.clone()),
    };
    if *method == Method::HEAD {
        s = stream::empty().boxed();
    }
    let mut r = reply(status, Body::from_stream(s));
    if status == 206 {
        let (a, b) = if f.wrong_content_range {
            (start + 1, end + 1)
        } else {
            (start, end)
        };
        set(&mut r, "content-range", &format!("bytes {a}-{b}/{total}"));
    }
    if f.wrong_content_length {
        set(&mut r, "content-length", &(len + 1).to_string());
    } else if !f.no_content_length && !f.extra_bytes {
        set(&mut r, "content-length", &len.to_string());
    }
    r
}
