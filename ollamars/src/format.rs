//! Human formats of Ollama's CLI: sizes (`98 MB`, `2.0 GB`) and relative times
//! (`About a minute ago`, `3 weeks ago`, `4 minutes from now`).

use std::time::Duration;

/// Bytes in decimal units, as Ollama prints them: one decimal below 10 when not whole.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    let Some(&(div, unit)) = UNITS.iter().find(|(d, _)| b >= *d) else {
        return format!("{b} B");
    };
    let value = b as f64 / div as f64;
    if value >= 10.0 || value.fract() == 0.0 {
        format!("{} {unit}", value as u64)
    } else {
        format!("{value:.1} {unit}")
    }
}

/// A duration in words.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    match seconds {
        0 => return "Less than a second".into(),
        1 => return "1 second".into(),
        2..=59 => return format!("{seconds} seconds"),
        _ => {}
    }
    let minutes = seconds / 60;
    match minutes {
        1 => return "About a minute".into(),
        2..=59 => return format!("{minutes} minutes"),
        _ => {}
    }
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    match hours {
        1 => "About an hour".into(),
        h if h < 48 => format!("{h} hours"),
        h if h < 24 * 7 * 2 => format!("{} days", h / 24),
        h if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        h if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// `t` relative to `now`: "... ago", "... from now", or "Forever" far in the future.
pub fn human_time(t: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let delta = now.signed_duration_since(t);
    if delta.num_days() / 365 < -20 {
        return "Forever".into();
    }
    match delta.to_std() {
        Ok(d) => format!("{} ago", human_duration(d)),
        Err(_) => format!(
            "{} from now",
            human_duration((-delta).to_std().unwrap_or_default())
        ),
    }
}

/// The backslash escape that GBNF literals, Go's `%#v` and Go's JSON strings share for `c`
/// (`\"`, `\\`, `\n`, `\r`, `\t`), if it is one of those.
pub(crate) fn c_escape(c: char) -> Option<&'static str> {
    Some(match c {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_000), "1 KB");
        assert_eq!(human_bytes(98_362_432), "98 MB");
        assert_eq!(human_bytes(2_019_393_189), "2.0 GB");
        assert_eq!(human_bytes(4_700_000_000), "4.7 GB");
        assert_eq!(human_bytes(5_000_000_000), "5 GB");
        assert_eq!(human_bytes(253_113_024), "253 MB");
    }

    #[test]
    fn times() {
        let now = chrono::Utc::now();
        let ago = |s: i64| human_time(now - chrono::Duration::seconds(s), now);
        assert_eq!(ago(0), "Less than a second ago");
        assert_eq!(ago(1), "1 second ago");
        assert_eq!(ago(45), "45 seconds ago");
        assert_eq!(ago(61), "About a minute ago");
        assert_eq!(ago(600), "10 minutes ago");
        assert_eq!(ago(3600), "About an hour ago");
        assert_eq!(ago(5 * 3600), "5 hours ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(ago(21 * 86400), "3 weeks ago");
        assert_eq!(ago(90 * 86400), "3 months ago");
        assert_eq!(ago(800 * 86400), "2 years ago");
        assert_eq!(
            human_time(now + chrono::Duration::seconds(240), now),
            "4 minutes from now"
        );
        assert_eq!(
            human_time(now + chrono::Duration::days(365 * 100), now),
            "Forever"
        );
    }
}
