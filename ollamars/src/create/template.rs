//! Template auto-detection for GGUF imports (spec §4.5).
//!
//! Ollama compares the GGUF's Jinja `tokenizer.chat_template` with the Jinja of its bundled
//! templates and takes the closest one whose Levenshtein distance is below 100. ollamars keeps a
//! small table of its own (written here, not copied): a canonical Jinja form of a well-known
//! chat format, the Go template that renders the same format, and its stop strings. Anything
//! that does not match gets no template layer, so the model keeps its GGUF Jinja template, which
//! ollamars renders natively.

/// A template chosen by [`detect_template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedTemplate {
    /// The name reported in `using autodetected template <name>`.
    pub name: &'static str,
    /// The Go template text stored in the template layer.
    pub template: &'static str,
    /// Stop strings stored in the params layer.
    pub stop: &'static [&'static str],
    /// The canonical Jinja form compared against.
    reference: &'static str,
}

/// Matches must be closer than this (Ollama's threshold).
const MAX_DISTANCE: usize = 100;
/// Templates longer than this are not compared (the distance is quadratic).
const MAX_COMPARED: usize = 32 << 10;

static TEMPLATES: &[DetectedTemplate] = &[
    DetectedTemplate {
        name: "chatml",
        reference: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        template: "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
        stop: &["<|im_start|>", "<|im_end|>"],
    },
    DetectedTemplate {
        name: "llama3-instruct",
        reference: "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
        template: "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
        stop: &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    },
];

/// Levenshtein distance over bytes, or `None` once it is certainly at least `limit`.
fn distance_below(a: &[u8], b: &[u8], limit: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) >= limit {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min >= limit {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d < limit).then_some(d)
}

/// The known template closest to `jinja` within Ollama's distance threshold, if any.
pub fn detect_template(jinja: &str) -> Option<&'static DetectedTemplate> {
    if jinja.len() > MAX_COMPARED {
        return None;
    }
    TEMPLATES
        .iter()
        .filter_map(|t| {
            distance_below(jinja.as_bytes(), t.reference.as_bytes(), MAX_DISTANCE).map(|d| (d, t))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance_below(b"kitten", b"sitting", 100), Some(3));
        assert_eq!(distance_below(b"", b"abc", 100), Some(3));
        assert_eq!(distance_below(b"abc", b"abc", 1), Some(0));
        assert_eq!(distance_below(b"abcd", b"wxyz", 4), None);
    }

    #[test]
    fn exact_and_near_references_match() {
        for t in TEMPLATES {
            assert_eq!(detect_template(t.reference).map(|d| d.name), Some(t.name));
            let near = t.reference.replace("message['content']", "message.content");
            assert_eq!(detect_template(&near).map(|d| d.name), Some(t.name));
        }
    }

    #[test]
    fn unrelated_templates_do_not_match() {
        assert!(detect_template("{{ messages }}").is_none());
        let long = "{% for m in messages %}".repeat(50);
        assert!(detect_template(&long).is_none());
        assert!(detect_template("").is_none());
    }
}
