//! `keep_alive` (spec §1.6): a JSON number of seconds, or a Go duration string; negative means
//! forever, 0 unloads as soon as the request ends.

use crate::duration;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
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

    /// Parses the request field's JSON value. `None` for JSON null.
    ///
    /// # Errors
    /// A message for anything else than a number or a Go duration.
    pub fn from_json(v: &serde_json::Value) -> Result<Option<KeepAlive>, String> {
        Option::<KeepAlive>::deserialize(v).map_err(|e| e.to_string())
    }

    /// A Go duration string (`"10m"`, `"-1m"`, `"0"`).
    ///
    /// # Errors
    /// Go's message for anything else (a bare number other than 0 has no unit).
    pub fn parse(s: &str) -> Result<KeepAlive, duration::DurationError> {
        duration::parse_go(s.trim()).map(KeepAlive::from_nanos)
    }

    /// `OLLAMA_KEEP_ALIVE`: a Go duration, or a bare integer of seconds.
    ///
    /// # Errors
    /// Go's message for anything else.
    pub fn from_env_value(s: &str) -> Result<KeepAlive, duration::DurationError> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i64>() {
            return Ok(KeepAlive::from_secs_f64(n as f64));
        }
        KeepAlive::parse(t)
    }

    /// A signed count of nanoseconds: negative is forever.
    pub fn from_nanos(nanos: i128) -> KeepAlive {
        if nanos < 0 {
            KeepAlive::Forever
        } else {
            KeepAlive::from_secs_f64(nanos as f64 / 1e9)
        }
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

/// As Ollama's client sends it: forever is `-1`, otherwise Go's duration text.
impl Serialize for KeepAlive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            KeepAlive::Forever => s.serialize_i64(-1),
            KeepAlive::For(d) => s.serialize_str(&duration::format_go(d.as_nanos() as i128)),
        }
    }
}

impl<'de> Deserialize<'de> for KeepAlive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeepAlive, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeepAlive;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of seconds or a duration such as \"5m\"")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<KeepAlive, E> {
                Ok(KeepAlive::from_secs_f64(n as f64))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<KeepAlive, E> {
                Ok(KeepAlive::from_secs_f64(n as f64))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<KeepAlive, E> {
                Ok(KeepAlive::from_secs_f64(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KeepAlive, E> {
                KeepAlive::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
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

    #[test]
    fn sent_as_ollama_sends_it() {
        assert_eq!(json!(KeepAlive::Forever), json!(-1));
        assert_eq!(json!(KeepAlive::For(Duration::ZERO)), json!("0s"));
        assert_eq!(
            json!(KeepAlive::For(Duration::from_secs(600))),
            json!("10m0s")
        );
        let back: KeepAlive = serde_json::from_value(json!("10m0s")).unwrap();
        assert_eq!(back, KeepAlive::For(Duration::from_secs(600)));
    }
}
