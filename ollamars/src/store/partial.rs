//! Blobs in progress: the `blobs/sha256-<hex>-partial` file of a download and its part states
//! `blobs/sha256-<hex>-partial-N`, named and shaped exactly as Ollama writes them, so a download
//! that Ollama or an older ollamars started resumes here (and the other way round).
//!
//! A [`PartialBlob`] has a fixed name per digest: one writer at a time (the registry client's
//! table of running downloads sees to that). Uploads through `POST /api/blobs/{digest}` may run
//! concurrently for one digest and use [`Store::write_blob`] (a private temporary file) instead;
//! both publish through the same verify-and-rename step.

use super::{Digest, Hasher, Store, StoreError, TMP_PREFIX, is_regular};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::PathBuf;

/// The most part states read when resuming (and removed when cleaning up).
pub const MAX_PARTS: usize = 10_000;

/// One part's state, as Ollama writes it to `-partial-N`: `{"N","Offset","Size","Completed"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartState {
    /// The part's index (the `N` of its file name).
    #[serde(rename = "N")]
    pub n: usize,
    /// Where the part starts in the blob.
    #[serde(rename = "Offset")]
    pub offset: u64,
    /// The part's length.
    #[serde(rename = "Size")]
    pub size: u64,
    /// How many of its bytes, from its start, are on disk.
    #[serde(rename = "Completed")]
    pub completed: u64,
}

impl PartState {
    /// Whether every byte of the part is on disk.
    pub fn is_complete(&self) -> bool {
        self.completed >= self.size
    }
}

/// The in-progress download (or upload) of one blob: it owns `sha256-<hex>-partial` and the part
/// states beside it. Made by [`Store::partial_blob`]; [`PartialBlob::publish`] turns it into the
/// blob once its sha256 is verified.
#[derive(Debug, Clone)]
pub struct PartialBlob {
    store: Store,
    digest: Digest,
    path: PathBuf,
}

impl Store {
    /// The partial file of `digest` (nothing is created or read yet).
    ///
    /// # Errors
    /// [`StoreError::InvalidDigest`].
    pub fn partial_blob(&self, digest: &str) -> Result<PartialBlob, StoreError> {
        let digest = Digest::parse(digest)?;
        let path = self
            .blobs_dir()
            .join(format!("{}-partial", digest.file_name()));
        Ok(PartialBlob {
            store: self.clone(),
            digest,
            path,
        })
    }
}

impl PartialBlob {
    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    fn state_path(&self, n: usize) -> PathBuf {
        let mut s = self.path.as_os_str().to_os_string();
        s.push(format!("-{n}"));
        PathBuf::from(s)
    }

    /// The size of the partial file on disk; `None` when there is none (or it is not a regular
    /// file, which is never used).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn existing_size(&self) -> Result<Option<u64>, StoreError> {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The saved part states of a blob of `size` bytes, if they can be resumed: the partial file
    /// has exactly `size` bytes, and the states `-partial-0…` are contiguous from 0, cover `size`,
    /// and each has `Completed ≤ Size`. `None` otherwise.
    pub fn load_parts(&self, size: u64) -> Option<Vec<PartState>> {
        if self.existing_size().ok()?? != size {
            return None;
        }
        let mut parts: Vec<PartState> = Vec::new();
        let mut offset = 0u64;
        for n in 0..MAX_PARTS {
            let path = self.state_path(n);
            if !is_regular(&path).unwrap_or(false) {
                break;
            }
            let p: PartState = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
            if p.n != n || p.offset != offset || p.size == 0 || p.completed > p.size {
                return None;
            }
            offset = offset.checked_add(p.size)?;
            parts.push(p);
        }
        (offset == size && !parts.is_empty()).then_some(parts)
    }

    /// Starts afresh: removes any old partial file and states, splits a blob of `size` bytes
    /// into parts of `part_size` (the last one shorter), preallocates the partial file (sparse)
    /// and writes every part's state.
    ///
    /// # Errors
    /// [`StoreError::Io`] (a full disk included).
    pub fn plan(&self, size: u64, part_size: u64) -> Result<Vec<PartState>, StoreError> {
        self.remove();
        let part_size = part_size.max(1);
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
        self.preallocate(size)?;
        for p in &parts {
            self.save_part(p)?;
        }
        Ok(parts)
    }

    /// The saved parts if they can be resumed ([`PartialBlob::load_parts`]), else a fresh
    /// [`PartialBlob::plan`].
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn resume_or_plan(&self, size: u64, part_size: u64) -> Result<Vec<PartState>, StoreError> {
        fs::create_dir_all(self.store.blobs_dir())?;
        match self.load_parts(size) {
            Some(p) => Ok(p),
            None => self.plan(size, part_size),
        }
    }

    /// Creates the partial file with `size` bytes (sparse where the filesystem allows). An
    /// existing one is replaced; a symlink at its name is removed, never followed.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn preallocate(&self, size: u64) -> Result<(), StoreError> {
        fs::create_dir_all(self.store.blobs_dir())?;
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.path)?;
        f.set_len(size)?;
        Ok(())
    }

    /// Opens the partial file for writing at offsets (seek, then write; it is never truncated).
    ///
    /// # Errors
    /// [`StoreError::NotRegularFile`] when it is missing or not a regular file, or
    /// [`StoreError::Io`].
    pub fn open_for_writes(&self) -> Result<File, StoreError> {
        if !is_regular(&self.path)? {
            return Err(StoreError::NotRegularFile(format!(
                "{}-partial",
                self.digest
            )));
        }
        Ok(OpenOptions::new().write(true).open(&self.path)?)
    }

    /// Writes one part's state by temp file, fsync and rename.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn save_part(&self, p: &PartState) -> Result<(), StoreError> {
        let dir = self.store.blobs_dir();
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&dir)?;
        let json = serde_json::to_vec(p).map_err(io::Error::other)?;
        tmp.write_all(&json)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.state_path(p.n))
            .map_err(|e| StoreError::Io(e.error))?;
        Ok(())
    }

    /// Removes the partial file and its part states (best effort: what cannot be removed is
    /// left for [`Store::prune`]).
    pub fn remove(&self) {
        let _ = fs::remove_file(&self.path);
        self.remove_states();
    }

    fn remove_states(&self) {
        for n in 0..MAX_PARTS {
            if fs::remove_file(self.state_path(n)).is_err() {
                break;
            }
        }
    }

    /// Publishes the blob: fsyncs the partial file, hashes it (continuing `hashed`, which has
    /// seen its first `hashed.hashed()` bytes; [`Hasher::new`] to hash it all) and checks the
    /// digest, renames it to the blob's name, syncs the directory and removes the part states.
    /// Returns the blob's size.
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`] when the bytes are not the digest's (the partial file and
    /// its states are then deleted: it must be downloaded again), [`StoreError::NotRegularFile`]
    /// when there is no partial file, or [`StoreError::Io`].
    pub fn publish(self, hashed: Hasher) -> Result<u64, StoreError> {
        if !is_regular(&self.path)? {
            return Err(StoreError::NotRegularFile(format!(
                "{}-partial",
                self.digest
            )));
        }
        let (got, size) = super::seal(&self.path, hashed)?;
        if got != self.digest {
            self.remove();
            return Err(StoreError::DigestMismatch {
                expected: self.digest.to_string(),
                got: got.to_string(),
            });
        }
        self.store.place(&self.path, &self.digest)?;
        self.remove_states();
        Ok(size)
    }

    /// The partial file's path, for tests that damage it.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A part state's path, for tests.
    #[cfg(test)]
    pub(crate) fn state_file(&self, n: usize) -> PathBuf {
        self.state_path(n)
    }
}
