//! Chat templates: the GGUF's Jinja template rendered with minijinja (plus the shims Hugging
//! Face templates expect), llama.cpp's built-in templates by name, and a per-architecture
//! fallback for models without a template.
//!
//! Templates are untrusted input: rendering is bounded in time (minijinja fuel), recursion and
//! output size.

use std::fmt::Write as _;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, syntax::SyntaxConfig};
use serde_json::{Map, Value as Json};

use crate::error::TemplateError;
use crate::ffi;
use crate::model::Model;

/// Instructions a template may execute (minijinja fuel): far more than any real chat template
/// needs for a long conversation, far less than a runaway loop.
const FUEL: u64 = 10_000_000;
/// Largest rendered prompt accepted.
const MAX_OUTPUT: usize = 64 << 20;
/// Deepest template recursion (macros calling themselves).
const MAX_RECURSION: usize = 200;

/// One chat message: `role`, `content`, and any other fields a template reads
/// (`tool_calls`, `name`, `tool_call_id`, `thinking`...).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage(pub Map<String, Json>);

impl ChatMessage {
    /// A message with a role and text content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        let mut m = Map::new();
        m.insert("role".into(), Json::String(role.into()));
        m.insert("content".into(), Json::String(content.into()));
        ChatMessage(m)
    }

    /// The role.
    pub fn role(&self) -> &str {
        self.0.get("role").and_then(Json::as_str).unwrap_or("")
    }

    /// The content as text (empty when absent or not a string).
    pub fn content(&self) -> &str {
        self.0.get("content").and_then(Json::as_str).unwrap_or("")
    }
}

/// What a template renders.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Tool definitions (OpenAI/Hugging Face shape), if any.
    pub tools: Option<Json>,
    /// End with the start of an assistant turn.
    pub add_generation_prompt: bool,
    /// More variables for the template (`enable_thinking`, `reasoning_effort`, ...).
    pub extra: Map<String, Json>,
    /// The date `strftime_now` uses (default: now, local time).
    pub now: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Clone)]
enum Kind {
    Jinja(String),
    Builtin(String),
}

/// A chat template ready to render.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    kind: Kind,
    bos: String,
    eos: String,
}

/// Architectures whose GGUFs often carry no template, and llama.cpp's built-in template for them.
const ARCH_FALLBACK: &[(&str, &str)] = &[
    ("gemma", "gemma"),
    ("gemma2", "gemma"),
    ("gemma3", "gemma"),
    ("gemma3n", "gemma"),
    ("phi3", "phi3"),
];

impl ChatTemplate {
    /// A Jinja template (as stored in GGUF files), with the BOS/EOS text it may refer to.
    ///
    /// # Errors
    /// [`TemplateError::Syntax`] when it does not parse.
    pub fn jinja(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<ChatTemplate, TemplateError> {
        let source = strip_generation_tags(&source.into());
        let env = environment(None);
        env.template_from_str(&source)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        Ok(ChatTemplate {
            kind: Kind::Jinja(source),
            bos: bos_token.into(),
            eos: eos_token.into(),
        })
    }

    /// One of llama.cpp's built-in templates by name (`chatml`, `llama3`, `gemma`, ...).
    ///
    /// # Errors
    /// [`TemplateError::UnknownBuiltin`] when llama.cpp does not know the name.
    pub fn builtin(name: &str) -> Result<ChatTemplate, TemplateError> {
        ffi::chat_apply_builtin(name, &[("user".into(), "x".into())], true)
            .ok_or_else(|| TemplateError::UnknownBuiltin(name.to_string()))?;
        Ok(ChatTemplate {
            kind: Kind::Builtin(name.to_string()),
            bos: String::new(),
            eos: String::new(),
        })
    }

    /// The template for `model`: its GGUF Jinja template if it has one; else llama.cpp's
    /// built-in template for its architecture (gemma for gemma3, for example); else chatml.
    ///
    /// # Errors
    /// [`TemplateError::Syntax`] when the model's template does not parse.
    pub fn for_model(model: &Model) -> Result<ChatTemplate, TemplateError> {
        let vocab = model.vocab();
        let text = |t: Option<i32>| {
            t.and_then(|t| vocab.token_bytes(t, true).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        if let Some(src) = model.chat_template(None) {
            // Some GGUFs store a built-in name instead of Jinja.
            if !src.contains("{%")
                && !src.contains("{{")
                && let Ok(t) = ChatTemplate::builtin(src.trim())
            {
                return Ok(t);
            }
            return ChatTemplate::jinja(src, text(vocab.bos()), text(vocab.eos()));
        }
        let arch = model.architecture().unwrap_or_default();
        let name = ARCH_FALLBACK
            .iter()
            .find(|(a, _)| *a == arch)
            .map_or("chatml", |(_, n)| n);
        ChatTemplate::builtin(name)
    }

    /// Whether this is a Jinja template (else a llama.cpp built-in).
    pub fn is_jinja(&self) -> bool {
        matches!(self.kind, Kind::Jinja(_))
    }

    /// The Jinja source, or the built-in name.
    pub fn source(&self) -> &str {
        match &self.kind {
            Kind::Jinja(s) | Kind::Builtin(s) => s,
        }
    }

    /// Renders a conversation into a prompt.
    ///
    /// # Errors
    /// [`TemplateError::Render`] when the template raises (e.g. `raise_exception`) or fails,
    /// [`TemplateError::Limit`] when it runs past its time or output bounds.
    pub fn render(&self, req: &ChatRequest) -> Result<String, TemplateError> {
        let out = match &self.kind {
            Kind::Builtin(name) => {
                let msgs: Vec<(String, String)> = req
                    .messages
                    .iter()
                    .map(|m| (m.role().to_string(), m.content().to_string()))
                    .collect();
                ffi::chat_apply_builtin(name, &msgs, req.add_generation_prompt)
                    .ok_or_else(|| TemplateError::UnknownBuiltin(name.clone()))?
            }
            Kind::Jinja(src) => {
                let env = environment(req.now);
                let tmpl = env
                    .template_from_str(src)
                    .map_err(|e| TemplateError::Syntax(describe(&e)))?;
                let mut ctx = req.extra.clone();
                ctx.insert(
                    "messages".into(),
                    Json::Array(
                        req.messages
                            .iter()
                            .map(|m| Json::Object(m.0.clone()))
                            .collect(),
                    ),
                );
                if let Some(t) = &req.tools {
                    ctx.insert("tools".into(), t.clone());
                }
                ctx.insert(
                    "add_generation_prompt".into(),
                    Json::Bool(req.add_generation_prompt),
                );
                ctx.entry("bos_token")
                    .or_insert_with(|| Json::String(self.bos.clone()));
                ctx.entry("eos_token")
                    .or_insert_with(|| Json::String(self.eos.clone()));
                tmpl.render(Value::from(minijinja::value::Serde(&ctx)))
                    .map_err(|e| match e.kind() {
                        ErrorKind::OutOfFuel => {
                            TemplateError::Limit("the template ran too long".into())
                        }
                        _ => TemplateError::Render(describe(&e)),
                    })?
            }
        };
        if out.len() > MAX_OUTPUT {
            return Err(TemplateError::Limit(format!(
                "rendered prompt of {} bytes exceeds {MAX_OUTPUT}",
                out.len()
            )));
        }
        Ok(out)
    }
}

fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let _ = write!(s, ": {inner}");
        src = inner.source();
    }
    s
}

/// The environment Hugging Face templates expect: trim/lstrip blocks, Python string and dict
/// methods, Python-style `tojson`, `raise_exception` and `strftime_now`.
fn environment(now: Option<chrono::NaiveDateTime>) -> Environment<'static> {
    let mut env = Environment::new();
    let mut syntax = SyntaxConfig::builder();
    syntax.trim_blocks(true).lstrip_blocks(true);
    if let Ok(cfg) = syntax.build() {
        env.set_syntax(cfg);
    }
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(MAX_RECURSION);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_function(
        "strftime_now",
        move |fmt: String| -> Result<String, Error> {
            let now = now.unwrap_or_else(|| chrono::Local::now().naive_local());
            let mut out = String::new();
            write!(out, "{}", now.format(&fmt)).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("bad strftime format {fmt:?}"),
                )
            })?;
            Ok(out)
        },
    );
    env
}

/// Removes Hugging Face's `{% generation %}`/`{% endgeneration %}` (an assistant-mask marker
/// that minijinja does not know) by turning them into an always-true `if` block, keeping their
/// whitespace control.
fn strip_generation_tags(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find("{%") {
        let Some(len) = rest[start..].find("%}") else {
            break;
        };
        let tag = &rest[start..start + len + 2];
        let inner = tag[2..tag.len() - 2]
            .trim_matches(|c: char| c == '-' || c == '+')
            .trim();
        out.push_str(&rest[..start]);
        let ws = |c: &str| match c {
            "-" => "-",
            "+" => "+",
            _ => "",
        };
        let (open_ws, close_ws) = (ws(&tag[2..3]), ws(&tag[tag.len() - 3..tag.len() - 2]));
        match inner {
            "generation" => {
                let _ = write!(out, "{{%{} if true {}%}}", open_ws, close_ws);
            }
            "endgeneration" => {
                let _ = write!(out, "{{%{} endif {}%}}", open_ws, close_ws);
            }
            _ => out.push_str(tag),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// `tojson` as Hugging Face defines it: Python's `json.dumps` with `ensure_ascii=False` by
/// default, `", "`/`": "` separators, optional `indent`, `separators`, `sort_keys`; no HTML
/// escaping.
fn tojson(value: Value, indent: Option<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let indent = match kwargs.get::<Option<Value>>("indent")?.or(indent) {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match i64::try_from(v.clone()) {
            Ok(n) => Some(" ".repeat(n.clamp(0, 64) as usize)),
            Err(_) => Some(v.as_str().map(str::to_string).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    "indent must be an int or a string",
                )
            })?),
        },
    };
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = match separators.as_deref() {
        Some([a, b]) => (a.clone(), b.clone()),
        Some(_) => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "separators must be a pair",
            ));
        }
        None if indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    let style = JsonStyle {
        indent,
        item_sep,
        key_sep,
        ensure_ascii,
        sort_keys,
    };
    write_json(&mut out, &json, &style, 0);
    Ok(out)
}

struct JsonStyle {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    ensure_ascii: bool,
    sort_keys: bool,
}

fn write_json(out: &mut String, v: &Json, s: &JsonStyle, depth: usize) {
    let newline = |out: &mut String, d: usize| {
        if let Some(ind) = &s.indent {
            out.push('\n');
            for _ in 0..d {
                out.push_str(ind);
            }
        }
    };
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                // Python prints floats with a fraction or exponent (1.0, 1e+16).
                let mut t = format!("{f:?}");
                if let Some(pos) = t.find('e')
                    && !t[pos + 1..].starts_with('-')
                {
                    t.insert(pos + 1, '+');
                }
                out.push_str(&t);
            } else {
                let _ = write!(out, "{n}");
            }
        }
        Json::String(st) => write_json_string(out, st, s.ensure_ascii),
        Json::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(&s.item_sep);
                }
                newline(out, depth + 1);
                write_json(out, item, s, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Json::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Json)> = m.iter().collect();
            if s.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&s.item_sep);
                }
                newline(out, depth + 1);
                write_json_string(out, k, s.ensure_ascii);
                out.push_str(&s.key_sep);
                write_json(out, item, s, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

fn write_json_string(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if ensure_ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, ctx: Json) -> String {
        let env = environment(None);
        env.template_from_str(src)
            .unwrap()
            .render(Value::from(minijinja::value::Serde(&ctx)))
            .unwrap()
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let ctx = serde_json::json!({"x": {"a": "<&'>", "b": [1, 2.5, true, null], "c": "é\n"}});
        assert_eq!(
            render("{{ x | tojson }}", ctx.clone()),
            r#"{"a": "<&'>", "b": [1, 2.5, true, null], "c": "é\n"}"#
        );
        assert_eq!(
            render("{{ x | tojson(indent=2) }}", ctx.clone()),
            "{\n  \"a\": \"<&'>\",\n  \"b\": [\n    1,\n    2.5,\n    true,\n    null\n  ],\n  \"c\": \"é\\n\"\n}"
        );
        assert_eq!(
            render("{{ x.c | tojson(ensure_ascii=true) }}", ctx.clone()),
            r#""\u00e9\n""#
        );
        assert_eq!(
            render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}", ctx),
            r#"{"a": 2, "b": 1}"#
        );
    }

    #[test]
    fn generation_tags_become_plain_blocks() {
        assert_eq!(
            strip_generation_tags("a{%- generation -%} b {%- endgeneration %}c"),
            "a{%- if true -%} b {%- endif %}c"
        );
        assert_eq!(
            render(
                &strip_generation_tags("[{% generation %}x{% endgeneration %}]"),
                serde_json::json!({})
            ),
            "[x]"
        );
    }

    #[test]
    fn raise_exception_is_an_error_and_loops_are_bounded() {
        let t = ChatTemplate::jinja("{{ raise_exception('no system role') }}", "", "").unwrap();
        let e = t.render(&ChatRequest::default()).unwrap_err();
        assert!(
            matches!(e, TemplateError::Render(ref m) if m.contains("no system role")),
            "{e}"
        );
        let t = ChatTemplate::jinja(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        assert!(matches!(
            t.render(&ChatRequest::default()),
            Err(TemplateError::Limit(_))
        ));
        let t = ChatTemplate::jinja(
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "",
            "",
        )
        .unwrap();
        assert!(t.render(&ChatRequest::default()).is_err());
        assert!(matches!(
            ChatTemplate::jinja("{% if %}", "", ""),
            Err(TemplateError::Syntax(_))
        ));
    }

    #[test]
    fn strftime_now_uses_the_injected_clock() {
        let t = ChatTemplate::jinja("{{ strftime_now('%d %b %Y') }}", "", "").unwrap();
        let now = chrono::NaiveDate::from_ymd_opt(2026, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap();
        assert_eq!(
            t.render(&ChatRequest {
                now: Some(now),
                ..ChatRequest::default()
            })
            .unwrap(),
            "02 Jan 2026"
        );
    }
}
