//! Model names: `[scheme://][host/][namespace/]model[:tag]`, parsed, validated, defaulted and
//! displayed the way Ollama does (spec §5.5).
//!
//! A [`ModelName`] is always complete and valid: every part is filled in (defaults for the
//! missing ones) and has passed the character and length rules. Since a valid part can never be
//! `.`, `..`, empty or contain a path separator, the four parts can be used as path components
//! under `manifests/` without further checks.

use std::fmt;

/// The default registry host.
pub const DEFAULT_HOST: &str = "registry.ollama.ai";
/// The default namespace.
pub const DEFAULT_NAMESPACE: &str = "library";
/// The default tag.
pub const DEFAULT_TAG: &str = "latest";
/// The default protocol scheme.
pub const DEFAULT_SCHEME: &str = "https";

const MAX_HOST: usize = 350;
const MAX_PART: usize = 80;

/// Which part of a model name was at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamePart {
    /// The `scheme://` prefix.
    Scheme,
    /// The registry host (may include `:port`).
    Host,
    /// The namespace (user or organisation).
    Namespace,
    /// The model.
    Model,
    /// The tag.
    Tag,
}

/// A model name was rejected. Its text is Ollama's: `invalid model name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model name")]
pub struct NameError {
    /// The part that failed validation.
    pub part: NamePart,
}

/// A complete, validated model name.
///
/// Equality (`==`) is exact; use [`ModelName::eq_fold`] for Ollama's case-insensitive comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelName {
    scheme: String,
    host: String,
    namespace: String,
    model: String,
    tag: String,
}

fn err(part: NamePart) -> NameError {
    NameError { part }
}

/// Checks one part against Ollama's rules: first character `[A-Za-z0-9_]`, then the characters the
/// kind of part allows, within its length range.
fn valid_part(s: &str, part: NamePart) -> bool {
    let max = if part == NamePart::Host {
        MAX_HOST
    } else {
        MAX_PART
    };
    if s.is_empty() || s.len() > max {
        return false;
    }
    s.bytes().enumerate().all(|(i, b)| {
        if b.is_ascii_alphanumeric() || b == b'_' {
            return true;
        }
        if i == 0 {
            return false;
        }
        match b {
            b'-' => true,
            b'.' => part != NamePart::Namespace,
            b':' => part == NamePart::Host,
            _ => false,
        }
    })
}

impl ModelName {
    /// Parses `s`, fills in the defaults for missing parts and validates every part.
    ///
    /// Grammar: `[scheme://][host/][namespace/]model[:tag]`. A `:` is the tag separator only
    /// when it comes after the last `/`, so `host:port/ns/model` works. An empty part after a
    /// separator (`ns/`, `model:`, `/model`) is invalid.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let mut rest = s;
        let mut scheme = DEFAULT_SCHEME.to_string();
        if let Some((sch, after)) = rest.split_once("://") {
            if !(sch.eq_ignore_ascii_case("http") || sch.eq_ignore_ascii_case("https")) {
                return Err(err(NamePart::Scheme));
            }
            scheme = sch.to_ascii_lowercase();
            rest = after;
        }

        let mut tag = DEFAULT_TAG;
        if let Some(colon) = rest.rfind(':')
            && rest.rfind('/').is_none_or(|slash| colon > slash)
        {
            tag = &rest[colon + 1..];
            rest = &rest[..colon];
            if tag.is_empty() {
                return Err(err(NamePart::Tag));
            }
        }

        let (host, namespace, model) = match rest.rsplit_once('/') {
            None => (DEFAULT_HOST, DEFAULT_NAMESPACE, rest),
            Some((front, model)) => match front.rsplit_once('/') {
                None => (DEFAULT_HOST, front, model),
                Some((host, namespace)) => (host, namespace, model),
            },
        };

        Self::from_parts(host, namespace, model, tag).map(|mut n| {
            n.scheme = scheme;
            n
        })
    }

    /// Builds a name from its four parts (no defaults applied), validating each; this is how
    /// names are rebuilt from `manifests/<host>/<namespace>/<model>/<tag>`.
    pub fn from_parts(
        host: &str,
        namespace: &str,
        model: &str,
        tag: &str,
    ) -> Result<Self, NameError> {
        for (s, part) in [
            (host, NamePart::Host),
            (namespace, NamePart::Namespace),
            (model, NamePart::Model),
            (tag, NamePart::Tag),
        ] {
            if !valid_part(s, part) {
                return Err(err(part));
            }
        }
        Ok(Self {
            scheme: DEFAULT_SCHEME.to_string(),
            host: host.to_string(),
            namespace: namespace.to_string(),
            model: model.to_string(),
            tag: tag.to_string(),
        })
    }

    /// The protocol scheme (`https` unless the name said `http://`).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }
    /// The registry host.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    /// The model.
    pub fn model(&self) -> &str {
        &self.model
    }
    /// The tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The shortest display form, always with a tag: the host is dropped when it is the default,
    /// and then the namespace when it is `library` (e.g. `llama3.2:latest`, `user/m:tag`,
    /// `hf.co/u/r:Q4_K_M`).
    pub fn display_short(&self) -> String {
        if self.host.eq_ignore_ascii_case(DEFAULT_HOST) {
            if self.namespace.eq_ignore_ascii_case(DEFAULT_NAMESPACE) {
                format!("{}:{}", self.model, self.tag)
            } else {
                format!("{}/{}:{}", self.namespace, self.model, self.tag)
            }
        } else {
            self.to_string()
        }
    }

    /// Ollama's case-insensitive comparison of two names (scheme ignored).
    pub fn eq_fold(&self, other: &ModelName) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.namespace.eq_ignore_ascii_case(&other.namespace)
            && self.model.eq_ignore_ascii_case(&other.model)
            && self.tag.eq_ignore_ascii_case(&other.tag)
    }

    /// The manifest's location relative to `manifests/`: `[host, namespace, model, tag]`.
    pub fn manifest_components(&self) -> [&str; 4] {
        [&self.host, &self.namespace, &self.model, &self.tag]
    }
}

/// The full form `host/namespace/model:tag`.
impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}:{}",
            self.host, self.namespace, self.model, self.tag
        )
    }
}

impl std::str::FromStr for ModelName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        ModelName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_table() {
        // input, full display, short display
        let cases: &[(&str, &str, &str)] = &[
            (
                "llama3.2",
                "registry.ollama.ai/library/llama3.2:latest",
                "llama3.2:latest",
            ),
            (
                "llama3.2:1b",
                "registry.ollama.ai/library/llama3.2:1b",
                "llama3.2:1b",
            ),
            ("user/m:tag", "registry.ollama.ai/user/m:tag", "user/m:tag"),
            ("hf.co/u/r:Q4_K_M", "hf.co/u/r:Q4_K_M", "hf.co/u/r:Q4_K_M"),
            (
                "localhost:5000/ns/m",
                "localhost:5000/ns/m:latest",
                "localhost:5000/ns/m:latest",
            ),
            (
                "https://example.com/a/b:c",
                "example.com/a/b:c",
                "example.com/a/b:c",
            ),
            (
                "http://localhost:8080/a/b",
                "localhost:8080/a/b:latest",
                "localhost:8080/a/b:latest",
            ),
            (
                "registry.ollama.ai/library/x:y",
                "registry.ollama.ai/library/x:y",
                "x:y",
            ),
            (
                "Registry.Ollama.AI/Library/Mixed:Case",
                "Registry.Ollama.AI/Library/Mixed:Case",
                "Mixed:Case",
            ),
            ("_a/_b:_c", "registry.ollama.ai/_a/_b:_c", "_a/_b:_c"),
            (
                "a-b/c.d-e_f:g.h-i",
                "registry.ollama.ai/a-b/c.d-e_f:g.h-i",
                "a-b/c.d-e_f:g.h-i",
            ),
            (
                "qwen2.5-coder:7b",
                "registry.ollama.ai/library/qwen2.5-coder:7b",
                "qwen2.5-coder:7b",
            ),
        ];
        for (input, full, short) in cases {
            let n = ModelName::parse(input).unwrap_or_else(|e| panic!("{input}: {e:?}"));
            assert_eq!(n.to_string(), *full, "full form of {input}");
            assert_eq!(n.display_short(), *short, "short form of {input}");
            // The full form parses back to the same name.
            let back = ModelName::parse(full).unwrap();
            assert_eq!(
                back.manifest_components(),
                n.manifest_components(),
                "round trip of {input}"
            );
        }
        let long_ok = format!(
            "{}/{}/{}:{}",
            "h".repeat(350),
            "n".repeat(80),
            "m".repeat(80),
            "t".repeat(80)
        );
        assert!(ModelName::parse(&long_ok).is_ok());
    }

    #[test]
    fn invalid_names_table() {
        let long81 = "a".repeat(81);
        let host351 = "h".repeat(351);
        let cases: Vec<(String, NamePart)> = vec![
            ("".into(), NamePart::Model),
            (":".into(), NamePart::Tag),
            ("model:".into(), NamePart::Tag),
            ("ns/".into(), NamePart::Model),
            ("/model".into(), NamePart::Namespace),
            ("//model".into(), NamePart::Host),
            ("h//m".into(), NamePart::Namespace),
            ("../x".into(), NamePart::Namespace),
            ("..".into(), NamePart::Model),
            (".".into(), NamePart::Model),
            ("a/../../b".into(), NamePart::Host),
            ("../../etc/x".into(), NamePart::Host),
            ("../../etc/passwd".into(), NamePart::Host),
            ("ns/..".into(), NamePart::Model),
            ("ns/m:..".into(), NamePart::Tag),
            ("/etc/passwd".into(), NamePart::Host),
            ("/abs".into(), NamePart::Namespace),
            ("a/b/c/d/e".into(), NamePart::Host),
            ("a\\b".into(), NamePart::Model),
            ("m:t/x".into(), NamePart::Namespace),
            ("m@sha256:abc".into(), NamePart::Model),
            ("a b".into(), NamePart::Model),
            ("m\0x".into(), NamePart::Model),
            ("mödel".into(), NamePart::Model),
            ("\u{0430}pple".into(), NamePart::Model), // Cyrillic homoglyph
            (".ns/m".into(), NamePart::Namespace),
            ("n.s/m".into(), NamePart::Namespace),
            ("-ns/m".into(), NamePart::Namespace),
            ("-m".into(), NamePart::Model),
            ("m:-t".into(), NamePart::Tag),
            ("m:.t".into(), NamePart::Tag),
            ("ns:x/m".into(), NamePart::Namespace),
            (".host/ns/m".into(), NamePart::Host),
            ("ftp://h/n/m".into(), NamePart::Scheme),
            ("file:///etc/passwd".into(), NamePart::Scheme),
            (long81.clone(), NamePart::Model),
            (format!("m:{long81}"), NamePart::Tag),
            (format!("{long81}/m"), NamePart::Namespace),
            (format!("{host351}/n/m"), NamePart::Host),
        ];
        for (input, part) in cases {
            let e = ModelName::parse(&input).expect_err(&format!("{input:?} must be invalid"));
            assert_eq!(e.part, part, "failing part of {input:?}");
            assert_eq!(e.to_string(), "invalid model name");
        }
    }

    #[test]
    fn valid_parts_are_safe_path_components() {
        for s in ["a", "a.b", "a..b", "a_b", "A-1"] {
            let n = ModelName::from_parts("h", "ns", s, s).unwrap();
            for c in n.manifest_components() {
                assert!(c != "." && c != ".." && !c.contains('/') && !c.contains('\\'));
            }
        }
        for bad in ["", ".", "..", "a/b", "a\\b", ".hidden"] {
            assert!(
                ModelName::from_parts("h", "ns", bad, "t").is_err(),
                "{bad:?}"
            );
            assert!(
                ModelName::from_parts("h", "ns", "m", bad).is_err(),
                "{bad:?}"
            );
            assert!(
                ModelName::from_parts(bad, "ns", "m", "t").is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn case_insensitive_compare_and_components() {
        let a = ModelName::parse("Llama3:Latest").unwrap();
        let b = ModelName::parse("llama3").unwrap();
        assert_ne!(a, b);
        assert!(a.eq_fold(&b));
        assert!(!a.eq_fold(&ModelName::parse("llama3:8b").unwrap()));
        assert_eq!(
            b.manifest_components(),
            ["registry.ollama.ai", "library", "llama3", "latest"]
        );
        assert_eq!(a.scheme(), "https");
        assert_eq!(ModelName::parse("http://h/n/m").unwrap().scheme(), "http");
        assert_eq!("x/y".parse::<ModelName>().unwrap().namespace(), "x");
    }

    #[test]
    fn random_names_are_safe_or_rejected() {
        const ALPHABET: &[&str] = &[
            "a", "Z", "0", "_", "-", ".", "..", ":", "/", "\\", "@", " ", "é", "\0", "://", "http",
        ];
        let mut state = 0x853C_49E6_748F_EA9Bu64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        let mut accepted = 0;
        for _ in 0..50_000 {
            let len = next() % 12;
            let s: String = (0..len)
                .map(|_| ALPHABET[next() % ALPHABET.len()])
                .collect();
            let Ok(n) = ModelName::parse(&s) else {
                continue;
            };
            accepted += 1;
            for c in n.manifest_components() {
                assert!(
                    !c.is_empty() && c != "." && c != "..",
                    "{s:?} gave part {c:?}"
                );
                assert!(
                    c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b)),
                    "{s:?} gave part {c:?}"
                );
            }
            let back = ModelName::parse(&n.to_string()).unwrap();
            assert!(back.eq_fold(&n) && back.manifest_components() == n.manifest_components());
            let short = ModelName::parse(&n.display_short()).unwrap();
            assert!(
                short.eq_fold(&n),
                "{s:?}: short form {} reads back differently",
                n.display_short()
            );
        }
        assert!(accepted > 1000, "only {accepted} random names were valid");
    }
}
