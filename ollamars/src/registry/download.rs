//! Blob downloads: parallel ranged parts into one preallocated `<blob>-partial` file, per-part
//! state files `<blob>-partial-N` for resuming, stall detection, retries, digest verification
//! before publishing, and one shared download per digest.
//!
//! # State machine of one download
//!
//! 1. **Plan.** Load the part states `-partial-0…`; they are used only if they are consistent
//!    (contiguous, covering the blob, each `Completed ≤ Size`) and `-partial` has the blob's size.
//!    Otherwise start fresh: split the blob into parts ([`RegistryConfig::part_size`]), create
//!    `-partial` at full (sparse) size and write every state.
//! 2. **Locate.** GET the registry's blob URL, following redirects only while they stay on the
//!    registry's origin; a redirect elsewhere (a CDN) names the direct URL, a `200`/`206` makes the
//!    registry URL itself the direct URL.
//! 3. **Fetch parts** in parallel: `Range: bytes=a-b` for what each part still lacks. The answer
//!    must be `206` with `Content-Range: bytes a-b/<size or *>` and, if present, a matching
//!    `Content-Length`. A `200` is accepted only when the request covers the whole blob from byte
//!    0 (a one-part blob, or its first try): the body is then exactly that range. More bytes
//!    than asked is a protocol error. Each part writes its state at least every
//!    `checkpoint_interval` and after every try. A part idle for `stall_timeout` restarts without
//!    using a try if it had received bytes since its last start; transport errors and `5xx`/`408`
//!    /`429` use a try with exponential backoff; anything else fails the download.
//! 4. **Verify.** fsync `-partial`, hash it; a mismatch deletes `-partial` and the states. When
//!    the first part starts from byte 0 in this download, its bytes are hashed as they are
//!    written, on a thread of their own ([`InlineHash`]); only the rest of the file is read back
//!    and hashed after the transfer.
//! 5. **Publish.** Rename `-partial` to the blob name, sync the directory, delete the states.
//!
//! Cancellation (the last waiter gone) stops every part after it saved its state: `-partial` and
//! the states stay for a resume. `ENOSPC` deletes them (the space is given back).

use super::http::{Session, check_encoding, location, retrying, status_error, transport};
use super::{ProgressFn, RegistryError};
use crate::progress::Progress;
use crate::store::{Digest, Store};
use futures::StreamExt as _;
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The most part files read when resuming.
const MAX_PARTS: usize = 10_000;

/// One part's state, as Ollama writes it to `-partial-N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct PartState {
    #[serde(rename = "N")]
    n: usize,
    #[serde(rename = "Offset")]
    offset: u64,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Completed")]
    completed: u64,
}

/// A download's outcome, shared by its waiters.
type Outcome = Result<(), Arc<RegistryError>>;

/// One running download, shared by every pull waiting for its digest.
#[derive(Debug)]
struct Shared {
    total: u64,
    /// Bytes on disk so far (monotonic; read by the waiters' progress).
    completed: AtomicU64,
    /// Cancelled when the last waiter leaves.
    cancel: CancellationToken,
    /// Set once, when the download task ends.
    done: watch::Sender<Option<Outcome>>,
}

#[derive(Debug)]
struct Slot {
    shared: Arc<Shared>,
    waiters: usize,
}

/// The table of running downloads, one per digest. Waiter counts change only under its lock,
/// so a download is never joined after its last waiter cancelled it.
#[derive(Debug, Default)]
pub(crate) struct Downloads {
    table: Mutex<HashMap<Digest, Slot>>,
}

/// What a download needs: the store, the session that started it and the blob's registry URL.
pub(crate) struct Job {
    pub(crate) store: Store,
    pub(crate) session: Arc<Session>,
    pub(crate) url: Url,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

/// A pull's hold on a shared download. Dropping the last one cancels the download.
#[derive(Debug)]
pub(crate) struct Waiter {
    downloads: Arc<Downloads>,
    digest: Digest,
    shared: Arc<Shared>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let Ok(mut table) = self.downloads.table.lock() else {
            return;
        };
        if let Some(slot) = table.get_mut(&self.digest)
            && Arc::ptr_eq(&slot.shared, &self.shared)
        {
            slot.waiters = slot.waiters.saturating_sub(1);
            if slot.waiters == 0 {
                self.shared.cancel.cancel();
            }
        }
    }
}

/// Removes a finished download from the table and publishes its outcome, also when the task
/// panics (the outcome is then an error).
struct Finish {
    downloads: Arc<Downloads>,
    digest: Digest,
    shared: Arc<Shared>,
    outcome: Option<Outcome>,
}

impl Finish {
    /// Publishes `outcome` (through `Drop`).
    fn complete(mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Ok(mut table) = self.downloads.table.lock()
            && table
                .get(&self.digest)
                .is_some_and(|s| Arc::ptr_eq(&s.shared, &self.shared))
        {
            table.remove(&self.digest);
        }
        let outcome = self.outcome.take().unwrap_or_else(|| {
            Err(Arc::new(RegistryError::Protocol(
                "the download task failed".into(),
            )))
        });
        self.shared.done.send_replace(Some(outcome));
    }
}

impl Downloads {
    /// Joins the running download of `job.digest`, or starts one. A download that is stopping
    /// (cancelled) is waited for first, so two never write the same partial file.
    pub(crate) async fn join(self: &Arc<Self>, job: Job) -> Waiter {
        loop {
            let mut stopping = {
                let Ok(mut table) = self.table.lock() else {
                    // A poisoned lock only follows a panic elsewhere; start unshared.
                    return self.start(job, &mut HashMap::new());
                };
                match table.get_mut(&job.digest) {
                    Some(slot) if !slot.shared.cancel.is_cancelled() => {
                        slot.waiters += 1;
                        return Waiter {
                            downloads: self.clone(),
                            digest: job.digest.clone(),
                            shared: slot.shared.clone(),
                        };
                    }
                    Some(slot) => slot.shared.done.subscribe(),
                    // Another pull may have finished this blob since the caller looked: the
                    // table entry goes only after the blob is published, so checking under
                    // the lock cannot miss one that is on its way.
                    None if job.store.has_blob(job.digest.as_ref()).unwrap_or(false) => {
                        return Waiter {
                            downloads: self.clone(),
                            digest: job.digest.clone(),
                            shared: Arc::new(Shared {
                                total: job.size,
                                completed: AtomicU64::new(job.size),
                                cancel: CancellationToken::new(),
                                done: watch::channel(Some(Ok(()))).0,
                            }),
                        };
                    }
                    None => return self.start(job, &mut table),
                }
            };
            let _ = stopping.wait_for(Option::is_some).await;
        }
    }

    fn start(self: &Arc<Self>, job: Job, table: &mut HashMap<Digest, Slot>) -> Waiter {
        let shared = Arc::new(Shared {
            total: job.size,
            completed: AtomicU64::new(0),
            cancel: CancellationToken::new(),
            done: watch::channel(None).0,
        });
        table.insert(
            job.digest.clone(),
            Slot {
                shared: shared.clone(),
                waiters: 1,
            },
        );
        let finish = Finish {
            downloads: self.clone(),
            digest: job.digest.clone(),
            shared: shared.clone(),
            outcome: None,
        };
        let digest = job.digest.clone();
        let task_shared = shared.clone();
        tokio::spawn(async move {
            let r = download(&job, &task_shared).await;
            finish.complete(r.map_err(Arc::new));
        });
        Waiter {
            downloads: self.clone(),
            digest,
            shared,
        }
    }
}

impl Waiter {
    /// Waits for the download, reporting `pulling <12 hex>` progress every `interval` and once
    /// more at the end.
    pub(crate) async fn wait(
        &self,
        interval: std::time::Duration,
        progress: &ProgressFn,
    ) -> Result<(), RegistryError> {
        let status = format!("pulling {}", &self.digest.hex()[..12]);
        let emit = |completed: u64| {
            progress(Progress {
                status: status.clone(),
                digest: Some(self.digest.to_string()),
                total: Some(self.shared.total),
                completed: Some(completed),
            });
        };
        let mut rx = self.shared.done.subscribe();
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                r = rx.wait_for(Option::is_some) => {
                    let outcome = match r {
                        Ok(v) => v.clone().unwrap_or(Ok(())),
                        Err(_) => Err(Arc::new(RegistryError::Protocol("the download vanished".into()))),
                    };
                    return match outcome {
                        Ok(()) => {
                            emit(self.shared.total);
                            Ok(())
                        }
                        Err(e) => Err(RegistryError::Shared(e)),
                    };
                }
                _ = tick.tick() => emit(self.shared.completed.load(Ordering::Relaxed)),
            }
        }
    }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn state_path(partial: &Path, n: usize) -> PathBuf {
    with_suffix(partial, &format!("-{n}"))
}

/// Whether an I/O error means the disk is full.
fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// Maps a local I/O error: `ENOSPC` becomes [`RegistryError::NoSpace`].
fn io_error(e: std::io::Error) -> RegistryError {
    if is_no_space(&e) {
        RegistryError::NoSpace
    } else {
        RegistryError::Io(e)
    }
}

/// Writes a part state by temp file, fsync and rename.
fn save_state(partial: &Path, p: &PartState) -> std::io::Result<()> {
    let path = state_path(partial, p.n);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, &serde_json::to_vec(p).unwrap_or_default())?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(())
}

/// Removes `-partial` and every `-partial-N` beside it.
fn remove_partial(partial: &Path) {
    let _ = std::fs::remove_file(partial);
    for n in 0..MAX_PARTS {
        if std::fs::remove_file(state_path(partial, n)).is_err() {
            break;
        }
    }
}

/// The saved parts of a blob of `size` bytes, if they are usable (see the module docs).
fn load_parts(partial: &Path, size: u64) -> Option<Vec<PartState>> {
    let meta = std::fs::symlink_metadata(partial).ok()?;
    if !meta.file_type().is_file() || meta.len() != size {
        return None;
    }
    let mut parts: Vec<PartState> = Vec::new();
    let mut offset = 0u64;
    for n in 0..MAX_PARTS {
        let Ok(bytes) = std::fs::read(state_path(partial, n)) else {
            break;
        };
        let p: PartState = serde_json::from_slice(&bytes).ok()?;
        if p.n != n || p.offset != offset || p.size == 0 || p.completed > p.size {
            return None;
        }
        offset = offset.checked_add(p.size)?;
        parts.push(p);
    }
    (offset == size && !parts.is_empty()).then_some(parts)
}

/// Splits a blob into parts and creates its sparse `-partial` file and part states.
fn plan_fresh(partial: &Path, size: u64, part_size: u64) -> Result<Vec<PartState>, RegistryError> {
    remove_partial(partial);
    let mut parts = Vec::new();
    let mut offset = 0;
    while offset < size {
        let len = part_size.min(size - offset);
        parts.push(PartState {
            n: parts.len(),
            offset,
            size: len,
            completed: 0,
        });
        offset += len;
    }
    let f = std::fs::File::create(partial).map_err(io_error)?;
    f.set_len(size).map_err(io_error)?;
    for p in &parts {
        save_state(partial, p).map_err(io_error)?;
    }
    Ok(parts)
}

/// Hashes a file.
fn hash_file(path: &Path) -> std::io::Result<Digest> {
    hash_file_from(path, sha2::Sha256::default(), 0)
}

/// Continues `h` (which has hashed the file's first `from` bytes) over the rest of the file.
fn hash_file_from(path: &Path, mut h: sha2::Sha256, from: u64) -> std::io::Result<Digest> {
    use sha2::Digest as _;
    use std::io::Seek as _;
    let mut f = std::fs::File::open(path)?;
    f.seek(std::io::SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Digest::parse(&format!("sha256:{hex}"))
        .map_err(|_| std::io::Error::other("cannot format a digest"))
}

/// The first part's bytes, hashed in order as they are written, on a thread of its own so that
/// hashing overlaps the transfer. The channel is bounded: a slow hasher slows the part down
/// instead of buffering it in memory.
struct InlineHash {
    feed: tokio::sync::mpsc::Sender<axum::body::Bytes>,
    thread: std::thread::JoinHandle<(sha2::Sha256, u64)>,
}

impl InlineHash {
    fn start() -> InlineHash {
        let (feed, mut rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(32);
        let thread = std::thread::spawn(move || {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            let mut n = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                h.update(&chunk);
                n += chunk.len() as u64;
            }
            (h, n)
        });
        InlineHash { feed, thread }
    }

    /// Closes the feed and returns the state and how many bytes it hashed.
    fn finish(self) -> Option<(sha2::Sha256, u64)> {
        drop(self.feed);
        self.thread.join().ok()
    }
}

/// Runs a blocking closure off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| RegistryError::Protocol("a file task failed".into()))?
}

/// Downloads, verifies and publishes one blob (see the module docs). A full disk removes the
/// partial files, whichever step hit it.
async fn download(job: &Job, shared: &Shared) -> Result<(), RegistryError> {
    let r = download_steps(job, shared).await;
    if matches!(r, Err(RegistryError::NoSpace)) {
        let partial = with_suffix(&job.store.blob_path(job.digest.as_ref())?, "-partial");
        let _ = blocking(move || {
            remove_partial(&partial);
            Ok(())
        })
        .await;
    }
    r
}

async fn download_steps(job: &Job, shared: &Shared) -> Result<(), RegistryError> {
    let blob = job.store.blob_path(job.digest.as_ref())?;
    let dir = blob.parent().map(Path::to_path_buf).unwrap_or_default();
    let partial = with_suffix(&blob, "-partial");
    let config = job.session.config();
    let (size, part_size) = (job.size, config.part_size(job.size));
    let (plan_path, plan_dir) = (partial.clone(), dir.clone());
    let parts = blocking(move || {
        std::fs::create_dir_all(&plan_dir).map_err(io_error)?;
        match load_parts(&plan_path, size) {
            Some(p) => Ok(p),
            None => plan_fresh(&plan_path, size, part_size),
        }
    })
    .await?;
    let resumed: u64 = parts.iter().map(|p| p.completed).sum();
    shared.completed.store(resumed, Ordering::Relaxed);

    // Only a first part fetched whole in this download can be hashed as it arrives.
    let first_size = parts
        .first()
        .filter(|p| p.offset == 0 && p.completed == 0 && p.size > 0)
        .map(|p| p.size);
    let mut inline = first_size.map(|_| InlineHash::start());
    if parts.iter().any(|p| p.completed < p.size) {
        let feed = inline.as_ref().map(|h| &h.feed);
        fetch_parts(job, shared, &partial, parts, feed).await?;
    }
    // The hashed prefix, if the first part really went through the feed from byte 0 to its end.
    let prefix = match (inline.take(), first_size) {
        (Some(h), Some(size)) => {
            let r = blocking(move || Ok(h.finish())).await?;
            r.filter(|&(_, n)| n == size)
        }
        _ => None,
    };

    let want = job.digest.clone();
    blocking(move || {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .map_err(io_error)?;
        f.sync_all().map_err(io_error)?;
        let got = match prefix {
            Some((h, n)) => hash_file_from(&partial, h, n),
            None => hash_file(&partial),
        }
        .map_err(io_error)?;
        if got != want {
            remove_partial(&partial);
            return Err(RegistryError::DigestMismatch {
                want: want.to_string(),
                got: got.to_string(),
            });
        }
        std::fs::rename(&partial, &blob).map_err(io_error)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        remove_partial(&partial);
        Ok(())
    })
    .await
}

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
            if resp.status().is_server_error() || resp.status() == StatusCode::TOO_MANY_REQUESTS {
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
            if super::http::same_origin(&target, &session.base) {
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
async fn fetch_parts(
    job: &Job,
    shared: &Shared,
    partial: &Path,
    parts: Vec<PartState>,
    feed: Option<&tokio::sync::mpsc::Sender<axum::body::Bytes>>,
) -> Result<(), RegistryError> {
    let direct = tokio::select! {
        () = shared.cancel.cancelled() => return Err(RegistryError::Cancelled),
        r = direct_url(&job.session, &job.url) => r?,
    };
    let stop = shared.cancel.child_token();
    let parallel = job.session.config().max_parallel_parts.max(1);
    let mut results = futures::stream::iter(parts.into_iter().filter(|p| p.completed < p.size))
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
    partial: &Path,
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
        let path = partial.to_path_buf();
        blocking(move || save_state(&path, &saved).map_err(io_error)).await?;
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
            () = tokio::time::sleep(super::http::backoff(config, tries)) => {}
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
    partial: &Path,
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
    match status {
        StatusCode::PARTIAL_CONTENT => {
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
        StatusCode::OK if whole => {}
        StatusCode::OK => {
            return Err(TryEnd::Fatal(RegistryError::Protocol(
                "the registry ignored the Range header".into(),
            )));
        }
        s if s.is_server_error()
            || s == StatusCode::TOO_MANY_REQUESTS
            || s == StatusCode::REQUEST_TIMEOUT =>
        {
            return Err(TryEnd::Retry(status_error(resp, config).await));
        }
        s if s.is_client_error() => {
            return Err(TryEnd::Fatal(status_error(resp, config).await));
        }
        s => {
            return Err(TryEnd::Fatal(RegistryError::Protocol(format!(
                "unexpected status {} for a blob range",
                s.as_u16()
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

    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(partial)
        .await
        .map_err(|e| TryEnd::Fatal(io_error(e)))?;
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
            let path = partial.to_path_buf();
            if let Err(e) = blocking(move || save_state(&path, &saved).map_err(io_error)).await {
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

/// Writes a zero-length blob: no request is needed, only the digest check.
pub(crate) fn write_empty(store: &Store, digest: &Digest) -> Result<(), RegistryError> {
    let empty = Digest::of(b"");
    if &empty != digest {
        return Err(RegistryError::DigestMismatch {
            want: digest.to_string(),
            got: empty.to_string(),
        });
    }
    store
        .write_blob(digest.as_ref(), std::io::empty())
        .map(|_| ())
        .map_err(RegistryError::from)
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

    #[test]
    fn parts_resume_only_when_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("sha256-x-partial");
        let parts = plan_fresh(&partial, 25, 10).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].size, 5);
        assert_eq!(load_parts(&partial, 25).unwrap(), parts);
        assert!(load_parts(&partial, 26).is_none(), "size changed");
        let mut p = parts[1];
        p.completed = 11;
        save_state(&partial, &p).unwrap();
        assert!(load_parts(&partial, 25).is_none(), "completed > size");
        std::fs::write(state_path(&partial, 1), b"{").unwrap();
        assert!(load_parts(&partial, 25).is_none(), "garbage state");
        remove_partial(&partial);
        assert!(!partial.exists() && !state_path(&partial, 0).exists());
    }
}
