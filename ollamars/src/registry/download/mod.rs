//! Blob downloads: parallel ranged parts into one preallocated partial file, stall detection,
//! retries, digest verification before publishing, and one shared download per digest.
//!
//! The files are the store's: a [`PartialBlob`](crate::store::PartialBlob) owns Ollama's
//! `sha256-<hex>-partial` and its part states `-partial-N` (plan, resume, save, remove) and
//! publishes the verified blob. This module holds the table of running downloads; `steps` runs
//! one download; `fetch` speaks HTTP for its parts.
//!
//! # State machine of one download
//!
//! 1. **Plan** ([`PartialBlob::resume_or_plan`](crate::store::PartialBlob::resume_or_plan)).
//!    Load the part states `-partial-0…`; they are used only if they are consistent (contiguous,
//!    covering the blob, each `Completed ≤ Size`) and `-partial` has the blob's size. Otherwise
//!    start fresh: split the blob into parts ([`RegistryConfig::part_size`]), create `-partial`
//!    at full (sparse) size and write every state.
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
//! 4. **Verify** ([`PartialBlob::publish`](crate::store::PartialBlob::publish)). fsync
//!    `-partial`, hash it; a mismatch deletes `-partial` and the states. When the first part
//!    starts from byte 0 in this download, its bytes are hashed as they are written, on a thread
//!    of their own (`InlineHash`, a [`Hasher`](crate::store::Hasher)); only the rest of the file
//!    is read back and hashed after the transfer.
//! 5. **Publish.** Rename `-partial` to the blob name, sync the directory, delete the states.
//!
//! Cancellation (the last waiter gone) stops every part after it saved its state: `-partial` and
//! the states stay for a resume. `ENOSPC` deletes them (the space is given back).
//!
//! [`RegistryConfig::part_size`]: super::RegistryConfig::part_size

mod fetch;
mod steps;

use super::http::Session;
use super::{ProgressFn, RegistryError};
use crate::progress::Progress;
use crate::store::{Digest, Store};
use reqwest::Url;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
            let r = steps::download(&job, &task_shared).await;
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
