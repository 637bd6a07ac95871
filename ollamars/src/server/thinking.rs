//! Splits streamed model output into `thinking` and `content` by the template's thinking tags
//! (e.g. `<think>` / `</think>`), as Ollama's thinking parser does (spec §7.4): leading
//! whitespace is skipped, text that might be the start of a tag is held back until it is known,
//! and whitespace after the closing tag is dropped. With `think:false` the thinking part is
//! dropped instead of leaking into the content (ollama#12610).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before any output: an opening tag may come (after whitespace).
    LookingForOpen,
    /// Inside the thinking block.
    Thinking,
    /// Just after the closing tag: whitespace is dropped.
    AfterClose,
    /// Plain content to the end.
    Content,
}

/// The splitter for one response.
#[derive(Debug, Clone)]
pub struct ThinkingSplitter {
    open: String,
    close: String,
    state: State,
    buf: String,
}

/// Output of one step: `(thinking, content)`, either possibly empty.
pub type Split = (String, String);

/// The longest suffix of `text` that is a proper prefix of `tag` (a tag that may be arriving).
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| tag.is_char_boundary(n) && text.ends_with(&tag[..n]))
        .unwrap_or(0)
}

impl ThinkingSplitter {
    /// Whether the text so far ends inside a thinking block (before any output: whether the
    /// prompt left the model inside one).
    pub fn in_thinking(&self) -> bool {
        matches!(self.state, State::Thinking)
    }

    /// The closing tag.
    pub fn close_tag(&self) -> &str {
        &self.close
    }

    /// A splitter for `open`/`close`; `in_thinking` when the prompt already ends with the
    /// opening tag (the model starts inside the block).
    pub fn new(open: &str, close: &str, in_thinking: bool) -> ThinkingSplitter {
        ThinkingSplitter {
            open: open.to_string(),
            close: close.to_string(),
            state: if in_thinking {
                State::Thinking
            } else {
                State::LookingForOpen
            },
            buf: String::new(),
        }
    }

    /// Adds streamed text; returns what can be emitted now.
    pub fn push(&mut self, text: &str) -> Split {
        self.buf.push_str(text);
        let (mut thinking, mut content) = (String::new(), String::new());
        loop {
            match self.state {
                State::LookingForOpen => {
                    let t = self.buf.trim_start();
                    if t.is_empty() {
                        return (thinking, content);
                    }
                    if let Some(rest) = t.strip_prefix(self.open.as_str()) {
                        self.buf = rest.to_string();
                        self.state = State::Thinking;
                    } else if self.open.starts_with(t) {
                        return (thinking, content);
                    } else {
                        self.state = State::Content;
                    }
                }
                State::Thinking => {
                    if let Some(at) = self.buf.find(self.close.as_str()) {
                        thinking.push_str(&self.buf[..at]);
                        self.buf = self.buf[at + self.close.len()..].to_string();
                        self.state = State::AfterClose;
                    } else {
                        let keep = partial_suffix(&self.buf, &self.close);
                        let emit = self.buf.len() - keep;
                        thinking.push_str(&self.buf[..emit]);
                        self.buf.drain(..emit);
                        return (thinking, content);
                    }
                }
                State::AfterClose => {
                    let t = self.buf.trim_start();
                    if t.is_empty() {
                        self.buf.clear();
                        return (thinking, content);
                    }
                    self.buf = t.to_string();
                    self.state = State::Content;
                }
                State::Content => {
                    content.push_str(&self.buf);
                    self.buf.clear();
                    return (thinking, content);
                }
            }
        }
    }

    /// Ends the response: whatever was held back.
    pub fn finish(&mut self) -> Split {
        let rest = std::mem::take(&mut self.buf);
        match self.state {
            State::Thinking => (rest, String::new()),
            State::LookingForOpen | State::Content => (String::new(), rest),
            State::AfterClose => (String::new(), String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &mut ThinkingSplitter, pieces: &[&str]) -> Split {
        let (mut t, mut c) = (String::new(), String::new());
        for p in pieces {
            let (a, b) = s.push(p);
            t += &a;
            c += &b;
        }
        let (a, b) = s.finish();
        (t + &a, c + &b)
    }

    #[test]
    fn splits_across_piece_boundaries() {
        let mut s = ThinkingSplitter::new("<think>", "</think>", false);
        let out = run(
            &mut s,
            &[
                "  <th",
                "ink>Let me ",
                "see.</th",
                "ink>\n\n",
                "The answer",
                " is 4.",
            ],
        );
        assert_eq!(out, ("Let me see.".into(), "The answer is 4.".into()));
    }

    #[test]
    fn no_tag_means_content() {
        let mut s = ThinkingSplitter::new("<think>", "</think>", false);
        assert_eq!(
            run(&mut s, &["Hello <think> there"]),
            (String::new(), "Hello <think> there".into())
        );
    }

    #[test]
    fn prompt_ending_in_the_open_tag_starts_inside() {
        let mut s = ThinkingSplitter::new("<think>", "</think>", true);
        assert_eq!(
            run(&mut s, &["hmm", "</think>ok"]),
            ("hmm".into(), "ok".into())
        );
        let mut s = ThinkingSplitter::new("<think>", "</think>", true);
        assert_eq!(
            run(&mut s, &["never closed"]),
            ("never closed".into(), String::new())
        );
    }

    #[test]
    fn a_partial_close_tag_is_held_back() {
        let mut s = ThinkingSplitter::new("<think>", "</think>", true);
        assert_eq!(s.push("a</thi"), ("a".into(), String::new()));
        assert_eq!(s.push("nk>b"), (String::new(), "b".into()));
    }
}
