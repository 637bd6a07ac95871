//! The interactive session's history file, `~/.ollama/history`, in Ollama's format: one entry
//! per line, the last 100 kept.

use std::path::{Path, PathBuf};

/// How many entries the file keeps.
pub(crate) const LIMIT: usize = 100;

/// The history file and its entries.
#[derive(Debug)]
pub(crate) struct HistoryFile {
    path: Option<PathBuf>,
    entries: Vec<String>,
}

impl HistoryFile {
    /// `~/.ollama/history` (nothing is read or written when there is no home directory).
    pub(crate) fn default_path(config: &crate::config::Config) -> Option<PathBuf> {
        config.ollama_home().map(|h| h.join("history"))
    }

    /// Reads the file at `path` (a missing or unreadable file is an empty history).
    pub(crate) fn open(path: Option<PathBuf>) -> HistoryFile {
        let entries = path
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| parse(&text))
            .unwrap_or_default();
        HistoryFile { path, entries }
    }

    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Adds an entry and saves the file. Entries of several lines stay out of the file, which
    /// holds one entry per line.
    pub(crate) fn add(&mut self, entry: &str) -> std::io::Result<()> {
        let entry = entry.trim();
        if entry.is_empty() || entry.contains('\n') {
            return Ok(());
        }
        self.entries.push(entry.to_string());
        if self.entries.len() > LIMIT {
            let extra = self.entries.len() - LIMIT;
            self.entries.drain(..extra);
        }
        self.save()
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = self.entries.join("\n");
        text.push('\n');
        let tmp = path.with_extension("tmp");
        write_private(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, path)
    }
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

fn parse(text: &str) -> Vec<String> {
    let mut entries: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if entries.len() > LIMIT {
        entries.drain(..entries.len() - LIMIT);
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ollama").join("history");
        let mut h = HistoryFile::open(Some(path.clone()));
        assert!(h.entries().is_empty());
        h.add("first").unwrap();
        h.add("  second  ").unwrap();
        h.add("").unwrap();
        h.add("two\nlines").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
        for i in 0..150 {
            h.add(&format!("entry {i}")).unwrap();
        }
        let again = HistoryFile::open(Some(path.clone()));
        assert_eq!(again.entries().len(), LIMIT);
        assert_eq!(again.entries()[0], "entry 50");
        assert_eq!(again.entries()[LIMIT - 1], "entry 149");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn reads_blank_lines_away() {
        assert_eq!(parse("a\n\n  b \n"), vec!["a", "b"]);
    }
}
