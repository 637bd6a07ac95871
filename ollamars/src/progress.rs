//! Ollama's progress line (`ProgressResponse`, spec §1.15), shared by `/api/create`,
//! `/api/pull` and `/api/push`.

/// One progress line. Serialize skips `None` fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// `pulling manifest`, `pulling <12 hex>`, `verifying sha256 digest`, `parsing GGUF`,
    /// `writing manifest`, `success`, … (empty when a line has none).
    #[serde(default)]
    pub status: String,
    /// The blob or layer digest, on per-blob lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Total bytes, on per-blob lines.
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
