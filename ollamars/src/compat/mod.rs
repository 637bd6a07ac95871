//! Ollama-layout GGUFs translated for unpatched llama.cpp.
//!
//! Many blobs in Ollama's registry and in users' Ollama stores were written by Ollama's own
//! converter, and upstream llama.cpp refuses them or loads them wrongly: embedded vision
//! tensors it does not claim, renamed or missing keys, extra vocabulary rows, old tensor names.
//! Ollama repairs them in memory with hooks in its llama.cpp build. ollamars never patches
//! llama.cpp: it writes **derived files** once, beside the blob in the store, and loads those.
//!
//! - [`plan`] reads a validated header and decides, per architecture, what the text view (and
//!   for a monolithic vision blob the projector view) must become: a [`Plan`] of [`View`]s.
//!   Each handler is chosen by `general.architecture` plus a marker (`text::HANDLERS`,
//!   `clip::HANDLERS`), in Ollama's dispatch order; a file that matches none is untouched.
//! - [`write_view`] writes a view as a GGUF: header re-encoded, tensors compacted (upstream
//!   rejects gaps and unclaimed tensors), verbatim bytes streamed, rewritten tensors computed
//!   one at a time ([`Data`]).
//! - [`cache`] keeps the derived files in the store (`blobs/sha256-<hex>-compat-v<N>` and a
//!   JSON record), creates them atomically on first load, and prunes them with their source.

pub mod cache;
mod clip;
mod data;
#[doc(hidden)]
pub mod fixture;
mod text;
mod view;
mod write;

pub use data::{Data, f32_bytes, to_f32};
pub use view::{Tensor, View};
pub use write::write_view;

use crate::gguf::{Gguf, Value};

/// The translator's version: part of every derived file's name, so a changed translator
/// never reuses an older derived file.
pub const VERSION: u32 = 1;

/// Why a blob could not be translated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompatError {
    /// The blob matches an Ollama layout but a tensor does not have the shape or type it needs.
    #[error(
        "Ollama-layout model does not match its layout: tensor {tensor:?}: {reason}; re-pull the model, or set OLLAMARS_COMPAT=0 to load the blob as it is"
    )]
    Layout {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A key the layout needs is missing or malformed.
    #[error(
        "Ollama-layout model does not match its layout: key {key:?}: {reason}; re-pull the model, or set OLLAMARS_COMPAT=0 to load the blob as it is"
    )]
    Key {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading the source or writing the derived file failed.
    #[error("translating Ollama-layout model: {0}")]
    Io(#[from] std::io::Error),
    /// The source is not a valid GGUF.
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
}

/// A metadata override llama.cpp applies at load (`llama_model_kv_override`): what a
/// metadata-only translation passes instead of writing a derived file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvOverride {
    /// An integer key.
    Int(i64),
    /// A float key.
    Float(f64),
    /// A bool key.
    Bool(bool),
    /// A string key of at most 127 bytes.
    Str(String),
}

impl PartialEq for KvOverride {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KvOverride::Int(a), KvOverride::Int(b)) => a == b,
            (KvOverride::Float(a), KvOverride::Float(b)) => a.to_bits() == b.to_bits(),
            (KvOverride::Bool(a), KvOverride::Bool(b)) => a == b,
            (KvOverride::Str(a), KvOverride::Str(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for KvOverride {}

impl std::hash::Hash for KvOverride {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        match self {
            KvOverride::Int(i) => (0u8, *i).hash(h),
            KvOverride::Float(f) => (1u8, f.to_bits()).hash(h),
            KvOverride::Bool(b) => (2u8, *b).hash(h),
            KvOverride::Str(s) => (3u8, s).hash(h),
        }
    }
}

impl KvOverride {
    /// The override for a scalar value llama.cpp can take as one; `None` for arrays and long
    /// strings.
    pub fn of(v: &Value) -> Option<KvOverride> {
        Some(match v {
            Value::F32(x) => KvOverride::Float(f64::from(*x)),
            Value::F64(x) => KvOverride::Float(*x),
            Value::Bool(b) => KvOverride::Bool(*b),
            Value::String(s) if s.len() <= 127 && !s.contains('\0') => KvOverride::Str(s.clone()),
            Value::I64(x) => KvOverride::Int(*x),
            Value::U64(x) => KvOverride::Int(i64::try_from(*x).ok()?),
            other => KvOverride::Int(
                i64::try_from(other.as_u64().map(i128::from).or(match other {
                    Value::I8(x) => Some(i128::from(*x)),
                    Value::I16(x) => Some(i128::from(*x)),
                    Value::I32(x) => Some(i128::from(*x)),
                    _ => None,
                })?)
                .ok()?,
            ),
        })
    }
}

/// One architecture handler: a detector on the view as it stands and the edits.
#[derive(Clone, Copy)]
pub(crate) struct Handler {
    /// Its name, shown by `show -v` and the load log.
    pub name: &'static str,
    /// Whether the file is in this handler's layout.
    pub detect: fn(&View) -> bool,
    /// The edits.
    pub apply: fn(&mut View) -> Result<(), CompatError>,
}

/// What translation does to one file.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The text handlers that ran, in order.
    pub handlers: Vec<&'static str>,
    /// The text view, when it differs from the source.
    pub text: Option<View>,
    /// The projector half of a monolithic vision blob: its handler and view.
    pub clip: Option<(&'static str, View)>,
}

impl Plan {
    /// One line naming what ran, e.g. `gemma3 (text: 4 changes; projector: gemma3)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.text {
            parts.push(format!("text: {} changes", t.changes().len()));
        }
        if let Some((h, v)) = &self.clip {
            parts.push(format!("projector: {h}, {} changes", v.changes().len()));
        }
        let names = if self.handlers.is_empty() {
            self.clip.as_ref().map_or("none", |c| c.0).to_string()
        } else {
            self.handlers.join("+")
        };
        format!("{names} ({})", parts.join("; "))
    }

    /// When the whole translation is metadata that llama.cpp can take as load-time overrides
    /// (new or changed scalar keys, strings of at most 127 bytes; nothing removed, no array
    /// changed, the tensors and the architecture as they are, no projector), those overrides:
    /// the blob is then loaded as it is and no derived file is written.
    pub fn overrides(&self, source: &Gguf) -> Option<Vec<(String, KvOverride)>> {
        let text = self.text.as_ref()?;
        if self.clip.is_some()
            || text.tensors_changed()
            || Some(text.arch.as_str()) != source.architecture()
        {
            return None;
        }
        if source.metadata().iter().any(|(k, _)| !text.has(k)) {
            return None;
        }
        let mut out = Vec::new();
        for (k, v) in text.metadata() {
            if source.get(k) == Some(v) {
                continue;
            }
            out.push((k.clone(), KvOverride::of(v)?));
        }
        Some(out)
    }

    /// Whether the text view is a header-only rewrite (tensor table and bytes unchanged).
    pub fn text_is_header_only(&self) -> bool {
        self.text.as_ref().is_some_and(|t| !t.tensors_changed())
    }
}

/// Runs the text handlers on `g`; `None` when no handler matched or nothing changed.
fn plan_text(g: &Gguf) -> Result<(Vec<&'static str>, Option<View>), CompatError> {
    let mut view = View::new(g);
    let mut ran = Vec::new();
    for h in text::HANDLERS {
        if (h.detect)(&view) {
            (h.apply)(&mut view)?;
            ran.push(h.name);
        }
    }
    if !view.changed() {
        return Ok((ran, None));
    }
    view.verify()?;
    Ok((ran, Some(view)))
}

/// The projector view of `g` (a monolithic vision blob): the first clip handler whose
/// detector matches the **original** metadata, then only the projector's tensors and keys.
fn plan_clip(g: &Gguf) -> Result<Option<(&'static str, View)>, CompatError> {
    let original = View::new(g);
    if !original.has_prefix("v.") {
        return Ok(None);
    }
    let Some(h) = clip::HANDLERS.iter().find(|h| (h.detect)(&original)) else {
        return Ok(None);
    };
    let mut view = original.clone();
    (h.apply)(&mut view)?;
    let keep_audio = h.name != "nemotron_h_omni";
    view.retain("not the projector's", |t| {
        t.name.starts_with("v.")
            || t.name.starts_with("mm.")
            || (keep_audio && t.name.starts_with("a."))
    });
    clip::keep_projector_keys(&mut view);
    if !view.has_prefix("a.") {
        view.inject("clip.has_audio_encoder", Value::Bool(false));
    }
    view.verify()?;
    Ok(Some((h.name, view)))
}

/// Decides what translation `g` needs; `None` for a file in upstream's layout (left as is).
pub fn plan(g: &Gguf) -> Result<Option<Plan>, CompatError> {
    if g.architecture() == Some("clip") {
        // A separate projector file: only the LLaVA default applies.
        let mut view = View::new(g);
        clip::llava_default(&mut view);
        return Ok(view.changed().then(|| Plan {
            handlers: Vec::new(),
            text: None,
            clip: Some(("llava", view)),
        }));
    }
    let (handlers, text) = plan_text(g)?;
    let clip = plan_clip(g)?;
    if text.is_none() && clip.is_none() {
        return Ok(None);
    }
    Ok(Some(Plan {
        handlers,
        text,
        clip,
    }))
}

/// `Value::String` of `s`.
pub(crate) fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

#[cfg(test)]
mod tests;
