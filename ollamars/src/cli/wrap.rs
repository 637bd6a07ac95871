//! Word wrap for streamed text on a terminal. Text is written as it arrives; when a word
//! outgrows the line, the cursor steps back over the part already written, clears it, and
//! writes the word again on the next line. Words wider than a line are broken.

use unicode_width::UnicodeWidthChar;

/// Moves the cursor `n` columns left, then clears to the end of the line.
fn back_and_clear(n: usize) -> String {
    format!("\x1b[{n}D\x1b[K")
}

/// Streaming word-wrap state for one terminal.
#[derive(Debug, Clone)]
pub(crate) struct WordWrap {
    /// The most columns a line may take.
    limit: usize,
    /// Columns used on the current line.
    column: usize,
    /// The word being written, all on the current line.
    word: String,
    /// Its width in columns.
    word_width: usize,
}

impl WordWrap {
    /// Wrapping for a terminal `columns` wide; one column is kept free so the cursor never sits
    /// in the terminal's own pending wrap. `None` when too narrow to be worth wrapping.
    pub(crate) fn for_terminal(columns: usize) -> Option<WordWrap> {
        (columns >= 20).then(|| WordWrap::new(columns - 1))
    }

    /// Lines of at most `limit` columns.
    pub(crate) fn new(limit: usize) -> WordWrap {
        WordWrap {
            limit: limit.max(1),
            column: 0,
            word: String::new(),
            word_width: 0,
        }
    }

    /// Forgets the current line (after something else was written that ends with a newline).
    pub(crate) fn reset(&mut self) {
        self.column = 0;
        self.word.clear();
        self.word_width = 0;
    }

    /// Appends the terminal output for `text` to `out`.
    pub(crate) fn push(&mut self, text: &str, out: &mut String) {
        for ch in text.chars() {
            match ch {
                '\n' | '\r' => {
                    out.push(ch);
                    self.reset();
                }
                ' ' | '\t' => {
                    self.word.clear();
                    self.word_width = 0;
                    let next = if ch == '\t' {
                        (self.column / 8 + 1) * 8
                    } else {
                        self.column + 1
                    };
                    if next > self.limit {
                        // The blank falls at the end of the line: the line break replaces it.
                        out.push('\n');
                        self.column = 0;
                    } else {
                        out.push(ch);
                        self.column = next;
                    }
                }
                _ => {
                    let w = ch.width().unwrap_or(0);
                    if self.column + w <= self.limit {
                        out.push(ch);
                        self.column += w;
                        if w >= 2 {
                            // Wide (CJK) characters may break anywhere.
                            self.word.clear();
                            self.word_width = 0;
                        } else {
                            self.word.push(ch);
                            self.word_width += w;
                        }
                    } else if self.word_width > 0 && self.word_width + w <= self.limit {
                        // Move the word so far to the next line.
                        out.push_str(&back_and_clear(self.word_width));
                        out.push('\n');
                        out.push_str(&self.word);
                        out.push(ch);
                        self.column = self.word_width + w;
                        self.word.push(ch);
                        self.word_width += w;
                    } else {
                        // Nothing to move, or a word longer than a line: break here.
                        out.push('\n');
                        out.push(ch);
                        self.column = w;
                        self.word.clear();
                        self.word_width = 0;
                        if w < 2 {
                            self.word.push(ch);
                            self.word_width = w;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the terminal shows: applies the cursor-back-and-clear sequences.
    fn screen(out: &str) -> String {
        let mut lines: Vec<String> = vec![String::new()];
        let mut rest = out;
        while let Some(ch) = rest.chars().next() {
            if let Some(tail) = rest.strip_prefix("\x1b[") {
                let n: String = tail.chars().take_while(char::is_ascii_digit).collect();
                let after = &tail[n.len()..];
                let cur = lines.last_mut().unwrap();
                if let Some(after) = after.strip_prefix('D') {
                    let keep = cur.chars().count() - n.parse::<usize>().unwrap();
                    *cur = cur.chars().take(keep).collect();
                    rest = after;
                } else if let Some(after) = after.strip_prefix('K') {
                    rest = after;
                } else {
                    panic!("unexpected escape in {out:?}");
                }
                continue;
            }
            if ch == '\n' {
                lines.push(String::new());
            } else {
                lines.last_mut().unwrap().push(ch);
            }
            rest = &rest[ch.len_utf8()..];
        }
        // Blanks left at line ends are invisible.
        let lines: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
        lines.join("\n")
    }

    fn wrap_pieces(limit: usize, pieces: &[&str]) -> String {
        let mut w = WordWrap::new(limit);
        let mut out = String::new();
        for p in pieces {
            w.push(p, &mut out);
        }
        out
    }

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(wrap_pieces(20, &["Hello", " world"]), "Hello world");
        assert_eq!(wrap_pieces(5, &["ab\ncd\nef"]), "ab\ncd\nef");
    }

    #[test]
    fn wraps_on_word_boundaries_across_pieces() {
        let out = wrap_pieces(8, &["The qu", "ick brown ", "fox jumps"]);
        assert_eq!(screen(&out), "The\nquick\nbrown\nfox\njumps");
        // The word in progress was moved with a cursor step-back and written again.
        assert!(out.starts_with("The quic\x1b[4D\x1b[K\nquick"), "{out:?}");
        let out = wrap_pieces(10, &["The qu", "ick brown ", "fox jumps over"]);
        assert_eq!(screen(&out), "The quick\nbrown fox\njumps over");
        for line in screen(&out).lines() {
            assert!(line.chars().count() <= 10, "{line:?}");
        }
    }

    #[test]
    fn blank_at_the_limit_becomes_the_break() {
        let out = wrap_pieces(5, &["abcde fgh"]);
        assert_eq!(out, "abcde\nfgh");
    }

    #[test]
    fn newline_resets_the_column() {
        let out = wrap_pieces(6, &["abc\nabcdef gh"]);
        assert_eq!(screen(&out), "abc\nabcdef\ngh");
    }

    #[test]
    fn overlong_words_break_hard() {
        let out = wrap_pieces(4, &["abcdefghij"]);
        assert_eq!(out, "abcd\nefgh\nij");
        assert_eq!(
            screen(&wrap_pieces(4, &["xy abcdefghij"])),
            "xy\nabcd\nefgh\nij"
        );
    }

    #[test]
    fn wide_characters_count_two_columns() {
        let out = wrap_pieces(5, &["日本語です"]);
        assert_eq!(out, "日本\n語で\nす");
    }

    #[test]
    fn reset_starts_a_fresh_line() {
        let mut w = WordWrap::new(6);
        let mut out = String::new();
        w.push("abcdef", &mut out);
        w.reset();
        w.push("ghij", &mut out);
        assert_eq!(out, "abcdefghij");
    }

    #[test]
    fn narrow_terminals_are_not_wrapped() {
        assert!(WordWrap::for_terminal(10).is_none());
        assert_eq!(WordWrap::for_terminal(80).unwrap().limit, 79);
    }
}
