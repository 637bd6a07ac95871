//! Go's duration syntax and text (what `--keepalive` takes and what `--verbose` prints), and
//! the `--verbose` statistics block.

use serde_json::Value;

const NS: i128 = 1;
const US: i128 = 1_000;
const MS: i128 = 1_000_000;
const SEC: i128 = 1_000_000_000;
const MIN: i128 = 60 * SEC;
const HOUR: i128 = 60 * MIN;

/// Parses Go's duration syntax (`"5m"`, `"1h30m"`, `"1.5s"`, `"-1m"`, `"0"`) into nanoseconds.
/// A number without a unit (other than `0`) is an error, as in Go.
pub(crate) fn parse_go_duration(text: &str) -> Result<i128, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => NS,
            "us" | "\u{b5}s" | "\u{3bc}s" => US,
            "ms" => MS,
            "s" => SEC,
            "m" => MIN,
            "h" => HOUR,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(bad)?;
        if !frac_part.is_empty() {
            // Truncated like Go: the digits beyond a nanosecond are dropped.
            let digits = &frac_part[..frac_part.len().min(18)];
            let f: i128 = digits.parse().map_err(|_| bad())?;
            part += f * scale / 10i128.pow(digits.len() as u32);
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        if total > i128::from(i64::MAX) {
            return Err(bad());
        }
        rest = after;
    }
    Ok(if negative { -total } else { total })
}

/// `v` as a decimal fraction of `prec` digits with trailing zeros dropped (`".5"`, or `""`
/// when zero), and `v` with those digits removed.
fn fraction(v: u128, prec: u32) -> (String, u128) {
    let div = 10u128.pow(prec);
    let frac = v % div;
    let text = if frac == 0 {
        String::new()
    } else {
        let digits = format!("{frac:0width$}", width = prec as usize);
        format!(".{}", digits.trim_end_matches('0'))
    };
    (text, v / div)
}

/// A duration in nanoseconds as Go's `time.Duration.String` writes it: `1.5s`, `2m3s`,
/// `1h0m0s`, `812.5ms`, `42µs`, `7ns`, `0s`.
pub(crate) fn go_duration(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".into();
    }
    if u < SEC as u128 {
        if u < US as u128 {
            return format!("{sign}{u}ns");
        }
        let (prec, unit) = if u < MS as u128 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (frac, whole) = fraction(u, prec);
        return format!("{sign}{whole}{frac}{unit}");
    }
    let (frac, secs) = fraction(u, 9);
    let s = secs % 60;
    let mins = secs / 60;
    if mins == 0 {
        return format!("{sign}{s}{frac}s");
    }
    let m = mins % 60;
    let h = mins / 60;
    if h == 0 {
        format!("{sign}{m}m{s}{frac}s")
    } else {
        format!("{sign}{h}h{m}m{s}{frac}s")
    }
}

/// `keep_alive` as Ollama's client sends it: negative is `-1` (forever), otherwise Go's text.
pub(crate) fn keep_alive_json(nanos: i128) -> Value {
    if nanos < 0 {
        Value::from(-1)
    } else {
        Value::from(go_duration(nanos))
    }
}

/// The statistics `--verbose` prints after a response (from the final chunk's metrics): each
/// line only where the metric is present and non-zero, as Ollama prints them.
pub(crate) fn summary(done: &Value) -> String {
    let n = |k: &str| done.get(k).and_then(Value::as_i64).unwrap_or(0);
    let mut out = String::new();
    let total = n("total_duration");
    if total > 0 {
        out.push_str(&format!(
            "total duration:       {}\n",
            go_duration(total.into())
        ));
    }
    let load = n("load_duration");
    if load > 0 {
        out.push_str(&format!(
            "load duration:        {}\n",
            go_duration(load.into())
        ));
    }
    for (label, count_key, dur_key) in [
        ("prompt eval", "prompt_eval_count", "prompt_eval_duration"),
        ("eval", "eval_count", "eval_duration"),
    ] {
        let count = n(count_key);
        let dur = n(dur_key);
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
                go_duration(dur.into())
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

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("5m"), Ok(5 * MIN));
        assert_eq!(parse_go_duration("1h30m"), Ok(HOUR + 30 * MIN));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500 * MS));
        assert_eq!(parse_go_duration(".5h"), Ok(30 * MIN));
        assert_eq!(parse_go_duration("-1m"), Ok(-MIN));
        assert_eq!(parse_go_duration("+10s"), Ok(10 * SEC));
        assert_eq!(parse_go_duration("3µs"), Ok(3 * US));
        assert_eq!(parse_go_duration("3us2ns"), Ok(3 * US + 2));
        assert_eq!(parse_go_duration("24h"), Ok(24 * HOUR));
        for bad in ["", "-1", "10", "5x", "m", ".s", "1..5s", "-", "9999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn writes_go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(7), "7ns");
        assert_eq!(go_duration(42 * US), "42µs");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(812_500_000), "812.5ms");
        assert_eq!(go_duration(12_345_678), "12.345678ms");
        assert_eq!(go_duration(1_500 * MS), "1.5s");
        assert_eq!(go_duration(2 * MIN + 3 * SEC), "2m3s");
        assert_eq!(go_duration(5 * MIN), "5m0s");
        assert_eq!(go_duration(HOUR), "1h0m0s");
        assert_eq!(go_duration(HOUR + 1), "1h0m0.000000001s");
        assert_eq!(go_duration(-MIN), "-1m0s");
        assert_eq!(go_duration(2_345_678_901), "2.345678901s");
    }

    #[test]
    fn keep_alive_as_sent() {
        assert_eq!(keep_alive_json(-1), json!(-1));
        assert_eq!(keep_alive_json(0), json!("0s"));
        assert_eq!(keep_alive_json(10 * MIN), json!("10m0s"));
    }

    #[test]
    fn verbose_block() {
        let done = json!({
            "done": true,
            "total_duration": 2_345_678_901u64,
            "load_duration": 12_345_678,
            "prompt_eval_count": 26,
            "prompt_eval_duration": 130_000_000,
            "eval_count": 5,
            "eval_duration": 405_000_000,
        });
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
        assert_eq!(summary(&json!({"done": true, "eval_count": 0})), "");
        assert_eq!(
            summary(&json!({"eval_count": 3})),
            "eval count:           3 token(s)\n"
        );
    }
}
