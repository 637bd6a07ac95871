//! How a streamed reply is shown: thinking first (dimmed on a terminal, or hidden), then the
//! content, word-wrapped on a terminal; and the assistant message it adds up to.

use super::wrap::WordWrap;
use crate::api::{Message, ToolCall};

const GREY: &str = "\x1b[38;5;245m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Output settings for one reply.
#[derive(Debug, Clone)]
pub(crate) struct DisplayOptions {
    /// Word wrap (on a terminal only).
    pub wrap: Option<WordWrap>,
    /// No colours (output is not a terminal).
    pub plain: bool,
    /// Do not show the model's thinking.
    pub hide_thinking: bool,
}

/// Turns reply chunks into terminal output and gathers the reply.
#[derive(Debug)]
pub(crate) struct Reply {
    opts: DisplayOptions,
    thinking_open: bool,
    thinking_closed: bool,
    /// All thinking text received.
    pub thinking: String,
    /// All content received.
    pub content: String,
    /// Whether anything was written.
    pub wrote: bool,
}

impl Reply {
    /// A reply shown with `opts`.
    pub(crate) fn new(opts: DisplayOptions) -> Reply {
        Reply {
            opts,
            thinking_open: false,
            thinking_closed: false,
            thinking: String::new(),
            content: String::new(),
            wrote: false,
        }
    }

    fn text(&mut self, text: &str, out: &mut String) {
        match &mut self.opts.wrap {
            Some(w) => w.push(text, out),
            None => out.push_str(text),
        }
    }

    /// The output for one chunk (`message` of a chat chunk or a generate chunk's fields).
    pub(crate) fn chunk(
        &mut self,
        thinking: &str,
        content: &str,
        tool_calls: &[ToolCall],
    ) -> String {
        let mut out = String::new();
        if !thinking.is_empty() {
            self.thinking.push_str(thinking);
            if !self.opts.hide_thinking {
                if !self.thinking_open {
                    out.push_str(&self.styled_heading("Thinking...\n"));
                    if !self.opts.plain {
                        out.push_str(GREY);
                    }
                    self.thinking_open = true;
                    self.thinking_closed = false;
                }
                self.text(thinking, &mut out);
            }
        }
        if self.thinking_open
            && !self.thinking_closed
            && (!content.is_empty() || !tool_calls.is_empty())
        {
            if !self.thinking.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&self.styled_heading("...done thinking.\n\n"));
            self.thinking_closed = true;
            if let Some(w) = &mut self.opts.wrap {
                w.reset();
            }
        }
        self.content.push_str(content);
        self.text(content, &mut out);
        if !tool_calls.is_empty() {
            out.push_str(&self.tool_calls(tool_calls));
        }
        self.wrote |= !out.is_empty();
        out
    }

    /// What is left to write when the stream ends (the colour reset of an unclosed thinking
    /// block).
    pub(crate) fn finish(&mut self) -> String {
        if self.thinking_open && !self.thinking_closed && !self.opts.plain {
            self.thinking_closed = true;
            return RESET.to_string();
        }
        String::new()
    }

    fn styled_heading(&self, text: &str) -> String {
        if self.opts.plain {
            text.to_string()
        } else {
            format!("{GREY}{BOLD}{text}{RESET}")
        }
    }

    /// The CLI registers no tools, so any call the model makes is reported, not run.
    fn tool_calls(&self, calls: &[ToolCall]) -> String {
        let mut out = String::new();
        for (i, call) in calls.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let f = &call.function;
            out.push_str(&format!(
                "  The model called a function this CLI does not provide: {}() with arguments {}",
                f.name,
                serde_json::Value::Object(f.arguments.clone())
            ));
        }
        if self.opts.plain {
            out
        } else {
            format!("{GREY}{out}{RESET}")
        }
    }

    /// The assistant message to keep in the conversation.
    pub(crate) fn message(&self) -> Message {
        Message {
            thinking: self.thinking.clone(),
            ..Message::new("assistant", self.content.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(hide: bool) -> Reply {
        Reply::new(DisplayOptions {
            wrap: None,
            plain: true,
            hide_thinking: hide,
        })
    }

    #[test]
    fn content_only_passes_through() {
        let mut r = plain(false);
        let out = [r.chunk("", "Hel", &[]), r.chunk("", "lo", &[])].concat() + &r.finish();
        assert_eq!(out, "Hello");
        assert_eq!(
            json!(r.message()),
            json!({"role": "assistant", "content": "Hello"})
        );
    }

    #[test]
    fn thinking_comes_first_between_markers() {
        let mut r = plain(false);
        let out = [
            r.chunk("Let me", "", &[]),
            r.chunk(" think.", "", &[]),
            r.chunk("", "Answer", &[]),
        ]
        .concat();
        assert_eq!(
            out,
            "Thinking...\nLet me think.\n...done thinking.\n\nAnswer"
        );
        assert_eq!(json!(r.message())["thinking"], "Let me think.");
    }

    #[test]
    fn hidden_thinking_is_kept_but_not_shown() {
        let mut r = plain(true);
        let out = [r.chunk("hmm", "", &[]), r.chunk("", "Yes", &[])].concat();
        assert_eq!(out, "Yes");
        assert_eq!(json!(r.message())["thinking"], "hmm");
    }

    #[test]
    fn terminal_output_is_dimmed_and_reset() {
        let mut r = Reply::new(DisplayOptions {
            wrap: None,
            plain: false,
            hide_thinking: false,
        });
        let out = r.chunk("x\n", "", &[]);
        assert!(out.starts_with(GREY) && out.contains("Thinking...") && out.ends_with("x\n"));
        let out = r.chunk("", "y", &[]);
        assert!(
            out.contains("...done thinking.") && out.contains(RESET),
            "{out:?}"
        );
        assert!(!out.starts_with('\n'));
        // A stream that ends while thinking still resets the colour.
        let mut r = Reply::new(DisplayOptions {
            wrap: None,
            plain: false,
            hide_thinking: false,
        });
        r.chunk("only thinking", "", &[]);
        assert_eq!(r.finish(), RESET);
    }

    #[test]
    fn tool_calls_are_reported() {
        let mut r = plain(false);
        let calls: [ToolCall; 1] = [serde_json::from_value(
            json!({"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}),
        )
        .unwrap()];
        let out = r.chunk("", "", &calls);
        assert!(
            out.contains("get_weather()") && out.contains(r#"{"city":"Paris"}"#),
            "{out}"
        );
    }

    #[test]
    fn wraps_when_asked() {
        let mut r = Reply::new(DisplayOptions {
            wrap: Some(WordWrap::new(5)),
            plain: true,
            hide_thinking: false,
        });
        assert_eq!(r.chunk("", "abcd efg", &[]), "abcd \nefg");
        assert_eq!(r.content, "abcd efg");
    }
}
