//! The HTTP side of one download (steps 2 and 3 of the parent module's docs): finding the
//! direct URL, then fetching the parts in parallel with ranged GETs, each written at its offset
//! into the [`PartialBlob`] and its state saved as it goes.

use super::steps::{blocking, io_error, store_error};
use super::{Job, Shared};
use crate::registry::RegistryError;
use crate::registry::http::{Session, check_encoding, location, retrying, status_error, transport};
use crate::store::{PartState, PartialBlob};
use futures::StreamExt as _;
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Url};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

/// Finds the URL the parts are fetched from (step 2 of the module docs).
async fn direct_url(session: &Session, start: &Url) -> Result<Url, RegistryError> {
    let mut url = start.clone();
    for _ in 0..10 {
        let resp = retrying(session.config(), || async {
            let resp = session
                .send(Method::GET, &url, &|rb| {
                    rb.header(header::RANGE, HeaderValue::from_static("bytes=0-0"))
                })
                .await?;
            // 429 Too Many Requests and 5xx are worth another try.
            if resp.status().is_server_error() || resp.status().as_u16() == 429 {
                return Err(status_error(resp, session.config()).await);
            }
            Ok(resp)
        })
        .await?;
        let status = resp.status();
        if status.is_redirection() {
            let target = location(&resp, &[header::LOCATION]).ok_or_else(|| {
                RegistryError::Protocol("a redirect without a usable Location".into())
            })?;
            if crate::registry::http::same_origin(&target, &session.base) {
                url = target;
                continue;
            }
            return Ok(target);
        }
        if status.is_success() {
            return Ok(url);
        }
        return Err(status_error(resp, session.config()).await);
    }
    Err(RegistryError::Protocol("too many redirects".into()))
}

/// Fetches every incomplete part, at most `max_parallel_parts` at once. The first failure stops
/// the others (each saves its state).
pub(super) async fn fetch_parts(
    job: &Job,
    shared: &Shared,
    partial: &PartialBlob,
    parts: Vec<PartState>,
    feed: Option<&tokio::sync::mpsc::Sender<axum::body::Bytes>>,
) -> Result<(), RegistryError> {
    let direct = tokio::select! {
        () = shared.cancel.cancelled() => return Err(RegistryError::Cancelled),
        r = direct_url(&job.session, &job.url) => r?,
    };
    let stop = shared.cancel.child_token();
    let parallel = job.session.config().max_parallel_parts.max(1);
    let mut results = futures::stream::iter(parts.into_iter().filter(|p| !p.is_complete()))
        .map(|p| {
            // The inline hash follows the first part only.
            let feed = feed.filter(|_| p.n == 0 && p.offset == 0);
            fetch_part(job, shared, partial, &direct, p, &stop, feed)
        })
        .buffer_unordered(parallel);
    let mut first: Option<RegistryError> = None;
    while let Some(r) = results.next().await {
        match r {
            Ok(()) => {}
            Err(RegistryError::Cancelled) => {}
            Err(e) => {
                stop.cancel();
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None if shared.cancel.is_cancelled() => Err(RegistryError::Cancelled),
        None => Ok(()),
    }
}

/// Why one try of a part ended without finishing it.
enum TryEnd {
    /// Stopped by cancellation; the state is saved.
    Cancelled,
    /// Nothing arrived for `stall_timeout`; whether bytes arrived in this try.
    Stalled(bool),
    /// Worth another try (transport errors, `5xx`, a body cut short).
    Retry(RegistryError),
    /// Not worth another try.
    Fatal(RegistryError),
}

/// Fetches one part with retries (step 3 of the module docs).
async fn fetch_part(
    job: &Job,
    shared: &Shared,
    partial: &PartialBlob,
    direct: &Url,
    mut part: PartState,
    stop: &CancellationToken,
    feed: Option<&tokio::sync::mpsc::Sender<axum::body::Bytes>>,
) -> Result<(), RegistryError> {
    let config = job.session.config();
    let mut tries = 0u32;
    loop {
        let end = fetch_try(job, shared, partial, direct, &mut part, stop, feed).await;
        let saved = part;
        let p = partial.clone();
        blocking(move || p.save_part(&saved).map_err(store_error)).await?;
        let err = match end {
            Ok(()) => return Ok(()),
            Err(TryEnd::Cancelled) => return Err(RegistryError::Cancelled),
            Err(TryEnd::Fatal(e)) => return Err(e),
            Err(TryEnd::Stalled(true)) => {
                tracing::debug!(part = part.n, "part stalled; restarting it");
                continue;
            }
            Err(TryEnd::Stalled(false)) => RegistryError::Stalled,
            Err(TryEnd::Retry(e)) => e,
        };
        tries += 1;
        if tries >= config.max_tries.max(1) {
            return Err(err);
        }
        tracing::debug!(part = part.n, tries, "part failed ({err}); retrying");
        tokio::select! {
            () = stop.cancelled() => return Err(RegistryError::Cancelled),
            () = tokio::time::sleep(crate::registry::http::backoff(config, tries)) => {}
        }
    }
}

/// Checks `Content-Range: bytes a-b/total` against the request.
fn content_range_ok(value: Option<&HeaderValue>, start: u64, end: u64, size: u64) -> bool {
    let Some(v) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(rest) = v.trim().strip_prefix("bytes ") else {
        return false;
    };
    let Some((range, total)) = rest.split_once('/') else {
        return false;
    };
    let Some((a, b)) = range.split_once('-') else {
        return false;
    };
    a.parse::<u64>().ok() == Some(start)
        && b.parse::<u64>().ok() == Some(end)
        && (total == "*" || total.parse::<u64>().ok() == Some(size))
}

/// One try of a part: request what it lacks and write it at its offset.
async fn fetch_try(
    job: &Job,
    shared: &Shared,
    partial: &PartialBlob,
    direct: &Url,
    part: &mut PartState,
    stop: &CancellationToken,
    feed: Option<&tokio::sync::mpsc::Sender<axum::body::Bytes>>,
) -> Result<(), TryEnd> {
    let config = job.session.config();
    if part.completed >= part.size {
        return Ok(());
    }
    let start = part.offset + part.completed;
    let end = part.offset + part.size - 1;
    let range = format!("bytes={start}-{end}");
    let build = |rb: reqwest::RequestBuilder| rb.header(header::RANGE, range.as_str());
    let sent = job.session.send(Method::GET, direct, &build);
    let resp = tokio::select! {
        () = stop.cancelled() => return Err(TryEnd::Cancelled),
        r = sent => r.map_err(|e| if e.is_retryable() { TryEnd::Retry(e) } else { TryEnd::Fatal(e) })?,
    };
    let status = resp.status();
    let whole = start == 0 && end + 1 == job.size;
    // The registry's answer: 206 Partial Content with our range; 200 OK only for a request of
    // the whole blob; 408, 429 and 5xx are retried; other 4xx are final.
    match status.as_u16() {
        206 => {
            if !content_range_ok(
                resp.headers().get(header::CONTENT_RANGE),
                start,
                end,
                job.size,
            ) {
                return Err(TryEnd::Fatal(RegistryError::Protocol(format!(
                    "the registry answered {range} with a different Content-Range"
                ))));
            }
        }
        200 if whole => {}
        200 => {
            return Err(TryEnd::Fatal(RegistryError::Protocol(
                "the registry ignored the Range header".into(),
            )));
        }
        408 | 429 | 500..=599 => {
            return Err(TryEnd::Retry(status_error(resp, config).await));
        }
        400..=499 => {
            return Err(TryEnd::Fatal(status_error(resp, config).await));
        }
        s => {
            return Err(TryEnd::Fatal(RegistryError::Protocol(format!(
                "unexpected status {s} for a blob range"
            ))));
        }
    }
    check_encoding(&resp).map_err(TryEnd::Fatal)?;
    let want = end - start + 1;
    if let Some(v) = resp.headers().get(header::CONTENT_LENGTH) {
        let n = v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok());
        if n != Some(want) {
            return Err(TryEnd::Fatal(RegistryError::Protocol(format!(
                "Content-Length does not match the requested {want} bytes"
            ))));
        }
    }

    let p = partial.clone();
    let file = blocking(move || p.open_for_writes().map_err(store_error))
        .await
        .map_err(TryEnd::Fatal)?;
    let mut file = tokio::fs::File::from_std(file);
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| TryEnd::Fatal(io_error(e)))?;
    let mut stream = resp.bytes_stream();
    let mut received = false;
    let mut last_save = Instant::now();
    let result = loop {
        let next = tokio::select! {
            () = stop.cancelled() => break Err(TryEnd::Cancelled),
            n = tokio::time::timeout(config.stall_timeout, stream.next()) => n,
        };
        let chunk = match next {
            Err(_) => break Err(TryEnd::Stalled(received)),
            Ok(None) if part.completed < part.size => {
                break Err(TryEnd::Retry(RegistryError::Transport(
                    "the blob body ended early".into(),
                )));
            }
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(TryEnd::Retry(transport(&e))),
            Ok(Some(Ok(c))) => c,
        };
        let remaining = part.size - part.completed;
        if chunk.len() as u64 > remaining {
            break Err(TryEnd::Fatal(RegistryError::Protocol(
                "the registry sent more bytes than requested".into(),
            )));
        }
        if let Err(e) = file.write_all(&chunk).await {
            break Err(TryEnd::Fatal(io_error(e)));
        }
        // In write order; a hasher that went away only means the file is hashed instead.
        if let Some(f) = feed {
            let _ = f.send(chunk.clone()).await;
        }
        received |= !chunk.is_empty();
        part.completed += chunk.len() as u64;
        shared
            .completed
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if last_save.elapsed() >= config.checkpoint_interval {
            if let Err(e) = file.flush().await {
                break Err(TryEnd::Fatal(io_error(e)));
            }
            let saved = *part;
            let p = partial.clone();
            if let Err(e) = blocking(move || p.save_part(&saved).map_err(store_error)).await {
                break Err(TryEnd::Fatal(e));
            }
            last_save = Instant::now();
        }
    };
    // What was written is kept and counted; the caller saves the state.
    if let Err(e) = file.flush().await {
        return Err(TryEnd::Fatal(io_error(e)));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(content_range_ok(Some(&v("bytes 0-9/10")), 0, 9, 10));
        assert!(content_range_ok(Some(&v("bytes 5-9/*")), 5, 9, 10));
        assert!(!content_range_ok(Some(&v("bytes 0-9/11")), 0, 9, 10));
        assert!(!content_range_ok(Some(&v("bytes 1-9/10")), 0, 9, 10));
        assert!(!content_range_ok(Some(&v("0-9/10")), 0, 9, 10));
        assert!(!content_range_ok(None, 0, 9, 10));
    }
}
