//! Typed PARAMETERs (spec §4.3).

use super::{ModelfileError, Warning};
use std::collections::BTreeMap;

/// The type of a PARAMETER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A 64-bit integer.
    Int,
    /// A float.
    Float,
    /// A bool (Go's `ParseBool` spellings).
    Bool,
    /// A list of strings; repeated lines add to it.
    StringList,
}

/// A PARAMETER's value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// An integer option.
    Int(i64),
    /// A float option (always finite).
    Float(f64),
    /// A bool option.
    Bool(bool),
    /// A string-list option (`stop`).
    Strings(Vec<String>),
}

impl ParamValue {
    /// The value as stored in the params layer JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ParamValue::Int(i) => (*i).into(),
            ParamValue::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
            }
            ParamValue::Bool(b) => (*b).into(),
            ParamValue::Strings(v) => v.clone().into(),
        }
    }

    /// The value's text form(s), one per PARAMETER line.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ParamValue::Int(i) => vec![i.to_string()],
            ParamValue::Float(f) => vec![f.to_string()],
            ParamValue::Bool(b) => vec![b.to_string()],
            ParamValue::Strings(v) => v.clone(),
        }
    }
}

const INTS: &[&str] = &[
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
    "draft_num_predict",
];
const FLOATS: &[&str] = &[
    "top_p",
    "min_p",
    "typical_p",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
];
/// Names that are accepted with a warning and skipped.
pub(super) const DEPRECATED: &[&str] = &[
    "penalize_newline",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mlock",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
];

/// The type of a valid PARAMETER name (names are case-sensitive), or `None` if unknown.
pub fn param_kind(name: &str) -> Option<ParamKind> {
    if INTS.contains(&name) {
        Some(ParamKind::Int)
    } else if FLOATS.contains(&name) {
        Some(ParamKind::Float)
    } else if name == "use_mmap" {
        Some(ParamKind::Bool)
    } else if name == "stop" {
        Some(ParamKind::StringList)
    } else {
        None
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses one PARAMETER line into `params`; returns a warning for deprecated names.
pub(super) fn set(
    params: &mut BTreeMap<String, ParamValue>,
    name: &str,
    value: &str,
    line: usize,
) -> Result<Option<Warning>, ModelfileError> {
    if DEPRECATED.contains(&name) {
        return Ok(Some(Warning {
            line,
            message: format!("parameter '{name}' is deprecated and was ignored"),
        }));
    }
    let bad = |kind| ModelfileError::InvalidValue {
        line,
        kind,
        value: value.to_string(),
    };
    let parsed = match param_kind(name) {
        None => {
            return Err(ModelfileError::UnknownParameter {
                line,
                name: name.to_string(),
            });
        }
        Some(ParamKind::Int) => ParamValue::Int(value.parse().map_err(|_| bad("int"))?),
        Some(ParamKind::Float) => ParamValue::Float(
            value
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| bad("float"))?,
        ),
        Some(ParamKind::Bool) => ParamValue::Bool(parse_bool(value).ok_or_else(|| bad("bool"))?),
        Some(ParamKind::StringList) => {
            match params
                .entry(name.to_string())
                .or_insert_with(|| ParamValue::Strings(Vec::new()))
            {
                ParamValue::Strings(v) => v.push(value.to_string()),
                other => *other = ParamValue::Strings(vec![value.to_string()]),
            }
            return Ok(None);
        }
    };
    // As in Ollama, the first value of a scalar parameter wins; later ones are still checked.
    params.entry(name.to_string()).or_insert(parsed);
    Ok(None)
}
