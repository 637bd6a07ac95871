//! Ollama's wire shapes for chat messages, tool calls and tool definitions.
//!
//! They serialise with Ollama's JSON field names (`api/types.go`) and are shared by the HTTP API and
//! the template renderer. Like Go's `encoding/json`, every field accepts JSON `null` as its zero
//! value, and unknown fields are ignored.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Reads a field that Go would leave at its zero value when the JSON holds `null`.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a role and lower-cases it, as Ollama's `Message.UnmarshalJSON` does.
fn lower_case_role<'de, D>(d: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    let role: Option<String> = Option::deserialize(d)?;
    Ok(role.unwrap_or_default().to_lowercase())
}

/// One message of a chat: `{"role", "content", "thinking", "images", "tool_calls", "tool_name",
/// "tool_call_id"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool` (lower-cased when read from JSON).
    #[serde(default, deserialize_with = "lower_case_role")]
    pub role: String,
    /// The text of the message; JSON `null` reads as empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: String,
    /// The model's reasoning that preceded `content` (assistant messages).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub thinking: String,
    /// Images, each base64-encoded.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub images: Vec<String>,
    /// Tool calls the assistant made.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the name of the tool whose result this is.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub tool_name: String,
    /// For a `tool` message: the id of the call it answers.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub tool_call_id: String,
}

impl Message {
    /// A message with just a role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
            ..Message::default()
        }
    }
}

/// A tool call made by the model: `{"id", "function": {"index", "name", "arguments"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, when the client or parser gave one.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub id: String,
    /// What was called, and with which arguments.
    #[serde(default, deserialize_with = "null_as_default")]
    pub function: ToolCallFunction,
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    /// Position of the call among the calls of one response.
    #[serde(default, deserialize_with = "null_as_default")]
    pub index: usize,
    /// The tool's name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The arguments, a JSON object in the order received.
    #[serde(default, deserialize_with = "null_as_default")]
    pub arguments: Map<String, Value>,
}

/// A tool the model may call: `{"type", "items", "function"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Usually `function`.
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub r#type: String,
    /// Optional `items` schema (kept as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Value>,
    /// The function's name, description and parameter schema.
    #[serde(default, deserialize_with = "null_as_default")]
    pub function: ToolFunction,
}

/// The function of a [`Tool`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolFunction {
    /// The function's name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// What it does.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Its parameters, as a JSON-schema object.
    #[serde(default, deserialize_with = "null_as_default")]
    pub parameters: ToolParameters,
}

/// The parameter schema of a [`ToolFunction`]: `{"type", "$defs", "items", "required",
/// "properties"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolParameters {
    /// Usually `object`.
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub r#type: String,
    /// `$defs`, kept as given.
    #[serde(rename = "$defs", default, skip_serializing_if = "Option::is_none")]
    pub defs: Option<Value>,
    /// `items`, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Value>,
    /// Names of the required properties.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub required: Vec<String>,
    /// The properties, in the order received. `None` (absent or `null`) serialises as `null`,
    /// as Ollama does.
    #[serde(default)]
    pub properties: Option<ToolProperties>,
}

/// One property of a tool's parameter schema. Like Ollama, only these schema keywords are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolProperty {
    /// `anyOf` alternatives.
    #[serde(
        rename = "anyOf",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub any_of: Vec<ToolProperty>,
    /// `type`: one JSON-schema type name or several.
    #[serde(
        rename = "type",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "PropertyType::is_empty"
    )]
    pub r#type: PropertyType,
    /// `items`, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Value>,
    /// `description`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// `enum`: the allowed values.
    #[serde(
        rename = "enum",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub r#enum: Vec<Value>,
    /// Nested `properties`, in the order received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<ToolProperties>,
    /// Nested `required`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub required: Vec<String>,
}

impl ToolProperty {
    /// The property as a TypeScript type, as Ollama's `ToTypeScriptType` writes it (`anyOf`
    /// alternatives and multiple types are joined with ` | `).
    pub fn to_typescript_type(&self) -> String {
        if !self.any_of.is_empty() {
            return self
                .any_of
                .iter()
                .map(ToolProperty::to_typescript_type)
                .collect::<Vec<_>>()
                .join(" | ");
        }
        typescript_union(self.r#type.0.iter().map(String::as_str))
    }
}

/// The TypeScript type of a list of JSON-schema type names (`any` for none).
pub(crate) fn typescript_union<'a>(types: impl Iterator<Item = &'a str>) -> String {
    let mapped: Vec<&str> = types.map(typescript_type).collect();
    if mapped.is_empty() {
        "any".to_string()
    } else {
        mapped.join(" | ")
    }
}

/// One JSON-schema type name as a TypeScript type.
fn typescript_type(json_type: &str) -> &'static str {
    match json_type {
        "string" => "string",
        "number" | "integer" => "number",
        "boolean" => "boolean",
        "array" => "any[]",
        "object" => "Record<string, any>",
        "null" => "null",
        _ => "any",
    }
}

/// A property's `type`: JSON holds either one name (`"string"`) or a list (`["string", "null"]`).
/// One name serialises back as a string, several as a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyType(pub Vec<String>);

impl PropertyType {
    /// Whether no type is given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for PropertyType {
    /// Like Ollama's `PropertyType.String`: the name itself, or `[a b]` for several.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => Ok(()),
            [one] => f.write_str(one),
            many => write!(f, "[{}]", many.join(" ")),
        }
    }
}

impl Serialize for PropertyType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => {
                let mut seq = s.serialize_seq(Some(many.len()))?;
                for t in many {
                    seq.serialize_element(t)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for PropertyType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TypeVisitor;
        impl<'de> Visitor<'de> for TypeVisitor {
            type Value = PropertyType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a type name or a list of type names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PropertyType, E> {
                Ok(PropertyType(vec![v.to_string()]))
            }
            fn visit_unit<E: de::Error>(self) -> Result<PropertyType, E> {
                Ok(PropertyType::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PropertyType, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(PropertyType(names))
            }
        }
        d.deserialize_any(TypeVisitor)
    }
}

/// Named properties in the order they were received (a JSON object). A repeated name keeps its
/// first position and takes the last value, like Ollama's ordered map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolProperties(pub Vec<(String, ToolProperty)>);

impl ToolProperties {
    /// The property called `name`.
    pub fn get(&self, name: &str) -> Option<&ToolProperty> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// Adds `property` under `name`, replacing (in place) one of the same name.
    pub fn insert(&mut self, name: impl Into<String>, property: ToolProperty) {
        let name = name.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = property,
            None => self.0.push((name, property)),
        }
    }

    /// The properties in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ToolProperty)> {
        self.0.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// How many properties there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ToolProperties {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, property) in &self.0 {
            map.serialize_entry(name, property)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ToolProperties {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PropertiesVisitor;
        impl<'de> Visitor<'de> for PropertiesVisitor {
            type Value = ToolProperties;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of tool properties")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ToolProperties, A::Error> {
                let mut out = ToolProperties::default();
                while let Some((name, property)) = map.next_entry::<String, ToolProperty>()? {
                    out.insert(name, property);
                }
                Ok(out)
            }
        }
        d.deserialize_map(PropertiesVisitor)
    }
}
