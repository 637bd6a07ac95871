//! Blob uploads (spec §6.4): `HEAD` (already there?), `POST blobs/uploads/` (with a cross-repository
//! mount when the layer records where it came from), `PATCH` parts in order, then the final
//! `PUT <location>?digest=…`.

use super::http::{Session, location, retrying, status_error};
use super::{ProgressFn, RegistryError};
use crate::name::ModelName;
use crate::progress::Progress;
use crate::store::{Digest, Layer, Store};
use md5::Digest as _;
use reqwest::header::{self, HeaderName};
use reqwest::{Method, Url};
use std::io::{Read as _, Seek as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const DOCKER_UPLOAD_LOCATION: HeaderName = HeaderName::from_static("docker-upload-location");
const X_REDIRECT_UPLOADS: HeaderName = HeaderName::from_static("x-redirect-uploads");

/// The `from` query of a mount: `<namespace>/<model>` of the layer's source model.
fn mount_from(layer: &Layer) -> Option<String> {
    let from = layer.from.as_deref()?;
    let n = ModelName::parse(from).ok()?;
    Some(format!("{}/{}", n.namespace(), n.model()))
}

/// Appends `key=value` to a URL's query (`?` or `&`).
fn with_query(url: &Url, query: &str) -> Result<Url, RegistryError> {
    let sep = if url.query().is_some() { '&' } else { '?' };
    Url::parse(&format!("{url}{sep}{query}"))
        .map_err(|e| RegistryError::Protocol(format!("bad upload URL: {e}")))
}

/// The blob `digest` opened through the store (a regular file, never a symlink) at `offset`.
fn open_at(store: &Store, digest: &Digest, offset: u64) -> Result<std::fs::File, RegistryError> {
    let mut f = store.open_blob(digest.as_ref())?;
    f.seek(std::io::SeekFrom::Start(offset))
        .map_err(RegistryError::Io)?;
    Ok(f)
}

/// Reads `len` bytes of a blob at `offset` and returns their md5.
fn md5_of(
    store: &Store,
    digest: &Digest,
    offset: u64,
    len: u64,
) -> Result<[u8; 16], RegistryError> {
    let mut r = open_at(store, digest, offset)?.take(len);
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(RegistryError::Io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// The blob being pushed: where to read it and what has been sent of it.
struct Source<'a> {
    store: &'a Store,
    digest: &'a Digest,
    sent: &'a Arc<AtomicU64>,
}

impl Source<'_> {
    /// A streaming request body: `len` bytes of the blob from `offset`, adding what is sent to
    /// the counter.
    fn body(&self, offset: u64, len: u64) -> Result<reqwest::Body, RegistryError> {
        use futures::StreamExt as _;
        use tokio::io::AsyncReadExt as _;
        let f = open_at(self.store, self.digest, offset)?;
        let reader = tokio::fs::File::from_std(f).take(len);
        let counter = self.sent.clone();
        let stream = tokio_util::io::ReaderStream::new(reader).inspect(move |c| {
            if let Ok(c) = c {
                counter.fetch_add(c.len() as u64, Ordering::Relaxed);
            }
        });
        Ok(reqwest::Body::wrap_stream(stream))
    }
}

/// Pushes one blob of `name`'s repository, reporting `pushing <12 hex>`.
pub(crate) async fn push_blob(
    session: &Session,
    store: &Store,
    name: &ModelName,
    layer: &Layer,
    progress: &ProgressFn,
) -> Result<(), RegistryError> {
    let digest = Digest::parse(&layer.digest)?;
    let total = layer.size;
    let on_disk = store.blob_size(digest.as_ref())?;
    if on_disk != total {
        return Err(RegistryError::Protocol(format!(
            "blob {digest} is {on_disk} bytes but the manifest says {total}"
        )));
    }
    let status = format!("pushing {}", &digest.hex()[..12]);
    let emit = |completed: u64| {
        progress(Progress {
            status: status.clone(),
            digest: Some(digest.to_string()),
            total: Some(total),
            completed: Some(completed),
        });
    };
    let config = session.config();
    let repo = format!("/v2/{}/{}", name.namespace(), name.model());

    let blob_url = session.url(&format!("{repo}/blobs/{digest}"))?;
    let head = bodiless(session, Method::HEAD, &blob_url).await?;
    if head.status().is_success() {
        emit(total);
        return Ok(());
    }
    // 404 Not Found: the registry lacks the blob, so it is uploaded; any other status fails.
    if head.status().as_u16() != 404 {
        return Err(status_error(head, config).await);
    }

    let mut start_url = session.url(&format!("{repo}/blobs/uploads/"))?;
    if let Some(from) = mount_from(layer) {
        start_url = with_query(
            &start_url,
            &format!(
                "mount={}&from={}",
                super::auth::query_escape(digest.as_ref()),
                super::auth::query_escape(&from)
            ),
        )?;
    }
    let started = bodiless(session, Method::POST, &start_url).await?;
    // 201 Created: a cross-repository mount succeeded.
    if started.status().as_u16() == 201 {
        emit(total);
        return Ok(());
    }
    if !started.status().is_success() {
        return Err(status_error(started, config).await);
    }
    let mut next = location(&started, &[DOCKER_UPLOAD_LOCATION, header::LOCATION])
        .ok_or_else(|| RegistryError::Protocol("the upload has no Location".into()))?;
    drop(started);

    let sent = Arc::new(AtomicU64::new(0));
    let mut md5s = Vec::new();
    let part_size = config.part_size(total);
    let mut offset = 0u64;
    let mut tick = tokio::time::interval(config.progress_interval);
    while offset < total {
        let len = part_size.min(total - offset);
        let (s, d, o) = (store.clone(), digest.clone(), offset);
        md5s.push(
            tokio::task::spawn_blocking(move || md5_of(&s, &d, o, len))
                .await
                .map_err(|_| RegistryError::Protocol("a file task failed".into()))??,
        );
        let following = {
            let source = Source {
                store,
                digest: &digest,
                sent: &sent,
            };
            let part = upload_part(session, &next, &source, offset, len);
            tokio::pin!(part);
            loop {
                tokio::select! {
                    r = &mut part => break r?,
                    _ = tick.tick() => emit(sent.load(Ordering::Relaxed)),
                }
            }
        };
        next = following;
        offset += len;
        sent.store(offset, Ordering::Relaxed);
    }

    let mut all = md5::Md5::new();
    for m in &md5s {
        all.update(m);
    }
    let etag: String = all.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let finish = with_query(
        &next,
        &format!(
            "digest={}&etag={etag}-{}",
            super::auth::query_escape(digest.as_ref()),
            md5s.len()
        ),
    )?;
    let done = bodiless(session, Method::PUT, &finish).await?;
    if !done.status().is_success() {
        return Err(status_error(done, config).await);
    }
    emit(total);
    Ok(())
}

/// Sends one part (with retries) and returns the URL of the next request.
async fn upload_part(
    session: &Session,
    url: &Url,
    source: &Source<'_>,
    offset: u64,
    len: u64,
) -> Result<Url, RegistryError> {
    let config = session.config();
    let sent = source.sent;
    let end = offset + len - 1;
    retrying(config, || async {
        sent.store(offset, Ordering::Relaxed);
        let body = source.body(offset, len)?;
        // The body is rebuilt for each try: `send` may have to repeat the request after a 401.
        let body = std::sync::Mutex::new(Some(body));
        let resp = session
            .send(Method::PATCH, url, &|rb| {
                let b = body.lock().ok().and_then(|mut b| b.take());
                let b = b.or_else(|| source.body(offset, len).ok());
                let rb = rb
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header(header::CONTENT_LENGTH, len.to_string())
                    .header(header::CONTENT_RANGE, format!("{offset}-{end}"))
                    .header(X_REDIRECT_UPLOADS, "1");
                match b {
                    Some(b) => rb.body(b),
                    None => rb,
                }
            })
            .await?;
        let status = resp.status();
        if status.as_u16() == 307 {
            // 307 Temporary Redirect.
            // ollama.com: the part goes to a presigned URL; the next request to the registry.
            let next = location(&resp, &[DOCKER_UPLOAD_LOCATION, header::LOCATION]);
            let target = location(&resp, &[header::LOCATION])
                .ok_or_else(|| RegistryError::Protocol("a redirect without Location".into()))?;
            drop(resp);
            sent.store(offset, Ordering::Relaxed);
            let body = source.body(offset, len)?;
            let body = std::sync::Mutex::new(Some(body));
            let put = session
                .send(Method::PUT, &target, &|rb| {
                    let b = body.lock().ok().and_then(|mut b| b.take());
                    let b = b.or_else(|| source.body(offset, len).ok());
                    let rb = rb
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .header(header::CONTENT_LENGTH, len.to_string());
                    match b {
                        Some(b) => rb.body(b),
                        None => rb,
                    }
                })
                .await?;
            if !put.status().is_success() {
                return Err(status_error(put, config).await);
            }
            return next
                .ok_or_else(|| RegistryError::Protocol("the upload has no Location".into()));
        }
        if !status.is_success() {
            return Err(status_error(resp, config).await);
        }
        location(&resp, &[DOCKER_UPLOAD_LOCATION, header::LOCATION])
            .ok_or_else(|| RegistryError::Protocol("the upload has no Location".into()))
    })
    .await
}

/// `method` on `url` without a body (`Content-Length: 0` unless HEAD), retried on transport
/// errors and `5xx`; any other answer is returned for the caller to judge.
async fn bodiless(
    session: &Session,
    method: Method,
    url: &Url,
) -> Result<reqwest::Response, RegistryError> {
    let config = session.config();
    let head = method == Method::HEAD;
    retrying(config, || async {
        let r = session
            .send(method.clone(), url, &|rb| {
                if head {
                    rb
                } else {
                    rb.header(header::CONTENT_LENGTH, "0")
                }
            })
            .await?;
        if r.status().is_server_error() {
            return Err(status_error(r, config).await);
        }
        Ok(r)
    })
    .await
}
