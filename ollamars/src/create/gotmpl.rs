//! A structural check of Go template text, so that `/api/create` refuses a TEMPLATE that cannot
//! parse with Ollama's 400 `template error: …` before anything is written. It checks what a
//! template parser needs to be well formed: every `{{` has its `}}` (string literals and
//! comments skipped), comments are closed, and `if`/`range`/`with`/`define`/`block` nest
//! properly with `else` and `end`. It does not type-check expressions.

/// Why a template is malformed (shown after `template error: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: :{line}: {what}")]
pub struct TemplateError {
    /// 1-based line of the problem.
    pub line: usize,
    /// What is wrong.
    pub what: String,
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].bytes().filter(|&b| b == b'\n').count() + 1
}

/// Finds the end of the action starting after `{{` at `start`; returns the index of `}}`.
fn action_end(text: &str, start: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = start;
    while i + 1 < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    if b[i.min(b.len() - 1)] == b'\n' {
                        return None;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'\'' => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Checks that `text` is a well-formed Go template.
pub fn check(text: &str) -> Result<(), TemplateError> {
    let mut stack: Vec<(&str, usize)> = Vec::new();
    let mut pos = 0;
    while let Some(off) = text[pos..].find("{{") {
        let open = pos + off;
        let line = line_of(text, open);
        let err = |what: &str| TemplateError {
            line,
            what: what.to_string(),
        };
        let mut body_start = open + 2;
        if text[body_start..].starts_with("- ") {
            body_start += 2;
        }
        let trimmed_start = text[body_start..].trim_start();
        if trimmed_start.starts_with("/*") {
            let from = body_start + (text[body_start..].len() - trimmed_start.len()) + 2;
            let close = text[from..]
                .find("*/")
                .ok_or_else(|| err("unclosed comment"))?;
            let after = from + close + 2;
            let rest = text[after..].trim_start_matches([' ']);
            let rest = rest.strip_prefix('-').unwrap_or(rest).trim_start();
            if !rest.starts_with("}}") {
                return Err(err("comment ends before closing delimiter"));
            }
            pos = text.len() - rest.len() + 2;
            continue;
        }
        let close = action_end(text, body_start).ok_or_else(|| err("unclosed action"))?;
        let mut body = &text[body_start..close];
        if let Some(b) = body.strip_suffix(" -") {
            body = b;
        }
        let word = body.split_whitespace().next().unwrap_or("");
        let word = word.split('(').next().unwrap_or(word);
        match word {
            "" => return Err(err("missing value for command")),
            "if" | "range" | "with" | "define" | "block" => stack.push((word, line)),
            "else" => match stack.last() {
                Some(("if" | "range" | "with", _)) => {}
                _ => return Err(err("unexpected {{else}}")),
            },
            // The guard pops the innermost block; an `end` with none open is an error.
            "end" if stack.pop().is_none() => return Err(err("unexpected {{end}}")),
            "break" | "continue" if !stack.iter().any(|(w, _)| *w == "range") => {
                return Err(err(&format!("{{{{{word}}}}} outside {{{{range}}}}")));
            }
            _ => {}
        }
        pos = close + 2;
    }
    if let Some((w, line)) = stack.last() {
        return Err(TemplateError {
            line: *line,
            what: format!("unexpected EOF in {{{{{w}}}}}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn well_formed_templates_pass() {
        for t in [
            "",
            "plain text",
            "{{ .Prompt }}",
            "{{- if .System }}<|system|>{{ .System }}{{ end -}}",
            "{{ range $i, $m := .Messages }}{{ if eq $m.Role \"user\" }}U{{ else if eq $m.Role \"x}}\" }}X{{ else }}A{{ end }}{{ end }}",
            "{{/* a comment with }} inside */}}{{ .Prompt }}",
            "{{- /* trimmed comment */ -}}",
            "{{ range .Messages }}{{ if .Content }}{{ continue }}{{ end }}{{ break }}{{ end }}",
            "{{ define \"x\" }}y{{ end }}{{ template \"x\" . }}",
            "{{ `raw }} string` }}",
            "{{ with .Tools }}{{ json . }}{{ end }}",
        ] {
            assert_eq!(check(t), Ok(()), "{t:?}");
        }
    }

    #[test]
    fn malformed_templates_fail_with_a_line() {
        for (t, line) in [
            ("{{ .Prompt", 1),
            ("a\n{{ if .System }}x", 2),
            ("{{ end }}", 1),
            ("x\n\n{{ else }}", 3),
            ("{{ }}", 1),
            ("{{/* open", 1),
            ("{{ break }}", 1),
            ("{{ \"unterminated }}", 1),
            ("{{ range .M }}{{ if .X }}{{ end }}", 1),
        ] {
            let e = check(t).expect_err(t);
            assert_eq!(e.line, line, "{t:?}: {e}");
            assert!(e.to_string().starts_with("template: :"), "{e}");
        }
    }
}
