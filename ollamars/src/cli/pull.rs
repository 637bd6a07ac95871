//! `ollamars pull MODEL [--insecure]` and `ollamars push MODEL [--insecure]`: stream the server's
//! `/api/pull` or `/api/push` and draw its progress on stderr as Ollama's CLI does: a spinner for
//! each plain status (`pulling manifest`, `verifying sha256 digest`, `writing manifest`,
//! `success`) and one bar per blob:
//!
//! ```text
//! pulling 3f8eb4da87fa:  45% ▕███████         ▏  44 MB/98 MB   45 MB/s      1s
//! pulling 3f8eb4da87fa: 100% ▕████████████████▏ 98 MB
//! ```
//!
//! When stderr is not a terminal (logs, tests) nothing is redrawn: each status is printed once,
//! on its own line.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::CliError;
use crate::api::{Progress, TransferRequest};
use crate::client::Client;
use crate::format::human_bytes;

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `/api/pull`.
    Pull,
    /// `/api/push`.
    Push,
}

/// Pulls or pushes `model` through the server, showing progress on stderr.
pub(crate) async fn transfer(
    client: &Client,
    dir: Direction,
    model: &str,
    insecure: bool,
) -> Result<(), CliError> {
    let req = TransferRequest {
        stream: Some(true),
        ..TransferRequest::new(model, insecure)
    };
    let mut view = ProgressView::new(std::io::stderr().is_terminal());
    let on_line = |line: &Progress| view.update(line);
    let r = match dir {
        Direction::Pull => client.pull(&req, on_line).await,
        Direction::Push => client.push(&req, on_line).await,
    };
    view.finish();
    r?;
    Ok(())
}

/// Go's `time.Duration` text rounded to seconds: `45s`, `1m30s`, `2h0m5s`.
fn go_seconds(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Whether a bar is still running (position below its length).
fn running(state: &ProgressState) -> bool {
    state.len().is_some_and(|len| state.pos() < len)
}

/// The style of a blob's bar: `<status>: NN% ▕bar▏ size speed eta`.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg}: {percent:>3}% ▕{bar:16}▏ {size:<13} {speed:>10} {eta:>6}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█ ")
        .with_key(
            "size",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let len = state.len().unwrap_or(0);
                let _ = if running(state) {
                    write!(w, "{}/{}", human_bytes(state.pos()), human_bytes(len))
                } else {
                    write!(w, "{}", human_bytes(len))
                };
            },
        )
        .with_key(
            "speed",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let rate = state.per_sec();
                if running(state) && rate.is_finite() && rate >= 1.0 {
                    let _ = write!(w, "{}/s", human_bytes(rate as u64));
                }
            },
        )
        .with_key(
            "eta",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                if running(state) && state.per_sec() >= 1.0 {
                    let _ = write!(w, "{}", go_seconds(state.eta()));
                }
            },
        )
}

/// The style of a running status spinner, and of a stopped one (the text stays).
fn spinner_styles() -> (ProgressStyle, ProgressStyle) {
    let running = ProgressStyle::with_template("{msg} {spinner}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "]);
    let stopped =
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    (running, stopped)
}

/// The progress of one pull or push, drawn like Ollama's (see the module docs).
pub(crate) struct ProgressView {
    /// Draws on a terminal; `None` prints plain lines instead.
    multi: Option<MultiProgress>,
    /// The current plain status and its spinner.
    status: String,
    spinner: Option<ProgressBar>,
    /// One bar per blob digest.
    bars: HashMap<String, ProgressBar>,
}

impl ProgressView {
    /// A view that draws bars when `tty`, else prints each status once.
    pub(crate) fn new(tty: bool) -> ProgressView {
        ProgressView {
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            status: String::new(),
            spinner: None,
            bars: HashMap::new(),
        }
    }

    fn stop_spinner(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.set_style(spinner_styles().1);
            s.finish();
        }
    }

    /// Takes one progress line of the server's stream.
    pub(crate) fn update(&mut self, line: &Progress) {
        let status = line.status.as_str();
        let digest = line.digest.as_deref().unwrap_or("");
        let Some(multi) = self.multi.clone() else {
            if !status.is_empty() && status != self.status {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{status}");
                self.status = status.to_string();
            }
            return;
        };
        if digest.is_empty() {
            if status != self.status {
                self.stop_spinner();
                self.status = status.to_string();
                let s = multi.add(ProgressBar::new_spinner());
                s.set_style(spinner_styles().0);
                s.set_message(status.to_string());
                s.enable_steady_tick(Duration::from_millis(100));
                self.spinner = Some(s);
            }
            return;
        }
        self.stop_spinner();
        let total = line.total.unwrap_or(0);
        let completed = line.completed.unwrap_or(0);
        let bar = self.bars.entry(digest.to_string()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(total));
            b.set_style(bar_style());
            let label = if status.is_empty() {
                let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
                format!("pulling {}", &hex[..hex.len().min(12)])
            } else {
                status.to_string()
            };
            b.set_message(label);
            b
        });
        if bar.is_finished() {
            return;
        }
        bar.set_length(total);
        bar.set_position(completed.min(total));
        if completed >= total {
            bar.finish();
        }
    }

    /// Stops the spinner (its text stays) and leaves the bars as they are.
    pub(crate) fn finish(&mut self) {
        self.stop_spinner();
        for b in self.bars.values() {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A progress line as the server sends it.
    fn line(v: serde_json::Value) -> Progress {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn go_style_seconds() {
        assert_eq!(go_seconds(Duration::from_millis(400)), "0s");
        assert_eq!(go_seconds(Duration::from_secs(59)), "59s");
        assert_eq!(go_seconds(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_seconds(Duration::from_secs(7205)), "2h0m5s");
    }

    #[test]
    fn plain_view_takes_every_line_shape() {
        let mut v = ProgressView::new(false);
        v.update(&line(json!({"status": "pulling manifest"})));
        v.update(&line(
            json!({"status": "pulling abc", "digest": "sha256:abc", "total": 10, "completed": 3}),
        ));
        v.update(&line(
            json!({"status": "pulling abc", "digest": "sha256:abc", "total": 10, "completed": 10}),
        ));
        assert_eq!(v.status, "pulling abc");
        v.finish();
    }

    #[test]
    fn terminal_view_keeps_one_bar_per_digest() {
        let mut v = ProgressView::new(true);
        // Hidden draw target: indicatif draws nothing when stderr is not a terminal.
        v.update(&line(json!({"status": "pulling manifest"})));
        for c in [0, 5, 10] {
            v.update(&line(json!({"status": "pulling abc", "digest": "sha256:abc", "total": 10, "completed": c})));
        }
        v.update(&line(
            json!({"status": "pulling def", "digest": "sha256:def", "total": 4, "completed": 4}),
        ));
        v.update(&line(json!({"status": "success"})));
        assert_eq!(v.bars.len(), 2);
        assert!(v.bars.values().all(ProgressBar::is_finished));
        assert!(v.spinner.is_some());
        v.finish();
        assert!(v.spinner.is_none());
    }
}
