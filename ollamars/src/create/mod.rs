//! Model creation with Ollama's rules (spec §1.13, §4, §5): from uploaded GGUF blobs (or a
//! local GGUF the CLI imported into the store), from an existing model, or from a legacy
//! Modelfile text.
//!
//! [`create`] validates everything it can before it reports any progress (the name, the file
//! names and digests, every GGUF with the validating reader, the quantization type), so a bad
//! request fails before a byte is written. Layers are written as blobs first (hashed, fsynced,
//! renamed), then the config blob, and the manifest last: a crash at any point leaves at most
//! unreferenced blobs, which [`crate::store::Store::prune`] removes.
//!
//! Quantization runs llama.cpp's quantizer. llama.cpp reports most bad input as an error, but
//! some hyperparameter checks are assertions that abort the process; the
//! architecture-independent ones (layer and expert counts) are checked here first. Where it runs
//! is the caller's choice, a [`Quantizer`]: [`create`] quantizes in this process
//! ([`InProcess`]); `ollamars serve` passes [`create_with`] one that runs it in a tool runner
//! (`ollamars runner tool`, over the runner protocol), so an abort on a hostile file fails that
//! request, not the server.

mod template;

pub use template::{DetectedTemplate, detect_template};

use crate::gguf::{self, Gguf, GgufError, file_type_name};
use crate::modelfile::{self, Modelfile};
use crate::name::ModelName;
use crate::progress::Progress;
use crate::store::{self, Config, Digest, Layer, Manifest, Store, StoreError, StoredManifest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::{Component, Path};

/// A `messages` entry of a create request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMessage {
    /// `system`, `user` or `assistant` (lower-cased on input).
    pub role: String,
    /// The text.
    #[serde(default)]
    pub content: String,
}

/// The body of `POST /api/create`: the current JSON form plus the legacy `modelfile` form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateRequest {
    /// Target name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Target name (legacy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An existing model to inherit from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `{file name: "sha256:<hex>"}` of uploaded GGUF blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, String>>,
    /// `{file name: "sha256:<hex>"}` of one uploaded LoRA adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapters: Option<BTreeMap<String, String>>,
    /// Go template text; replaces an inherited template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// System prompt; replaces an inherited one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// A license text or an array of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<Json>,
    /// Options merged over inherited parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Json>>,
    /// Messages; replace inherited ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<CreateMessage>>,
    /// `q4_K_M` (`q4_K`), `q4_K_S`, `q8_0` or `F16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantize: Option<String>,
    /// Legacy alias of `quantize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// Stream progress (default true). Used by the HTTP layer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Legacy Modelfile text; used when neither `from` nor `files` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modelfile: Option<String>,
    /// Built-in renderer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderer: Option<String>,
    /// Built-in parser name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<String>,
    /// Minimum Ollama version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
}

/// Why a create failed. [`CreateError::is_client_error`] tells the HTTP layer 400 from 500.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The request is wrong (HTTP 400); the text is Ollama's where Ollama has one.
    #[error("{0}")]
    BadRequest(String),
    /// The `from` model does not exist (HTTP 404).
    #[error("model '{0}' not found")]
    ModelNotFound(String),
    /// Quantization was asked of a model that is not F16, BF16 or F32 (HTTP 500, as Ollama).
    #[error("quantization is only supported for F16, BF16 and F32 models")]
    QuantizeUnsupported,
    /// llama.cpp failed to quantize.
    #[error("quantization failed: {0}")]
    Quantize(String),
    /// A store error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<std::io::Error> for CreateError {
    fn from(e: std::io::Error) -> CreateError {
        CreateError::Store(StoreError::Io(e))
    }
}

impl CreateError {
    /// Whether the client is at fault (a 400 or 404 rather than a 500).
    pub fn is_client_error(&self) -> bool {
        match self {
            CreateError::BadRequest(_) | CreateError::ModelNotFound(_) => true,
            CreateError::Store(e) => matches!(
                e,
                StoreError::InvalidDigest
                    | StoreError::DigestMismatch { .. }
                    | StoreError::Name(_)
                    | StoreError::BlobNotFound(_)
                    | StoreError::NotRegularFile(_)
            ),
            _ => false,
        }
    }
}

fn bad(s: impl Into<String>) -> CreateError {
    CreateError::BadRequest(s.into())
}

/// Maps a GGUF validation failure to Ollama's text where Ollama has one.
fn gguf_error(e: GgufError) -> CreateError {
    match e {
        GgufError::BadMagic | GgufError::Truncated { offset: 0..4, .. } => {
            bad("supplied file was not in GGUF format")
        }
        other => bad(format!("invalid GGUF: {other}")),
    }
}

/// Opens and validates a GGUF blob.
fn read_gguf_blob(store: &Store, digest: &str) -> Result<Gguf, CreateError> {
    let f = store.open_blob(digest).map_err(|e| match e {
        StoreError::BlobNotFound(d) => bad(format!("blob \"{d}\" not found")),
        other => CreateError::Store(other),
    })?;
    Gguf::from_seekable(BufReader::new(f)).map_err(gguf_error)
}

/// A file name from `files`/`adapters`: relative, no `..`, no NUL.
fn check_file_name(name: &str) -> Result<(), CreateError> {
    if name.is_empty() || name.contains('\0') {
        return Err(bad("invalid file name"));
    }
    let p = Path::new(name);
    if p.is_absolute() || name.starts_with('/') || name.starts_with('\\') {
        return Err(bad("file path must be relative"));
    }
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        || name.split(['/', '\\']).any(|part| part == "..")
    {
        return Err(bad("file path must be relative"));
    }
    Ok(())
}

/// Runs llama.cpp's quantizer: from `input` to `output` as the llama.cpp type `kind`
/// (`Q4_K_M`, …). The message of an error is for the client (no server paths).
pub trait Quantizer: Send + Sync + std::fmt::Debug {
    /// Quantizes one file.
    ///
    /// # Errors
    /// A message for the client.
    fn quantize(&self, input: &Path, output: &Path, kind: &str) -> Result<(), String>;
}

/// Quantizes in this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;

impl Quantizer for InProcess {
    fn quantize(&self, input: &Path, output: &Path, kind: &str) -> Result<(), String> {
        quantize_file(input, output, kind)
    }
}

/// Quantizes `input` to `output` as `kind` in this process (what [`InProcess`] and the tool
/// runner run).
///
/// # Errors
/// A message for the parent.
pub fn quantize_file(input: &Path, output: &Path, kind: &str) -> Result<(), String> {
    let t = parse_quantize(kind).map_err(|e| e.to_string())?;
    llama::quantize(input, output, t, 0).map_err(|e| match e {
        llama::QuantizeError::Failed { status, .. } => {
            format!("llama.cpp could not quantize the model (status {status})")
        }
        _ => "llama.cpp could not open the model".to_string(),
    })
}

/// A quantization target (`q4_K_M`/`q4_K`, `q4_K_S`, `q8_0`, `F16`; any case), parsed by
/// [`llama::QuantType::parse`], or Ollama's error.
fn parse_quantize(q: &str) -> Result<llama::QuantType, CreateError> {
    llama::QuantType::parse(q).ok_or_else(|| bad(format!("unsupported quantization type {q}")))
}

/// The GGUF's file type name, from `general.file_type` or else its tensors (`F32` when every
/// tensor is F32, `F16`/`BF16` when the large ones are).
fn source_file_type(g: &Gguf) -> Option<String> {
    if let Some(n) = g.get("general.file_type").and_then(gguf::Value::as_u64) {
        return u32::try_from(n)
            .ok()
            .and_then(file_type_name)
            .map(str::to_string);
    }
    let mut kinds: Vec<&str> = g
        .tensors()
        .iter()
        .filter(|t| t.dims.len() > 1)
        .map(|t| t.ggml_type.name())
        .collect();
    kinds.dedup();
    match kinds.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

/// A license field: a string or an array of strings.
fn licenses(v: &Json) -> Result<Vec<String>, CreateError> {
    match v {
        Json::String(s) => Ok(vec![s.clone()]),
        Json::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("license must be a string or an array of strings"))
            })
            .collect(),
        Json::Null => Ok(Vec::new()),
        _ => Err(bad("license must be a string or an array of strings")),
    }
}

/// What one GGUF blob is, by its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GgufKind {
    Model,
    Projector,
    Adapter,
}

fn gguf_kind(g: &Gguf) -> GgufKind {
    let ty = g.get("general.type").and_then(gguf::Value::as_str);
    match ty {
        Some("adapter") => GgufKind::Adapter,
        Some("mmproj") | Some("projector") => GgufKind::Projector,
        _ if g.architecture() == Some("clip") => GgufKind::Projector,
        _ => GgufKind::Model,
    }
}

/// The config blob for a GGUF model.
fn config_for(g: &Gguf) -> Config {
    let mut c = Config::for_gguf(&g.details());
    if let Some(a) = g.architecture() {
        c.context_length = g
            .get(&format!("{a}.context_length"))
            .and_then(gguf::Value::as_u64);
        c.embedding_length = g
            .get(&format!("{a}.embedding_length"))
            .and_then(gguf::Value::as_u64);
    }
    c
}

/// Turns a legacy Modelfile into the JSON form: `FROM @sha256:<hex>` and `ADAPTER
/// @sha256:<hex>` become `files`/`adapters`, any other FROM a model name. Server-side paths are
/// never read (spec security rule 6): a path is treated as a model name and rejected as one.
pub fn request_from_modelfile(
    name: &str,
    mf: &Modelfile,
    quantize: Option<String>,
) -> Result<CreateRequest, CreateError> {
    let mut req = CreateRequest {
        model: Some(name.to_string()),
        quantize,
        ..CreateRequest::default()
    };
    let mut files = BTreeMap::new();
    for (i, f) in mf.from.iter().enumerate() {
        if let Some(d) = f.strip_prefix('@') {
            files.insert(format!("model-{i}.gguf"), d.to_string());
        } else if i == 0 {
            req.from = Some(f.clone());
        } else {
            return Err(bad("a projector FROM must be an uploaded blob"));
        }
    }
    if !files.is_empty() {
        // With a model name these may only be projectors (checked by `create`).
        req.files = Some(files);
    }
    if !mf.adapters.is_empty() {
        let mut ad = BTreeMap::new();
        for (i, a) in mf.adapters.iter().enumerate() {
            let d = a
                .strip_prefix('@')
                .ok_or_else(|| bad("an ADAPTER must be an uploaded blob"))?;
            ad.insert(format!("adapter-{i}.gguf"), d.to_string());
        }
        req.adapters = Some(ad);
    }
    req.set_modelfile_settings(mf);
    Ok(req)
}

impl CreateRequest {
    /// Copies everything of a Modelfile except its FROM and ADAPTER lines into the request:
    /// TEMPLATE, SYSTEM, LICENSE, PARAMETER, MESSAGE, RENDERER, PARSER and REQUIRES. The server
    /// (the legacy `modelfile` form) and the CLI (`ollamars create`) both build requests so.
    pub fn set_modelfile_settings(&mut self, mf: &Modelfile) {
        self.template = mf.template.clone();
        self.system = mf.system.clone();
        if !mf.licenses.is_empty() {
            self.license = Some(mf.licenses.clone().into());
        }
        if !mf.parameters.is_empty() {
            self.parameters = Some(mf.parameters_json());
        }
        if !mf.messages.is_empty() {
            self.messages = Some(
                mf.messages
                    .iter()
                    .map(|m| CreateMessage {
                        role: m.role.as_str().into(),
                        content: m.content.clone(),
                    })
                    .collect(),
            );
        }
        self.renderer = mf.renderer.clone();
        self.parser = mf.parser.clone();
        self.requires = mf.requires.clone();
    }
}

/// Expands `~` and resolves `p` against `base` (the Modelfile's directory), as the CLI does.
#[cfg(test)]
fn local_path(p: &str, base: &Path) -> std::path::PathBuf {
    let expanded = crate::config::expand_home(p);
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

/// A layer still to be written, or an existing one to reuse.
enum Pending {
    Existing(Layer),
    Bytes {
        media_type: &'static str,
        data: Vec<u8>,
    },
}

/// Creates a model from a request (the JSON form, or the legacy `modelfile` form when neither
/// `from` nor `files` is set). Progress lines go to `progress`; the last is `success`. Returns
/// the model's name as stored.
///
/// # Errors
/// [`CreateError`], with Ollama's texts: `neither 'from' or 'files' was specified`,
/// `invalid model name`, `file path must be relative`, `invalid digest format`,
/// `supplied file was not in GGUF format`, `only one adapter is currently supported`,
/// `quantization is only supported for F16, BF16 and F32 models`, ….
pub fn create(
    store: &Store,
    req: &CreateRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<ModelName, CreateError> {
    create_with(store, req, &InProcess, progress)
}

/// [`create`] with quantization run by `quantizer`.
///
/// # Errors
/// As [`create`].
pub fn create_with(
    store: &Store,
    req: &CreateRequest,
    quantizer: &dyn Quantizer,
    progress: &mut dyn FnMut(Progress),
) -> Result<ModelName, CreateError> {
    let name_text = req
        .model
        .as_deref()
        .filter(|s| !s.is_empty())
        .or(req.name.as_deref())
        .unwrap_or_default();
    let target = ModelName::parse(name_text).map_err(|_| bad("invalid model name"))?;

    let no_source = req.from.as_deref().unwrap_or_default().is_empty()
        && req.files.as_ref().is_none_or(|f| f.is_empty());
    if no_source && let Some(text) = req.modelfile.as_deref() {
        let parsed = Modelfile::parse(text).map_err(|e| bad(e.to_string()))?;
        let quant = req.quantize.clone().or(req.quantization.clone());
        let mut legacy = request_from_modelfile(name_text, &parsed.modelfile, quant)?;
        legacy.stream = req.stream;
        return create_inner(store, &target, &legacy, quantizer, progress);
    }
    create_inner(store, &target, req, quantizer, progress)
}

/// The inherited state of a `from` model.
struct Base {
    layers: Vec<Layer>,
    config: Config,
}

fn load_base(store: &Store, from: &str) -> Result<(Base, ModelName), CreateError> {
    let n = ModelName::parse(from).map_err(|_| bad("invalid model name"))?;
    let sm: StoredManifest = store.read_manifest(&n).map_err(|e| match e {
        StoreError::ModelNotFound(_) => CreateError::ModelNotFound(from.to_string()),
        other => CreateError::Store(other),
    })?;
    let config = match store.read_blob(&sm.manifest.config.digest) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(_) => Config::default(),
    };
    let src = sm.name.display_short();
    let layers = sm
        .manifest
        .layers
        .iter()
        .cloned()
        .map(|mut l| {
            if l.from.is_none() && l.media_type == store::MEDIA_MODEL {
                l.from = Some(src.clone());
            }
            l
        })
        .collect();
    Ok((Base { layers, config }, sm.name))
}

/// A create request after validation ([`check_request`]): what the writing steps need.
struct Checked<'r> {
    /// The `from` model's name, if any.
    from: Option<&'r str>,
    quant: Option<llama::QuantType>,
    license_texts: Option<Vec<String>>,
    messages: Option<Vec<Json>>,
    /// The inherited state of `from` (empty without it).
    base: Base,
    /// The GGUF to write the model layer from (uploaded, or the inherited one when
    /// quantizing) and its digest.
    model_gguf: Option<(Gguf, String)>,
    /// The uploaded projectors, validated.
    projectors: Vec<ProjectorUpload>,
    /// Digest of the uploaded adapter.
    adapter: Option<String>,
}

/// An uploaded projector GGUF that passed [`Gguf::validate_projector`].
struct ProjectorUpload {
    digest: String,
    summary: gguf::ProjectorSummary,
    gguf: Gguf,
}

/// The projector blobs to reference: an old LLaVA projector without `clip.projector_type`
/// is rewritten with `clip.projector_type = "mlp"` (as Ollama does), which llama.cpp needs.
fn write_projectors(
    store: &Store,
    projectors: Vec<ProjectorUpload>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<String>, CreateError> {
    let mut out = Vec::with_capacity(projectors.len());
    for p in projectors {
        if !p.summary.needs_default_type {
            out.push(p.digest);
            continue;
        }
        progress(Progress::status("updating GGUF projector metadata"));
        let src = BufReader::new(store.open_blob(&p.digest)?);
        let tmp = store.temp_file()?;
        {
            let mut w = std::io::BufWriter::new(tmp.as_file());
            p.gguf
                .write_with_key(
                    src,
                    "clip.projector_type",
                    &gguf::Value::String("mlp".into()),
                    &mut w,
                )
                .map_err(|e| match e {
                    GgufError::Io(io) => CreateError::from(io),
                    other => bad(format!("invalid GGUF: {other}")),
                })?;
            w.flush()?;
        }
        let (d, _) = store.publish_temp(tmp)?;
        out.push(d.to_string());
    }
    Ok(out)
}

/// The model layer as written by [`write_model_layer`].
struct ModelStep {
    /// A new model layer; `None` keeps the inherited one.
    layer: Option<Layer>,
    /// The config so far (from the GGUF, or inherited).
    config: Config,
    /// The template detected from the GGUF's Jinja template, if any.
    template: Option<&'static DetectedTemplate>,
}

fn create_inner(
    store: &Store,
    target: &ModelName,
    req: &CreateRequest,
    quantizer: &dyn Quantizer,
    progress: &mut dyn FnMut(Progress),
) -> Result<ModelName, CreateError> {
    // Validation: nothing is written and nothing reported until all of it passes.
    let Checked {
        from,
        quant,
        license_texts,
        messages,
        base,
        model_gguf,
        projectors,
        adapter,
    } = check_request(store, req)?;

    // Writing: blobs first, config next, manifest last.
    if from.is_none() {
        progress(Progress::status("parsing GGUF"));
    }
    let mut inherited = base.layers;
    let model = write_model_layer(
        store,
        quantizer,
        req,
        from.is_some(),
        quant,
        model_gguf.as_ref(),
        &inherited,
        base.config,
        progress,
    )?;
    let projectors = write_projectors(store, projectors, progress)?;
    let mut layers = binary_layers(store, &mut inherited, model.layer, projectors, adapter)?;
    for l in &layers {
        progress(Progress::status(format!(
            "using existing layer {}",
            l.digest
        )));
    }
    let texts = text_layers(
        store,
        req,
        inherited,
        model.template,
        license_texts,
        messages,
    )?;
    layers.extend(write_text_layers(store, texts, progress)?);
    write_config_and_manifest(store, target, req, model.config, layers, progress)?;
    progress(Progress::status("success"));
    Ok(store.resolve(target)?.unwrap_or_else(|| target.clone()))
}

/// Checks everything that can be checked before a byte is written, in Ollama's order: the
/// source, the quantization type, the adapters, file names and digests, the template, licenses,
/// messages, then every GGUF (the `from` model's, when quantizing).
fn check_request<'r>(store: &Store, req: &'r CreateRequest) -> Result<Checked<'r>, CreateError> {
    let from = req.from.as_deref().filter(|s| !s.is_empty());
    let files = req.files.clone().unwrap_or_default();
    if from.is_none() && files.is_empty() {
        return Err(bad("neither 'from' or 'files' was specified"));
    }
    let quant = match req.quantize.as_deref().or(req.quantization.as_deref()) {
        Some(q) if !q.is_empty() => Some(parse_quantize(q)?),
        _ => None,
    };
    let adapters = req.adapters.clone().unwrap_or_default();
    if adapters.len() > 1 {
        return Err(bad("only one adapter is currently supported"));
    }
    for (k, v) in files.iter().chain(adapters.iter()) {
        check_file_name(k)?;
        Digest::parse(v)?;
    }
    if let Some(t) = &req.template {
        crate::template::Template::parse(t).map_err(|e| bad(format!("template error: {e}")))?;
    }
    let license_texts = match &req.license {
        Some(v) => Some(licenses(v)?),
        None => None,
    };
    let messages = match &req.messages {
        Some(ms) => Some(check_messages(ms)?),
        None => None,
    };

    // The model source: inherited layers, or the uploaded GGUFs.
    let mut base = Base {
        layers: Vec::new(),
        config: Config::default(),
    };
    let mut model_gguf: Option<(Gguf, String)> = None;
    let mut projectors = Vec::new();
    // With `from`, uploaded files may only add projectors (a Modelfile with `FROM model` and
    // `FROM mmproj.gguf`); the model itself is inherited.
    let mut inherited_model: Option<Gguf> = None;
    if let Some(f) = from {
        let (b, _) = load_base(store, f)?;
        base = b;
        if let Some(l) = base
            .layers
            .iter()
            .find(|l| l.media_type == store::MEDIA_MODEL)
            && (quant.is_some() || !files.is_empty())
        {
            let g = read_gguf_blob(store, &l.digest)?;
            if quant.is_some() {
                model_gguf = Some((g, l.digest.clone()));
            } else {
                inherited_model = Some(g);
            }
        }
    }
    for digest in files.values() {
        let g = read_gguf_blob(store, digest)?;
        match gguf_kind(&g) {
            GgufKind::Model if from.is_some() => {
                return Err(bad("FROM must be either a model name or uploaded files"));
            }
            GgufKind::Model if model_gguf.is_none() => {
                model_gguf = Some((g, Digest::parse(digest)?.to_string()))
            }
            GgufKind::Model => {
                return Err(bad(
                    "only one model GGUF is supported; split GGUF files are not",
                ));
            }
            GgufKind::Projector => {
                let summary = g.validate_projector().map_err(|e| bad(e.to_string()))?;
                projectors.push(ProjectorUpload {
                    digest: Digest::parse(digest)?.to_string(),
                    summary,
                    gguf: g,
                });
            }
            GgufKind::Adapter => return Err(bad("an adapter must be given in 'adapters'")),
        }
    }
    if from.is_none() && model_gguf.is_none() {
        return Err(bad("no files provided to convert"));
    }
    if let Some(model) = model_gguf
        .as_ref()
        .map(|(g, _)| g)
        .or(inherited_model.as_ref())
    {
        let text_embd = model
            .architecture()
            .and_then(|a| model.get(&format!("{a}.embedding_length")))
            .and_then(gguf::Value::as_u64);
        for p in &projectors {
            if let (Some(out), Some(text)) = (p.summary.output_embedding, text_embd)
                && out != text
            {
                return Err(bad(format!(
                    "projector output embedding size {out} does not match the model's \
                     embedding length {text}"
                )));
            }
        }
    }
    let mut adapter = None;
    for digest in adapters.values() {
        let g = read_gguf_blob(store, digest)?;
        if gguf_kind(&g) != GgufKind::Adapter && g.get("adapter.type").is_none() {
            return Err(bad("supplied adapter file is not a LoRA adapter GGUF"));
        }
        adapter = Some(Digest::parse(digest)?.to_string());
    }
    if let (Some(_), Some((g, _))) = (quant, &model_gguf) {
        let ft = source_file_type(g);
        if !matches!(ft.as_deref(), Some("F16" | "BF16" | "F32")) {
            return Err(CreateError::QuantizeUnsupported);
        }
        quantize_preflight(g)?;
    }
    Ok(Checked {
        from,
        quant,
        license_texts,
        messages,
        base,
        model_gguf,
        projectors,
        adapter,
    })
}

/// The request's messages as stored: lower-cased roles, which must be `system`, `user`,
/// `assistant` or `tool`.
fn check_messages(ms: &[CreateMessage]) -> Result<Vec<Json>, CreateError> {
    let mut out = Vec::new();
    for m in ms {
        let role = m.role.to_lowercase();
        if !matches!(role.as_str(), "system" | "user" | "assistant" | "tool") {
            return Err(bad(modelfile::INVALID_ROLE));
        }
        out.push(serde_json::json!({"role": role, "content": m.content}));
    }
    Ok(out)
}

/// Writes the model layer when there is a GGUF to write it from (quantizing it first when
/// asked), derives the config from it, and detects the chat template of an imported GGUF.
#[allow(clippy::too_many_arguments)]
fn write_model_layer(
    store: &Store,
    quantizer: &dyn Quantizer,
    req: &CreateRequest,
    inherits: bool,
    quant: Option<llama::QuantType>,
    model_gguf: Option<&(Gguf, String)>,
    inherited: &[Layer],
    mut config: Config,
    progress: &mut dyn FnMut(Progress),
) -> Result<ModelStep, CreateError> {
    let Some((g, digest)) = model_gguf else {
        return Ok(ModelStep {
            layer: None,
            config,
            template: None,
        });
    };
    let parent = inherited
        .iter()
        .find(|l| l.media_type == store::MEDIA_MODEL)
        .and_then(|l| l.from.clone());
    let (layer_digest, size, out_gguf) = match quant {
        Some(t) => {
            let from_name = source_file_type(g).unwrap_or_default();
            progress(Progress::status(format!(
                "quantizing {from_name} model to {}",
                t.name()
            )));
            let (d, size, q) = quantize_blob(store, quantizer, digest, t)?;
            (d.to_string(), size, Some(q))
        }
        None => (digest.clone(), store.blob_size(digest)?, None),
    };
    let fresh = config_for(out_gguf.as_ref().unwrap_or(g));
    if inherits {
        config.file_type = fresh.file_type;
    } else {
        config = Config {
            renderer: config.renderer.take(),
            parser: config.parser.take(),
            requires: config.requires.take(),
            ..fresh
        };
    }
    let layer = Layer {
        media_type: store::MEDIA_MODEL.into(),
        digest: layer_digest,
        size,
        from: parent,
        name: None,
    };
    // Template auto-detection for GGUF imports (§4.5).
    let mut template = None;
    if !inherits
        && req.template.is_none()
        && let Some(jinja) = g.chat_template()
        && let Some(t) = detect_template(jinja)
    {
        progress(Progress::status(format!(
            "using autodetected template {}",
            t.name
        )));
        template = Some(t);
    }
    Ok(ModelStep {
        layer: Some(layer),
        config,
        template,
    })
}

/// Removes the layers of media type `mt` from `inherited` and returns them.
fn take_layers(inherited: &mut Vec<Layer>, mt: &str) -> Vec<Layer> {
    let (hit, rest): (Vec<Layer>, Vec<Layer>) =
        inherited.drain(..).partition(|l| l.media_type == mt);
    *inherited = rest;
    hit
}

/// A layer of an uploaded blob, sized from the store.
fn blob_layer(store: &Store, media_type: &str, digest: String) -> Result<Layer, CreateError> {
    Ok(Layer {
        media_type: media_type.into(),
        size: store.blob_size(&digest)?,
        digest,
        from: None,
        name: None,
    })
}

/// The model, projector and adapter layers, in that order: a new model or adapter replaces the
/// inherited one, new projectors follow the inherited ones.
fn binary_layers(
    store: &Store,
    inherited: &mut Vec<Layer>,
    model: Option<Layer>,
    projectors: Vec<String>,
    adapter: Option<String>,
) -> Result<Vec<Layer>, CreateError> {
    let mut layers: Vec<Layer> = Vec::new();
    let old_model = take_layers(inherited, store::MEDIA_MODEL);
    match model {
        Some(l) => layers.push(l),
        None => layers.extend(old_model),
    }
    layers.extend(take_layers(inherited, store::MEDIA_PROJECTOR));
    for d in projectors {
        layers.push(blob_layer(store, store::MEDIA_PROJECTOR, d)?);
    }
    let old_adapters = take_layers(inherited, store::MEDIA_ADAPTER);
    match adapter {
        Some(d) => layers.push(blob_layer(store, store::MEDIA_ADAPTER, d)?),
        None => layers.extend(old_adapters),
    }
    Ok(layers)
}

/// The text layers (template, system, licenses, parameters, messages) and every other
/// inherited layer: a request value replaces the inherited layer; parameters are merged over
/// the inherited ones.
fn text_layers(
    store: &Store,
    req: &CreateRequest,
    mut inherited: Vec<Layer>,
    auto_template: Option<&'static DetectedTemplate>,
    license_texts: Option<Vec<String>>,
    messages: Option<Vec<Json>>,
) -> Result<Vec<Pending>, CreateError> {
    let inherited = &mut inherited;
    let mut texts: Vec<Pending> = Vec::new();
    let old_template = take_layers(inherited, store::MEDIA_TEMPLATE);
    let old_prompt = take_layers(inherited, store::MEDIA_PROMPT);
    match &req.template {
        Some(t) => texts.push(Pending::Bytes {
            media_type: store::MEDIA_TEMPLATE,
            data: t.clone().into_bytes(),
        }),
        None => {
            if let Some(t) = auto_template {
                texts.push(Pending::Bytes {
                    media_type: store::MEDIA_TEMPLATE,
                    data: t.template.as_bytes().to_vec(),
                });
            }
            texts.extend(old_template.into_iter().map(Pending::Existing));
            texts.extend(old_prompt.into_iter().map(Pending::Existing));
        }
    }
    let old_system = take_layers(inherited, store::MEDIA_SYSTEM);
    match &req.system {
        Some(s) => texts.push(Pending::Bytes {
            media_type: store::MEDIA_SYSTEM,
            data: s.clone().into_bytes(),
        }),
        None => texts.extend(old_system.into_iter().map(Pending::Existing)),
    }
    let old_license = take_layers(inherited, store::MEDIA_LICENSE);
    match license_texts {
        Some(ls) => {
            for l in ls {
                texts.push(Pending::Bytes {
                    media_type: store::MEDIA_LICENSE,
                    data: l.into_bytes(),
                });
            }
        }
        None => texts.extend(old_license.into_iter().map(Pending::Existing)),
    }
    let old_params = take_layers(inherited, store::MEDIA_PARAMS);
    texts.extend(params_layer(store, req, old_params, auto_template)?);
    let old_messages = take_layers(inherited, store::MEDIA_MESSAGES);
    match messages {
        Some(ms) => texts.push(Pending::Bytes {
            media_type: store::MEDIA_MESSAGES,
            data: serde_json::to_vec(&ms).unwrap_or_default(),
        }),
        None => texts.extend(old_messages.into_iter().map(Pending::Existing)),
    }
    // Any other inherited layers (draft, tensors, …) are kept as they were.
    texts.extend(inherited.drain(..).map(Pending::Existing));
    Ok(texts)
}

/// The parameters layer: the request's values (and a detected template's stop words) over the
/// inherited ones, or the inherited layers unchanged when nothing changes.
fn params_layer(
    store: &Store,
    req: &CreateRequest,
    old_params: Vec<Layer>,
    auto_template: Option<&'static DetectedTemplate>,
) -> Result<Vec<Pending>, CreateError> {
    let mut params = Map::new();
    for l in &old_params {
        if let Ok(b) = store.read_blob(&l.digest)
            && let Ok(Json::Object(m)) = serde_json::from_slice::<Json>(&b)
        {
            params.extend(m);
        }
    }
    let mut params_changed = false;
    if let Some(t) = auto_template {
        let stops: Vec<Json> = t.stop.iter().map(|s| Json::from(*s)).collect();
        params.insert("stop".into(), Json::Array(stops));
        params_changed = true;
    }
    if let Some(p) = &req.parameters {
        for (k, v) in p {
            if !v.is_null() {
                params.insert(k.clone(), v.clone());
                params_changed = true;
            }
        }
    }
    if !params_changed {
        return Ok(old_params.into_iter().map(Pending::Existing).collect());
    }
    Ok(vec![Pending::Bytes {
        media_type: store::MEDIA_PARAMS,
        data: serde_json::to_vec(&Json::Object(params))
            .map_err(|e| CreateError::Quantize(e.to_string()))?,
    }])
}

/// Writes the pending text layers as blobs (reusing existing ones) and returns their layers,
/// reporting `using existing layer` or `creating new layer` for each.
fn write_text_layers(
    store: &Store,
    texts: Vec<Pending>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Layer>, CreateError> {
    let mut layers = Vec::new();
    for p in texts {
        match p {
            Pending::Existing(l) => {
                progress(Progress::status(format!(
                    "using existing layer {}",
                    l.digest
                )));
                layers.push(l);
            }
            Pending::Bytes { media_type, data } => {
                let existed = store.has_blob(Digest::of(&data).as_ref())?;
                let (d, size) = store.import_blob(&data[..])?;
                let verb = if existed {
                    "using existing"
                } else {
                    "creating new"
                };
                progress(Progress::status(format!("{verb} layer {d}")));
                layers.push(Layer {
                    media_type: media_type.into(),
                    digest: d.to_string(),
                    size,
                    from: None,
                    name: None,
                });
            }
        }
    }
    Ok(layers)
}

/// Completes the config (the request's renderer, parser and requires; a default platform),
/// writes it as the config blob, then writes the manifest: the last write of a create.
fn write_config_and_manifest(
    store: &Store,
    target: &ModelName,
    req: &CreateRequest,
    mut config: Config,
    layers: Vec<Layer>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), CreateError> {
    if let Some(r) = &req.renderer {
        config.renderer = Some(r.clone());
    }
    if let Some(p) = &req.parser {
        config.parser = Some(p.clone());
    }
    if let Some(r) = &req.requires {
        config.requires = Some(r.clone());
    }
    if config.architecture.is_empty() {
        config.architecture = "amd64".into();
        config.os = "linux".into();
    }
    let config_bytes =
        serde_json::to_vec(&config).map_err(|e| CreateError::Quantize(e.to_string()))?;
    let (config_digest, config_size) = store.import_blob(&config_bytes[..])?;
    let manifest = Manifest::new(
        Layer {
            media_type: store::CONFIG_MEDIA_TYPE.into(),
            digest: config_digest.to_string(),
            size: config_size,
            from: None,
            name: None,
        },
        layers,
    );
    progress(Progress::status("writing manifest"));
    store.write_manifest(target, &manifest)?;
    Ok(())
}

/// Most layers llama.cpp accepts (`LLAMA_MAX_LAYERS`).
const MAX_LAYERS: u64 = 512;
/// Most experts llama.cpp accepts (`LLAMA_MAX_EXPERTS`).
const MAX_EXPERTS: u64 = 1024;

/// Checks the architecture-independent hyperparameters that llama.cpp's model loader asserts
/// on (aborting the whole process) instead of reporting: block count 1..=512, next-token
/// prediction layers and posnet/convnext blocks within it, expert counts consistent with each
/// other. llama.cpp reports other bad metadata as an error. Architecture-specific assertions
/// are not covered (see the module docs).
fn quantize_preflight(g: &Gguf) -> Result<(), CreateError> {
    let arch = g
        .architecture()
        .ok_or_else(|| bad("invalid GGUF: general.architecture is missing"))?;
    let invalid = |what: String| bad(format!("invalid GGUF: {what}"));
    let key = |k: &str| format!("{arch}.{k}");
    // A scalar, or the largest item of an array of integers.
    let num = |k: &str| -> Result<Option<u64>, CreateError> {
        match g.get(&key(k)) {
            None => Ok(None),
            Some(gguf::Value::Array(a)) => {
                let items = gguf::Value::Array(a.clone()).to_json();
                let max = items
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| {
                        v.as_u64()
                            .ok_or_else(|| invalid(format!("{} is not a count", key(k))))
                    })
                    .collect::<Result<Vec<u64>, _>>()?
                    .into_iter()
                    .max();
                Ok(max)
            }
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(format!("{} is not a count", key(k)))),
        }
    };
    let layers = match num("block_count")? {
        Some(n) if (1..=MAX_LAYERS).contains(&n) => n,
        Some(n) => {
            return Err(invalid(format!(
                "{} is {n}, not 1 to {MAX_LAYERS}",
                key("block_count")
            )));
        }
        None => return Err(invalid(format!("{} is missing", key("block_count")))),
    };
    for k in [
        "nextn_predict_layers",
        "posnet.block_count",
        "convnext.block_count",
    ] {
        if num(k)?.is_some_and(|n| n > layers) {
            return Err(invalid(format!("{} is more than the block count", key(k))));
        }
    }
    let experts = num("expert_count")?.unwrap_or(0);
    let used = num("expert_used_count")?.unwrap_or(0);
    let groups = num("expert_group_count")?.unwrap_or(0);
    let group_used = num("expert_group_used_count")?.unwrap_or(0);
    let consistent = experts <= MAX_EXPERTS
        && used <= experts
        && if experts > 0 {
            used > 0
                && groups < experts
                && (groups <= 1 || (experts % groups == 0 && group_used > 0 && group_used < groups))
        } else {
            used == 0 && groups == 0
        };
    if !consistent {
        return Err(invalid(format!(
            "inconsistent expert counts (experts {experts}, used {used}, groups {groups}, groups used {group_used})"
        )));
    }
    Ok(())
}

/// Quantizes a model blob with llama.cpp into a temporary file in `blobs/`, validates the
/// result with the GGUF reader, and publishes it as a blob.
fn quantize_blob(
    store: &Store,
    quantizer: &dyn Quantizer,
    digest: &str,
    to: llama::QuantType,
) -> Result<(Digest, u64, Gguf), CreateError> {
    let input = store.blob_path(digest)?;
    let mut tmp = store.temp_file()?;
    tmp.flush()?;
    quantizer
        .quantize(&input, tmp.path(), to.name())
        .map_err(CreateError::Quantize)?;
    let out = std::fs::File::open(tmp.path())?;
    let g = Gguf::from_seekable(BufReader::new(out))
        .map_err(|e| CreateError::Quantize(format!("llama.cpp wrote an invalid GGUF: {e}")))?;
    let (d, size) = store.publish_temp(tmp)?;
    Ok((d, size, g))
}

#[cfg(test)]
mod tests;
