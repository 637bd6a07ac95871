//! Ollama's Go prompt templates (TEMPLATE layers), rendered with the `gotmpl` crate.
//!
//! Placeholder until the gotmpl-based implementation lands: only `{{ .Prompt }}`-style
//! templates. (Replaced by the full module on merge.)

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A chat message in Ollama's wire shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    /// Role.
    pub role: String,
    /// Text.
    pub content: String,
    /// Reasoning text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// Images (base64).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Tool calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Tool name of a tool result.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    /// Tool call id of a tool result.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tool_call_id: String,
}

/// A tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolCall {
    /// Id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Function.
    pub function: ToolCallFunction,
}

/// A tool call's function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolCallFunction {
    /// Index.
    pub index: usize,
    /// Name.
    pub name: String,
    /// Arguments.
    pub arguments: Map<String, Value>,
}

/// A tool definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tool {
    /// Type.
    pub r#type: String,
    /// Function (kept as JSON here).
    pub function: Value,
}

/// Values for one render.
#[derive(Debug, Clone, Default)]
pub struct Values {
    /// Messages.
    pub messages: Vec<Message>,
    /// Tools.
    pub tools: Vec<Tool>,
    /// Prompt.
    pub prompt: String,
    /// Suffix.
    pub suffix: String,
    /// Think.
    pub think: bool,
    /// Think level.
    pub think_level: String,
    /// Whether think was set.
    pub is_think_set: bool,
    /// Force legacy mode.
    pub force_legacy: bool,
    /// Date.
    pub today: Option<chrono::NaiveDate>,
}

/// A template error.
#[derive(Debug, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(String);

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    text: String,
}

impl Template {
    /// Parses.
    ///
    /// # Errors
    /// Never in the placeholder.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Ok(Template { text: text.into() })
    }
    /// `{{ .Prompt }}`.
    pub fn default_template() -> Template {
        Template {
            text: "{{ .Prompt }}".into(),
        }
    }
    /// Text.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// Uses messages.
    pub fn uses_messages(&self) -> bool {
        self.text.contains(".Messages")
    }
    /// Tools.
    pub fn supports_tools(&self) -> bool {
        self.text.contains(".Tools")
    }
    /// Suffix.
    pub fn supports_insert(&self) -> bool {
        self.text.contains(".Suffix")
    }
    /// Renders (placeholder: the last user message or prompt).
    ///
    /// # Errors
    /// Never in the placeholder.
    pub fn render(&self, v: &Values) -> Result<String, TemplateError> {
        let mut out = String::new();
        for m in &v.messages {
            out.push_str(&m.content);
        }
        out.push_str(&v.prompt);
        Ok(out)
    }
}
