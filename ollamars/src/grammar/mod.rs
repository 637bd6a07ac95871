//! The `format` field of `/api/generate` and `/api/chat` as a llama.cpp GBNF grammar:
//! `"json"` (any JSON object, as Ollama's JSON mode) or a JSON Schema.
//!
//! Numbers have at most 16 integral and 16 fractional digits and a 3-digit exponent, so that a
//! small model cannot spin on digits forever.
//!
//! Every generated rule consumes the whitespace that may follow its token (rule `ws`, at most
//! one space or one newline and 20 blanks), so a model can format its output but cannot loop
//! on whitespace forever.
//!
//! # What a schema may use
//!
//! - `type`: `object`, `array`, `string`, `number`, `integer`, `boolean`, `null`, or a list of
//!   these (an alternation). Without `type`, `properties` means an object and `items` or
//!   `prefixItems` an array; a schema with none of these (`{}` or `true`) is any JSON value.
//! - `properties` and `required`: required properties come first, in schema order, then the
//!   optional ones, each optional, in schema order. Key order is therefore fixed.
//! - `additionalProperties`: `false` allows only the listed keys. With `properties` and no
//!   `additionalProperties`, extra keys are refused too (as llama.cpp does: models otherwise
//!   wander off into keys nobody asked for). `true` or a schema allows extra keys after the
//!   listed ones (any key string, not checked against the listed names). Without
//!   `properties`, absent or `true` allows any keys and values, and such a map honours
//!   `minProperties` and `maxProperties` (key uniqueness is not enforced).
//! - `enum` and `const` (the exact compact JSON text of each value), `anyOf` and `oneOf`
//!   (an alternation; `oneOf`'s exclusivity is not enforced), `allOf` with one item, or with
//!   several object schemas (their properties merged).
//! - `items`, `prefixItems` (a tuple: every prefix item required, then `items` repeated if it
//!   is a schema, else nothing more), `minItems` and `maxItems` (above 1024, `maxItems` is
//!   treated as unbounded).
//! - `$ref` to `#`, `#/$defs/Name`, `#/definitions/Name` or any JSON pointer in the schema;
//!   recursive references become recursive rules.
//! - `minimum`, `maximum`, `exclusiveMinimum` and `exclusiveMaximum` on `integer` (exact) and
//!   `number` (exact for integral bounds; a fractional bound is tightened inward, see
//!   `numeric.rs`, so the grammar may allow fewer values than the schema, never more).
//! - Strings: `minLength`, `maxLength` (above 1024, `maxLength` is unbounded; a `minLength`
//!   above 1024 is refused), and `format` `date`, `time`, `date-time` and `uuid`, which decide
//!   alone. Other formats allow any string.
//! - String `pattern`, for a simple subset: anchored at both ends (`^...$`), with literal
//!   characters, `\d`, `\w`, `.`, non-negated classes, groups, alternation and quantifiers
//!   (see `pattern.rs`). A translated pattern decides alone (length bounds are then ignored);
//!   any other pattern is ignored.
//!
//! # What is ignored
//!
//! Keywords that would narrow the language but that this converter does not express are
//! ignored, so the grammar allows more than the schema: patterns outside the subset, `not`,
//! `if`/`then`/`else`, `patternProperties`, `propertyNames`, `minProperties`/`maxProperties` beside `properties`,
//! `uniqueItems`, `contains`, and the
//! keywords beside `$ref`, `const`, `enum`, `anyOf`, `oneOf` and a one-item `allOf` (each of
//! these, in that order of precedence, decides the schema alone).
//!
//! # Limits and errors
//!
//! Schemas nested over 32 levels, larger than 1 MiB as JSON, or giving over 5000 rules are
//! refused, as are unknown `type` names, `$ref`s that resolve to nothing (or are remote),
//! `false` schemas where a value is required, `required` names missing from `properties`,
//! `allOf` over several schemas that are not all objects, and `$ref`s that reach themselves
//! before any object or array begins (left recursion, which llama.cpp refuses).

use std::collections::HashMap;

use serde_json::{Map, Value};

mod numeric;
mod pattern;
#[cfg(test)]
mod tests;

/// Deepest schema nesting accepted.
pub const MAX_DEPTH: usize = 32;
/// Most bytes of schema JSON accepted.
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;
/// Most grammar rules one schema may produce.
pub const MAX_RULES: usize = 5000;
/// Most schemas visited for one grammar.
const MAX_VISITS: usize = 100_000;
/// Largest `minItems`/`minLength` accepted, and the largest `maxItems`/`maxLength` kept
/// (larger maxima are treated as unbounded).
pub const MAX_REPEAT: u64 = 1024;

/// Errors: a 400 for the client, naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A keyword with a value of the wrong shape, or a contradiction.
    #[error("invalid JSON schema: {msg} at {path}")]
    Invalid {
        /// What is wrong.
        msg: String,
        /// JSON pointer to the schema at fault (`/` for the root).
        path: String,
    },
    /// A `type` that is not one of JSON Schema's seven names.
    #[error("invalid JSON schema: unsupported type {ty} at {path}")]
    UnknownType {
        /// The type as JSON text, e.g. `"foo"`.
        ty: String,
        /// JSON pointer to the schema at fault.
        path: String,
    },
    /// A schema construct this converter does not express and cannot safely ignore.
    #[error("unsupported JSON schema: {what} at {path}")]
    Unsupported {
        /// The construct.
        what: String,
        /// JSON pointer to the schema at fault.
        path: String,
    },
    /// Nesting beyond [`MAX_DEPTH`].
    #[error("schema too deep (over {MAX_DEPTH} levels)")]
    TooDeep,
    /// Schema JSON over [`MAX_SCHEMA_BYTES`], over [`MAX_RULES`] rules, or a repetition
    /// bound over [`MAX_REPEAT`].
    #[error("schema too large")]
    TooLarge,
    /// A `$ref` that names nothing in the schema (or a remote one).
    #[error("$ref not found: {0}")]
    RefNotFound(String),
    /// A `format` that is neither `"json"` nor a JSON Schema object.
    #[error("invalid format: {0}")]
    InvalidFormat(String),
}

/// The `format` field of /api/generate and /api/chat: `"json"` (any JSON object, as Ollama)
/// or a JSON Schema object; `""` and `null` mean none.
pub fn from_format(format: &Value) -> Result<Option<String>, SchemaError> {
    match format {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s == "json" => Ok(Some(json_grammar())),
        Value::Object(_) => from_schema(format).map(Some),
        Value::String(s) => Err(SchemaError::InvalidFormat(format!(
            "{s:?} (expected \"json\" or a JSON schema)"
        ))),
        other => Err(SchemaError::InvalidFormat(format!(
            "{other} (expected \"json\" or a JSON schema)"
        ))),
    }
}

/// Any JSON value whose top level is an object (Ollama's `"json"` mode).
pub fn json_grammar() -> String {
    let mut g = Gen::new(&Value::Null);
    let object = g.prim("object");
    g.finish(object)
}

/// A grammar for the literal `prefix` (e.g. a tool-call tag such as `<tool_call>`), a little
/// whitespace, then a JSON value of `schema`. With an empty prefix, just [`from_schema`].
///
/// # Errors
/// As [`from_schema`]; also [`SchemaError::Unsupported`] when the schema refers to its own
/// root (`"$ref": "#"`), which the prefix would change.
pub fn prefixed(prefix: &str, schema: &Value) -> Result<String, SchemaError> {
    let g = from_schema(schema)?;
    if prefix.is_empty() {
        return Ok(g);
    }
    let self_ref = || SchemaError::Unsupported {
        what: "a reference to the root schema after a prefix".into(),
        path: "#".into(),
    };
    // Rename the `root` rule; no other rule may refer to it.
    let mut out = format!(
        "root ::= {} [ \\t\\n]{{0,4}} prefixed-value\n",
        literal(prefix)
    );
    let mut renamed = false;
    for line in g.lines() {
        let (name, body) = line.split_once(" ::= ").unwrap_or((line, ""));
        let refers_to_root = body
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .any(|w| w == "root");
        if refers_to_root {
            return Err(self_ref());
        }
        if name == "root" && !renamed {
            renamed = true;
            out.push_str(&format!("prefixed-value ::= {body}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !renamed {
        return Err(self_ref());
    }
    Ok(out)
}

/// A JSON Schema (an object, or `true`) as GBNF with rule `root`.
pub fn from_schema(schema: &Value) -> Result<String, SchemaError> {
    if serde_json::to_vec(schema).map_or(true, |v| v.len() > MAX_SCHEMA_BYTES) {
        return Err(SchemaError::TooLarge);
    }
    let mut g = Gen::new(schema);
    g.claim = Some("root".into());
    let expr = g.visit(schema, "root", "", 0)?;
    Ok(g.finish(expr))
}

/// The fixed rules: name, body, and the fixed rules the body uses.
const PRIMITIVES: &[(&str, &str, &[&str])] = &[
    ("ws", r#"| " " | "\n" [ \t]{0,20}"#, &[]),
    (
        "char",
        r#"[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})"#,
        &[],
    ),
    ("string", r#""\"" char* "\"" ws"#, &["char", "ws"]),
    ("integral", r#""0" | [1-9] [0-9]{0,15}"#, &[]),
    ("integer", r#""-"? integral ws"#, &["integral", "ws"]),
    (
        "number",
        r#""-"? integral ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})? ws"#,
        &["integral", "ws"],
    ),
    ("boolean", r#"("true" | "false") ws"#, &["ws"]),
    ("null", r#""null" ws"#, &["ws"]),
    (
        "value",
        "object | array | string | number | boolean | null",
        &["object", "array", "string", "number", "boolean", "null"],
    ),
    (
        "object",
        r#""{" ws (string ":" ws value ("," ws string ":" ws value)*)? "}" ws"#,
        &["ws", "string", "value"],
    ),
    (
        "array",
        r#""[" ws (value ("," ws value)*)? "]" ws"#,
        &["ws", "value"],
    ),
    (
        "date",
        r#"[0-9]{4} "-" ("0" [1-9] | "1" [0-2]) "-" ("0" [1-9] | [1-2] [0-9] | "3" [0-1])"#,
        &[],
    ),
    (
        "time",
        r#"([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,9})? ("Z" | "z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])"#,
        &[],
    ),
    ("date-time", r#"date [Tt] time"#, &["date", "time"]),
    (
        "uuid",
        r#"[0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}"#,
        &[],
    ),
];

/// The grammar being built.
struct Gen<'a> {
    root: &'a Value,
    /// Rules in emission order.
    rules: Vec<(String, String)>,
    /// Names taken (rules emitted or reserved for a `$ref` being built).
    used: HashMap<String, ()>,
    /// Body → name of generated rules, to share identical ones.
    by_body: HashMap<String, String>,
    /// `$ref` → its rule name.
    refs: HashMap<String, String>,
    /// Schemas visited so far (bounded, against blow-ups that share rules).
    visits: usize,
    /// A name already reserved (`root`, or a `$ref`'s) for the rule made with exactly this
    /// hint, so that `Name ::= Name-1` indirections are not needed.
    claim: Option<String>,
    /// `$ref`s entered since the last object or array began (a reference to one of these
    /// would be left recursion).
    bare: Vec<String>,
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `expr` made safe to place in a sequence.
fn group(expr: &str) -> String {
    if is_ident(expr) {
        expr.to_string()
    } else {
        format!("({expr})")
    }
}

/// A GBNF string literal matching exactly `text`.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if let Some(e) = crate::format::c_escape(c) {
            out.push_str(e);
            continue;
        }
        match c {
            c if (c as u32) < 0x20 || c as u32 == 0x7F => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `name` with everything outside `[a-zA-Z0-9-]` as `-`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if s.is_empty() { "r".into() } else { s }
}

fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn show_path(path: &str) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        path.to_string()
    }
}

/// A repetition `{min,max}` suffix (`*`, `+`, `?` where they fit).
fn repeat(min: u64, max: Option<u64>) -> String {
    match (min, max) {
        (0, None) => "*".into(),
        (1, None) => "+".into(),
        (0, Some(1)) => "?".into(),
        (m, None) => format!("{{{m},}}"),
        (m, Some(n)) if m == n => format!("{{{m}}}"),
        (m, Some(n)) => format!("{{{m},{n}}}"),
    }
}

impl<'a> Gen<'a> {
    fn new(root: &'a Value) -> Gen<'a> {
        Gen {
            root,
            rules: Vec::new(),
            used: HashMap::new(),
            by_body: HashMap::new(),
            refs: HashMap::new(),
            visits: 0,
            claim: None,
            bare: Vec::new(),
        }
    }

    /// The whole grammar, `root` first.
    fn finish(mut self, root_expr: String) -> String {
        let mut out = String::new();
        if root_expr != "root" {
            out = format!("root ::= {root_expr}\n");
        }
        for (name, body) in self.rules.drain(..) {
            out.push_str(&format!("{name} ::= {body}\n"));
        }
        out
    }

    /// Emits a fixed rule (and those it needs) once; returns its name.
    fn prim(&mut self, name: &str) -> String {
        if !self.used.contains_key(name) {
            self.used.insert(name.to_string(), ());
            let (_, body, deps) = PRIMITIVES
                .iter()
                .find(|(n, _, _)| *n == name)
                .expect("a known primitive");
            self.rules.push((name.to_string(), body.to_string()));
            for d in *deps {
                self.prim(d);
            }
        }
        name.to_string()
    }

    /// A name from `hint` that no rule, fixed or generated, has.
    fn fresh(&mut self, hint: &str) -> Result<String, SchemaError> {
        if self.rules.len() + self.refs.len() >= MAX_RULES {
            return Err(SchemaError::TooLarge);
        }
        let base = sanitize(hint);
        let taken = |g: &Gen, n: &str| {
            n == "root" || g.used.contains_key(n) || PRIMITIVES.iter().any(|(p, _, _)| *p == n)
        };
        let mut name = base.clone();
        let mut i = 1;
        while taken(self, &name) {
            name = format!("{base}-{i}");
            i += 1;
        }
        self.used.insert(name.clone(), ());
        Ok(name)
    }

    /// A rule for `body` (shared with an identical one); returns its name.
    fn rule(&mut self, hint: &str, body: String) -> Result<String, SchemaError> {
        if is_ident(&body) {
            return Ok(body);
        }
        if let Some(n) = self.by_body.get(&body) {
            return Ok(n.clone());
        }
        let name = match self.claim.take() {
            Some(c) if c == hint => c,
            other => {
                self.claim = other;
                self.fresh(hint)?
            }
        };
        self.by_body.insert(body.clone(), name.clone());
        self.rules.push((name.clone(), body));
        Ok(name)
    }

    fn invalid(msg: impl Into<String>, path: &str) -> SchemaError {
        SchemaError::Invalid {
            msg: msg.into(),
            path: show_path(path),
        }
    }

    /// The expression for one schema (consuming trailing whitespace).
    fn visit(
        &mut self,
        schema: &Value,
        hint: &str,
        path: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        if depth > MAX_DEPTH {
            return Err(SchemaError::TooDeep);
        }
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return Err(SchemaError::TooLarge);
        }
        let obj = match schema {
            Value::Bool(true) => return Ok(self.prim("value")),
            Value::Bool(false) => {
                return Err(Self::invalid("schema false allows no value", path));
            }
            Value::Object(o) => o,
            _ => return Err(Self::invalid("a schema must be an object or boolean", path)),
        };
        if let Some(r) = obj.get("$ref") {
            let r = r
                .as_str()
                .ok_or_else(|| Self::invalid("$ref must be a string", path))?;
            return self.reference(r, depth);
        }
        if let Some(c) = obj.get("const") {
            return Ok(format!("{} {}", literal(&c.to_string()), self.prim("ws")));
        }
        if let Some(e) = obj.get("enum") {
            let items = e
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| Self::invalid("enum must be a non-empty array", path))?;
            let ws = self.prim("ws");
            let alts: Vec<String> = items.iter().map(|v| literal(&v.to_string())).collect();
            return Ok(format!("({}) {ws}", alts.join(" | ")));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(list) = obj.get(key) {
                return self.alternatives(list, key, hint, path, depth);
            }
        }
        if let Some(all) = obj.get("allOf") {
            return self.all_of(obj, all, hint, path, depth);
        }
        match obj.get("type") {
            None => {
                if obj.contains_key("properties") || obj.contains_key("additionalProperties") {
                    self.object(obj, hint, path, depth)
                } else if obj.contains_key("items") || obj.contains_key("prefixItems") {
                    self.array(obj, hint, path, depth)
                } else {
                    Ok(self.prim("value"))
                }
            }
            Some(Value::String(t)) => self.typed(t, obj, hint, path, depth),
            Some(Value::Array(ts)) => {
                if ts.is_empty() {
                    return Err(Self::invalid("type list is empty", path));
                }
                let mut alts = Vec::new();
                for t in ts {
                    let t = t.as_str().ok_or_else(|| SchemaError::UnknownType {
                        ty: t.to_string(),
                        path: show_path(path),
                    })?;
                    let e = self.typed(t, obj, &format!("{hint}-{t}"), path, depth)?;
                    alts.push(group(&e));
                }
                Ok(alts.join(" | "))
            }
            Some(other) => Err(SchemaError::UnknownType {
                ty: other.to_string(),
                path: show_path(path),
            }),
        }
    }

    fn typed(
        &mut self,
        t: &str,
        obj: &Map<String, Value>,
        hint: &str,
        path: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        match t {
            "object" => self.object(obj, hint, path, depth),
            "array" => self.array(obj, hint, path, depth),
            "string" => self.string(obj, path),
            "number" | "integer" => self.numeric(t, obj, path),
            "boolean" | "null" => Ok(self.prim(t)),
            _ => Err(SchemaError::UnknownType {
                ty: Value::String(t.into()).to_string(),
                path: show_path(path),
            }),
        }
    }

    /// `integer` or `number`, with `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`
    /// (a number, or draft 4's boolean beside `minimum`/`maximum`) as grammar.
    fn numeric(
        &mut self,
        t: &str,
        obj: &Map<String, Value>,
        path: &str,
    ) -> Result<String, SchemaError> {
        let num = |key: &str| -> Result<Option<f64>, SchemaError> {
            match obj.get(key) {
                None | Some(Value::Bool(_)) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| Self::invalid(format!("{key} must be a number"), path)),
            }
        };
        let draft4 = |key: &str| obj.get(key) == Some(&Value::Bool(true));
        let pick = |incl: Option<f64>, excl: Option<f64>, lower: bool| {
            let a = incl.map(|value| numeric::Bound {
                value,
                exclusive: draft4(if lower {
                    "exclusiveMinimum"
                } else {
                    "exclusiveMaximum"
                }),
            });
            let b = excl.map(|value| numeric::Bound {
                value,
                exclusive: true,
            });
            match (a, b) {
                (Some(a), Some(b)) => {
                    let b_tighter = if lower {
                        b.value >= a.value
                    } else {
                        b.value <= a.value
                    };
                    Some(if b_tighter { b } else { a })
                }
                (a, b) => a.or(b),
            }
        };
        let lo = pick(num("minimum")?, num("exclusiveMinimum")?, true);
        let hi = pick(num("maximum")?, num("exclusiveMaximum")?, false);
        if lo.is_none() && hi.is_none() {
            return Ok(self.prim(t));
        }
        let expr = if t == "integer" {
            numeric::integers(lo, hi)
        } else {
            numeric::numbers(lo, hi)
        };
        let Some(expr) = expr else {
            return Err(Self::invalid(
                format!("no {t} lies within the bounds"),
                path,
            ));
        };
        let ws = self.prim("ws");
        self.rule(&format!("{t}-range"), format!("{expr} {ws}"))
    }

    fn bound(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, SchemaError> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                        .map(|f| f as u64)
                })
                .map(Some)
                .ok_or_else(|| {
                    Self::invalid(format!("{key} must be a non-negative integer"), path)
                }),
        }
    }

    /// `{min,max}` bounds from `min_key`/`max_key`, checked and clamped.
    fn bounds(
        obj: &Map<String, Value>,
        min_key: &str,
        max_key: &str,
        path: &str,
    ) -> Result<(u64, Option<u64>), SchemaError> {
        let min = Self::bound(obj, min_key, path)?.unwrap_or(0);
        let max = Self::bound(obj, max_key, path)?;
        if let Some(max) = max
            && min > max
        {
            return Err(Self::invalid(format!("{min_key} exceeds {max_key}"), path));
        }
        if min > MAX_REPEAT {
            return Err(SchemaError::TooLarge);
        }
        Ok((min, max.filter(|m| *m <= MAX_REPEAT)))
    }

    fn string(&mut self, obj: &Map<String, Value>, path: &str) -> Result<String, SchemaError> {
        let ws = self.prim("ws");
        if let Some(f) = obj.get("format").and_then(Value::as_str)
            && matches!(f, "date" | "time" | "date-time" | "uuid")
        {
            let r = self.prim(f);
            return Ok(format!(r#""\"" {r} "\"" {ws}"#));
        }
        if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
            let c = self.prim("char");
            if let Some(e) = pattern::translate(p, &c) {
                return Ok(format!(r#""\"" {e} "\"" {ws}"#));
            }
        }
        let (min, max) = Self::bounds(obj, "minLength", "maxLength", path)?;
        if (min, max) == (0, None) {
            return Ok(self.prim("string"));
        }
        let c = self.prim("char");
        Ok(format!(r#""\"" {c}{} "\"" {ws}"#, repeat(min, max)))
    }

    fn alternatives(
        &mut self,
        list: &Value,
        key: &str,
        hint: &str,
        path: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        let items = list
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Self::invalid(format!("{key} must be a non-empty array"), path))?;
        let mut alts = Vec::new();
        for (i, s) in items.iter().enumerate() {
            let e = self.visit(
                s,
                &format!("{hint}-{i}"),
                &format!("{path}/{key}/{i}"),
                depth + 1,
            )?;
            alts.push(group(&e));
        }
        Ok(alts.join(" | "))
    }

    /// `allOf`: one schema as itself; several object schemas with their properties merged.
    fn all_of(
        &mut self,
        obj: &Map<String, Value>,
        all: &Value,
        hint: &str,
        path: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        let items = all
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Self::invalid("allOf must be a non-empty array", path))?;
        if items.len() == 1 {
            return self.visit(&items[0], hint, &format!("{path}/allOf/0"), depth + 1);
        }
        let mut merged = Map::new();
        let mut props = obj
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut required = obj
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (i, item) in items.iter().enumerate() {
            let mut item = item;
            let mut hops = 0;
            while let Some(r) = item.get("$ref").and_then(Value::as_str) {
                item = self.resolve(r)?;
                hops += 1;
                if hops > MAX_DEPTH {
                    return Err(SchemaError::TooDeep);
                }
            }
            let o = item.as_object().filter(|o| {
                o.get("type").is_none_or(|t| t == "object") && !o.contains_key("anyOf")
            });
            let Some(o) = o else {
                return Err(SchemaError::Unsupported {
                    what: "allOf of several schemas that are not all objects".into(),
                    path: format!("{}/allOf/{i}", path),
                });
            };
            if let Some(p) = o.get("properties").and_then(Value::as_object) {
                props.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            if let Some(r) = o.get("required").and_then(Value::as_array) {
                required.extend(r.iter().cloned());
            }
            if o.get("additionalProperties") == Some(&Value::Bool(false)) {
                merged.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
        for (k, v) in obj {
            if k != "allOf" && k != "properties" && k != "required" {
                merged.insert(k.clone(), v.clone());
            }
        }
        merged.insert("properties".into(), Value::Object(props));
        merged.insert("required".into(), Value::Array(required));
        self.object(&merged, hint, path, depth)
    }

    fn resolve(&self, r: &str) -> Result<&'a Value, SchemaError> {
        let not_found = || SchemaError::RefNotFound(r.to_string());
        let frag = r.strip_prefix('#').ok_or_else(not_found)?;
        if frag.is_empty() {
            return Ok(self.root);
        }
        if !frag.starts_with('/') {
            return Err(not_found());
        }
        self.root.pointer(frag).ok_or_else(not_found)
    }

    /// A `$ref` as a rule of its own (emitted once, so recursion works).
    fn reference(&mut self, r: &str, depth: usize) -> Result<String, SchemaError> {
        if self.bare.iter().any(|b| b == r) {
            // `A ::= A | ...`: llama.cpp refuses left recursion.
            return Err(SchemaError::Unsupported {
                what: format!("$ref {r} refers to itself before any object or array"),
                path: show_path(r.trim_start_matches('#')),
            });
        }
        if let Some(n) = self.refs.get(r) {
            return Ok(n.clone());
        }
        let target = self.resolve(r)?;
        let last = r.rsplit('/').next().unwrap_or("ref");
        let name = self.fresh(if last.is_empty() || last == "#" {
            "ref"
        } else {
            last
        })?;
        self.refs.insert(r.to_string(), name.clone());
        let path = r.trim_start_matches('#');
        let outer = self.claim.replace(name.clone());
        self.bare.push(r.to_string());
        let body = self.visit(target, &name, path, depth + 1);
        self.bare.pop();
        self.claim = outer;
        let body = body?;
        if body == name {
            return Ok(name);
        }
        if self.rules.len() >= MAX_RULES {
            return Err(SchemaError::TooLarge);
        }
        self.rules.push((name.clone(), body));
        Ok(name)
    }

    /// Runs `f` for a value whose opening bracket consumes input, so references inside it may
    /// recurse (no left recursion).
    fn after_bracket<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let bare = std::mem::take(&mut self.bare);
        let r = f(self);
        self.bare = bare;
        r
    }

    fn object(
        &mut self,
        obj: &Map<String, Value>,
        hint: &str,
        path: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        self.after_bracket(|g| g.object_body(obj, hint, path, depth))
    }

    fn object_body(
        &mut self,
        obj: &Map<String, Value>,
        hint: &str,
        path: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        let ws = self.prim("ws");
        let props = match obj.get("properties") {
            None => None,
            Some(Value::Object(p)) => Some(p),
            Some(_) => return Err(Self::invalid("properties must be an object", path)),
        };
        let required: Vec<&str> = match obj.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => r
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| Self::invalid("required must list strings", path))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Self::invalid("required must be an array", path)),
        };
        let props = props.filter(|p| !p.is_empty());
        // The value schema of extra keys, if any are allowed.
        let extra: Option<String> = match (obj.get("additionalProperties"), props.is_some()) {
            (Some(Value::Bool(false)), _) | (None, true) => None,
            (None, false) | (Some(Value::Bool(true)), _) => Some(self.prim("value")),
            (Some(s), _) => {
                let e = self.visit(
                    s,
                    &format!("{hint}-additional"),
                    &format!("{path}/additionalProperties"),
                    depth + 1,
                )?;
                Some(group(&e))
            }
        };
        // A pure map (no listed properties) honours minProperties/maxProperties.
        let (min_props, max_props) = if props.is_none() {
            Self::bounds(obj, "minProperties", "maxProperties", path)?
        } else {
            (0, None)
        };
        let counted = min_props > 0 || max_props.is_some();
        let extra_kv = match extra {
            Some(v) if v == "value" && props.is_none() && !counted => {
                return Ok(self.prim("object"));
            }
            Some(v) => {
                let s = self.prim("string");
                Some(self.rule(
                    &format!("{hint}-additional-kv"),
                    format!(r#"{s} ":" {ws} {v}"#),
                )?)
            }
            None => None,
        };
        // Key-value rules, required first (in schema order), then optional.
        let mut req_kvs = Vec::new();
        let mut opt_kvs = Vec::new();
        if let Some(props) = props {
            for name in &required {
                if !props.contains_key(*name) {
                    return Err(Self::invalid(
                        format!("required property {name:?} is not in properties"),
                        path,
                    ));
                }
            }
            for (name, sub) in props {
                let ph = format!("{hint}-{name}");
                let pp = format!("{path}/properties/{}", pointer_token(name));
                let v = self.visit(sub, &ph, &pp, depth + 1)?;
                let key = literal(&Value::String(name.clone()).to_string());
                let kv = self.rule(
                    &format!("{ph}-kv"),
                    format!(r#"{key} {ws} ":" {ws} {}"#, group(&v)),
                )?;
                if required.contains(&name.as_str()) {
                    req_kvs.push(kv);
                } else {
                    opt_kvs.push(kv);
                }
            }
        } else if !required.is_empty() {
            return Err(Self::invalid(
                "required properties without properties",
                path,
            ));
        }
        // tails[j]: the optional properties from j on, each optional, each after a comma,
        // then the extra keys.
        let mut tails: Vec<Option<String>> = vec![None; opt_kvs.len() + 1];
        if let Some(e) = &extra_kv {
            tails[opt_kvs.len()] =
                Some(self.rule(&format!("{hint}-rest"), format!(r#"("," {ws} {e})*"#))?);
        }
        for j in (0..opt_kvs.len()).rev() {
            let mut body = format!(r#"("," {ws} {})?"#, opt_kvs[j]);
            if let Some(t) = &tails[j + 1] {
                body = format!("{body} {t}");
            }
            tails[j] = Some(self.rule(&format!("{hint}-rest"), body)?);
        }
        let inner = if !req_kvs.is_empty() {
            let mut s = req_kvs.join(&format!(r#" "," {ws} "#));
            if let Some(t) = &tails[0] {
                s = format!("{s} {t}");
            }
            s
        } else {
            let mut alts = Vec::new();
            for (i, kv) in opt_kvs.iter().enumerate() {
                alts.push(match &tails[i + 1] {
                    Some(t) => format!("{kv} {t}"),
                    None => kv.clone(),
                });
            }
            if let Some(e) = &extra_kv {
                if counted && props.is_none() {
                    if max_props == Some(0) {
                        return self.rule(hint, format!(r#""{{" {ws} "}}" {ws}"#));
                    }
                    let more = repeat(min_props.saturating_sub(1), max_props.map(|m| m - 1));
                    let list = if max_props == Some(1) {
                        e.clone()
                    } else {
                        format!(r#"{e} ("," {ws} {e}){more}"#)
                    };
                    let body = if min_props == 0 {
                        format!(r#""{{" {ws} ({list})? "}}" {ws}"#)
                    } else {
                        format!(r#""{{" {ws} {list} "}}" {ws}"#)
                    };
                    return self.rule(hint, body);
                }
                alts.push(format!(r#"{e} ("," {ws} {e})*"#));
            }
            if alts.is_empty() {
                String::new()
            } else {
                format!("({})?", alts.join(" | "))
            }
        };
        let body = if inner.is_empty() {
            format!(r#""{{" {ws} "}}" {ws}"#)
        } else {
            format!(r#""{{" {ws} {inner} "}}" {ws}"#)
        };
        self.rule(hint, body)
    }

    fn array(
        &mut self,
        obj: &Map<String, Value>,
        hint: &str,
        path: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        self.after_bracket(|g| g.array_body(obj, hint, path, depth))
    }

    fn array_body(
        &mut self,
        obj: &Map<String, Value>,
        hint: &str,
        path: &str,
        depth: usize,
    ) -> Result<String, SchemaError> {
        let ws = self.prim("ws");
        // `prefixItems`, or draft-07's `items` as an array, is a tuple.
        let (prefix, rest, rest_path) = match (obj.get("prefixItems"), obj.get("items")) {
            (Some(Value::Array(p)), items) => (Some(p), items, "items"),
            (Some(_), _) => return Err(Self::invalid("prefixItems must be an array", path)),
            (None, Some(Value::Array(p))) => {
                (Some(p), obj.get("additionalItems"), "additionalItems")
            }
            (None, items) => (None, items, "items"),
        };
        if let Some(prefix) = prefix {
            let mut parts = Vec::new();
            for (i, s) in prefix.iter().enumerate() {
                let key = if obj.contains_key("prefixItems") {
                    "prefixItems"
                } else {
                    "items"
                };
                let e = self.visit(
                    s,
                    &format!("{hint}-{i}"),
                    &format!("{path}/{key}/{i}"),
                    depth + 1,
                )?;
                parts.push(group(&e));
            }
            let mut inner = parts.join(&format!(r#" "," {ws} "#));
            match rest {
                None | Some(Value::Bool(false)) => {}
                Some(s) => {
                    let e = self.visit(
                        s,
                        &format!("{hint}-item"),
                        &format!("{path}/{rest_path}"),
                        depth + 1,
                    )?;
                    let e = group(&e);
                    inner = if inner.is_empty() {
                        format!(r#"({e} ("," {ws} {e})*)?"#)
                    } else {
                        format!(r#"{inner} ("," {ws} {e})*"#)
                    };
                }
            }
            let body = if inner.is_empty() {
                format!(r#""[" {ws} "]" {ws}"#)
            } else {
                format!(r#""[" {ws} {inner} "]" {ws}"#)
            };
            return self.rule(hint, body);
        }
        let item = match rest {
            None => self.prim("value"),
            Some(s) => {
                let h = format!("{hint}-item");
                let e = self.visit(s, &h, &format!("{path}/items"), depth + 1)?;
                self.rule(&h, e)?
            }
        };
        let (min, max) = Self::bounds(obj, "minItems", "maxItems", path)?;
        // Every item after the first follows a comma: `min - 1` to `max - 1` of them.
        let tail = match (min.saturating_sub(1), max.map(|m| m.saturating_sub(1))) {
            (0, Some(0)) => String::new(),
            (lo, hi) => format!(r#" ("," {ws} {item}){}"#, repeat(lo, hi)),
        };
        let body = match (min, max) {
            (_, Some(0)) => format!(r#""[" {ws} "]" {ws}"#),
            (0, _) => format!(r#""[" {ws} ({item}{tail})? "]" {ws}"#),
            _ => format!(r#""[" {ws} {item}{tail} "]" {ws}"#),
        };
        self.rule(hint, body)
    }
}
