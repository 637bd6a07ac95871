//! `keep_alive` (spec §1.6): a JSON number of seconds, or a Go duration string; negative means
//! forever, 0 unloads as soon as the request ends.

use serde_json::Value;
use std::time::Duration;

/// How long an idle runner stays loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Until evicted or the server stops.
    Forever,
    /// This long after its last request ends (zero: unload at once).
    For(Duration),
}

impl KeepAlive {
    /// Ollama's default: five minutes.
    pub const DEFAULT: KeepAlive = KeepAlive::For(Duration::from_secs(300));

    /// Whether this unloads as soon as the runner is idle.
    pub fn is_zero(self) -> bool {
        self == KeepAlive::For(Duration::ZERO)
    }

    /// Parses the request field. `None` for JSON null.
    ///
    /// # Errors
    /// A message for anything else than a number or a Go duration.
    pub fn from_json(v: &Value) -> Result<Option<KeepAlive>, String> {
        match v {
            Value::Null => Ok(None),
            Value::Number(n) => {
                let secs = n.as_f64().ok_or("invalid keep_alive number")?;
                Ok(Some(KeepAlive::from_secs_f64(secs)))
            }
            Value::String(s) => parse_duration(s).map(Some),
            _ => Err(format!("invalid keep_alive value: {v}")),
        }
    }

    /// `OLLAMA_KEEP_ALIVE`: a Go duration, or a bare integer of seconds.
    ///
    /// # Errors
    /// A message for anything else.
    pub fn from_env_value(s: &str) -> Result<KeepAlive, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i64>() {
            return Ok(KeepAlive::from_secs_f64(n as f64));
        }
        parse_duration(t)
    }

    fn from_secs_f64(secs: f64) -> KeepAlive {
        if secs < 0.0 || !secs.is_finite() {
            KeepAlive::Forever
        } else {
            // Anything beyond a century is forever for our purposes.
            KeepAlive::For(Duration::from_secs_f64(secs.min(3.2e9)))
        }
    }
}

/// Parses Go's `time.ParseDuration` syntax: `"300ms"`, `"1.5h"`, `"1h30m"`, `"-1m"`, `"0"`.
/// A bare number other than 0 has no unit and is an error, as in Go.
///
/// # Errors
/// A message naming the bad value.
pub fn parse_duration(s: &str) -> Result<KeepAlive, String> {
    let bad = || format!("time: invalid duration \"{s}\"");
    let mut rest = s.trim();
    let neg = rest.starts_with('-');
    rest = rest.trim_start_matches(['-', '+']);
    if rest == "0" {
        return Ok(KeepAlive::For(Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if neg && total > 0.0 {
        return Ok(KeepAlive::Forever);
    }
    Ok(KeepAlive::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(n: u64) -> Option<KeepAlive> {
        Some(KeepAlive::For(Duration::from_secs(n)))
    }

    #[test]
    fn numbers_are_seconds_and_negative_is_forever() {
        assert_eq!(KeepAlive::from_json(&json!(1800)).unwrap(), secs(1800));
        assert_eq!(
            KeepAlive::from_json(&json!(0.5)).unwrap(),
            Some(KeepAlive::For(Duration::from_millis(500)))
        );
        assert_eq!(
            KeepAlive::from_json(&json!(-1)).unwrap(),
            Some(KeepAlive::Forever)
        );
        assert_eq!(KeepAlive::from_json(&json!(null)).unwrap(), None);
        assert!(KeepAlive::from_json(&json!(0)).unwrap().unwrap().is_zero());
    }

    #[test]
    fn go_durations() {
        assert_eq!(KeepAlive::from_json(&json!("10m")).unwrap(), secs(600));
        assert_eq!(KeepAlive::from_json(&json!("1h30m")).unwrap(), secs(5400));
        assert_eq!(KeepAlive::from_json(&json!("24h")).unwrap(), secs(86400));
        assert_eq!(KeepAlive::from_json(&json!("0")).unwrap(), secs(0));
        assert_eq!(
            KeepAlive::from_json(&json!("-1m")).unwrap(),
            Some(KeepAlive::Forever)
        );
        assert_eq!(
            KeepAlive::from_json(&json!("1.5s")).unwrap(),
            Some(KeepAlive::For(Duration::from_millis(1500)))
        );
    }

    #[test]
    fn bad_values_are_errors() {
        for v in [
            json!("-1"),
            json!("5"),
            json!("abc"),
            json!("10x"),
            json!(""),
            json!(true),
        ] {
            assert!(KeepAlive::from_json(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn env_accepts_bare_seconds() {
        assert_eq!(KeepAlive::from_env_value("60").unwrap(), secs(60).unwrap());
        assert_eq!(KeepAlive::from_env_value("-1").unwrap(), KeepAlive::Forever);
        assert_eq!(KeepAlive::from_env_value("2m").unwrap(), secs(120).unwrap());
    }
}
