//! A quick pass over the template source before gotmpl parses it.
//!
//! It follows the block structure (`if`/`range`/`with`/`define`/`block` … `end`) to
//! 1. bound nesting before any recursive code sees the template: gotmpl's parser limits nested
//!    bodies but not `else if` chains, and a chain of thousands would exhaust the stack;
//! 2. report the structural errors Go's parser reports and gotmpl accepts silently (a stray
//!    `{{end}}` drops the rest of the template, an unclosed block is cut short).
//!
//! It reads actions the way Go's lexer does (quoted, raw and character literals, comments, trim
//! markers). Where it loses track (an unterminated action) it stops and lets gotmpl report.

/// Deepest nesting accepted, counting each `else if` / `else with` as a level (as the parse tree
/// does).
pub const MAX_NESTING: usize = 100;

/// What the scan found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Line of the first action that nests deeper than [`MAX_NESTING`].
    pub too_deep: Option<usize>,
    /// The first structural error Go would report: (line, message).
    pub structure: Option<(usize, String)>,
}

/// One open block.
struct Frame {
    keyword: &'static str,
    /// Levels added by `else if` / `else with` in this block.
    chained: usize,
}

/// Scans `src` for nesting depth and block structure.
pub(crate) fn scan(src: &str) -> Scan {
    let bytes = src.as_bytes();
    let mut out = Scan::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    let mut depth = 0usize;
    while let Some(found) = find(bytes, b"{{", pos) {
        line += count_newlines(&bytes[pos..found]);
        let action_line = line;
        let mut i = found + 2;
        // A left trim marker is "-" followed by white space.
        if bytes.get(i) == Some(&b'-') && bytes.get(i + 1).is_some_and(|b| is_space(*b)) {
            i += 1;
        }
        while bytes.get(i).is_some_and(|b| is_space(*b)) {
            i += 1;
        }
        if bytes[i..].starts_with(b"/*") {
            let Some(end) = find(bytes, b"*/", i + 2) else {
                return out;
            };
            let Some(close) = find(bytes, b"}}", end + 2) else {
                return out;
            };
            line += count_newlines(&bytes[found..close + 2]);
            pos = close + 2;
            continue;
        }
        let word = keyword_at(bytes, i);
        let Some(close) = action_end(bytes, i) else {
            return out;
        };
        line += count_newlines(&bytes[found..close + 2]);
        pos = close + 2;
        let mut fail = |message: String| {
            if out.structure.is_none() {
                out.structure = Some((action_line, message));
            }
        };
        match word {
            "if" | "range" | "with" | "block" | "define" => {
                if word == "define" && !stack.is_empty() {
                    fail("unexpected <define> in command".to_string());
                }
                let keyword = match word {
                    "if" => "if",
                    "range" => "range",
                    "with" => "with",
                    "block" => "block",
                    _ => "define",
                };
                stack.push(Frame {
                    keyword,
                    chained: 0,
                });
                depth += 1;
            }
            "else" => match stack.last_mut() {
                Some(frame) if matches!(frame.keyword, "if" | "range" | "with") => {
                    let after = skip_spaces(bytes, i + 4);
                    if matches!(keyword_at(bytes, after), "if" | "with") {
                        frame.chained += 1;
                        depth += 1;
                    }
                }
                _ => fail("unexpected {{else}}".to_string()),
            },
            "end" => match stack.pop() {
                Some(frame) => depth -= 1 + frame.chained,
                None => fail("unexpected {{end}}".to_string()),
            },
            "break" | "continue" => {
                let in_range = stack
                    .iter()
                    .rev()
                    .take_while(|f| f.keyword != "define" && f.keyword != "block")
                    .any(|f| f.keyword == "range");
                if !in_range {
                    fail(format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
            }
            _ => {}
        }
        if depth > MAX_NESTING && out.too_deep.is_none() {
            out.too_deep = Some(action_line);
            return out;
        }
    }
    line += count_newlines(&bytes[pos..]);
    if !stack.is_empty() && out.structure.is_none() {
        out.structure = Some((line, "unexpected EOF".to_string()));
    }
    out
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| is_space(*b)) {
        i += 1;
    }
    i
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count()
}

/// The first index at or after `from` where `needle` starts.
fn find(bytes: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The keyword starting at `i`, or "" if the action does not start with one.
fn keyword_at(bytes: &[u8], i: usize) -> &'static str {
    let end = bytes[i.min(bytes.len())..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .map_or(bytes.len(), |p| p + i);
    match &bytes[i.min(end)..end] {
        b"if" => "if",
        b"range" => "range",
        b"with" => "with",
        b"block" => "block",
        b"define" => "define",
        b"else" => "else",
        b"end" => "end",
        b"break" => "break",
        b"continue" => "continue",
        _ => "",
    }
}

/// The index of the `}}` closing the action whose body starts at `i`, skipping literals.
fn action_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    while i < bytes.len() {
        match bytes[i] {
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            quote @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    match *bytes.get(i)? {
                        b'\\' => i += 2,
                        b'\n' => return None,
                        b if b == quote => break,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'`' => {
                i = find(bytes, b"`", i + 1)? + 1;
            }
            _ => i += 1,
        }
    }
    None
}
