//! Modelfiles: a parser with Ollama's rules (spec §4.1–4.3) and the renderer behind
//! `show --modelfile` (§4.6).
//!
//! Parsing follows Ollama: an instruction is a run of letters (any case) followed by a space or
//! tab; `#` starts a comment only where an instruction could begin; a value runs to the end of
//! the line and is trimmed, unless it starts with `"""` or `"`, in which case it runs on, over
//! newlines, until a line where the trimmed text ends with the same quote. Outer quotes are
//! stripped; there are no escapes.
//!
//! The parsed [`Modelfile`] is structured (what `/api/create` needs), and for every parsed
//! Modelfile `m` whose values the quoting rules can express, `parse(render(m)) == m`.

mod params;
mod render;

pub use params::{ParamKind, ParamValue, param_kind};
pub use render::{quote, representable, show_parameters};

use std::collections::BTreeMap;

/// The error text Ollama gives for an unknown instruction.
pub const INVALID_COMMAND: &str = "command must be one of \"from\", \"license\", \"template\", \"system\", \"adapter\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\"";
/// The error text Ollama gives for a bad MESSAGE role.
pub const INVALID_ROLE: &str = "message role must be one of \"system\", \"user\", or \"assistant\"";

/// Why a Modelfile was rejected. Every error but [`ModelfileError::MissingFrom`] names a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelfileError {
    /// A line does not start with a known instruction.
    #[error("(line {line}): {INVALID_COMMAND}")]
    InvalidCommand {
        /// 1-based line number.
        line: usize,
    },
    /// A MESSAGE role other than `system`, `user` or `assistant`.
    #[error("(line {line}): {INVALID_ROLE}")]
    InvalidMessageRole {
        /// 1-based line number.
        line: usize,
    },
    /// The input ended inside an instruction or a quoted value.
    #[error("(line {line}): unexpected EOF")]
    UnexpectedEof {
        /// Line where the unfinished instruction starts.
        line: usize,
    },
    /// No FROM instruction.
    #[error("no FROM line")]
    MissingFrom,
    /// A PARAMETER name that is not an option.
    #[error("(line {line}): unknown parameter '{name}'")]
    UnknownParameter {
        /// 1-based line number.
        line: usize,
        /// The name.
        name: String,
    },
    /// A PARAMETER value of the wrong type.
    #[error("(line {line}): invalid {kind} value [{value}]")]
    InvalidValue {
        /// 1-based line number.
        line: usize,
        /// `int`, `float` or `bool`.
        kind: &'static str,
        /// The value as written.
        value: String,
    },
    /// A REQUIRES value that is not a version.
    #[error("(line {line}): invalid version \"{value}\" in REQUIRES")]
    InvalidRequires {
        /// 1-based line number.
        line: usize,
        /// The value as written.
        value: String,
    },
    /// UTF-16 input (detected by its BOM) that does not decode.
    #[error("the Modelfile is not valid UTF-16")]
    InvalidUtf16,
}

/// A MESSAGE role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `system`
    System,
    /// `user`
    User,
    /// `assistant`
    Assistant,
}

impl Role {
    /// The role as written in a Modelfile and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// A MESSAGE instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

/// A warning from parsing, e.g. a deprecated PARAMETER that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line number.
    pub line: usize,
    /// The warning text.
    pub message: String,
}

/// A parsed Modelfile.
///
/// Repeated instructions combine as `/api/create` combines them: FROM, ADAPTER, LICENSE and
/// MESSAGE accumulate in order; TEMPLATE, SYSTEM, RENDERER, PARSER, REQUIRES and DRAFT keep the
/// last value; a PARAMETER keeps its first value, except `stop`, which collects every value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Modelfile {
    /// FROM arguments in order: the model, then any projectors.
    pub from: Vec<String>,
    /// ADAPTER arguments.
    pub adapters: Vec<String>,
    /// DRAFT argument.
    pub draft: Option<String>,
    /// TEMPLATE text.
    pub template: Option<String>,
    /// SYSTEM text.
    pub system: Option<String>,
    /// RENDERER name.
    pub renderer: Option<String>,
    /// PARSER name.
    pub parser: Option<String>,
    /// REQUIRES version.
    pub requires: Option<String>,
    /// Typed PARAMETERs by name.
    pub parameters: BTreeMap<String, ParamValue>,
    /// LICENSE texts.
    pub licenses: Vec<String>,
    /// MESSAGEs.
    pub messages: Vec<Message>,
}

/// The result of a successful parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The Modelfile.
    pub modelfile: Modelfile,
    /// Warnings, such as deprecated parameters that were skipped.
    pub warnings: Vec<Warning>,
}

/// Decodes Modelfile bytes: a UTF-8 or UTF-16 (LE/BE) byte-order mark is honoured; anything
/// else is read as UTF-8, with invalid sequences replaced.
pub fn decode(bytes: &[u8]) -> Result<String, ModelfileError> {
    let utf16 = |b: &[u8], be: bool| {
        if !b.len().is_multiple_of(2) {
            return Err(ModelfileError::InvalidUtf16);
        }
        let units = b.chunks_exact(2).map(|c| {
            if be {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| ModelfileError::InvalidUtf16)
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => Ok(String::from_utf8_lossy(rest).into_owned()),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, false),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, true),
        _ => Ok(String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// Line endings become `\n` (CR LF and lone CR alike) and control characters other than tab
/// and newline are dropped.
fn normalize(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Ollama's unquote: `None` while a quoted value is still open.
fn unquote(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix("\"\"\"") {
        return (s.len() >= 6 && s.ends_with("\"\"\"")).then(|| &rest[..rest.len() - 3]);
    }
    if let Some(rest) = s.strip_prefix('"') {
        return (s.len() >= 2 && s.ends_with('"')).then(|| &rest[..rest.len() - 1]);
    }
    Some(s)
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

const COMMANDS: &[&str] = &[
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
    "draft",
];

fn valid_version(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (core, pre) = match v.split_once(['-', '+']) {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    (1..=3).contains(&nums.len())
        && nums
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'+')
        })
}

impl Modelfile {
    /// Parses Modelfile text.
    pub fn parse(text: &str) -> Result<Parsed, ModelfileError> {
        let text = normalize(text);
        let lines: Vec<&str> = text.split('\n').collect();
        let mut m = Modelfile::default();
        let mut warnings = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let line_no = i + 1;
            let t = lines[i].trim_start_matches(is_blank);
            if t.is_empty() || t.starts_with('#') {
                i += 1;
                continue;
            }
            let kw_len = t.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (kw, after) = t.split_at(kw_len);
            if kw_len > 0 && after.is_empty() && i + 1 == lines.len() {
                return Err(ModelfileError::UnexpectedEof { line: line_no });
            }
            let kw = kw.to_ascii_lowercase();
            if kw_len == 0 || !after.starts_with(is_blank) || !COMMANDS.contains(&kw.as_str()) {
                return Err(ModelfileError::InvalidCommand { line: line_no });
            }
            let mut rest = &after[1..];

            // PARAMETER and MESSAGE take a word before the value.
            let mut word = "";
            if kw == "parameter" || kw == "message" {
                rest = rest.trim_start_matches(is_blank);
                let n = rest
                    .bytes()
                    .take_while(|b| {
                        b.is_ascii_alphabetic()
                            || (kw == "parameter" && (b.is_ascii_digit() || *b == b'_'))
                    })
                    .count();
                let (w, r) = rest.split_at(n);
                if n == 0 || !r.starts_with(is_blank) {
                    return Err(ModelfileError::UnexpectedEof { line: line_no });
                }
                word = w;
                rest = &r[1..];
            }
            if kw == "message" && Role::parse(word).is_none() {
                return Err(ModelfileError::InvalidMessageRole { line: line_no });
            }

            let mut buf = rest.to_string();
            let value = loop {
                if let Some(v) = unquote(buf.trim()) {
                    break v.to_string();
                }
                i += 1;
                if i >= lines.len() {
                    return Err(ModelfileError::UnexpectedEof { line: line_no });
                }
                buf.push('\n');
                buf.push_str(lines[i]);
            };
            i += 1;

            match kw.as_str() {
                "from" => m.from.push(value),
                "adapter" => m.adapters.push(value),
                "license" => m.licenses.push(value),
                "draft" => m.draft = Some(value),
                "template" => m.template = Some(value),
                "system" => m.system = Some(value),
                "renderer" => m.renderer = Some(value),
                "parser" => m.parser = Some(value),
                "requires" => {
                    if !valid_version(&value) {
                        return Err(ModelfileError::InvalidRequires {
                            line: line_no,
                            value,
                        });
                    }
                    m.requires = Some(value);
                }
                "message" => m.messages.push(Message {
                    role: Role::parse(word).unwrap_or(Role::User),
                    content: value,
                }),
                _ => {
                    if let Some(w) = params::set(&mut m.parameters, word, &value, line_no)? {
                        warnings.push(w);
                    }
                }
            }
        }
        if m.from.is_empty() {
            return Err(ModelfileError::MissingFrom);
        }
        Ok(Parsed {
            modelfile: m,
            warnings,
        })
    }

    /// Parses Modelfile bytes (see [`decode`] for the encodings accepted).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Parsed, ModelfileError> {
        Modelfile::parse(&decode(bytes)?)
    }

    /// The parameters as the JSON object stored in a params layer: numbers, bools, and `stop`
    /// as an array.
    pub fn parameters_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
