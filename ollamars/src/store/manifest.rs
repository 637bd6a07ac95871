//! The manifest JSON (spec §5.2), layer media types (§5.3) and the config blob (§5.4).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `mediaType` of a manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `mediaType` of the config blob.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
/// GGUF weights.
pub const MEDIA_MODEL: &str = "application/vnd.ollama.image.model";
/// Vision or audio projector GGUF.
pub const MEDIA_PROJECTOR: &str = "application/vnd.ollama.image.projector";
/// LoRA adapter GGUF.
pub const MEDIA_ADAPTER: &str = "application/vnd.ollama.image.adapter";
/// Go template text.
pub const MEDIA_TEMPLATE: &str = "application/vnd.ollama.image.template";
/// Old name of the template layer, still read.
pub const MEDIA_PROMPT: &str = "application/vnd.ollama.image.prompt";
/// System prompt text.
pub const MEDIA_SYSTEM: &str = "application/vnd.ollama.image.system";
/// JSON object of options.
pub const MEDIA_PARAMS: &str = "application/vnd.ollama.image.params";
/// JSON array of messages.
pub const MEDIA_MESSAGES: &str = "application/vnd.ollama.image.messages";
/// License text.
pub const MEDIA_LICENSE: &str = "application/vnd.ollama.image.license";
/// Very old embeddings layer (ignored).
pub const MEDIA_EMBED: &str = "application/vnd.ollama.image.embed";
/// Draft model GGUF.
pub const MEDIA_DRAFT: &str = "application/vnd.ollama.image.draft";
/// One safetensors tensor (MLX models).
pub const MEDIA_TENSOR: &str = "application/vnd.ollama.image.tensor";
/// A named JSON config file (MLX models).
pub const MEDIA_JSON: &str = "application/vnd.ollama.image.json";

/// One layer (or the config) of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// What the blob holds.
    pub media_type: String,
    /// `sha256:<hex>`; validated whenever it is turned into a path.
    pub digest: String,
    /// Blob size in bytes.
    pub size: u64,
    /// The model this layer was inherited from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Tensor or file name (MLX models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A model manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST_MEDIA_TYPE`].
    #[serde(default)]
    pub media_type: String,
    /// The config blob.
    pub config: Layer,
    /// The layers.
    #[serde(default)]
    pub layers: Vec<Layer>,
}

impl Manifest {
    /// A new schema-2 manifest.
    pub fn new(config: Layer, layers: Vec<Layer>) -> Self {
        Manifest {
            schema_version: 2,
            media_type: MANIFEST_MEDIA_TYPE.to_string(),
            config,
            layers,
        }
    }

    /// The model size: every layer plus the config.
    pub fn total_size(&self) -> u64 {
        self.layers
            .iter()
            .fold(self.config.size, |acc, l| acc.saturating_add(l.size))
    }

    /// The config digest followed by every layer digest.
    pub fn digests(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.config.digest.as_str())
            .chain(self.layers.iter().map(|l| l.digest.as_str()))
    }

    /// The first layer of a media type.
    pub fn layer(&self, media_type: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.media_type == media_type)
    }

    /// The JSON encoding used for locally written manifests: compact, with a trailing newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// `rootfs` of old configs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Layer digests.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// The config blob (`ConfigV2`). Unknown fields are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Config {
    /// `gguf` or `safetensors`.
    #[serde(default)]
    pub model_format: String,
    /// `general.architecture`.
    #[serde(default)]
    pub model_family: String,
    /// Families, e.g. `["llama", "clip"]`.
    #[serde(default)]
    pub model_families: Option<Vec<String>>,
    /// Parameter size such as `8.0B`.
    #[serde(default)]
    pub model_type: String,
    /// Quantization such as `Q4_K_M`.
    #[serde(default)]
    pub file_type: String,
    /// Built-in renderer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderer: Option<String>,
    /// Built-in parser name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<String>,
    /// Minimum Ollama version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<String>,
    /// Capabilities stated by the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// Trained context length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    /// Embedding length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_length: Option<u64>,
    /// Always `amd64` ("for spec").
    #[serde(default)]
    pub architecture: String,
    /// Always `linux` ("for spec").
    #[serde(default)]
    pub os: String,
    /// Old configs' layer list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootFs>,
    /// Any other fields, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Config {
    /// The config Ollama writes for a GGUF model: format, family, families, parameter size and
    /// quantization from the GGUF's details, and the fixed `amd64`/`linux` "for spec" fields.
    pub fn for_gguf(details: &crate::gguf::Details) -> Config {
        Config {
            model_format: details.format.clone(),
            model_family: details.family.clone(),
            model_families: Some(details.families.clone()),
            model_type: details.parameter_size.clone(),
            file_type: details.quantization_level.clone(),
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Config::default()
        }
    }
}
