//! One download from plan to publish (steps 1, 4 and 5 of the parent module's docs; `fetch`
//! does 2 and 3), over the store's [`PartialBlob`](crate::store::PartialBlob).

use super::fetch::fetch_parts;
use super::{Job, Shared};
use crate::registry::RegistryError;
use crate::store::{Hasher, StoreError};
use std::sync::atomic::Ordering;

/// Whether an I/O error means the disk is full.
fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// Maps a local I/O error: `ENOSPC` becomes [`RegistryError::NoSpace`].
pub(super) fn io_error(e: std::io::Error) -> RegistryError {
    if is_no_space(&e) {
        RegistryError::NoSpace
    } else {
        RegistryError::Io(e)
    }
}

/// Maps an error of the partial blob: I/O as [`io_error`], a digest mismatch to Ollama's text
/// ([`RegistryError::DigestMismatch`]).
pub(super) fn store_error(e: StoreError) -> RegistryError {
    match e {
        StoreError::Io(e) => io_error(e),
        StoreError::DigestMismatch { expected, got } => RegistryError::DigestMismatch {
            want: expected,
            got,
        },
        e => RegistryError::Store(e),
    }
}

/// Runs a blocking closure off the async runtime.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| RegistryError::Protocol("a file task failed".into()))?
}

/// The first part's bytes, hashed in order as they are written, on a thread of its own so that
/// hashing overlaps the transfer. The channel is bounded: a slow hasher slows the part down
/// instead of buffering it in memory.
struct InlineHash {
    feed: tokio::sync::mpsc::Sender<axum::body::Bytes>,
    thread: std::thread::JoinHandle<Hasher>,
}

impl InlineHash {
    fn start() -> InlineHash {
        let (feed, mut rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(32);
        let thread = std::thread::spawn(move || {
            let mut h = Hasher::new();
            while let Some(chunk) = rx.blocking_recv() {
                h.update(&chunk);
            }
            h
        });
        InlineHash { feed, thread }
    }

    /// Closes the feed and returns the hasher (which knows how many bytes it hashed).
    fn finish(self) -> Option<Hasher> {
        drop(self.feed);
        self.thread.join().ok()
    }
}

/// Downloads, verifies and publishes one blob (see the module docs). A full disk removes the
/// partial files, whichever step hit it.
pub(super) async fn download(job: &Job, shared: &Shared) -> Result<(), RegistryError> {
    let r = download_steps(job, shared).await;
    if matches!(r, Err(RegistryError::NoSpace)) {
        let partial = job.store.partial_blob(job.digest.as_ref())?;
        let _ = blocking(move || {
            partial.remove();
            Ok(())
        })
        .await;
    }
    r
}

async fn download_steps(job: &Job, shared: &Shared) -> Result<(), RegistryError> {
    let partial = job.store.partial_blob(job.digest.as_ref())?;
    let config = job.session.config();
    let (size, part_size) = (job.size, config.part_size(job.size));
    let plan = partial.clone();
    let parts = blocking(move || plan.resume_or_plan(size, part_size).map_err(store_error)).await?;
    let resumed: u64 = parts.iter().map(|p| p.completed).sum();
    shared.completed.store(resumed, Ordering::Relaxed);

    // Only a first part fetched whole in this download can be hashed as it arrives.
    let first_size = parts
        .first()
        .filter(|p| p.offset == 0 && p.completed == 0 && p.size > 0)
        .map(|p| p.size);
    let mut inline = first_size.map(|_| InlineHash::start());
    if parts.iter().any(|p| !p.is_complete()) {
        let feed = inline.as_ref().map(|h| &h.feed);
        fetch_parts(job, shared, &partial, parts, feed).await?;
    }
    // The hashed prefix, if the first part really went through the feed from byte 0 to its end.
    let prefix = match (inline.take(), first_size) {
        (Some(h), Some(size)) => {
            let r = blocking(move || Ok(h.finish())).await?;
            r.filter(|h| h.hashed() == size)
        }
        _ => None,
    };
    blocking(move || {
        partial
            .publish(prefix.unwrap_or_default())
            .map(|_| ())
            .map_err(store_error)
    })
    .await
}
