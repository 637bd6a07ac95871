//! Tool calls parsed from streamed model output (spec §7.4): text up to the template's tool tag
//! (e.g. `<tool_call>`, `[TOOL_CALLS]`, or `{` for bare JSON) is content; after it, each
//! complete JSON object naming a supplied tool becomes one whole call, with `arguments` as an
//! object, an id `call_` + 8 lowercase alphanumerics, and an increasing `function.index`.
//! Text that may be the start of the tag is held back until it is known; a tag followed by
//! something that is not a call is given back as content.

pub use crate::api::validate::ToolChoice;
use crate::template::{ToolCall, ToolCallFunction};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// The parser for one response.
#[derive(Debug, Clone)]
pub struct ToolParser {
    tag: String,
    names: Vec<String>,
    buf: String,
    /// After the tag: collecting JSON.
    in_call: bool,
    index: usize,
    /// Whitespace after a call, held back.
    ws_hold: String,
    /// Just after a call: a closing tag (`</tool_call>`) or separator may follow, possibly
    /// arriving in later pieces.
    after_call: bool,
}

/// Output of one step: content to emit and the calls completed.
pub type Parsed = (String, Vec<ToolCall>);

/// A fresh call id: `call_` and 8 lowercase alphanumerics.
pub fn call_id() -> String {
    use sha2::{Digest, Sha256};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let id: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("call_{id}")
}

/// Where the first complete JSON value in `s` (which starts with `{` or `[`) ends, if it does.
fn json_end(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The arguments of a call object: `arguments` or `parameters` (an object, or a string holding
/// one), else the object minus its name.
fn arguments(obj: &Map<String, Value>) -> Map<String, Value> {
    for key in ["arguments", "parameters"] {
        match obj.get(key) {
            Some(Value::Object(m)) => return m.clone(),
            Some(Value::String(s)) => {
                if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(s) {
                    return m;
                }
            }
            _ => {}
        }
    }
    let mut rest = obj.clone();
    rest.remove("name");
    rest
}

impl ToolParser {
    /// A parser for `tag` and the names of the supplied tools.
    pub fn new(tag: &str, names: Vec<String>) -> ToolParser {
        ToolParser {
            tag: tag.trim().to_string(),
            names,
            buf: String::new(),
            in_call: false,
            index: 0,
            ws_hold: String::new(),
            after_call: false,
        }
    }

    /// The calls in one JSON value (an object, or a list of them); `None` if it is not a call
    /// of a supplied tool.
    fn calls_in(&mut self, v: &Value) -> Option<Vec<ToolCall>> {
        let items: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let mut out = Vec::new();
        for item in items {
            let obj = item.as_object()?;
            let inner = match obj.get("function") {
                Some(Value::Object(f)) => f,
                _ => obj,
            };
            let name = inner.get("name")?.as_str()?.to_string();
            if !self.names.contains(&name) {
                return None;
            }
            out.push(ToolCall {
                id: call_id(),
                function: ToolCallFunction {
                    index: self.index + out.len(),
                    name,
                    arguments: arguments(inner),
                },
            });
        }
        self.index += out.len();
        Some(out)
    }

    /// Adds streamed text.
    pub fn push(&mut self, text: &str) -> Parsed {
        self.buf.push_str(text);
        let mut content = String::new();
        let mut calls = Vec::new();
        loop {
            if self.after_call {
                // Drop separators and a closing tag after a call; hold back what may still
                // become one.
                let t = self
                    .buf
                    .trim_start()
                    .trim_start_matches([',', ';'])
                    .trim_start();
                if t.is_empty() {
                    return (content, calls);
                }
                if t.starts_with("</") {
                    match t.find('>') {
                        Some(i) => {
                            self.buf = t[i + 1..].to_string();
                            self.after_call = false;
                            continue;
                        }
                        None if t.len() < 32 => return (content, calls),
                        None => {}
                    }
                } else if t == "<" {
                    return (content, calls);
                }
                self.after_call = false;
            }
            if !self.in_call {
                match self.buf.find(self.tag.as_str()) {
                    Some(at) => {
                        // Blanks between two calls are dropped; text before a call is content.
                        let pre = &self.buf[..at];
                        if self.index > 0 && pre.trim().is_empty() {
                            self.ws_hold.clear();
                        } else {
                            content.push_str(&std::mem::take(&mut self.ws_hold));
                            content.push_str(pre);
                        }
                        // A bare-JSON tag (`{`, `[`) is part of the call itself.
                        let skip = if self.tag.ends_with(['{', '[']) {
                            self.tag.len() - 1
                        } else {
                            self.tag.len()
                        };
                        self.buf.drain(..at + skip);
                        self.in_call = true;
                    }
                    None => {
                        let keep = (1..self.tag.len().min(self.buf.len() + 1))
                            .rev()
                            .find(|&n| {
                                self.tag.is_char_boundary(n) && self.buf.ends_with(&self.tag[..n])
                            })
                            .unwrap_or(0);
                        let emit = self.buf.len() - keep;
                        let text: String = self.buf.drain(..emit).collect();
                        // After a call, whitespace is held back: it only counts as content if
                        // text follows.
                        if self.index > 0 && text.trim().is_empty() {
                            self.ws_hold.push_str(&text);
                        } else {
                            content.push_str(&std::mem::take(&mut self.ws_hold));
                            content.push_str(&text);
                        }
                        return (content, calls);
                    }
                }
            }
            // In a call: skip whitespace, then expect JSON.
            let t = self.buf.trim_start();
            if t.is_empty() {
                return (content, calls);
            }
            if !t.starts_with(['{', '[']) {
                // Not a call after all: give the text back.
                let rest = std::mem::take(&mut self.buf);
                self.in_call = false;
                if calls.is_empty() && self.index == 0 {
                    content.push_str(&self.tag);
                }
                content.push_str(&rest);
                return (content, calls);
            }
            let Some(end) = json_end(t) else {
                return (content, calls);
            };
            let (json, after) = (t[..end].to_string(), t[end..].to_string());
            match serde_json::from_str::<Value>(&json)
                .ok()
                .and_then(|v| self.calls_in(&v))
            {
                Some(found) => {
                    calls.extend(found);
                    self.buf = after;
                    self.in_call = false;
                    self.after_call = true;
                }
                None => {
                    content.push_str(&json);
                    self.buf = after;
                    self.in_call = false;
                }
            }
        }
    }

    /// Ends the response: held-back text that never became a call is content.
    pub fn finish(&mut self) -> Parsed {
        let mut rest = std::mem::take(&mut self.buf);
        if self.after_call {
            // Whatever was held back after the last call (a partial closing tag, blanks).
            self.after_call = false;
            let t = rest.trim_start();
            if t.is_empty() || t.starts_with("</") || t == "<" {
                rest.clear();
            }
        }
        if self.in_call && !rest.trim().is_empty() {
            // An unfinished call: give it back as text.
            let tag = if self.tag.ends_with(['{', '[']) {
                self.tag[..self.tag.len() - 1].to_string()
            } else {
                self.tag.clone()
            };
            return (tag + &rest, Vec::new());
        }
        (if self.in_call { String::new() } else { rest }, Vec::new())
    }
}

/// The tool-call tag for a model rendered natively (no Go template), from its template text.
pub fn native_tag(template_text: &str) -> &'static str {
    for tag in [
        "<tool_call>",
        "[TOOL_CALLS]",
        "<|python_tag|>",
        "<|tool_call|>",
        "<toolcall>",
    ] {
        if template_text.contains(tag) {
            return tag;
        }
    }
    "{"
}

/// The grammar that forces a call (`Required` or `Function`): the tool tag, then
/// `{"name": ..., "arguments": ...}` with the arguments constrained by the tool's parameter
/// schema. `None` for `Auto` and `None`.
///
/// # Errors
/// A message for an unknown tool name or a parameter schema the grammar cannot express.
pub fn choice_grammar(
    tools: &[crate::template::Tool],
    choice: &ToolChoice,
    tag: &str,
) -> Result<Option<String>, String> {
    let chosen: Vec<&crate::template::Tool> = match choice {
        ToolChoice::Auto | ToolChoice::None => return Ok(None),
        ToolChoice::Required => tools.iter().collect(),
        ToolChoice::Function(name) => {
            let t: Vec<_> = tools.iter().filter(|t| &t.function.name == name).collect();
            if t.is_empty() {
                return Err(format!("tool_choice names {name:?}, which is not in tools"));
            }
            t
        }
    };
    if chosen.is_empty() {
        return Err("tool_choice requires tools".into());
    }
    let alternatives: Vec<Value> = chosen
        .iter()
        .map(|t| {
            let params = serde_json::to_value(&t.function.parameters).unwrap_or(Value::Bool(true));
            let params = match params {
                Value::Object(mut o) => {
                    o.retain(|_, v| !v.is_null());
                    if o.get("properties")
                        .is_none_or(|p| p.as_object().is_some_and(Map::is_empty))
                    {
                        serde_json::json!({"type": "object"})
                    } else {
                        Value::Object(o)
                    }
                }
                other => other,
            };
            serde_json::json!({"type": "object",
                "properties": {"name": {"const": t.function.name}, "arguments": params},
                "required": ["name", "arguments"], "additionalProperties": false})
        })
        .collect();
    let schema = if alternatives.len() == 1 {
        alternatives.into_iter().next().unwrap_or_default()
    } else {
        serde_json::json!({ "anyOf": alternatives })
    };
    // A bare-JSON tag (`{`) is part of the call itself.
    let prefix = tag.trim().trim_end_matches(['{', '[']).trim_end();
    crate::grammar::prefixed(prefix, &schema)
        .map(Some)
        .map_err(|e| format!("tool parameters: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(p: &mut ToolParser, pieces: &[&str]) -> (String, Vec<ToolCall>) {
        let (mut c, mut calls) = (String::new(), Vec::new());
        for piece in pieces {
            let (a, b) = p.push(piece);
            c += &a;
            calls.extend(b);
        }
        let (a, b) = p.finish();
        c += &a;
        calls.extend(b);
        (c, calls)
    }

    fn names() -> Vec<String> {
        vec!["get_weather".into(), "add".into()]
    }

    #[test]
    fn tagged_calls_across_pieces() {
        let mut p = ToolParser::new("<tool_call>", names());
        let (c, calls) = run(
            &mut p,
            &[
                "Sure. <tool_",
                "call>\n{\"name\": \"get_weather\", \"argu",
                "ments\": {\"city\": \"Paris\"}}\n</tool_call>",
                "<tool_call>{\"name\":\"add\",\"arguments\":\"{\\\"a\\\":1,\\\"b\\\":2}\"}</tool_call>",
            ],
        );
        assert_eq!(c, "Sure. ");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].function.name, "get_weather");
        assert_eq!(
            calls[0].function.arguments,
            json!({"city": "Paris"}).as_object().unwrap().clone()
        );
        assert_eq!(calls[0].function.index, 0);
        assert_eq!(calls[1].function.index, 1);
        assert_eq!(
            calls[1].function.arguments,
            json!({"a": 1, "b": 2}).as_object().unwrap().clone()
        );
        for c in &calls {
            assert!(c.id.starts_with("call_") && c.id.len() == 13, "{}", c.id);
            assert!(
                c.id[5..]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            );
        }
        assert_ne!(calls[0].id, calls[1].id);
    }

    #[test]
    fn a_closing_tag_in_later_pieces_is_dropped() {
        let mut p = ToolParser::new("<tool_call>", names());
        let (content, calls) = run(
            &mut p,
            &[
                "<tool_call>",
                r#"{"name": "get_weather", "arguments": {"city": "Paris"}}"#,
                "</",
                "tool",
                "_call",
                ">",
            ],
        );
        assert_eq!(calls.len(), 1);
        assert_eq!(content, "");
        let mut p = ToolParser::new("<tool_call>", names());
        let (content, calls) = run(
            &mut p,
            &[
                "<tool_call>",
                r#"{"name": "get_weather", "arguments": {}}"#,
                "\n</tool",
                "_call>\n",
                "<tool_call>",
                r#"{"name": "add", "arguments": {}}"#,
                "</tool_call> done",
            ],
        );
        assert_eq!(calls.len(), 2);
        assert_eq!(content, " done");
    }

    #[test]
    fn bare_json_and_lists() {
        let mut p = ToolParser::new("{", names());
        let (c, calls) = run(&mut p, &["{\"name\": \"add\", \"parameters\": {\"a\": 2}}"]);
        assert_eq!(c, "");
        assert_eq!(calls[0].function.arguments["a"], 2);
        let mut p = ToolParser::new("[TOOL_CALLS]", names());
        let (c, calls) = run(
            &mut p,
            &[
                "[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"x\"}}]",
            ],
        );
        assert_eq!((c.as_str(), calls.len()), ("", 2));
    }

    #[test]
    fn text_that_is_not_a_call_stays_content() {
        let mut p = ToolParser::new("{", names());
        let (c, calls) = run(&mut p, &["Use {\"x\": 1} as data."]);
        assert!(calls.is_empty());
        assert_eq!(c, "Use {\"x\": 1} as data.");
        let mut p = ToolParser::new("<tool_call>", names());
        let (c, calls) = run(
            &mut p,
            &["<tool_call>{\"name\": \"unknown\", \"arguments\": {}}"],
        );
        assert!(calls.is_empty());
        assert!(c.contains("unknown"));
        let mut p = ToolParser::new("<tool_call>", names());
        let (c, calls) = run(&mut p, &["a <tool", " b"]);
        assert_eq!((c.as_str(), calls.len()), ("a <tool b", 0));
        let mut p = ToolParser::new("<tool_call>", names());
        let (c, _) = run(&mut p, &["<tool_call>{\"name\": \"add\", \"argum"]);
        assert_eq!(c, "<tool_call>{\"name\": \"add\", \"argum");
    }

    #[test]
    fn braces_inside_strings_do_not_confuse() {
        assert_eq!(json_end(r#"{"a": "}{\"}"}rest"#), Some(14));
        assert_eq!(json_end("{\"a\": [1, {\"b\": 2}]}x"), Some(20));
        assert_eq!(json_end("{\"a\": "), None);
    }

    #[test]
    fn native_tags() {
        assert_eq!(native_tag("... <tool_call> ..."), "<tool_call>");
        assert_eq!(native_tag("plain"), "{");
    }
}
