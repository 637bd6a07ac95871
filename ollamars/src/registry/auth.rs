//! Registry authentication: `WWW-Authenticate` challenge parsing, Ollama's ed25519 key
//! ([`ensure_key`]) and the signature of its token request (spec §6.3).
//!
//! Which flow a `401` leads to, and where credentials go, is decided in [`super::http`]; this
//! module only parses and signs.

use super::RegistryError;
use base64::Engine as _;
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use std::io::Write as _;
use std::path::Path;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Bearer realm=…,service=…,scope=…`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// `Basic realm=…`.
    Basic,
}

/// Parses `key="value"` pairs separated by commas; values may be quoted (with `\` escapes) and
/// then contain commas.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return out;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value; `None` for unknown schemes or a Bearer challenge
    /// without a realm.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        Some(Challenge::Bearer {
            realm: get("realm").filter(|r| !r.is_empty())?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

/// Percent-encodes a query component as Go's `url.QueryEscape` does (space as `+`), so the
/// signed realm URL is exactly the one a Go registry rebuilds.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query of a token request: `service`, one `scope` per space-separated scope and, for
/// Ollama's signed flow, `ts` and `nonce`; keys sorted as Go's `url.Values.Encode` sorts them.
pub(crate) fn token_query(service: Option<&str>, scope: Option<&str>, signed: bool) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(s) = service {
        pairs.push(("service", s.to_string()));
    }
    for s in scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        pairs.push(("scope", s.to_string()));
    }
    if signed {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        pairs.push(("ts", ts.to_string()));
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        pairs.push((
            "nonce",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce),
        ));
    }
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An ed25519 key in OpenSSH format, as Ollama keeps it in `~/.ollama/id_ed25519`.
pub(crate) struct Key {
    key: PrivateKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<ed25519>)")
    }
}

fn key_error(msg: impl std::fmt::Display) -> RegistryError {
    RegistryError::Key(msg.to_string())
}

impl Key {
    /// Loads an unencrypted ed25519 private key in OpenSSH format.
    pub(crate) fn load(path: &Path) -> Result<Key, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(key_error)?;
        Key::parse(&text)
    }

    fn parse(text: &str) -> Result<Key, RegistryError> {
        let key = PrivateKey::from_openssh(text).map_err(key_error)?;
        if key.is_encrypted() {
            return Err(key_error("the private key is encrypted"));
        }
        if key.algorithm() != Algorithm::Ed25519 || key.key_data().ed25519().is_none() {
            return Err(key_error("the private key is not ed25519"));
        }
        Ok(Key { key })
    }

    /// The public key in authorized_keys format: `ssh-ed25519 AAAA…` (no comment).
    pub(crate) fn public_line(&self) -> Result<String, RegistryError> {
        let line = self.key.public_key().to_openssh().map_err(key_error)?;
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next()) {
            (Some(alg), Some(blob)) => Ok(format!("{alg} {blob}")),
            _ => Err(key_error("cannot encode the public key")),
        }
    }

    /// Signs `data`: `<base64 public-key wire blob>:<base64 raw ed25519 signature>`, the value
    /// of Ollama's `Authorization` header on a token request.
    pub(crate) fn sign(&self, data: &[u8]) -> Result<String, RegistryError> {
        use ed25519_dalek::Signer as _;
        let pair = self
            .key
            .key_data()
            .ed25519()
            .ok_or_else(|| key_error("the private key is not ed25519"))?;
        let signing = ed25519_dalek::SigningKey::from_bytes(&pair.private.to_bytes());
        let sig = signing.sign(data);
        let line = self.public_line()?;
        let blob = line.split(' ').nth(1).unwrap_or_default();
        Ok(format!(
            "{blob}:{}",
            base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
        ))
    }

    /// The `Authorization` value of a signed token request to `url` (the full realm URL with
    /// its query): the signature of `GET,<url>,<base64(hex(sha256("")))>`.
    pub(crate) fn sign_token_request(&self, url: &str) -> Result<String, RegistryError> {
        let empty: String = Sha256::digest(b"")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let data = format!(
            "GET,{url},{}",
            base64::engine::general_purpose::STANDARD.encode(empty)
        );
        self.sign(data.as_bytes())
    }
}

/// Writes `bytes` to `path` by temp file in the same directory, fsync and rename, with `mode`.
/// With `no_clobber`, an existing `path` is left alone and `Ok(false)` returned.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32, no_clobber: bool) -> std::io::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    if no_clobber {
        match tmp.persist_noclobber(path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e.error),
        }
    } else {
        tmp.persist(path).map_err(|e| e.error)?;
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(true)
}

/// Ollama's key: loads `dir/id_ed25519` (an unencrypted OpenSSH ed25519 private key, as
/// `ssh-keygen -t ed25519 -N ''` writes it), or creates it, mode 0600, with `dir/id_ed25519.pub`
/// (authorized_keys format, mode 0644) beside it, each written by temp file, fsync and rename.
/// Returns the public key line `ssh-ed25519 AAAA…`. A missing `.pub` beside an existing key is
/// rewritten.
pub fn ensure_key(dir: &Path) -> Result<String, RegistryError> {
    let path = dir.join("id_ed25519");
    let pub_path = dir.join("id_ed25519.pub");
    let key = match Key::load(&path) {
        Ok(k) => k,
        Err(_) if !path.exists() => {
            std::fs::create_dir_all(dir).map_err(key_error)?;
            let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).map_err(key_error)?;
            let text = key.to_openssh(LineEnding::LF).map_err(key_error)?;
            if write_atomic(&path, text.as_bytes(), 0o600, true).map_err(key_error)? {
                Key { key }
            } else {
                // Another process created it first: use theirs.
                Key::load(&path)?
            }
        }
        Err(e) => return Err(e),
    };
    let line = key.public_line()?;
    let current = std::fs::read_to_string(&pub_path).unwrap_or_default();
    // Compare algorithm and key only: a comment (ssh-keygen's `user@host`) is kept.
    let current: Vec<&str> = current.split_whitespace().take(2).collect();
    if current.join(" ") != line {
        write_atomic(&pub_path, format!("{line}\n").as_bytes(), 0o644, false).map_err(key_error)?;
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_quoted_commas() {
        let c = Challenge::parse(
            r#"Bearer realm="https://a.example/token",service="reg",scope="repository:x/y:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://a.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:x/y:pull,push".into()),
            }
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse(""), None);
    }

    #[test]
    fn query_is_sorted_and_escaped_like_go() {
        let q = token_query(Some("my reg"), Some("repository:a/b:pull b"), false);
        assert_eq!(q, "scope=repository%3Aa%2Fb%3Apull&scope=b&service=my+reg");
        let q = token_query(None, None, true);
        assert!(q.starts_with("nonce=") && q.contains("&ts="), "{q}");
    }

    #[test]
    fn key_round_trip_and_signature_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let line = ensure_key(dir.path()).unwrap();
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert_eq!(ensure_key(dir.path()).unwrap(), line, "the key is reused");
        let pub_file = std::fs::read_to_string(dir.path().join("id_ed25519.pub")).unwrap();
        assert_eq!(pub_file.trim(), line);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let m = std::fs::metadata(dir.path().join("id_ed25519")).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
        }
        let key = Key::load(&dir.path().join("id_ed25519")).unwrap();
        let header = key.sign(b"hello").unwrap();
        let (blob, sig) = header.split_once(':').unwrap();
        let blob = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .unwrap();
        // The wire blob ends with the 32-byte public key.
        let pk: [u8; 32] = blob[blob.len() - 32..].try_into().unwrap();
        let sig: [u8; 64] = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap()
            .try_into()
            .unwrap();
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).unwrap();
        vk.verify_strict(b"hello", &ed25519_dalek::Signature::from_bytes(&sig))
            .unwrap();
    }

    #[test]
    fn a_key_from_ssh_keygen_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
            .arg(&path)
            .output()
            .expect("ssh-keygen (openssh-client) is needed by this test");
        assert!(out.status.success(), "{out:?}");
        let want = std::fs::read_to_string(dir.path().join("id_ed25519.pub")).unwrap();
        let line = ensure_key(dir.path()).unwrap();
        assert!(want.starts_with(&line), "{want} vs {line}");
    }

    #[test]
    fn garbage_keys_are_errors_not_panics() {
        assert!(Key::parse("").is_err());
        assert!(Key::parse("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END").is_err());
    }
}
