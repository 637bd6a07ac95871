//! Ollama's on-disk model store (spec §5.1–5.4): `manifests/<host>/<namespace>/<model>/<tag>`
//! and `blobs/sha256-<hex>` under a root directory.
//!
//! Safety rules:
//! - [`Store::blob_path`] is the only way to reach a blob. It accepts only `sha256:<64 lowercase
//!   hex>` or `sha256-<64 lowercase hex>`, so no digest from a manifest, a request or a registry
//!   can name a path outside `blobs/`.
//! - Every file is written to a temporary name in its final directory, fsynced, then renamed. A
//!   blob is hashed while it is streamed and renamed into place only if the hash matches, so
//!   concurrent writers of the same blob are safe and readers never see a partial blob.
//! - Bytes enter `blobs/` under a digest's name only through the store: [`Store::write_blob`],
//!   [`Store::import_blob`], [`Store::publish_temp`] (private temporary files) and
//!   [`PartialBlob::publish`] (a resumable download under Ollama's `sha256-<hex>-partial` name,
//!   with its `-partial-N` part states). All of them verify the sha256 ([`Hasher`], the one
//!   hashing loop) and fsync before the rename, and sync the directory after it.
//! - Symlinks in `blobs/` are never followed (reads refuse them) and never deleted through.

mod digest;
mod manifest;
mod partial;

pub use digest::{Digest, Hasher};
pub use manifest::*;
pub use partial::{MAX_PARTS, PartState, PartialBlob};

use crate::name::ModelName;
use std::fs::{self, File};
use std::io::{self, Read, Seek as _, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Unreferenced blobs and stale temporary files younger than this are left alone by
/// [`Store::prune`] at startup.
pub const PRUNE_GRACE: Duration = Duration::from_secs(3600);

/// Prefix of temporary files in `blobs/` and `manifests/`.
const TMP_PREFIX: &str = ".tmp-";

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A digest is not `sha256:<64 lowercase hex>` (or the `sha256-` file form).
    #[error("invalid digest format")]
    InvalidDigest,
    /// Streamed data did not hash to the expected digest.
    #[error("digest mismatch, expected \"{expected}\", got \"{got}\"")]
    DigestMismatch {
        /// The digest the caller named.
        expected: String,
        /// The digest of the data received.
        got: String,
    },
    /// No manifest for the model.
    #[error("model '{0}' not found")]
    ModelNotFound(String),
    /// A blob is missing.
    #[error("blob \"{0}\" not found")]
    BlobNotFound(String),
    /// A blob path exists but is not a regular file (e.g. a symlink).
    #[error("blob \"{0}\" is not a regular file")]
    NotRegularFile(String),
    /// A manifest does not parse or names invalid digests.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A model name was invalid.
    #[error(transparent)]
    Name(#[from] crate::name::NameError),
    /// The home directory is unknown and `OLLAMA_MODELS` is not set.
    #[error("cannot find the models directory: set OLLAMA_MODELS or HOME")]
    NoModelsDir,
    /// Filesystem error.
    #[error("store I/O error: {0}")]
    Io(#[from] io::Error),
}

/// The models directory of `config`: `$OLLAMA_MODELS`, else `~/.ollama/models`.
///
/// # Errors
/// [`StoreError::NoModelsDir`] when neither `OLLAMA_MODELS` nor the home directory is known.
pub fn models_dir(config: &crate::config::Config) -> Result<PathBuf, StoreError> {
    config
        .models_dir()
        .map(Path::to_path_buf)
        .ok_or(StoreError::NoModelsDir)
}

/// The result of [`Store::write_blob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobWrite {
    /// The blob was already present; the reader was not read.
    Existed,
    /// The blob was written; its size in bytes.
    Created(u64),
}

/// A manifest read from disk.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// The name, spelled as on disk.
    pub name: ModelName,
    /// The parsed manifest (every digest in it is valid).
    pub manifest: Manifest,
    /// The manifest file's bytes.
    pub raw: Vec<u8>,
    /// Hex sha256 of `raw` (the model's ID in `/api/tags`).
    pub digest: String,
    /// The manifest file's modification time.
    pub modified: SystemTime,
}

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Unreferenced blobs removed.
    pub blobs: usize,
    /// Stale temporary or badly named files removed.
    pub junk: usize,
    /// Empty manifest directories removed.
    pub dirs: usize,
    /// Set when blob pruning was skipped because a manifest could not be read.
    pub skipped: Option<String>,
}

/// How [`Store::import_file`] brings a local file into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// Reflink (copy-on-write clone) where supported, else copy. Always safe.
    #[default]
    Auto,
    /// Always copy the bytes.
    Copy,
    /// Hard link where possible, else copy. Unsafe if the original is later written in place.
    HardLink,
    /// Reflink where supported, else hard link, else copy: no gigabytes copied on any local
    /// filesystem. With a hard link, an in-place write to the original changes the blob;
    /// [`Store::verify_blob`] detects that.
    Link,
}

/// How a file was actually imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMethod {
    /// Cloned with a reflink.
    Reflinked,
    /// Hard-linked (shares the original's inode).
    HardLinked,
    /// Copied byte for byte.
    Copied,
}

/// The result of [`Store::import_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// How it got there.
    pub method: ImportMethod,
}

/// A model store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// For a derived file name `sha256-<64 hex>-compat-<rest>`: the source blob's file name and
/// the suffix after it.
pub fn derived_source(file_name: &str) -> Option<(&str, &str)> {
    let (source, suffix) = file_name.split_at_checked(71)?;
    let suffix = suffix.strip_prefix('-')?;
    (Digest::parse(source).is_ok() && suffix.starts_with("compat-")).then_some((source, suffix))
}

fn is_regular(p: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(m.file_type().is_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir())
}

/// Makes a rename durable by syncing its directory (best effort where unsupported).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Finishes a file in `blobs/` before it is renamed into place: hashes it from where `hashed`
/// left off (it has seen the first `hashed.hashed()` bytes) to its end and fsyncs it, through a
/// handle opened by path (for a link or clone made at a temporary name, an earlier handle may
/// refer to the file that the link replaced). Returns the digest and size of the whole file.
fn seal(path: &Path, mut hashed: Hasher) -> Result<(Digest, u64), StoreError> {
    let mut f = File::open(path)?;
    f.seek(io::SeekFrom::Start(hashed.hashed()))?;
    hashed.read_from(&mut f)?;
    f.sync_all()?;
    let size = hashed.hashed();
    Ok((hashed.digest(), size))
}

fn hex_of(bytes: &[u8]) -> String {
    Digest::of(bytes).hex().to_string()
}

/// Sorted entries of a directory that are real directories (symlinks excluded).
fn subdirs(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        if e.file_type()?.is_dir()
            && let Ok(n) = e.file_name().into_string()
        {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

impl Store {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    fn manifests_dir(&self) -> PathBuf {
        self.root.join("manifests")
    }

    /// **The** digest-to-path function: `blobs/sha256-<hex>` for a valid digest, else
    /// [`StoreError::InvalidDigest`]. Nothing else builds blob paths.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let d = Digest::parse(digest)?;
        Ok(self.blobs_dir().join(d.file_name()))
    }

    /// The path of a file derived from a blob (a compatibility translation):
    /// `blobs/sha256-<hex>-<suffix>`. `suffix` is made of lowercase letters, digits, `.` and
    /// `-` (checked). [`Store::prune`] and [`Store::delete`] remove such files with their
    /// source, and keep only those of the current translator version.
    pub fn derived_path(&self, digest: &str, suffix: &str) -> Result<PathBuf, StoreError> {
        let d = Digest::parse(digest)?;
        let ok = !suffix.is_empty()
            && !suffix.starts_with(['.', '-'])
            && suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !ok {
            return Err(StoreError::InvalidDigest);
        }
        Ok(self.blobs_dir().join(format!("{}-{suffix}", d.file_name())))
    }

    /// Publishes a finished temporary file (from [`Store::temp_file`]) under a derived name:
    /// fsync, rename over any older copy, fsync of `blobs/`.
    pub fn publish_derived(
        &self,
        tmp: tempfile::NamedTempFile,
        digest: &str,
        suffix: &str,
    ) -> Result<PathBuf, StoreError> {
        let dest = self.derived_path(digest, suffix)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&dest).map_err(|e| StoreError::Io(e.error))?;
        sync_dir(&self.blobs_dir());
        Ok(dest)
    }

    /// Removes the files derived from `digest`'s blob (every translator version).
    fn remove_derived(&self, d: &Digest) -> io::Result<()> {
        let stem = format!("{}-", d.file_name());
        let rd = match fs::read_dir(self.blobs_dir()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&stem)
                && derived_source(&name).is_some()
                && fs::symlink_metadata(e.path())?.file_type().is_file()
            {
                fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }

    /// Whether the blob exists as a regular file.
    pub fn has_blob(&self, digest: &str) -> Result<bool, StoreError> {
        Ok(is_regular(&self.blob_path(digest)?)?)
    }

    /// A blob's size in bytes; refuses anything but a regular file, as [`Store::open_blob`].
    pub fn blob_size(&self, digest: &str) -> Result<u64, StoreError> {
        match fs::symlink_metadata(self.blob_path(digest)?) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound(digest.to_string()))
            }
            Err(e) => Err(e.into()),
            Ok(m) if !m.file_type().is_file() => {
                Err(StoreError::NotRegularFile(digest.to_string()))
            }
            Ok(m) => Ok(m.len()),
        }
    }

    /// Whether a store exists at the root: its blob directory is there (a server has used it).
    pub fn is_created(&self) -> bool {
        self.blobs_dir().is_dir()
    }

    /// Creates the root's blob and manifest directories (and the root), as a server does at
    /// startup; existing ones are kept.
    pub fn create_dirs(&self) -> Result<(), StoreError> {
        fs::create_dir_all(self.blobs_dir())?;
        fs::create_dir_all(self.manifests_dir())?;
        Ok(())
    }

    /// Opens a blob for reading; refuses anything but a regular file.
    pub fn open_blob(&self, digest: &str) -> Result<File, StoreError> {
        let p = self.blob_path(digest)?;
        match fs::symlink_metadata(&p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound(digest.to_string()))
            }
            Err(e) => Err(e.into()),
            Ok(m) if !m.file_type().is_file() => {
                Err(StoreError::NotRegularFile(digest.to_string()))
            }
            Ok(_) => Ok(File::open(p)?),
        }
    }

    /// Re-hashes a blob and checks it against its digest: [`StoreError::DigestMismatch`] when
    /// its content changed since it was stored (for instance a hard-linked import whose original
    /// was written in place, see [`Store::import_file`]).
    pub fn verify_blob(&self, digest: &str) -> Result<(), StoreError> {
        let want = Digest::parse(digest)?;
        let (got, _) = Digest::of_reader(self.open_blob(digest)?)?;
        if got == want {
            Ok(())
        } else {
            Err(StoreError::DigestMismatch {
                expected: want.to_string(),
                got: got.to_string(),
            })
        }
    }

    /// Reads a whole blob into memory.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let mut v = Vec::new();
        self.open_blob(digest)?.read_to_end(&mut v)?;
        Ok(v)
    }

    /// Streams `r` into a new temporary file in `blobs/` while hashing it; returns the temp
    /// file and the hasher (fed with every byte written).
    fn stream_to_temp(&self, r: impl Read) -> Result<(tempfile::TempPath, Hasher), StoreError> {
        let mut tmp = self.temp_file()?;
        let mut hashed = Hasher::new();
        hashed.copy(r, tmp.as_file_mut())?;
        tmp.as_file_mut().flush()?;
        Ok((tmp.into_temp_path(), hashed))
    }

    /// Renames a sealed file in `blobs/` (see [`seal`]) to the blob path of `d` and syncs the
    /// directory: **the** step by which bytes enter `blobs/` under a digest's name. Renaming
    /// replaces a directory entry and never follows a symlink that may sit at the destination.
    fn place(&self, from: &Path, d: &Digest) -> Result<(), StoreError> {
        let dest = self.blob_path(d.as_ref())?;
        fs::rename(from, &dest)?;
        sync_dir(&self.blobs_dir());
        Ok(())
    }

    /// [`Store::place`]s a sealed temporary file, or removes it when the blob already exists
    /// (and `keep_existing`).
    fn place_temp(
        &self,
        tmp: tempfile::TempPath,
        d: &Digest,
        keep_existing: bool,
    ) -> Result<(), StoreError> {
        if keep_existing && self.has_blob(d.as_ref())? {
            return Ok(());
        }
        self.place(&tmp, d)?;
        // Renamed: nothing is left under the temporary name to delete.
        let _ = tmp.keep();
        Ok(())
    }

    /// Writes a blob whose digest is known in advance (as `POST /api/blobs/:digest` does).
    ///
    /// If the blob already exists the reader is not read. Otherwise the data is streamed to a
    /// private temporary file while hashed (concurrent writers of one digest never share a
    /// file, unlike a [`PartialBlob`]), fsynced, checked against `expected`, and renamed into
    /// place; on a mismatch nothing is published and the temporary file is removed.
    pub fn write_blob(&self, expected: &str, r: impl Read) -> Result<BlobWrite, StoreError> {
        let want = Digest::parse(expected)?;
        if self.has_blob(want.as_ref())? {
            return Ok(BlobWrite::Existed);
        }
        let (tmp, hashed) = self.stream_to_temp(r)?;
        let (got, size) = seal(&tmp, hashed)?;
        if got != want {
            return Err(StoreError::DigestMismatch {
                expected: want.to_string(),
                got: got.to_string(),
            });
        }
        self.place_temp(tmp, &got, false)?;
        Ok(BlobWrite::Created(size))
    }

    /// Writes a blob whose digest is not known in advance; returns its digest and size.
    pub fn import_blob(&self, r: impl Read) -> Result<(Digest, u64), StoreError> {
        let (tmp, hashed) = self.stream_to_temp(r)?;
        let (d, size) = seal(&tmp, hashed)?;
        self.place_temp(tmp, &d, true)?;
        Ok((d, size))
    }

    /// A new empty temporary file in `blobs/` (named `.tmp-…`, so [`Store::prune`] removes it
    /// if a crash leaves it behind). Fill it, then publish it with [`Store::publish_temp`].
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.blobs_dir();
        fs::create_dir_all(&dir)?;
        Ok(tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&dir)?)
    }

    /// Publishes a file made by [`Store::temp_file`] (or otherwise placed in `blobs/` under a
    /// temporary name): hashes it, fsyncs it and renames it to its digest's path. If that blob
    /// already exists the temporary file is removed instead. Returns the digest and size.
    pub fn publish_temp(&self, tmp: tempfile::NamedTempFile) -> Result<(Digest, u64), StoreError> {
        let tmp = tmp.into_temp_path();
        let (d, size) = seal(&tmp, Hasher::new())?;
        self.place_temp(tmp, &d, true)?;
        Ok((d, size))
    }

    /// Imports a local file as a blob (used by `create` from a GGUF path, Ollama #7254).
    ///
    /// Semantics, by [`ImportMode`]:
    /// - [`ImportMode::Auto`] (the default): a reflink (copy-on-write clone) where the
    ///   filesystem supports it, else a copy. A clone shares no mutable state with the
    ///   original: modifying or deleting the original later cannot change the blob.
    /// - [`ImportMode::Copy`]: always a byte copy.
    /// - [`ImportMode::HardLink`]: a hard link where possible (same filesystem), else a copy.
    ///   The blob then **is** the original file (same inode): deleting or replacing the original
    ///   by rename is harmless, but writing into the original in place changes the blob, whose
    ///   content then no longer matches its digest. Only opt in when the original will not be
    ///   edited in place; a digest check of the blob detects such corruption.
    ///
    /// In every mode the digest is computed from the file that ends up in the store (the clone,
    /// link or copy), never from the original before it was imported.
    pub fn import_file(&self, src: &Path, mode: ImportMode) -> Result<Imported, StoreError> {
        let meta = fs::metadata(src)?;
        if !meta.is_file() {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        if mode != ImportMode::Copy {
            // The link or clone is made at a fresh name next to the blobs, then adopted.
            let tmp = self.temp_file()?;
            let tmp_path = tmp.path().to_path_buf();
            let made = {
                let _ = fs::remove_file(&tmp_path);
                match mode {
                    ImportMode::HardLink => {
                        fs::hard_link(src, &tmp_path).map(|_| ImportMethod::HardLinked)
                    }
                    ImportMode::Link => reflink_copy::reflink(src, &tmp_path)
                        .map(|_| ImportMethod::Reflinked)
                        .or_else(|_| {
                            let _ = fs::remove_file(&tmp_path);
                            fs::hard_link(src, &tmp_path).map(|_| ImportMethod::HardLinked)
                        }),
                    _ => reflink_copy::reflink(src, &tmp_path).map(|_| ImportMethod::Reflinked),
                }
            };
            match made {
                Ok(method) => {
                    // `tmp` still owns the name and removes it on any error below.
                    let (digest, size) = self.publish_temp(tmp)?;
                    return Ok(Imported {
                        digest,
                        size,
                        method,
                    });
                }
                Err(_) => drop(tmp),
            }
        }
        let (digest, size) = self.import_blob(File::open(src)?)?;
        Ok(Imported {
            digest,
            size,
            method: ImportMethod::Copied,
        })
    }

    /// Finds the on-disk manifest path for `name`, matching each component case-insensitively
    /// (an exact match first, then the first in sorted order), or `None`.
    fn find_manifest(&self, name: &ModelName) -> io::Result<Option<(PathBuf, [String; 4])>> {
        let mut dir = self.manifests_dir();
        let mut parts: [String; 4] = Default::default();
        let comps = name.manifest_components();
        for (i, want) in comps.iter().enumerate() {
            let exact = dir.join(want);
            let last = i == 3;
            let ok = |p: &Path| {
                if last {
                    is_regular(p).unwrap_or(false)
                } else {
                    is_real_dir(p)
                }
            };
            if ok(&exact) {
                parts[i] = want.to_string();
                dir = exact;
                continue;
            }
            let mut found = None;
            if let Ok(rd) = fs::read_dir(&dir) {
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.eq_ignore_ascii_case(want))
                    .collect();
                names.sort();
                found = names.into_iter().find(|n| ok(&dir.join(n)));
            }
            match found {
                Some(n) => {
                    dir = dir.join(&n);
                    parts[i] = n;
                }
                None => return Ok(None),
            }
        }
        Ok(Some((dir, parts)))
    }

    /// The on-disk spelling of an existing model (case-insensitive lookup), or `None`.
    pub fn resolve(&self, name: &ModelName) -> Result<Option<ModelName>, StoreError> {
        match self.find_manifest(name)? {
            None => Ok(None),
            Some((_, [h, n, m, t])) => Ok(ModelName::from_parts(&h, &n, &m, &t).ok()),
        }
    }

    /// Reads a model's manifest (case-insensitive lookup).
    pub fn read_manifest(&self, name: &ModelName) -> Result<StoredManifest, StoreError> {
        let (path, [h, n, m, t]) = self
            .find_manifest(name)?
            .ok_or_else(|| StoreError::ModelNotFound(name.display_short()))?;
        let disk_name = ModelName::from_parts(&h, &n, &m, &t)?;
        Self::load(&path, disk_name)
    }

    fn load(path: &Path, name: ModelName) -> Result<StoredManifest, StoreError> {
        let raw = fs::read(path)?;
        let modified = fs::metadata(path)?.modified()?;
        let manifest = Self::parse_manifest(&raw)?;
        Ok(StoredManifest {
            name,
            digest: hex_of(&raw),
            manifest,
            raw,
            modified,
        })
    }

    /// Parses manifest bytes and checks every digest in them.
    pub fn parse_manifest(raw: &[u8]) -> Result<Manifest, StoreError> {
        let m: Manifest =
            serde_json::from_slice(raw).map_err(|e| StoreError::InvalidManifest(e.to_string()))?;
        for d in m.digests() {
            Digest::parse(d)
                .map_err(|_| StoreError::InvalidManifest("a layer has an invalid digest".into()))?;
        }
        Ok(m)
    }

    /// The manifest path for writing `name`: existing directories are reused whatever their
    /// case (the first spelling wins), missing ones are created with `name`'s spelling.
    fn manifest_path_for_write(&self, name: &ModelName) -> Result<PathBuf, StoreError> {
        let mut dir = self.manifests_dir();
        let comps = name.manifest_components();
        for want in &comps[..3] {
            let existing = subdirs(&dir)?
                .into_iter()
                .find(|(n, _)| n == want)
                .or_else(|| {
                    subdirs(&dir)
                        .ok()?
                        .into_iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(want))
                });
            dir = match existing {
                Some((_, p)) => p,
                None => dir.join(want),
            };
        }
        fs::create_dir_all(&dir)?;
        let tag = comps[3];
        let existing_tag = fs::read_dir(&dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.eq_ignore_ascii_case(tag))
            .min_by_key(|n| n != tag);
        Ok(dir.join(existing_tag.as_deref().unwrap_or(tag)))
    }

    /// Writes manifest bytes for `name` by temp file, fsync and rename. The bytes must parse
    /// as a manifest with valid digests, and every blob they name must already exist (the
    /// manifest is written last).
    pub fn write_manifest_raw(&self, name: &ModelName, raw: &[u8]) -> Result<(), StoreError> {
        let m = Self::parse_manifest(raw)?;
        for d in m.digests() {
            if !self.has_blob(d)? {
                return Err(StoreError::BlobNotFound(d.to_string()));
            }
        }
        let path = self.manifest_path_for_write(name)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&dir)?;
        tmp.write_all(raw)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| StoreError::Io(e.error))?;
        sync_dir(&dir);
        Ok(())
    }

    /// Writes a manifest as Ollama writes local ones: compact JSON plus a newline.
    pub fn write_manifest(&self, name: &ModelName, m: &Manifest) -> Result<(), StoreError> {
        self.write_manifest_raw(name, &m.to_json_bytes())
    }

    /// Every readable model, newest first. Entries that are not valid names or whose manifest
    /// does not parse are left out (see [`Store::prune`] for how they affect pruning).
    pub fn list(&self) -> Result<Vec<StoredManifest>, StoreError> {
        let (mut ok, _) = self.scan()?;
        ok.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| a.name.to_string().cmp(&b.name.to_string()))
        });
        Ok(ok)
    }

    /// Reads every manifest file: (the good ones, how many could not be read).
    fn scan(&self) -> Result<(Vec<StoredManifest>, usize), StoreError> {
        let mut ok = Vec::new();
        let mut bad = 0;
        for (h, hp) in subdirs(&self.manifests_dir())? {
            for (n, np) in subdirs(&hp)? {
                for (m, mp) in subdirs(&np)? {
                    for e in fs::read_dir(&mp)? {
                        let e = e?;
                        let Ok(t) = e.file_name().into_string() else {
                            continue;
                        };
                        if t.starts_with(TMP_PREFIX) || !e.file_type()?.is_file() {
                            continue;
                        }
                        let Ok(name) = ModelName::from_parts(&h, &n, &m, &t) else {
                            continue;
                        };
                        match Self::load(&e.path(), name) {
                            Ok(s) => ok.push(s),
                            Err(_) => bad += 1,
                        }
                    }
                }
            }
        }
        Ok((ok, bad))
    }

    /// Copies a model: only the manifest is copied (byte for byte); blobs are shared.
    pub fn copy(&self, src: &ModelName, dst: &ModelName) -> Result<(), StoreError> {
        let s = self.read_manifest(src)?;
        self.write_manifest_raw(dst, &s.raw)
    }

    /// Deletes a model: removes its manifest and the empty directories above it, then (when
    /// `prune_blobs`) deletes the blobs of that manifest that no other manifest references.
    /// Blobs are kept if any other manifest cannot be read.
    pub fn delete(&self, name: &ModelName, prune_blobs: bool) -> Result<(), StoreError> {
        let (path, _) = self
            .find_manifest(name)?
            .ok_or_else(|| StoreError::ModelNotFound(name.display_short()))?;
        let own: Vec<Digest> = fs::read(&path)
            .ok()
            .and_then(|raw| Self::parse_manifest(&raw).ok())
            .map(|m| m.digests().filter_map(|d| Digest::parse(d).ok()).collect())
            .unwrap_or_default();
        fs::remove_file(&path)?;
        self.remove_empty_manifest_dirs(path.parent());
        if !prune_blobs {
            return Ok(());
        }
        let (others, bad) = self.scan()?;
        if bad > 0 {
            return Ok(());
        }
        let used: std::collections::HashSet<&str> =
            others.iter().flat_map(|s| s.manifest.digests()).collect();
        for d in own {
            if used.contains(d.as_ref()) {
                continue;
            }
            let p = self.blob_path(d.as_ref())?;
            if is_regular(&p)? {
                fs::remove_file(&p)?;
            }
            self.remove_derived(&d)?;
        }
        Ok(())
    }

    /// Deletes those of `candidates` that no manifest references (after a pull replaced a
    /// manifest). Nothing is deleted if any manifest cannot be read. Returns how many blobs went.
    pub fn remove_unreferenced(&self, candidates: &[Digest]) -> Result<usize, StoreError> {
        let (manifests, bad) = self.scan()?;
        if bad > 0 {
            return Ok(0);
        }
        let used: std::collections::HashSet<&str> = manifests
            .iter()
            .flat_map(|s| s.manifest.digests())
            .collect();
        let mut removed = 0;
        for d in candidates {
            if used.contains(d.as_ref()) {
                continue;
            }
            let p = self.blob_path(d.as_ref())?;
            if is_regular(&p)? {
                fs::remove_file(&p)?;
                removed += 1;
            }
            self.remove_derived(d)?;
        }
        Ok(removed)
    }

    /// Removes `dir` and its parents while they are empty, stopping at `manifests/`.
    fn remove_empty_manifest_dirs(&self, mut dir: Option<&Path>) {
        let top = self.manifests_dir();
        while let Some(d) = dir {
            if d == top || !d.starts_with(&top) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Startup pruning: deletes blobs that no manifest references, stale temporary files (in
    /// `blobs/` and among the manifests) and badly named files in `blobs/` once they are older
    /// than `grace`, and removes empty manifest directories. Symlinks and directories in `blobs/` are never touched. If any
    /// manifest cannot be read, blobs are kept and `skipped` says why.
    pub fn prune(&self, grace: Duration) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        let now = SystemTime::now();
        // A modification time in the future counts as age zero.
        let is_old = |meta: &fs::Metadata| {
            meta.modified()
                .ok()
                .map(|m| now.duration_since(m).unwrap_or(Duration::ZERO))
                .is_some_and(|age| age >= grace)
        };
        // Stale temporary manifests, then empty manifest directories, deepest first.
        for (_, hp) in subdirs(&self.manifests_dir())? {
            for (_, np) in subdirs(&hp)? {
                for (_, mp) in subdirs(&np)? {
                    for e in fs::read_dir(&mp)? {
                        let e = e?;
                        let meta = fs::symlink_metadata(e.path())?;
                        if meta.file_type().is_file()
                            && e.file_name().to_string_lossy().starts_with(TMP_PREFIX)
                            && is_old(&meta)
                        {
                            fs::remove_file(e.path())?;
                            report.junk += 1;
                        }
                    }
                    report.dirs += usize::from(fs::remove_dir(&mp).is_ok());
                }
                report.dirs += usize::from(fs::remove_dir(&np).is_ok());
            }
            report.dirs += usize::from(fs::remove_dir(&hp).is_ok());
        }
        let (manifests, bad) = self.scan()?;
        if bad > 0 {
            report.skipped = Some(format!("{bad} manifest(s) could not be read"));
        }
        let used: std::collections::HashSet<String> = manifests
            .iter()
            .flat_map(|s| s.manifest.digests())
            .filter_map(|d| Digest::parse(d).ok().map(|d| d.file_name()))
            .collect();
        let rd = match fs::read_dir(self.blobs_dir()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(e.into()),
        };
        for e in rd {
            let e = e?;
            let meta = fs::symlink_metadata(e.path())?;
            if !meta.file_type().is_file() || !is_old(&meta) {
                continue;
            }
            let file_name = e.file_name().to_string_lossy().into_owned();
            if let Some((source, suffix)) = derived_source(&file_name) {
                // A derived file stays while its source is used and it is of this translator
                // version; it never counts as junk while the store cannot be scanned.
                let current = suffix.starts_with(&crate::compat::cache::suffix_prefix());
                if report.skipped.is_none() && (!used.contains(source) || !current) {
                    fs::remove_file(e.path())?;
                    report.blobs += 1;
                }
                continue;
            }
            let well_named = Digest::parse(&file_name).is_ok();
            if well_named {
                if report.skipped.is_none() && !used.contains(&file_name) {
                    fs::remove_file(e.path())?;
                    report.blobs += 1;
                }
            } else {
                fs::remove_file(e.path())?;
                report.junk += 1;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
