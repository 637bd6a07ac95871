//! Go's duration syntax (`time.ParseDuration`) and text (`time.Duration.String`): what
//! `keep_alive`, `OLLAMA_KEEP_ALIVE`, `OLLAMA_LOAD_TIMEOUT` and `run --keepalive` take, and what
//! `run --verbose` prints. One parser for the server, the configuration and the CLI.

const NS: i128 = 1;
const US: i128 = 1_000;
const MS: i128 = 1_000_000;
const SEC: i128 = 1_000_000_000;
const MIN: i128 = 60 * SEC;
const HOUR: i128 = 60 * MIN;

/// A string that is not a Go duration; the text is Go's own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(String);

/// Parses Go's duration syntax (`"5m"`, `"1h30m"`, `"1.5s"`, `"-1m"`, `"0"`) into nanoseconds.
/// A number without a unit (other than `0`) is an error, as in Go, and so is anything beyond
/// Go's range (about 292 years).
///
/// # Errors
/// [`DurationError`] with Go's message.
pub fn parse_go(text: &str) -> Result<i128, DurationError> {
    let bad = || DurationError(format!("time: invalid duration {text:?}"));
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
            "" => {
                return Err(DurationError(format!(
                    "time: missing unit in duration {text:?}"
                )));
            }
            _ => {
                return Err(DurationError(format!(
                    "time: unknown unit {unit:?} in duration {text:?}"
                )));
            }
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
pub fn format_go(nanos: i128) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go("0"), Ok(0));
        assert_eq!(parse_go("5m"), Ok(5 * MIN));
        assert_eq!(parse_go("1h30m"), Ok(HOUR + 30 * MIN));
        assert_eq!(parse_go("1.5s"), Ok(1_500 * MS));
        assert_eq!(parse_go(".5h"), Ok(30 * MIN));
        assert_eq!(parse_go("-1m"), Ok(-MIN));
        assert_eq!(parse_go("+10s"), Ok(10 * SEC));
        assert_eq!(parse_go("3µs"), Ok(3 * US));
        assert_eq!(parse_go("3us2ns"), Ok(3 * US + 2));
        assert_eq!(parse_go("24h"), Ok(24 * HOUR));
        for bad in ["", "-1", "10", "5x", "m", ".s", "1..5s", "-", "9999999999h"] {
            assert!(parse_go(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn go_error_texts() {
        assert_eq!(
            parse_go("5").unwrap_err().to_string(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go("5x").unwrap_err().to_string(),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        assert_eq!(
            parse_go("").unwrap_err().to_string(),
            "time: invalid duration \"\""
        );
    }

    #[test]
    fn writes_go_durations() {
        assert_eq!(format_go(0), "0s");
        assert_eq!(format_go(7), "7ns");
        assert_eq!(format_go(42 * US), "42µs");
        assert_eq!(format_go(1_500), "1.5µs");
        assert_eq!(format_go(812_500_000), "812.5ms");
        assert_eq!(format_go(12_345_678), "12.345678ms");
        assert_eq!(format_go(1_500 * MS), "1.5s");
        assert_eq!(format_go(2 * MIN + 3 * SEC), "2m3s");
        assert_eq!(format_go(5 * MIN), "5m0s");
        assert_eq!(format_go(HOUR), "1h0m0s");
        assert_eq!(format_go(HOUR + 1), "1h0m0.000000001s");
        assert_eq!(format_go(-MIN), "-1m0s");
        assert_eq!(format_go(2_345_678_901), "2.345678901s");
    }
}
