//! Streaming text helpers: an incremental UTF-8 decoder and a stop-string matcher.

/// Turns token bytes into text as they arrive. A multi-byte character split across tokens is
/// held back until it is complete, so the stream never shows U+FFFD for it; bytes that can
/// never form valid UTF-8 become U+FFFD at once.
#[derive(Debug, Default, Clone)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// A decoder with nothing pending.
    pub fn new() -> Utf8Decoder {
        Utf8Decoder::default()
    }

    /// Adds bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // The prefix up to `valid_up_to` is valid UTF-8 by definition.
                    out.push_str(
                        std::str::from_utf8(&self.pending[start..valid]).unwrap_or_default(),
                    );
                    match e.error_len() {
                        // Incomplete at the end: keep it for the next push.
                        None => {
                            start = valid;
                            break;
                        }
                        // Invalid bytes: they will never become valid.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + n;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Whether bytes are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: returns what is held back (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

/// Finds stop strings in streamed text. Text that might be the start of a stop string is held
/// back until it is known not to be one.
#[derive(Debug, Default, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What [`StopMatcher::push`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopScan {
    /// No stop string: this text is safe to emit (possibly empty while text is held back).
    Continue(String),
    /// A stop string was found: emit this text (everything before it), then stop.
    Stopped(String),
}

impl StopMatcher {
    /// A matcher for these stop strings (empty strings are ignored).
    pub fn new(stops: impl IntoIterator<Item = impl Into<String>>) -> StopMatcher {
        StopMatcher {
            stops: stops
                .into_iter()
                .map(Into::into)
                .filter(|s: &String| !s.is_empty())
                .collect(),
            held: String::new(),
        }
    }

    /// Adds text; says what can be emitted.
    pub fn push(&mut self, text: &str) -> StopScan {
        self.held.push_str(text);
        if self.stops.is_empty() {
            return StopScan::Continue(std::mem::take(&mut self.held));
        }
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let before = self.held[..at].to_string();
            self.held.clear();
            return StopScan::Stopped(before);
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .map(|s| {
                (1..s.len().min(self.held.len() + 1))
                    .rev()
                    .find(|&n| s.is_char_boundary(n) && self.held.ends_with(&s[..n]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let emit_to = self.held.len() - keep;
        let out = self.held[..emit_to].to_string();
        self.held.drain(..emit_to);
        StopScan::Continue(out)
    }

    /// Ends the stream: returns the text held back.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_multibyte_characters_are_held_back() {
        let text = "日本語 🦀 é";
        let bytes = text.as_bytes();
        // Feed one byte at a time: no replacement character may ever appear.
        let mut d = Utf8Decoder::new();
        let mut out = String::new();
        for b in bytes {
            let piece = d.push(std::slice::from_ref(b));
            assert!(!piece.contains('\u{FFFD}'), "U+FFFD mid-stream: {piece:?}");
            out.push_str(&piece);
        }
        out.push_str(&d.finish());
        assert_eq!(out, text);
    }

    #[test]
    fn invalid_bytes_become_replacement_at_once() {
        let mut d = Utf8Decoder::new();
        assert_eq!(d.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(d.push(b"\xe6\x97"), "");
        assert!(d.has_pending());
        assert_eq!(d.finish(), "\u{FFFD}");
    }

    #[test]
    fn stop_strings_across_chunks() {
        let mut m = StopMatcher::new(["</s>", "\n\nUser:"]);
        assert_eq!(m.push("Hello <"), StopScan::Continue("Hello ".into()));
        assert_eq!(m.push("/"), StopScan::Continue(String::new()));
        assert_eq!(m.push("x"), StopScan::Continue("</x".into()));
        assert_eq!(m.push(" done\n\nUs"), StopScan::Continue(" done".into()));
        assert_eq!(m.push("er: hi"), StopScan::Stopped(String::new()));
    }

    #[test]
    fn stop_string_inside_one_chunk_and_finish() {
        let mut m = StopMatcher::new(["STOP"]);
        assert_eq!(m.push("abcSTOPdef"), StopScan::Stopped("abc".into()));
        let mut m = StopMatcher::new(["STOP"]);
        assert_eq!(m.push("xxST"), StopScan::Continue("xx".into()));
        assert_eq!(m.finish(), "ST");
    }

    #[test]
    fn multibyte_stop_strings() {
        let mut m = StopMatcher::new(["终止"]);
        assert_eq!(m.push("好的终"), StopScan::Continue("好的".into()));
        assert_eq!(m.push("止了"), StopScan::Stopped(String::new()));
    }
}
