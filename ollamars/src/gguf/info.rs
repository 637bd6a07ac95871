//! What `/api/show` derives from a GGUF: `model_info`, `details` and capabilities (spec §1.10, §9).

use super::{Array, Gguf, Modalities, Value, file_type_name};
use serde_json::{Map, Value as Json};

/// Keys left out of `model_info`, as Ollama does.
const HIDDEN_KEYS: &[&str] = &["general.name", "tokenizer.chat_template"];
/// Arrays longer than this are shown as `[]` unless verbose.
const SHORT_ARRAY: usize = 5;

/// The `details` object of `/api/show` and `/api/tags`, as far as the GGUF determines it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Details {
    /// Always `gguf`.
    pub format: String,
    /// `general.architecture` (empty when absent).
    pub family: String,
    /// `[family]`.
    pub families: Vec<String>,
    /// Human parameter count such as `134.52M` or `8.0B`.
    pub parameter_size: String,
    /// `general.file_type` as a name such as `Q4_K_M`; `unknown` when absent or unrecognised.
    pub quantization_level: String,
}

/// A model capability (spec §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Text generation (no pooling type).
    Completion,
    /// Embeddings (a pooling type is set).
    Embedding,
    /// Tool calling.
    Tools,
    /// Fill-in-the-middle via `suffix`.
    Insert,
    /// Reasoning output.
    Thinking,
    /// Image input.
    Vision,
    /// Audio input.
    Audio,
}

impl Capability {
    /// The name used in the API (`completion`, `tools`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Completion => "completion",
            Capability::Embedding => "embedding",
            Capability::Tools => "tools",
            Capability::Insert => "insert",
            Capability::Thinking => "thinking",
            Capability::Vision => "vision",
            Capability::Audio => "audio",
        }
    }
}

/// Ollama's human form of a count: `%.0fB`/`%.1fB` for billions, `%.0fM`/`%.2fM` for millions
/// (no decimals when whole), `%.0fK` for thousands, else the plain number.
pub fn human_number(n: u64) -> String {
    const K: u64 = 1_000;
    const M: u64 = 1_000_000;
    const B: u64 = 1_000_000_000;
    let scaled = |unit: u64, decimals: usize, suffix: &str| {
        let x = n as f64 / unit as f64;
        if x == x.floor() {
            format!("{x:.0}{suffix}")
        } else {
            format!("{x:.decimals$}{suffix}")
        }
    };
    if n >= B {
        scaled(B, 1, "B")
    } else if n >= M {
        scaled(M, 2, "M")
    } else if n >= K {
        format!("{:.0}K", n as f64 / K as f64)
    } else {
        n.to_string()
    }
}

/// An f32 as JSON the way Go encodes a float32: via its shortest decimal form, so `1e-5`
/// stays `1e-05` rather than `9.99999974737875e-06`.
fn f32_json(x: f32) -> Json {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Json::Null, Json::Number)
}

fn f64_json(x: f64) -> Json {
    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
}

fn array_json(a: &Array) -> Json {
    match a {
        Array::U8(v) => v.iter().map(|&x| Json::from(x)).collect(),
        Array::I8(v) => v.iter().map(|&x| Json::from(x)).collect(),
        Array::U16(v) => v.iter().map(|&x| Json::from(x)).collect(),
        Array::I16(v) => v.iter().map(|&x| Json::from(x)).collect(),
        Array::U32(v) => v.iter().map(|&x| Json::from(x)).collect(),
        Array::I32(v) => v.iter().map(|&x| Json::from(x)).collect(),
        Array::F32(v) => v.iter().map(|&x| f32_json(x)).collect(),
        Array::Bool(v) => v.iter().map(|&x| Json::from(x)).collect(),
        Array::String(v) => v.iter().map(|x| Json::from(x.as_str())).collect(),
        Array::Array(v) => v.iter().map(array_json).collect(),
        Array::U64(v) => v.iter().map(|&x| Json::from(x)).collect(),
        Array::I64(v) => v.iter().map(|&x| Json::from(x)).collect(),
        Array::F64(v) => v.iter().map(|&x| f64_json(x)).collect(),
    }
}

impl Value {
    /// The value as JSON, as Ollama reports it in `model_info`.
    pub fn to_json(&self) -> Json {
        match self {
            Value::U8(x) => Json::from(*x),
            Value::I8(x) => Json::from(*x),
            Value::U16(x) => Json::from(*x),
            Value::I16(x) => Json::from(*x),
            Value::U32(x) => Json::from(*x),
            Value::I32(x) => Json::from(*x),
            Value::U64(x) => Json::from(*x),
            Value::I64(x) => Json::from(*x),
            Value::F32(x) => f32_json(*x),
            Value::F64(x) => f64_json(*x),
            Value::Bool(x) => Json::from(*x),
            Value::String(x) => Json::from(x.as_str()),
            Value::Array(a) => array_json(a),
        }
    }
}

impl Gguf {
    /// `/api/show`'s `model_info`: every key/value except `general.name` and
    /// `tokenizer.chat_template`, plus `general.parameter_count`. Unless `verbose`, arrays of
    /// more than five items are shown as `[]`.
    pub fn model_info(&self, verbose: bool) -> Map<String, Json> {
        self.kv_json(verbose, HIDDEN_KEYS)
    }

    /// `/api/show`'s `projector_info` for a projector GGUF: like [`Gguf::model_info`] but with
    /// every key (Ollama hides nothing here).
    pub fn projector_info(&self, verbose: bool) -> Map<String, Json> {
        self.kv_json(verbose, &[])
    }

    fn kv_json(&self, verbose: bool, hidden: &[&str]) -> Map<String, Json> {
        let mut out = Map::new();
        for (k, v) in self.metadata() {
            if hidden.contains(&k.as_str()) {
                continue;
            }
            let json = match v {
                Value::Array(a) if !verbose && a.len() > SHORT_ARRAY => Json::Array(Vec::new()),
                _ => v.to_json(),
            };
            out.insert(k.clone(), json);
        }
        out.entry("general.parameter_count")
            .or_insert_with(|| Json::from(self.parameter_count()));
        // Ollama encodes a Go map: keys in sorted order.
        let mut entries: Vec<(String, Json)> = out.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.into_iter().collect()
    }

    /// `/api/show`'s `tensors`: `[{name, type, shape}]` in file order.
    pub fn tensors_json(&self) -> Json {
        self.tensors()
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "type": t.ggml_type.name(), "shape": t.dims}))
            .collect()
    }

    /// `details` for `/api/show` and the config blob.
    pub fn details(&self) -> Details {
        let family = self.architecture().unwrap_or_default().to_string();
        let quantization_level = self
            .get("general.file_type")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .and_then(file_type_name)
            .unwrap_or("unknown")
            .to_string();
        Details {
            format: "gguf".into(),
            families: vec![family.clone()],
            family,
            parameter_size: human_number(self.parameter_count()),
            quantization_level,
        }
    }

    /// `tokenizer.chat_template`, if present.
    pub fn chat_template(&self) -> Option<&str> {
        self.get("tokenizer.chat_template").and_then(Value::as_str)
    }

    fn has_arch_key(&self, suffix: &str) -> bool {
        self.architecture()
            .is_some_and(|a| self.get(&format!("{a}.{suffix}")).is_some())
    }

    /// Capabilities as §9 detects them, in the order
    /// completion/embedding, tools, insert, thinking, vision, audio.
    ///
    /// `go_template` is the model's Go TEMPLATE layer, if any; `projectors` are the encoders of
    /// the model's projector layers ([`Gguf::projector_modalities`]; default when it has none).
    /// Tools and thinking are also detected from the GGUF chat template.
    pub fn capabilities(
        &self,
        go_template: Option<&str>,
        projectors: Modalities,
    ) -> Vec<Capability> {
        let mut caps = Vec::new();
        if self.has_arch_key("pooling_type") {
            caps.push(Capability::Embedding);
        } else {
            caps.push(Capability::Completion);
        }
        let go = go_template.unwrap_or_default();
        let jinja = self.chat_template().unwrap_or_default();
        if go.contains(".Tools") || jinja.contains("tools") || jinja.contains("tool_call") {
            caps.push(Capability::Tools);
        }
        if go.contains(".Suffix") {
            caps.push(Capability::Insert);
        }
        let family = self.architecture().unwrap_or_default();
        let go_thinks = go.contains(".Thinking") && go.contains("range .Messages");
        let jinja_thinks =
            jinja.contains("</think>") && (jinja.contains("<think>") || jinja.contains("split("));
        if go_thinks || jinja_thinks || family == "gptoss" || family == "gpt-oss" {
            caps.push(Capability::Thinking);
        }
        if projectors.vision || self.has_arch_key("vision.block_count") {
            caps.push(Capability::Vision);
        }
        if projectors.audio || self.has_arch_key("audio.block_count") {
            caps.push(Capability::Audio);
        }
        caps
    }
}
