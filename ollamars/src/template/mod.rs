//! Ollama's Go prompt templates (TEMPLATE layers), rendered with the `gotmpl` crate.
//!
//! This first part holds Ollama's wire shapes for messages, tool calls and tools, which the
//! template data and the HTTP API share.

#[cfg(test)]
mod tests;
mod types;

pub use types::{
    Message, PropertyType, Tool, ToolCall, ToolCallFunction, ToolFunction, ToolParameters,
    ToolProperties, ToolProperty,
};
