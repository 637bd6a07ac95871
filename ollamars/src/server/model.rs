//! What a generation request needs to know about a model, read from the store once per
//! manifest and cached: the model blob, TEMPLATE, SYSTEM, PARAMETERs, MESSAGEs, capabilities.

use crate::compat;
use crate::models;
use crate::name::ModelName;
use crate::scheduler::ModelRef;
use crate::store::{self, Store, StoreError};
use crate::template::{Message, Template};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A model as generation sees it.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// For the scheduler.
    pub model: ModelRef,
    /// The Go TEMPLATE layer, if any. Without one the runner renders the GGUF's own template.
    pub template: Option<Template>,
    /// SYSTEM.
    pub system: Option<String>,
    /// PARAMETERs.
    pub params: Map<String, Value>,
    /// MESSAGEs.
    pub messages: Vec<Message>,
    /// Capabilities (`completion`, `embedding`, `tools`, `insert`, `thinking`, ...).
    pub capabilities: Vec<String>,
    /// The GGUF's own chat template text when there is no Go TEMPLATE (for tool-tag lookup).
    pub native_template: String,
}

impl ModelInfo {
    /// Whether the model has `cap`.
    pub fn has(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| c == cap)
    }
}

/// Why a model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelInfoError {
    /// Not in the store.
    #[error("model not found")]
    NotFound,
    /// Has no model weights (e.g. a remote stub).
    #[error("model has no weights layer")]
    NoWeights,
    /// Its TEMPLATE does not parse.
    #[error("{0}")]
    Template(String),
    /// Store trouble.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Show trouble (unreadable GGUF).
    #[error(transparent)]
    Show(#[from] models::ShowError),
    /// An Ollama-layout blob could not be translated.
    #[error(transparent)]
    Compat(#[from] compat::CompatError),
}

/// A cache of [`ModelInfo`] keyed by manifest digest.
#[derive(Debug, Default)]
pub struct ModelCache {
    map: Mutex<HashMap<String, Arc<ModelInfo>>>,
    /// Translate Ollama-layout blobs (`OLLAMARS_COMPAT`).
    compat: bool,
}

impl ModelCache {
    /// An empty cache; `compat` turns the Ollama-layout translation on.
    pub fn new(compat: bool) -> ModelCache {
        ModelCache {
            map: Mutex::default(),
            compat,
        }
    }

    /// Whether the Ollama-layout translation is on.
    pub fn compat(&self) -> bool {
        self.compat
    }

    /// Looks `name` up (blocking: reads the store; call from a blocking task).
    ///
    /// # Errors
    /// [`ModelInfoError`].
    pub fn get(
        &self,
        st: &Store,
        name: &ModelName,
        as_written: &str,
    ) -> Result<Arc<ModelInfo>, ModelInfoError> {
        let sm = match st.read_manifest(name) {
            Ok(sm) => sm,
            Err(StoreError::ModelNotFound(_)) => return Err(ModelInfoError::NotFound),
            Err(e) => return Err(e.into()),
        };
        if let Some(hit) = self.map.lock().expect("cache").get(&sm.digest) {
            let mut info = (**hit).clone();
            info.model.name = as_written.to_string();
            return Ok(Arc::new(info));
        }
        let m = &sm.manifest;
        let layer = m
            .layer(store::MEDIA_MODEL)
            .ok_or(ModelInfoError::NoWeights)?;
        let mut kv_overrides = Vec::new();
        let (path, projector) = if self.compat {
            let model = compat::cache::prepare(st, &layer.digest)?;
            if let Some(r) = &model.record {
                tracing::info!(model = %sm.name.display_short(), "{}", r.summary());
            }
            let projector = match m.layer(store::MEDIA_PROJECTOR) {
                Some(l) => {
                    let p = compat::cache::prepare(st, &l.digest)?;
                    if let Some(r) = &p.record {
                        tracing::info!(model = %sm.name.display_short(), "projector {}", r.summary());
                    }
                    Some(p.projector.unwrap_or(p.model))
                }
                None => model.projector,
            };
            kv_overrides = model.overrides;
            (model.model, projector)
        } else {
            let projector = match m.layer(store::MEDIA_PROJECTOR) {
                Some(l) => Some(st.blob_path(&l.digest)?),
                None => None,
            };
            (st.blob_path(&layer.digest)?, projector)
        };
        let show = models::show(st, &sm.name, false, self.compat)?;
        let go = match models::layer_text(st, m, store::MEDIA_TEMPLATE)? {
            Some(t) => Some(t),
            None => models::layer_text(st, m, store::MEDIA_PROMPT)?,
        };
        let template = match go {
            Some(t) => {
                Some(Template::parse(&t).map_err(|e| ModelInfoError::Template(e.to_string()))?)
            }
            None => None,
        };
        let params: Map<String, Value> = match m.layer(store::MEDIA_PARAMS) {
            Some(l) => serde_json::from_slice(&st.read_blob(&l.digest)?).unwrap_or_default(),
            None => Map::new(),
        };
        let messages: Vec<Message> = match m.layer(store::MEDIA_MESSAGES) {
            Some(l) => serde_json::from_slice(&st.read_blob(&l.digest)?).unwrap_or_default(),
            None => Vec::new(),
        };
        let info = ModelInfo {
            model: ModelRef {
                name: as_written.to_string(),
                display: sm.name.display_short(),
                digest: sm.digest.clone(),
                path,
                projector,
                kv_overrides,
                details: show.details,
            },
            template,
            system: models::layer_text(st, m, store::MEDIA_SYSTEM)?,
            params,
            messages,
            capabilities: show.capabilities,
            native_template: show.template,
        };
        let info = Arc::new(info);
        self.map
            .lock()
            .expect("cache")
            .insert(sm.digest, info.clone());
        Ok(info)
    }
}
