//! Derived files in the store: made once per blob, on first load, and reused.
//!
//! For a blob `blobs/sha256-<hex>` that needs translation the store holds
//! `sha256-<hex>-compat-v<N>` (the text GGUF), `sha256-<hex>-compat-v<N>-mmproj` (the projector
//! of a monolithic vision blob) and `sha256-<hex>-compat-v<N>.json` (the [`Record`]: translator
//! version, source digest and size, what ran, what each output is). Every file is written to a
//! temporary name, fsynced and renamed; the record is written last, so a derived file is only
//! ever used once it is complete. They are never pushed (push sends the manifest's layers,
//! whose digests stay Ollama's) and are pruned with their source (`Store::prune`, `delete`).
//!
//! Derived files are made on first load rather than at pull or create: a store copied from
//! Ollama works without any step, a kill-switched server (`OLLAMARS_COMPAT=0`) never writes
//! one, and a translator upgrade (a new `VERSION`) remakes them when next needed.

use super::{CompatError, KvOverride, VERSION, View, plan, write_view};
use crate::gguf::{DEFAULT_ALIGNMENT, Gguf};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;

/// The start of every derived file's suffix for this translator version (`compat-v1`).
pub fn suffix_prefix() -> String {
    format!("compat-v{VERSION}")
}

fn text_suffix() -> String {
    suffix_prefix()
}

fn projector_suffix() -> String {
    format!("{}-mmproj", suffix_prefix())
}

fn record_suffix() -> String {
    format!("{}.json", suffix_prefix())
}

/// One derived file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output {
    /// Its file name in `blobs/`.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether only the header differs from the source (tensor bytes copied as they are).
    pub header_only: bool,
    /// The edits, one line each.
    pub changes: Vec<String>,
}

/// What was translated, stored beside the derived files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// [`VERSION`] of the translator that wrote it.
    pub translator_version: u32,
    /// The source blob's digest (`sha256:<hex>`).
    pub source: String,
    /// The source blob's size.
    pub source_size: u64,
    /// The text handlers that ran.
    pub handlers: Vec<String>,
    /// The projector handler, for a monolithic vision blob or a separate projector.
    pub projector_handler: Option<String>,
    /// The derived text GGUF, when the text view changed.
    pub text: Option<Output>,
    /// The derived projector GGUF.
    pub projector: Option<Output>,
    /// For a metadata-only translation llama.cpp takes as load-time overrides: those
    /// overrides (and no derived text file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<(String, KvOverride)>,
    /// The edits behind `overrides`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub override_changes: Vec<String>,
    /// Milliseconds it took to write the derived files.
    pub millis: u64,
}

impl Record {
    /// One line for `show -v` and the load log.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.handlers.is_empty() {
            parts.push(format!("text: {}", self.handlers.join("+")));
        }
        if let Some(h) = &self.projector_handler {
            parts.push(format!("projector: {h}"));
        }
        if !self.overrides.is_empty() {
            parts.push(format!("{} load-time overrides", self.overrides.len()));
        }
        format!(
            "translated for llama.cpp ({}), compat v{}",
            parts.join(", "),
            self.translator_version
        )
    }
}

/// What to load for a blob.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The GGUF to load as the model: the blob itself, or its derived text file.
    pub model: PathBuf,
    /// The derived projector of a monolithic vision blob.
    pub projector: Option<PathBuf>,
    /// Load-time metadata overrides (a metadata-only translation of the blob itself).
    pub overrides: Vec<(String, KvOverride)>,
    /// What was translated, when anything was.
    pub record: Option<Record>,
}

fn store_err(e: crate::store::StoreError) -> CompatError {
    CompatError::Io(std::io::Error::other(e))
}

/// Serializes preparation within the process (two requests for one new model write once).
static PREPARING: Mutex<()> = Mutex::new(());

fn output(
    store: &Store,
    digest: &str,
    suffix: &str,
    view: &View,
    g: &Gguf,
    src: &File,
    header_only: bool,
) -> Result<(PathBuf, Output), CompatError> {
    let tmp = store.temp_file().map_err(store_err)?;
    let mut f = tmp.as_file().try_clone()?;
    let alignment = view
        .u64("general.alignment")
        .and_then(|a| u32::try_from(a).ok())
        .unwrap_or(DEFAULT_ALIGNMENT);
    let size = write_view(
        view,
        g.version().max(3),
        alignment,
        src,
        g.data_offset(),
        &mut f,
    )?;
    // What was written must read back as a valid GGUF before it is published.
    Gguf::open(tmp.path())?;
    let path = store
        .publish_derived(tmp, digest, suffix)
        .map_err(store_err)?;
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((
        path,
        Output {
            file,
            size,
            header_only,
            changes: view.changes().to_vec(),
        },
    ))
}

fn reuse(store: &Store, digest: &str, source_size: u64) -> Option<Prepared> {
    let rec_path = store.derived_path(digest, &record_suffix()).ok()?;
    let rec: Record = serde_json::from_slice(&std::fs::read(&rec_path).ok()?).ok()?;
    if rec.translator_version != VERSION || rec.source != digest || rec.source_size != source_size {
        return None;
    }
    let check = |o: &Option<Output>, suffix: String| -> Option<Option<PathBuf>> {
        match o {
            None => Some(None),
            Some(o) => {
                let p = store.derived_path(digest, &suffix).ok()?;
                (std::fs::metadata(&p).ok()?.len() == o.size).then_some(Some(p))
            }
        }
    };
    let text = check(&rec.text, text_suffix())?;
    let projector = check(&rec.projector, projector_suffix())?;
    Some(Prepared {
        model: text.unwrap_or(store.blob_path(digest).ok()?),
        projector,
        overrides: rec.overrides.clone(),
        record: Some(rec),
    })
}

/// The record of `digest`'s derived files, when they exist (and are of this version).
pub fn record(store: &Store, digest: &str) -> Option<Record> {
    let size = store.blob_size(digest).ok()?;
    reuse(store, digest, size).and_then(|p| p.record)
}

/// What to load for the blob `digest` (`sha256:<hex>`): the blob itself when it needs no
/// translation, else its derived files, written now if they are missing or stale.
pub fn prepare(store: &Store, digest: &str) -> Result<Prepared, CompatError> {
    let path = store.blob_path(digest).map_err(store_err)?;
    let src = File::open(&path)?;
    let source_size = src.metadata()?.len();
    // Made before (a record of this version for this source): no header to read again.
    if let Some(done) = reuse(store, digest, source_size) {
        return Ok(done);
    }
    let g = Gguf::read(&src, source_size)?;
    let Some(p) = plan(&g)? else {
        return Ok(Prepared {
            model: path,
            projector: None,
            overrides: Vec::new(),
            record: None,
        });
    };
    let _guard = PREPARING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(done) = reuse(store, digest, source_size) {
        return Ok(done);
    }
    let started = std::time::Instant::now();
    let header_only = p.text_is_header_only();
    // Metadata llama.cpp can take as overrides needs no derived file at all.
    let overrides = p.overrides(&g).unwrap_or_default();
    let text = match &p.text {
        Some(v) if overrides.is_empty() => Some(output(
            store,
            digest,
            &text_suffix(),
            v,
            &g,
            &src,
            header_only,
        )?),
        _ => None,
    };
    let projector = match &p.clip {
        Some((_, v)) => Some(output(
            store,
            digest,
            &projector_suffix(),
            v,
            &g,
            &src,
            false,
        )?),
        None => None,
    };
    let rec = Record {
        translator_version: VERSION,
        source: digest.to_string(),
        source_size,
        handlers: p.handlers.iter().map(|h| h.to_string()).collect(),
        projector_handler: p.clip.as_ref().map(|c| c.0.to_string()),
        text: text.as_ref().map(|t| t.1.clone()),
        projector: projector.as_ref().map(|t| t.1.clone()),
        override_changes: if overrides.is_empty() {
            Vec::new()
        } else {
            p.text
                .as_ref()
                .map(|t| t.changes().to_vec())
                .unwrap_or_default()
        },
        overrides,
        millis: started.elapsed().as_millis() as u64,
    };
    let tmp = store.temp_file().map_err(store_err)?;
    serde_json::to_writer_pretty(tmp.as_file(), &rec).map_err(std::io::Error::other)?;
    store
        .publish_derived(tmp, digest, &record_suffix())
        .map_err(store_err)?;
    Ok(Prepared {
        model: text.map_or(path, |t| t.0),
        projector: projector.map(|t| t.0),
        overrides: rec.overrides.clone(),
        record: Some(rec),
    })
}
