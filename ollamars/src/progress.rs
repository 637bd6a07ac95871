//! The progress line of `/api/create`, `/api/pull` and `/api/push`: Ollama's `ProgressResponse`
//! (§1.15), `{"status", "digest", "total", "completed"}`, with the fields that do not apply left
//! out.

use serde::{Deserialize, Serialize};

/// One progress line. Serialize skips `None` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// `pulling manifest`, `pulling <12 hex>`, `verifying sha256 digest`, `parsing GGUF`,
    /// `writing manifest`, `success`, … (empty when a line has none).
    #[serde(default)]
    pub status: String,
    /// The blob's digest, on per-blob lines (transfers, quantization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The blob's size, on per-blob lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Bytes done, on per-blob lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

impl Progress {
    /// A line with only a status.
    pub fn status(s: impl Into<String>) -> Progress {
        Progress {
            status: s.into(),
            digest: None,
            total: None,
            completed: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_fields_that_apply_are_written() {
        let p = Progress::status("success");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"status":"success"}"#
        );
        let p = Progress {
            status: "pulling 0123456789ab".into(),
            digest: Some("sha256:x".into()),
            total: Some(10),
            completed: Some(0),
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(
            text,
            r#"{"status":"pulling 0123456789ab","digest":"sha256:x","total":10,"completed":0}"#
        );
        assert_eq!(serde_json::from_str::<Progress>(&text).unwrap(), p);
        assert_eq!(
            serde_json::from_str::<Progress>(r#"{"status":"s"}"#).unwrap(),
            Progress::status("s")
        );
    }
}
