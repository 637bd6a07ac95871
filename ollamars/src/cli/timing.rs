//! The `--verbose` statistics block (durations in Go's text, from [`crate::duration`]).

use crate::api::Metrics;
use crate::duration::format_go;

/// The statistics `--verbose` prints after a response (from the final chunk's metrics): each
/// line only where the metric is non-zero (zero is what an absent one reads as), as Ollama
/// prints them.
pub(crate) fn summary(done: &Metrics) -> String {
    let mut out = String::new();
    if done.total_duration > 0 {
        out.push_str(&format!(
            "total duration:       {}\n",
            format_go(done.total_duration.into())
        ));
    }
    if done.load_duration > 0 {
        out.push_str(&format!(
            "load duration:        {}\n",
            format_go(done.load_duration.into())
        ));
    }
    for (label, count, dur) in [
        (
            "prompt eval",
            done.prompt_eval_count,
            done.prompt_eval_duration,
        ),
        ("eval", done.eval_count, done.eval_duration),
    ] {
        let pad = |s: String| format!("{s:<22}");
        if count > 0 {
            out.push_str(&format!(
                "{}{count} token(s)\n",
                pad(format!("{label} count:"))
            ));
        }
        if dur > 0 {
            out.push_str(&format!(
                "{}{}\n",
                pad(format!("{label} duration:")),
                format_go(dur.into())
            ));
            let rate = count as f64 / (dur as f64 / 1e9);
            out.push_str(&format!(
                "{}{rate:.2} tokens/s\n",
                pad(format!("{label} rate:"))
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The metrics of a final chunk as the server sends them.
    fn metrics(v: serde_json::Value) -> Metrics {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn verbose_block() {
        let done = metrics(json!({
            "done": true,
            "total_duration": 2_345_678_901u64,
            "load_duration": 12_345_678,
            "prompt_eval_count": 26,
            "prompt_eval_duration": 130_000_000,
            "eval_count": 5,
            "eval_duration": 405_000_000,
        }));
        assert_eq!(
            summary(&done),
            "total duration:       2.345678901s\n\
             load duration:        12.345678ms\n\
             prompt eval count:    26 token(s)\n\
             prompt eval duration: 130ms\n\
             prompt eval rate:     200.00 tokens/s\n\
             eval count:           5 token(s)\n\
             eval duration:        405ms\n\
             eval rate:            12.35 tokens/s\n"
        );
        // Zero or absent metrics print nothing.
        assert_eq!(
            summary(&metrics(json!({"done": true, "eval_count": 0}))),
            ""
        );
        assert_eq!(
            summary(&metrics(json!({"eval_count": 3}))),
            "eval count:           3 token(s)\n"
        );
    }
}
