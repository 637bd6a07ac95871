//! Blob digests and the one sha256 loop over files and streams.

use super::StoreError;
use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};
use std::path::Path;

/// A validated blob digest (`sha256` of the content).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<hex>` or `sha256-<hex>`, where `<hex>` is exactly 64 lowercase hex digits.
    pub fn parse(s: &str) -> Result<Digest, StoreError> {
        let hex = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("sha256-"))
            .ok_or(StoreError::InvalidDigest)?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(StoreError::InvalidDigest);
        }
        Ok(Digest(format!("sha256:{hex}")))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut h = Hasher::new();
        h.update(bytes);
        h.digest()
    }

    /// The digest and length of everything `r` yields.
    pub fn of_reader(r: impl Read) -> io::Result<(Digest, u64)> {
        let mut h = Hasher::new();
        h.read_from(r)?;
        let n = h.hashed();
        Ok((h.digest(), n))
    }

    /// The digest and length of the file at `path` (symlinks are followed: this is for files
    /// outside the store, such as a local GGUF that the CLI uploads).
    pub fn of_file(path: &Path) -> io::Result<(Digest, u64)> {
        Digest::of_reader(std::fs::File::open(path)?)
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The blob's file name, `sha256-<hex>`.
    pub fn file_name(&self) -> String {
        format!("sha256-{}", self.hex())
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A running sha256 over a blob's first bytes: fed in order (by [`Hasher::update`] or
/// [`Hasher::copy`]), it can be handed to [`super::PartialBlob::publish`], which hashes only the
/// rest of the file. Every sha256 of a file or stream in ollamars goes through it.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("hashed", &self.len)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Hashes the next `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// How many bytes it has hashed.
    pub fn hashed(&self) -> u64 {
        self.len
    }

    /// Copies `r` into `w` while hashing it, until `r` ends; returns the bytes copied. **The**
    /// file-hashing loop (1 MiB reads, `Interrupted` retried).
    pub fn copy(&mut self, mut r: impl Read, mut w: impl Write) -> io::Result<u64> {
        let mut buf = vec![0u8; 1 << 20];
        let mut copied = 0u64;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.update(&buf[..n]);
            w.write_all(&buf[..n])?;
            copied += n as u64;
        }
        Ok(copied)
    }

    /// Hashes everything `r` yields; returns the bytes read.
    pub fn read_from(&mut self, r: impl Read) -> io::Result<u64> {
        self.copy(r, io::sink())
    }

    /// The digest of everything hashed.
    pub fn digest(self) -> Digest {
        let hex: String = self
            .sha
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Digest(format!("sha256:{hex}"))
    }
}
