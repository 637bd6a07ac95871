//! Requests checked once, before any handler logic, into typed and bounded values (as TGI's
//! router validates before it queues): cross-field rules, bounds and conversions that cannot
//! fail later. Model-dependent checks (capabilities, `think` on a model that cannot) come after
//! the model is looked up, in the server's pipeline.

use super::{
    ChatRequest, EmbedRequest, GenerateRequest, KeepAlive, Message, RunParams, ThinkValue, Tool,
};
use crate::template::Template;
use serde_json::{Map, Value};

/// Why a request is invalid (each is the client's fault: HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No `model`.
    #[error("model is required")]
    ModelRequired,
    /// `raw` with one of the fields a template would use.
    #[error("raw mode does not support template, system, or context")]
    RawWithTemplate,
    /// `top_logprobs` beyond 0..=20.
    #[error("top_logprobs must be between 0 and 20")]
    TopLogprobs,
    /// A `context` id that is no token id.
    #[error("invalid context: token ids out of range")]
    ContextRange,
    /// `format` is neither `"json"` nor a schema the grammar can express.
    #[error("{0}")]
    Format(String),
    /// The request's `template` does not parse.
    #[error("template error: {0}")]
    Template(String),
    /// `tool_choice` is not one of its forms.
    #[error("{0}")]
    ToolChoice(String),
    /// An embedding input that is not a string.
    #[error("invalid input type")]
    InputType,
    /// `dimensions` below 1.
    #[error("dimensions must be a positive number")]
    Dimensions,
    /// An image that is not valid base64, too large, or not an image.
    #[error("invalid image input: {0}")]
    Image(String),
}

/// Checks the images of one request: their number, each one's base64 (decoded size bounded
/// before decoding) and its header (format and pixel count, read without decoding pixels).
/// `images` yields each message's images in order.
///
/// # Errors
/// [`RequestError::Image`] naming the first bad image (1-based).
pub fn check_images<'a>(images: impl Iterator<Item = &'a String>) -> Result<usize, RequestError> {
    let limits = crate::media::Limits::default();
    let mut n = 0;
    for (i, b64) in images.enumerate() {
        n += 1;
        crate::media::check_count(n, &limits).map_err(|e| RequestError::Image(e.to_string()))?;
        let bad =
            |e: crate::media::MediaError| RequestError::Image(format!("image {}: {e}", i + 1));
        let bytes = crate::media::decode_base64(b64, &limits).map_err(bad)?;
        crate::media::probe(&bytes, &limits).map_err(bad)?;
    }
    Ok(n)
}

/// What `tool_choice` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides (the default).
    Auto,
    /// No tools: they are not shown to the model.
    None,
    /// A call of one of the tools is forced.
    Required,
    /// A call of this tool is forced.
    Function(String),
}

impl ToolChoice {
    /// Parses `"auto"`, `"none"`, `"required"` (or `"any"`), a tool name, or OpenAI's
    /// `{"type": "function", "function": {"name": ...}}`; null is `auto`.
    ///
    /// # Errors
    /// A message for anything else.
    pub fn from_json(v: &Value) -> Result<ToolChoice, String> {
        match v {
            Value::Null => Ok(ToolChoice::Auto),
            Value::String(s) => Ok(match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" | "any" => ToolChoice::Required,
                name => ToolChoice::Function(name.to_string()),
            }),
            Value::Object(o) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)
                .map(|n| ToolChoice::Function(n.to_string()))
                .ok_or_else(|| format!("invalid tool_choice: {v}")),
            _ => Err(format!("invalid tool_choice: {v}")),
        }
    }
}

/// [`RunParams`], checked.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The model as written (never empty).
    pub model: String,
    /// `format` as a GBNF grammar.
    pub grammar: Option<String>,
    /// Model options.
    pub options: Option<Map<String, Value>>,
    /// `keep_alive`.
    pub keep_alive: Option<KeepAlive>,
    /// Stream (default true).
    pub stream: bool,
    /// `think` as given.
    pub think: Option<ThinkValue>,
    /// Truncate an over-long prompt (default true).
    pub truncate: bool,
    /// Shift the context when it fills (default true).
    pub shift: bool,
    /// Log-probabilities with this many alternatives (0..=20), when asked for.
    pub logprobs: Option<u32>,
    /// Return the rendered prompt instead of generating.
    pub debug_render_only: bool,
}

impl RunParams {
    /// Checks the shared fields.
    ///
    /// # Errors
    /// [`RequestError`].
    pub fn validate(self) -> Result<RunSettings, RequestError> {
        if self.model.is_empty() {
            return Err(RequestError::ModelRequired);
        }
        let logprobs = match self.top_logprobs {
            Some(n) if !(0..=20).contains(&n) => return Err(RequestError::TopLogprobs),
            top => self
                .logprobs
                .unwrap_or(false)
                .then(|| top.unwrap_or(0) as u32),
        };
        let grammar = crate::grammar::from_format(&self.format)
            .map_err(|e| RequestError::Format(e.to_string()))?;
        Ok(RunSettings {
            model: self.model,
            grammar,
            options: self.options,
            keep_alive: self.keep_alive,
            stream: self.stream.unwrap_or(true),
            think: self.think,
            truncate: self.truncate.unwrap_or(true),
            shift: self.shift.unwrap_or(true),
            logprobs,
            debug_render_only: self.debug_render_only,
        })
    }
}

/// [`GenerateRequest`], checked.
#[derive(Debug, Clone)]
pub struct ValidGenerate {
    /// The shared settings.
    pub run: RunSettings,
    /// The prompt.
    pub prompt: String,
    /// The fill-in-middle suffix.
    pub suffix: String,
    /// SYSTEM override (empty reads as absent).
    pub system: Option<String>,
    /// TEMPLATE override, parsed.
    pub template: Option<Template>,
    /// Earlier context, as token ids.
    pub context: Option<Vec<i32>>,
    /// No template.
    pub raw: bool,
    /// Images (base64, checked).
    pub images: Vec<String>,
}

impl ValidGenerate {
    /// Whether there is nothing to generate from (the request loads or unloads the model).
    pub fn is_empty(&self) -> bool {
        self.prompt.is_empty()
            && self.suffix.is_empty()
            && self.context.as_ref().is_none_or(Vec::is_empty)
    }
}

impl GenerateRequest {
    /// Checks the request.
    ///
    /// # Errors
    /// [`RequestError`].
    pub fn validate(self) -> Result<ValidGenerate, RequestError> {
        if self.raw && (self.template.is_some() || self.system.is_some() || self.context.is_some())
        {
            return Err(RequestError::RawWithTemplate);
        }
        let run = self.run.validate()?;
        let context = match self.context {
            None => None,
            Some(ids) => Some(
                ids.into_iter()
                    .map(|t| i32::try_from(t).map_err(|_| RequestError::ContextRange))
                    .map(|t| {
                        t.and_then(|t| {
                            if t < 0 {
                                Err(RequestError::ContextRange)
                            } else {
                                Ok(t)
                            }
                        })
                    })
                    .collect::<Result<Vec<i32>, _>>()?,
            ),
        };
        let template = match &self.template {
            Some(t) => Some(Template::parse(t).map_err(|e| RequestError::Template(e.to_string()))?),
            None => None,
        };
        let images = self.images.unwrap_or_default();
        check_images(images.iter())?;
        Ok(ValidGenerate {
            run,
            prompt: self.prompt,
            suffix: self.suffix,
            system: self.system.filter(|s| !s.is_empty()),
            template,
            context,
            raw: self.raw,
            images,
        })
    }
}

/// [`ChatRequest`], checked.
#[derive(Debug, Clone)]
pub struct ValidChat {
    /// The shared settings.
    pub run: RunSettings,
    /// The conversation, roles lower-cased.
    pub messages: Vec<Message>,
    /// Tools offered (none with `tool_choice: "none"`).
    pub tools: Vec<Tool>,
    /// `tool_choice`.
    pub tool_choice: ToolChoice,
}

impl ChatRequest {
    /// Checks the request.
    ///
    /// # Errors
    /// [`RequestError`].
    pub fn validate(mut self) -> Result<ValidChat, RequestError> {
        let run = self.run.validate()?;
        let tool_choice =
            ToolChoice::from_json(&self.tool_choice).map_err(RequestError::ToolChoice)?;
        if tool_choice == ToolChoice::None {
            self.tools.clear();
        }
        for m in &mut self.messages {
            m.role = m.role.to_lowercase();
        }
        check_images(self.messages.iter().flat_map(|m| m.images.iter()))?;
        Ok(ValidChat {
            run,
            messages: self.messages,
            tools: self.tools,
            tool_choice,
        })
    }
}

/// [`EmbedRequest`], checked.
#[derive(Debug, Clone)]
pub struct ValidEmbed {
    /// The model as written.
    pub model: String,
    /// The texts (none: the request only loads the model).
    pub inputs: Vec<String>,
    /// Cut over-long inputs (default true).
    pub truncate: bool,
    /// Cut each vector to this many values.
    pub dimensions: Option<usize>,
    /// Model options.
    pub options: Option<Map<String, Value>>,
    /// `keep_alive`.
    pub keep_alive: Option<KeepAlive>,
}

impl EmbedRequest {
    /// Checks the request.
    ///
    /// # Errors
    /// [`RequestError`].
    pub fn validate(self) -> Result<ValidEmbed, RequestError> {
        let inputs = match self.input {
            Value::Null => Vec::new(),
            Value::String(s) if s.is_empty() => Vec::new(),
            Value::String(s) => vec![s],
            Value::Array(a) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(RequestError::InputType),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(RequestError::InputType),
        };
        let dimensions = match self.dimensions {
            Some(d) if d < 1 => return Err(RequestError::Dimensions),
            d => d.and_then(|d| usize::try_from(d).ok()),
        };
        Ok(ValidEmbed {
            model: self.model,
            inputs,
            truncate: self.truncate.unwrap_or(true),
            dimensions,
            options: self.options,
            keep_alive: self.keep_alive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn generate(v: Value) -> Result<ValidGenerate, RequestError> {
        serde_json::from_value::<GenerateRequest>(v)
            .unwrap()
            .validate()
    }

    #[test]
    fn generate_rules() {
        assert_eq!(
            generate(json!({"prompt": "x"})).unwrap_err(),
            RequestError::ModelRequired
        );
        assert_eq!(
            generate(json!({"model": "m", "raw": true, "system": "s"})).unwrap_err(),
            RequestError::RawWithTemplate
        );
        for bad in [json!([1, -1]), json!([3000000000u64])] {
            assert_eq!(
                generate(json!({"model": "m", "context": bad})).unwrap_err(),
                RequestError::ContextRange
            );
        }
        assert_eq!(
            generate(json!({"model": "m", "top_logprobs": 21})).unwrap_err(),
            RequestError::TopLogprobs
        );
        assert!(matches!(
            generate(json!({"model": "m", "format": "yaml"})).unwrap_err(),
            RequestError::Format(_)
        ));
        let v = generate(json!({"model": "m", "context": [1, 2], "logprobs": true,
            "top_logprobs": 3, "format": "json"}))
        .unwrap();
        assert_eq!(v.context, Some(vec![1, 2]));
        assert_eq!(v.run.logprobs, Some(3));
        assert!(v.run.grammar.is_some() && v.run.stream && v.run.truncate);
        assert!(generate(json!({"model": "m"})).unwrap().is_empty());
    }

    #[test]
    fn chat_and_embed_rules() {
        let c: ChatRequest = serde_json::from_value(json!({"model": "m",
            "messages": [{"role": "USER", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}))
        .unwrap();
        let c = c.validate().unwrap();
        assert_eq!(c.messages[0].role, "user");
        assert!(c.tools.is_empty());
        let e = |v: Value| {
            serde_json::from_value::<EmbedRequest>(v)
                .unwrap()
                .validate()
        };
        assert_eq!(
            e(json!({"model": "m", "input": ["a", 5]})).unwrap_err(),
            RequestError::InputType
        );
        assert_eq!(
            e(json!({"model": "m", "input": 5})).unwrap_err(),
            RequestError::InputType
        );
        assert_eq!(
            e(json!({"model": "m", "input": "a", "dimensions": 0})).unwrap_err(),
            RequestError::Dimensions
        );
        assert_eq!(
            e(json!({"model": "m", "input": ""})).unwrap().inputs.len(),
            0
        );
        assert_eq!(
            e(json!({"model": "m", "input": ["a", "b"]}))
                .unwrap()
                .inputs
                .len(),
            2
        );
    }
}
