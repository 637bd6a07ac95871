//! What `/api/show` and `/api/tags` report about stored models (spec §1.10, §1.11), as the
//! typed [`crate::api`] responses (Ollama's field names and order).

use crate::api::{ListModel, ListResponse, ModelDetails, ShowResponse};
use crate::gguf::{Gguf, Modalities};
use crate::modelfile::{Message, Modelfile, ParamValue, Role, show_parameters};
use crate::name::ModelName;
use crate::store::{self, Config, Manifest, Store, StoreError, StoredManifest};
use serde_json::{Map, Value as Json};
use std::io::BufReader;
use std::time::SystemTime;

/// Why a model could not be shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShowError {
    /// A store error (including `model '<name>' not found`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model's GGUF does not validate.
    #[error("invalid model file: {0}")]
    Gguf(#[from] crate::gguf::GgufError),
}

/// RFC 3339 with nanoseconds in local time, as Ollama prints `modified_at`.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, false)
}

/// The config blob of a manifest (defaults when it is missing or unreadable).
pub fn read_config(store: &Store, m: &Manifest) -> Config {
    store
        .read_blob(&m.config.digest)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn details(cfg: &Config, parent: &str, gguf: Option<&Gguf>) -> ModelDetails {
    let from_gguf = gguf.map(Gguf::details);
    let pick = |c: &str, g: Option<&str>| {
        if c.is_empty() || c == "unknown" {
            g.unwrap_or(c).to_string()
        } else {
            c.to_string()
        }
    };
    let g = from_gguf.as_ref();
    ModelDetails {
        parent_model: parent.to_string(),
        format: pick(&cfg.model_format, g.map(|g| g.format.as_str())),
        family: pick(&cfg.model_family, g.map(|g| g.family.as_str())),
        families: cfg
            .model_families
            .clone()
            .or_else(|| g.map(|g| g.families.clone())),
        parameter_size: pick(&cfg.model_type, g.map(|g| g.parameter_size.as_str())),
        quantization_level: pick(&cfg.file_type, g.map(|g| g.quantization_level.as_str())),
        context_length: None,
        embedding_length: None,
    }
}

pub(crate) fn layer_text(
    store: &Store,
    m: &Manifest,
    media_type: &str,
) -> Result<Option<String>, StoreError> {
    match m.layer(media_type) {
        Some(l) => Ok(Some(
            String::from_utf8_lossy(&store.read_blob(&l.digest)?).into_owned(),
        )),
        None => Ok(None),
    }
}

fn param_value(v: &Json) -> Option<ParamValue> {
    Some(match v {
        Json::Number(n) => match n.as_i64() {
            Some(i) => ParamValue::Int(i),
            None => ParamValue::Float(n.as_f64()?),
        },
        Json::Bool(b) => ParamValue::Bool(*b),
        Json::String(s) => ParamValue::Strings(vec![s.clone()]),
        Json::Array(items) => ParamValue::Strings(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect(),
        ),
        _ => return None,
    })
}

/// The model GGUF of a manifest, validated.
pub fn open_model_gguf(store: &Store, m: &Manifest) -> Result<Option<Gguf>, ShowError> {
    match m.layer(store::MEDIA_MODEL) {
        Some(l) => Ok(Some(Gguf::from_seekable(BufReader::new(
            store.open_blob(&l.digest)?,
        ))?)),
        None => Ok(None),
    }
}

/// The projector GGUFs of a manifest (its `projector` layers, in order), validated as GGUFs.
pub fn open_projector_ggufs(store: &Store, m: &Manifest) -> Result<Vec<Gguf>, ShowError> {
    m.layers
        .iter()
        .filter(|l| l.media_type == store::MEDIA_PROJECTOR)
        .map(|l| {
            Ok(Gguf::from_seekable(BufReader::new(
                store.open_blob(&l.digest)?,
            ))?)
        })
        .collect()
}

/// `POST /api/show`'s response for `name`: `modelfile`, `parameters`, `template`, `system`,
/// `license`, `details`, `model_info`, `tensors`, `capabilities`, `modified_at` and, when set,
/// `renderer`, `parser`, `requires`, `messages` and `projector_info`.
///
/// With `compat` (`OLLAMARS_COMPAT`), a blob in an Ollama layout reports what translation it
/// gets (`compat`) and a monolithic vision blob reports the `vision` capability.
pub fn show(
    store: &Store,
    name: &ModelName,
    verbose: bool,
    compat: bool,
) -> Result<ShowResponse, ShowError> {
    let sm = store.read_manifest(name)?;
    let m = &sm.manifest;
    let cfg = read_config(store, m);
    let g = open_model_gguf(store, m)?;
    let go_template = match layer_text(store, m, store::MEDIA_TEMPLATE)? {
        Some(t) => Some(t),
        None => layer_text(store, m, store::MEDIA_PROMPT)?,
    };
    let system = layer_text(store, m, store::MEDIA_SYSTEM)?;
    let licenses: Vec<String> = m
        .layers
        .iter()
        .filter(|l| l.media_type == store::MEDIA_LICENSE)
        .map(|l| {
            store
                .read_blob(&l.digest)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .collect::<Result<_, _>>()?;
    let params: Map<String, Json> = match m.layer(store::MEDIA_PARAMS) {
        Some(l) => serde_json::from_slice(&store.read_blob(&l.digest)?).unwrap_or_default(),
        None => Map::new(),
    };
    let messages: Vec<Json> = match m.layer(store::MEDIA_MESSAGES) {
        Some(l) => serde_json::from_slice(&store.read_blob(&l.digest)?).unwrap_or_default(),
        None => Vec::new(),
    };
    let blob_path = |d: &str| -> Result<String, StoreError> {
        Ok(store.blob_path(d)?.to_string_lossy().into_owned())
    };

    // The Modelfile.
    let mut mf = Modelfile::default();
    if let Some(l) = m.layer(store::MEDIA_MODEL) {
        mf.from.push(blob_path(&l.digest)?);
    }
    for l in &m.layers {
        match l.media_type.as_str() {
            store::MEDIA_ADAPTER => mf.adapters.push(blob_path(&l.digest)?),
            store::MEDIA_PROJECTOR => mf.from.push(blob_path(&l.digest)?),
            _ => {}
        }
    }
    mf.template = go_template.clone();
    mf.system = system.clone();
    mf.renderer = cfg.renderer.clone();
    mf.parser = cfg.parser.clone();
    mf.requires = cfg.requires.clone();
    for (k, v) in &params {
        if let Some(pv) = param_value(v) {
            mf.parameters.insert(k.clone(), pv);
        }
    }
    mf.licenses = licenses.clone();
    for msg in &messages {
        let role = match msg.get("role").and_then(Json::as_str) {
            Some("system") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            _ => continue,
        };
        let content = msg
            .get("content")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        mf.messages.push(Message { role, content });
    }
    let short = sm.name.display_short();

    let parent = m
        .layer(store::MEDIA_MODEL)
        .and_then(|l| l.from.clone())
        .unwrap_or_default();
    let projectors = open_projector_ggufs(store, m)?;
    let mut modalities = projectors.iter().fold(Modalities::default(), |acc, p| {
        let pm = p.projector_modalities();
        Modalities {
            vision: acc.vision || pm.vision,
            audio: acc.audio || pm.audio,
        }
    });
    let plan = match (&g, compat) {
        (Some(g), true) => crate::compat::plan(g).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            None
        }),
        _ => None,
    };
    if let Some((_, clip)) = plan.as_ref().and_then(|p| p.clip.as_ref())
        && projectors.is_empty()
    {
        modalities.vision |= clip.has_prefix("v.");
        modalities.audio |= clip.has_prefix("a.");
    }
    let compat_info = plan.as_ref().map(|p| {
        let digest = m.layer(store::MEDIA_MODEL).map(|l| l.digest.clone());
        compat_json(store, p, digest.as_deref(), verbose)
    });
    // Without a Go template the model runs its GGUF Jinja template natively (§1.10).
    let template = go_template
        .clone()
        .or_else(|| {
            g.as_ref()
                .and_then(|g| g.chat_template().map(str::to_string))
        })
        .unwrap_or_default();
    let capabilities: Vec<String> = match &g {
        Some(g) => g
            .capabilities(go_template.as_deref(), modalities)
            .into_iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        None => cfg.capabilities.clone().unwrap_or_default(),
    };
    Ok(ShowResponse {
        license: licenses.join("\n"),
        modelfile: mf.render(Some(&short)),
        parameters: show_parameters(&params),
        template,
        system: system.unwrap_or_default(),
        renderer: cfg.renderer.clone(),
        parser: cfg.parser.clone(),
        details: details(&cfg, &parent, g.as_ref()),
        messages,
        model_info: g
            .as_ref()
            .map(|g| g.model_info(verbose))
            .unwrap_or_default(),
        projector_info: projectors.first().map(|p| p.projector_info(verbose)),
        tensors: match g.as_ref().map(Gguf::tensors_json) {
            Some(Json::Array(t)) => t,
            _ => Vec::new(),
        },
        capabilities,
        modified_at: rfc3339(sm.modified),
        requires: cfg.requires.clone(),
        compat: compat_info,
    })
}

/// `show`'s `compat` object: the handlers, the projector handler, the change lines (verbose),
/// and the derived files when they exist already.
fn compat_json(
    store: &Store,
    p: &crate::compat::Plan,
    digest: Option<&str>,
    verbose: bool,
) -> Map<String, Json> {
    let mut o = Map::new();
    o.insert(
        "translator_version".into(),
        Json::from(crate::compat::VERSION),
    );
    o.insert("summary".into(), Json::from(p.summary()));
    o.insert("handlers".into(), Json::from(p.handlers.clone()));
    if let Some((h, _)) = &p.clip {
        o.insert("projector_handler".into(), Json::from(*h));
    }
    if verbose {
        if let Some(t) = &p.text {
            o.insert("text_changes".into(), Json::from(t.changes().to_vec()));
        }
        if let Some((_, v)) = &p.clip {
            o.insert("projector_changes".into(), Json::from(v.changes().to_vec()));
        }
    }
    if let Some(rec) = digest.and_then(|d| crate::compat::cache::record(store, d))
        && let Ok(v) = serde_json::to_value(&rec)
    {
        o.insert("derived".into(), v);
    }
    o
}

/// One `/api/tags` entry.
pub fn tag_entry(store: &Store, sm: &StoredManifest) -> ListModel {
    let cfg = read_config(store, &sm.manifest);
    let parent = sm
        .manifest
        .layer(store::MEDIA_MODEL)
        .and_then(|l| l.from.clone())
        .unwrap_or_default();
    let mut details = details(&cfg, &parent, None);
    details.context_length = cfg.context_length;
    details.embedding_length = cfg.embedding_length;
    let name = sm.name.display_short();
    ListModel {
        name: name.clone(),
        model: name,
        modified_at: rfc3339(sm.modified),
        size: sm.manifest.total_size(),
        digest: sm.digest.clone(),
        details,
        capabilities: cfg.capabilities.clone(),
    }
}

/// `GET /api/tags`'s response, newest first.
pub fn list(store: &Store) -> Result<ListResponse, StoreError> {
    let models = store
        .list()?
        .iter()
        .map(|sm| tag_entry(store, sm))
        .collect();
    Ok(ListResponse { models })
}
