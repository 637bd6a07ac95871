//! A small subset of JSON Schema `pattern` (ECMA-262 regular expressions) as GBNF over the
//! characters of a JSON string's content.
//!
//! Only patterns anchored at both ends (`^...$`) are translated, built from: literal
//! characters, escaped punctuation (`\.`), `\d`, `\w`, `.`, non-negated classes (`[a-z_]`)
//! of characters JSON does not escape, groups `(...)` and `(?:...)`, alternation `|`, and
//! the quantifiers `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}` (bounds up to [`MAX_REPEAT`]).
//! Anything else gives `None`: the caller then ignores the pattern.

use super::{MAX_REPEAT, literal};

/// How deep groups may nest.
const MAX_GROUPS: usize = 16;

struct P<'a> {
    s: &'a [char],
    i: usize,
    /// The rule matching any one character of string content.
    any: &'a str,
    depth: usize,
}

/// `pattern` as a GBNF expression for a string's content, or `None` where it is outside
/// the subset. `any` names the rule matching one (possibly escaped) character.
pub(super) fn translate(pattern: &str, any: &str) -> Option<String> {
    let inner = pattern.strip_prefix('^')?.strip_suffix('$')?;
    if inner.ends_with('\\') {
        return None;
    }
    let chars: Vec<char> = inner.chars().collect();
    let mut p = P {
        s: &chars,
        i: 0,
        any,
        depth: 0,
    };
    let e = p.alts()?;
    (p.i == chars.len()).then_some(e)
}

/// The JSON-escaped form of `c` inside a string, as a GBNF literal.
fn json_char(c: char) -> String {
    let json = serde_json::Value::String(c.to_string()).to_string();
    literal(&json[1..json.len() - 1])
}

/// Whether `c` appears unescaped in JSON string content (so it may sit in a class).
fn plain(c: char) -> bool {
    c >= ' ' && c != '"' && c != '\\' && c != '\x7F'
}

/// `c` inside a GBNF character class.
fn class_char(c: char) -> String {
    match c {
        ']' | '[' | '-' | '^' => format!("\\x{:02X}", c as u32),
        c => c.to_string(),
    }
}

impl P<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn alts(&mut self) -> Option<String> {
        let mut alts = vec![self.seq()?];
        while self.peek() == Some('|') {
            self.i += 1;
            alts.push(self.seq()?);
        }
        Some(if alts.len() == 1 {
            alts.pop()?
        } else {
            format!("({})", alts.join(" | "))
        })
    }

    fn seq(&mut self) -> Option<String> {
        let mut parts = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let q = self.quantifier()?;
            parts.push(format!("{atom}{q}"));
        }
        (!parts.is_empty()).then(|| format!("({})", parts.join(" ")))
    }

    fn atom(&mut self) -> Option<String> {
        let c = self.peek()?;
        self.i += 1;
        match c {
            '.' => Some(self.any.to_string()),
            '(' => {
                if self.s.get(self.i..self.i + 2) == Some(&['?', ':']) {
                    self.i += 2;
                }
                self.depth += 1;
                if self.depth > MAX_GROUPS {
                    return None;
                }
                let e = self.alts()?;
                self.depth -= 1;
                (self.peek() == Some(')')).then(|| {
                    self.i += 1;
                    e
                })
            }
            '[' => self.class(),
            '\\' => {
                let e = self.peek()?;
                self.i += 1;
                match e {
                    'd' => Some("[0-9]".into()),
                    'w' => Some("[a-zA-Z0-9_]".into()),
                    e if e.is_ascii_punctuation() => Some(json_char(e)),
                    _ => None,
                }
            }
            '^' | '$' | '*' | '+' | '?' | '{' | '}' | ')' | ']' => None,
            c => Some(json_char(c)),
        }
    }

    fn class(&mut self) -> Option<String> {
        if self.peek() == Some('^') {
            return None;
        }
        let mut out = String::from("[");
        let mut first = true;
        loop {
            let c = self.peek()?;
            self.i += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = match c {
                '\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        'd' => {
                            out.push_str("0-9");
                            continue;
                        }
                        'w' => {
                            out.push_str("a-zA-Z0-9_");
                            continue;
                        }
                        e if e.is_ascii_punctuation() => e,
                        _ => return None,
                    }
                }
                '[' => return None,
                c => c,
            };
            if !plain(lo) {
                return None;
            }
            out.push_str(&class_char(lo));
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|&n| n != ']') {
                let hi = *self.s.get(self.i + 1)?;
                self.i += 2;
                if hi == '\\' || !plain(hi) || hi < lo {
                    return None;
                }
                out.push('-');
                out.push_str(&class_char(hi));
            }
        }
        out.push(']');
        Some(out)
    }

    fn number(&mut self) -> Option<u64> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let n: u64 = self.s[start..self.i]
            .iter()
            .collect::<String>()
            .parse()
            .ok()?;
        (n <= MAX_REPEAT).then_some(n)
    }

    /// The quantifier after an atom, as GBNF (`""` for none).
    fn quantifier(&mut self) -> Option<String> {
        let q = match self.peek() {
            Some(c @ ('*' | '+' | '?')) => {
                self.i += 1;
                c.to_string()
            }
            Some('{') => {
                self.i += 1;
                let m = self.number()?;
                let q = if self.peek() == Some(',') {
                    self.i += 1;
                    if self.peek() == Some('}') {
                        format!("{{{m},}}")
                    } else {
                        let n = self.number()?;
                        if n < m {
                            return None;
                        }
                        format!("{{{m},{n}}}")
                    }
                } else {
                    format!("{{{m}}}")
                };
                if self.peek() != Some('}') {
                    return None;
                }
                self.i += 1;
                q
            }
            _ => return Some(String::new()),
        };
        // Lazy or possessive quantifiers, or a quantified quantifier.
        if matches!(self.peek(), Some('?' | '+' | '*' | '{')) {
            return None;
        }
        Some(q)
    }
}
